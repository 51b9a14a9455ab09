-- PostgreSQL twin of migrations/sqlite/0003_cancellation.sql: keep the two in step.
-- Cancellations (DE3 20xxxx): how much of each payment is cancelled, guarded in the database, and
-- whether a cancel was a void (same business day) or a refund (after the day's settlement).

ALTER TABLE transactions ADD COLUMN cancelled_amount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN cancel_type TEXT CHECK (cancel_type IS NULL OR cancel_type IN ('void', 'refund'));

-- The sum of cancellations never exceeds the original, whatever code path writes it. Raised as
-- check_violation (SQLSTATE 23514), like a CHECK constraint.
CREATE FUNCTION transactions_cancel_cap() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cancelled_amount < 0 OR NEW.cancelled_amount > COALESCE(NEW.amount, 0) THEN
        RAISE EXCEPTION 'cancellations would exceed the original amount' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER transactions_cancel_cap BEFORE UPDATE OF cancelled_amount ON transactions
FOR EACH ROW EXECUTE FUNCTION transactions_cancel_cap();

-- Business days closed by `tsp settle` or the configured cut-off.
CREATE TABLE settlements (
    id         TEXT PRIMARY KEY,
    closed_at  BIGINT NOT NULL,
    reason     TEXT NOT NULL CHECK (reason IN ('manual', 'cutoff'))
);
CREATE INDEX settlements_closed ON settlements (closed_at);
