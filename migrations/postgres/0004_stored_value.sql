-- PostgreSQL twin of migrations/sqlite/0004_stored_value.sql: keep the two in step.
-- The stored-value ledger and gift certificates. Amounts are integer minor units; an account's
-- balance is signed by its normal side and cached here, updated in the same database transaction as
-- the postings that move it. Stored value (gift balances, wallet buckets) can never go negative: the
-- CHECK refuses the whole transaction.

CREATE TABLE ledger_accounts (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    balance       BIGINT NOT NULL DEFAULT 0,
    non_negative  BOOLEAN NOT NULL,
    CHECK (NOT non_negative OR balance >= 0)
);

CREATE TABLE ledger_entries (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    currency        TEXT NOT NULL,
    transaction_id  TEXT,
    created_at      BIGINT NOT NULL
);

CREATE TABLE ledger_postings (
    entry_id    TEXT NOT NULL REFERENCES ledger_entries(id),
    line        BIGINT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES ledger_accounts(id),
    side        TEXT NOT NULL CHECK (side IN ('debit', 'credit')),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, line)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id);

-- A gift certificate's code is a bearer secret: only its SHA-256 is kept. Its balance is the ledger
-- account gift:<id>. A code registers to one wallet only.
CREATE TABLE gift_certificates (
    id             TEXT PRIMARY KEY,
    code_hash      TEXT NOT NULL UNIQUE,
    currency       TEXT NOT NULL,
    face_value     BIGINT NOT NULL CHECK (face_value > 0),
    expires_at     BIGINT NOT NULL,
    instrument_id  TEXT UNIQUE REFERENCES instruments(id),
    created_at     BIGINT NOT NULL
);
