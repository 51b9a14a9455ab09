-- The duplicate key's index led by DE7, the transmission date and time: terminals send it in time
-- order, so the entries that concurrent payments add land on the same few index pages at its end
-- instead of one page per terminal (each dirty page is a page to write to the journal at every
-- commit). A lookup names all five columns, so their order changes nothing else.
DROP INDEX transactions_duplicate_key;
CREATE UNIQUE INDEX transactions_duplicate_key
    ON transactions (transmitted, terminal_id, stan, acquirer_id, msg_class);
