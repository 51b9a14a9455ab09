-- The host-side key table of the payShield HSM backend (`--hsm payshield://host:port`, src/hsm/payshield.rs).
-- A payShield keeps no keys by name: the host keeps each key enciphered under the HSM's LMK and sends it
-- with every command. One row per key version: its label and usage as tsp names them, the key under the
-- LMK (a key block `S…` or a variant cryptogram `U…`; useless without the HSM) and its check value.
-- Unused with the other HSM backends. Nodes sharing the database share the table, so they use the same
-- keys; a version is inserted once (the primary key), the first node to insert it wins.
CREATE TABLE hsm_keys (
    label      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    usage      TEXT NOT NULL,
    key_lmk    TEXT NOT NULL,
    kcv        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (label, version)
);
