-- The terminal registry: which terminals (DE41) may send requests over ISO 8583, for which merchant
-- (DE42), reached through which VAN. An unknown or suspended terminal is answered `58`, a foreign
-- merchant `03`; with mutual TLS the client certificate must name the terminal's VAN (docs/security.md
-- "Terminal registry").
CREATE TABLE terminals (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    van         TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX terminals_merchant ON terminals (merchant_id);
