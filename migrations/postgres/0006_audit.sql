-- The audit trail: one append-only row per security-relevant event (detokenize, key operations,
-- instrument lifecycle, admin actions, refused API keys). Each row's hash is SHA-256 over the previous
-- row's hash and this row's fields (`src/audit/`), so a changed, removed or inserted row breaks the
-- chain from there on; `tsp audit verify` finds the first such row. Appends take a transaction-level
-- advisory lock, so nodes chain their rows one after another.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
