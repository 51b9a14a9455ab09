-- Notifications to token requestors (docs/webhooks.md): endpoints, an outbox of events written in
-- the same database transaction as the change they tell of, and one delivery per event and endpoint.
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    requestor_id  TEXT NOT NULL,
    url           TEXT NOT NULL,
    -- The signing secret, sealed by the HSM (AES-256-GCM, the endpoint id as AAD): never in clear.
    secret_sealed BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_requestor ON webhook_endpoints (requestor_id);

-- Each instrument numbers its events 1, 2, 3, ... (taken under the instrument row's lock).
ALTER TABLE instruments ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    requestor_id  TEXT NOT NULL,
    instrument_id TEXT NOT NULL,
    sequence      INTEGER NOT NULL,
    type          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (instrument_id, sequence)
);
CREATE INDEX events_requestor ON events (requestor_id, created_at, id);

CREATE TABLE event_deliveries (
    event_id     TEXT NOT NULL REFERENCES events(id),
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints(id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX event_deliveries_pending ON event_deliveries (endpoint_id, created_at, event_id) WHERE state = 'pending';
-- The sweep that ends live tokens past their TTL (and tells their requestors) finds them by expiry.
CREATE INDEX tokens_live_expiry ON tokens (expires_at) WHERE state = 'active';
