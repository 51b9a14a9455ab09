-- PostgreSQL twin of migrations/sqlite/0002_payments.sql: keep the two in step.
-- Payments over ISO 8583: every request with its answer (for duplicate replay), reversals, and the
-- reversal advices still owed to issuers. Times are Unix milliseconds; amounts integer minor units.

CREATE TABLE transactions (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('purchase', 'reversal', 'cancel', 'verification')),
    -- pending: at the issuer; approved / declined: answered; reversed: an approved payment undone.
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'declined', 'reversed')),
    mti              TEXT NOT NULL,
    -- The duplicate key: message class (02, 04, …), DE41, DE11, DE7, DE32 (11 digits, zero-padded).
    msg_class        TEXT NOT NULL,
    terminal_id      TEXT NOT NULL,
    stan             TEXT NOT NULL,
    transmitted      TEXT NOT NULL,
    acquirer_id      TEXT NOT NULL,
    -- SHA-256 of the request's data elements: the same key with other content is answered 94.
    content_hash     TEXT NOT NULL,
    response         BYTEA,
    response_code    TEXT,
    processing_code  TEXT,
    merchant_id      TEXT,
    amount           BIGINT,
    currency         TEXT,
    entry_mode       TEXT,
    token_id         TEXT,
    instrument_id    TEXT,
    instrument_kind  TEXT,
    masked_pan       TEXT,
    issuer_id        TEXT,
    -- Reversals and cancellations: the transaction they name (DE90), and for a reversal that came
    -- before its original, the original's key it waits for.
    original_id      TEXT REFERENCES transactions(id),
    original_key     TEXT,
    auth_code        TEXT,
    rrn              TEXT,
    issuer_response  TEXT,
    issuer_ms        BIGINT,
    total_ms         BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX transactions_duplicate_key
    ON transactions (msg_class, terminal_id, stan, transmitted, acquirer_id);
CREATE INDEX transactions_instrument ON transactions (instrument_id, created_at);
CREATE INDEX transactions_original_key ON transactions (original_key) WHERE original_key IS NOT NULL;
CREATE INDEX transactions_created ON transactions (created_at);

-- Reversal advices (0420) owed to an issuer: after a timeout, or for a reversed card payment. Sent
-- until the issuer answers 0430; the message is rebuilt from the transaction at send time, so no
-- PAN is stored here.
CREATE TABLE issuer_advices (
    id              TEXT PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES transactions(id),
    issuer_id       TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_at         BIGINT NOT NULL,
    done_at         BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX issuer_advices_due ON issuer_advices (next_at) WHERE done_at IS NULL;

ALTER TABLE tokens ADD COLUMN locked_at BIGINT;
