-- PostgreSQL twin of migrations/sqlite/0005_local_currency.sql: keep the two in step.
-- Local currency (지역화폐): regions and their merchants, one wallet per requestor and region, the
-- bonus grants each charge earned, and what each payment took from which grant. A wallet's principal
-- and bonus are the ledger accounts wallet:<instrument id>:principal / :bonus (CHECK ≥ 0 there); the
-- grants below say which part of the bonus expires when, and their sum of `remaining` equals the bonus
-- account. Every write to a wallet bumps its `version`, so two writers that read the same state cannot
-- both commit.

CREATE TABLE regions (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    currency                TEXT NOT NULL,
    -- Decimal text, e.g. "0.10": kept exact.
    incentive_rate          TEXT NOT NULL,
    monthly_bonus_cap       BIGINT NOT NULL CHECK (monthly_bonus_cap >= 0),
    bonus_lifetime_seconds  BIGINT NOT NULL CHECK (bonus_lifetime_seconds > 0),
    cancel_restore          TEXT NOT NULL CHECK (cancel_restore IN ('reverse', 'pro_rata')),
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);

-- The id is what terminals send in DE42.
CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    region_id   TEXT NOT NULL REFERENCES regions(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX merchants_region ON merchants (region_id);

CREATE TABLE local_wallets (
    instrument_id     TEXT PRIMARY KEY REFERENCES instruments(id),
    requestor_id      TEXT NOT NULL,
    region_id         TEXT NOT NULL REFERENCES regions(id),
    -- The calendar month ("YYYY-MM" in the region's offset) `charged_in_month` counts against the cap.
    bonus_month       TEXT,
    charged_in_month  BIGINT NOT NULL DEFAULT 0 CHECK (charged_in_month >= 0),
    next_grant_id     BIGINT NOT NULL DEFAULT 1,
    version           BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    UNIQUE (requestor_id, region_id)
);

CREATE TABLE bonus_grants (
    instrument_id  TEXT NOT NULL REFERENCES local_wallets(instrument_id),
    grant_id       BIGINT NOT NULL,
    granted_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    remaining      BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    PRIMARY KEY (instrument_id, grant_id)
);

-- A local-currency payment's split and what its cancels have returned: never more than it took, per
-- bucket (the forfeited part is inside cancelled_bonus).
CREATE TABLE local_payments (
    transaction_id       TEXT PRIMARY KEY REFERENCES transactions(id),
    instrument_id        TEXT NOT NULL REFERENCES local_wallets(instrument_id),
    principal            BIGINT NOT NULL CHECK (principal >= 0),
    bonus                BIGINT NOT NULL CHECK (bonus >= 0),
    cancelled_principal  BIGINT NOT NULL DEFAULT 0,
    cancelled_bonus      BIGINT NOT NULL DEFAULT 0,
    forfeited_bonus      BIGINT NOT NULL DEFAULT 0,
    CHECK (cancelled_principal >= 0 AND cancelled_principal <= principal),
    CHECK (cancelled_bonus >= 0 AND cancelled_bonus <= bonus),
    CHECK (forfeited_bonus >= 0 AND forfeited_bonus <= cancelled_bonus)
);

CREATE TABLE local_payment_takes (
    transaction_id  TEXT NOT NULL REFERENCES local_payments(transaction_id),
    -- The order the payment took from its grants (oldest-expiring first); cancels unwind from the end.
    seq             BIGINT NOT NULL,
    grant_id        BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    taken           BIGINT NOT NULL CHECK (taken > 0),
    returned        BIGINT NOT NULL DEFAULT 0,
    CHECK (returned >= 0 AND returned <= taken),
    PRIMARY KEY (transaction_id, grant_id)
);

-- Stored value: the split a transaction moved (see TxnRow).
ALTER TABLE transactions ADD COLUMN principal BIGINT;
ALTER TABLE transactions ADD COLUMN bonus BIGINT;
ALTER TABLE transactions ADD COLUMN forfeited BIGINT;
