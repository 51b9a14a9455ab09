-- Payments that a crash may have cut off: `recovery` looks every second for transactions still
-- pending after the issuer timeout, so the pending ones are indexed apart from the rest.
CREATE INDEX transactions_pending ON transactions (created_at) WHERE status = 'pending';
-- Rows stored before the duplicate-detection hash was keyed (`h1:`), which the start-up scrub
-- rekeys: found without reading the whole table at every start.
CREATE INDEX transactions_unkeyed ON transactions (id) WHERE content_hash NOT LIKE 'h1:%';
