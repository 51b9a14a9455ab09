-- The audit trail as one chain per writing process (`src/audit/`): each process appends to its own
-- chain in batches, with no lock, so no node waits for another's commit (the advisory lock of 0006
-- is no longer taken). `chain` names the chain (empty: the legacy chain of the rows written before,
-- numbered by `seq`) and `link` the row's place in it. A chain's first row forks from the trail's
-- last row, and anchors name other chains' last rows, so `tsp audit verify` still finds a changed,
-- removed or reordered row. `seq` orders all rows and now comes from a sequence.
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN link BIGINT;
CREATE UNIQUE INDEX audit_log_chain_link ON audit_log (chain, link);
CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', COALESCE((SELECT MAX(seq) FROM audit_log), 0) + 1, false);
ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq');
