-- The audit trail: one append-only row per security-relevant event (detokenize, key operations,
-- instrument lifecycle, admin actions, refused API keys). Each row's hash is SHA-256 over the previous
-- row's hash and this row's fields (`src/audit/`), so a changed, removed or inserted row breaks the
-- chain from there on; `tsp audit verify` finds the first such row.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
