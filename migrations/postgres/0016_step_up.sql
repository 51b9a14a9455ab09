-- Step-up verification at card registration (docs/instruments.md "Step-up verification"): a new
-- instrument status `pending_verification`, the assurance (ID&V) each card was registered with, and
-- the pending verifications.
ALTER TABLE instruments DROP CONSTRAINT instruments_status_check;
ALTER TABLE instruments ADD CONSTRAINT instruments_status_check
    CHECK (status IN ('active', 'pending_verification', 'suspended', 'deleted'));
-- How the cardholder was verified at registration (`Assurance`); NULL before this migration.
ALTER TABLE instruments ADD COLUMN assurance TEXT
    CHECK (assurance IN ('stand_in', 'issuer_approved', 'card_present', 'otp_sms', 'otp_app'));

-- A registration the issuer stepped up, until it is verified (the row goes) or fails (the
-- instrument is deleted). The code itself is never stored: `code_mac` is HMAC-SHA-256 of it under
-- an HSM key, bound to the instrument.
CREATE TABLE instrument_verifications (
    instrument_id    TEXT PRIMARY KEY REFERENCES instruments(id),
    -- JSON: [{"method": "sms", "destination": "010-****-1234"}, …] as the issuer offered them.
    offered          TEXT NOT NULL,
    method           TEXT CHECK (method IN ('sms', 'app')),
    code_mac         BYTEA,
    code_expires_at  BIGINT,
    codes_sent       BIGINT NOT NULL DEFAULT 0 CHECK (codes_sent >= 0),
    failed_attempts  BIGINT NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
