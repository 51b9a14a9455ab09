-- The audit trail as one chain per writing process (`src/audit/`): each process appends to its own
-- chain in batches, so no node waits for another's commit. `chain` names the chain (empty: the
-- legacy chain of the rows written before, numbered by `seq`) and `link` the row's place in it. A
-- chain's first row forks from the trail's last row, and anchors name other chains' last rows, so
-- `tsp audit verify` still finds a changed, removed or reordered row. `seq` orders all rows (SQLite
-- numbers them itself: the largest plus one).
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN link INTEGER;
CREATE UNIQUE INDEX audit_log_chain_link ON audit_log (chain, link);
