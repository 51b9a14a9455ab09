-- Key rotation (`tsp keys rotate`, src/vault/rotation.rs). A data-key version now names the version of
-- the HSM fingerprint key it pairs with: rotating makes a new pair, new cards are sealed and
-- fingerprinted under the newest pair, and the background re-encryption moves every card onto it.
-- A retired version is destroyed by deleting its row: the foreign key from instruments.dek_version
-- makes that fail while any card is still sealed under it.
ALTER TABLE data_keys ADD COLUMN fp_version INTEGER NOT NULL DEFAULT 1;

-- A deleted card has no sealed PAN, so it names no data key.
UPDATE instruments SET dek_version = NULL WHERE pan_sealed IS NULL;

-- Counts per version, the re-encryption's batches and the foreign-key check on delete.
CREATE INDEX instruments_dek_version ON instruments (dek_version);
