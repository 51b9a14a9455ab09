-- Per-token lifecycle (docs/instruments.md "Token lifecycle"): a live token (state 'active') may be
-- suspended by its requestor or by the issuer/operator, and resumed. A suspended token keeps its
-- number (it stays live for the uniqueness rule) but no payment, lease or detokenize accepts it.
-- The API shows the state 'revoked' as 'deleted'.
ALTER TABLE tokens ADD COLUMN suspended_at BIGINT;
-- The issuer acts on every token of a card by its Payment Account Reference.
CREATE INDEX instruments_par ON instruments (par);
