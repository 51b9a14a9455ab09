-- Terminal tokenization (SPEC §5, src/payments/tokenize.rs): a merchant keeps a token instead of the
-- PAN its terminal read. A merchant token is multi-use, bound to its merchant, one live per card and
-- merchant; it is a row of `tokens` with `multi_use` set.
ALTER TABLE tokens ADD COLUMN multi_use INTEGER NOT NULL DEFAULT 0 CHECK (multi_use IN (0, 1));
CREATE UNIQUE INDEX tokens_merchant_live ON tokens (instrument_id, merchant_id)
    WHERE multi_use = 1 AND state = 'active';

-- Which terminal requestor a merchant belongs to: its REST key may ask for that merchant's tokens,
-- and the cards its terminals read over ISO 8583 are that requestor's instruments.
CREATE TABLE merchant_requestors (
    merchant_id  TEXT PRIMARY KEY,
    requestor_id TEXT NOT NULL REFERENCES requestors(id),
    created_at   INTEGER NOT NULL
);
CREATE INDEX merchant_requestors_requestor ON merchant_requestors (requestor_id);

-- The requestor that holds the cards read at merchants no terminal requestor claims.
INSERT INTO requestors (id, trid, name, scopes, created_at)
VALUES ('req_terminals', 'TERMINALS', 'terminals of merchants without a terminal requestor', 'terminal', 0);
