-- One index on the token number instead of two. A new token adds one entry at a random place in one
-- B-tree, not two: half the pages a token's issuance dirties there, and half the random index that
-- grows with every token ever issued. The index still keeps a number unique among live tokens (a
-- live token's second key is '', a dead one's is its own id, so dead ones never collide), and still
-- finds every token a number ever named, live first (`token = $1` is its leading column).
DROP INDEX tokens_live_number;
DROP INDEX tokens_number;
CREATE UNIQUE INDEX tokens_number ON tokens (token, (CASE WHEN state = 'active' THEN '' ELSE id END));
