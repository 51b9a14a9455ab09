-- PostgreSQL twin of migrations/sqlite/0001_vault.sql: keep the two in step.
-- The vault: token requestors and their API keys, wrapped data keys, instruments, one-time tokens.
-- Times are Unix milliseconds; amounts are integer minor units.

CREATE TABLE requestors (
    id          TEXT PRIMARY KEY,
    trid        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Only a SHA-256 of each key's secret is stored; the key itself is shown once.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    requestor_id TEXT NOT NULL REFERENCES requestors(id),
    secret_hash  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- Data-encryption keys, only ever stored wrapped under an HSM key-encryption key.
CREATE TABLE data_keys (
    version     BIGINT PRIMARY KEY,
    kek_label   TEXT NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE instruments (
    id            TEXT PRIMARY KEY,
    requestor_id  TEXT NOT NULL REFERENCES requestors(id),
    kind          TEXT NOT NULL CHECK (kind IN ('card', 'gift', 'local')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    issuer_id     TEXT,
    -- Card: first 6 and last 4 digits, length, expiry YYMM, PAR, keyed fingerprint, and the PAN
    -- sealed with AES-256-GCM (IV ‖ ciphertext ‖ tag) under data key `dek_version`.
    bin           TEXT,
    last4         TEXT,
    pan_len       BIGINT,
    expiry        TEXT,
    par           TEXT,
    fingerprint   TEXT,
    fp_version    BIGINT,
    pan_sealed    BYTEA,
    dek_version   BIGINT REFERENCES data_keys(version),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
-- The same requestor registering the same PAN again finds its instrument.
CREATE UNIQUE INDEX instruments_owner_fingerprint ON instruments (requestor_id, fingerprint)
    WHERE status <> 'deleted' AND fingerprint IS NOT NULL;
CREATE INDEX instruments_fingerprint ON instruments (fingerprint);
CREATE INDEX instruments_owner ON instruments (requestor_id, created_at);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    token           TEXT NOT NULL,
    instrument_id   TEXT NOT NULL REFERENCES instruments(id),
    requestor_id    TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'consumed', 'expired', 'revoked', 'locked')),
    token_expiry    TEXT NOT NULL,
    psn             TEXT NOT NULL,
    merchant_id     TEXT,
    max_amount      BIGINT CHECK (max_amount IS NULL OR max_amount > 0),
    currency        TEXT,
    entry_modes     TEXT,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    lease_id        TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    consumed_at     BIGINT
);
-- A token number is unique among live tokens; a dead number may be drawn again.
CREATE UNIQUE INDEX tokens_live_number ON tokens (token) WHERE state = 'active';
CREATE INDEX tokens_number ON tokens (token, created_at);
CREATE INDEX tokens_instrument_live ON tokens (instrument_id) WHERE state = 'active';
