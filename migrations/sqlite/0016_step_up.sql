-- no-transaction
-- Step-up verification at card registration (docs/instruments.md "Step-up verification"): a new
-- instrument status `pending_verification`, the assurance (ID&V) each card was registered with, and
-- the pending verifications.
--
-- SQLite cannot change a CHECK constraint in place, so the instruments table is rebuilt the way the
-- SQLite documentation's "generalized ALTER TABLE procedure" does it: foreign keys off (only possible
-- outside a transaction, hence `no-transaction` above) so that dropping the old table leaves the
-- references of tokens, gift certificates and wallets alone, and the copy in one transaction. Every
-- id is copied unchanged, so every reference still holds.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE instruments_new (
    id            TEXT PRIMARY KEY,
    requestor_id  TEXT NOT NULL REFERENCES requestors(id),
    kind          TEXT NOT NULL CHECK (kind IN ('card', 'gift', 'local')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'pending_verification', 'suspended', 'deleted')),
    issuer_id     TEXT,
    -- Card: first 6 and last 4 digits, length, expiry YYMM, PAR, keyed fingerprint, and the PAN
    -- sealed with AES-256-GCM (IV ‖ ciphertext ‖ tag) under data key `dek_version`.
    bin           TEXT,
    last4         TEXT,
    pan_len       INTEGER,
    expiry        TEXT,
    par           TEXT,
    fingerprint   TEXT,
    fp_version    INTEGER,
    pan_sealed    BLOB,
    dek_version   INTEGER REFERENCES data_keys(version),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    event_seq     INTEGER NOT NULL DEFAULT 0,
    -- How the cardholder was verified at registration (`Assurance`); NULL before this migration.
    assurance     TEXT CHECK (assurance IN ('stand_in', 'issuer_approved', 'card_present', 'otp_sms', 'otp_app'))
);
INSERT INTO instruments_new (id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par,
                             fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at, event_seq)
    SELECT id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par,
           fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at, event_seq
    FROM instruments;
DROP TABLE instruments;
ALTER TABLE instruments_new RENAME TO instruments;
CREATE UNIQUE INDEX instruments_owner_fingerprint ON instruments (requestor_id, fingerprint)
    WHERE status <> 'deleted' AND fingerprint IS NOT NULL;
CREATE INDEX instruments_fingerprint ON instruments (fingerprint);
CREATE INDEX instruments_owner ON instruments (requestor_id, created_at);
CREATE INDEX instruments_dek_version ON instruments (dek_version);
CREATE INDEX instruments_par ON instruments (par);

-- A registration the issuer stepped up, until it is verified (the row goes) or fails (the
-- instrument is deleted). The code itself is never stored: `code_mac` is HMAC-SHA-256 of it under
-- an HSM key, bound to the instrument.
CREATE TABLE instrument_verifications (
    instrument_id    TEXT PRIMARY KEY REFERENCES instruments(id),
    -- JSON: [{"method": "sms", "destination": "010-****-1234"}, …] as the issuer offered them.
    offered          TEXT NOT NULL,
    method           TEXT CHECK (method IN ('sms', 'app')),
    code_mac         BLOB,
    code_expires_at  INTEGER,
    codes_sent       INTEGER NOT NULL DEFAULT 0 CHECK (codes_sent >= 0),
    failed_attempts  INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
COMMIT;
PRAGMA foreign_keys = ON;
