-- Working and zone keys of ISO 8583 links (docs/iso8583.md "MAC", "Key exchange"), per terminal (DE41):
-- each version only as a TR-31 key block under the HSM's link KBPK, never in clear. `tak` is the MAC
-- key, `zmk` the zone key block protection key a new TAK travels under. A version is current while
-- retires_at is NULL; a replaced one is still accepted until retires_at (the overlap).
CREATE TABLE link_keys (
    link       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('tak', 'zmk')),
    version    BIGINT NOT NULL,
    key_block  TEXT NOT NULL,
    kcv        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retires_at BIGINT,
    PRIMARY KEY (link, kind, version)
);
