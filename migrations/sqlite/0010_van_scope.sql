-- Which token requestors a VAN (a requestor with the detokenize scope) serves: it may detokenize
-- their tokens and no others'. Detokenize answers a token of a requestor the VAN does not serve as
-- unknown.
CREATE TABLE van_requestors (
    van_id       TEXT NOT NULL REFERENCES requestors(id),
    requestor_id TEXT NOT NULL REFERENCES requestors(id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (van_id, requestor_id)
);
