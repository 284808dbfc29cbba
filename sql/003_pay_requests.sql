-- Version 3: the pay requests of the control socket's "pay" (SPEC §4.1).
-- A row is committed before VINR is called, so that one key never creates
-- two payments, not even across a crash.
--
-- state:
--   sending      committed; the create is being sent now.  Found at start,
--                it means the daemon died in between: it becomes unknown.
--   created      VINR created payment_id (its answer, or a matching
--                webhook or retrieve once it was unknown).
--   unknown      VINR may or may not have created it (the connection broke
--                after sending, a timeout, a 5xx): never sent again on its
--                own; resolved by the first payment of the same terminal,
--                reference and amount created after created_at.
--   not_created  VINR refused it (4xx), it was never sent, or it stayed
--                unknown for [api] unknown_after seconds: the key may
--                create again.
CREATE TABLE pay_requests (
	key		TEXT PRIMARY KEY,
	terminal_id	TEXT NOT NULL,
	amount		INTEGER NOT NULL,
	currency	TEXT NOT NULL,
	reference	TEXT NOT NULL,
	capture_method	TEXT NOT NULL,		-- automatic | manual
	state		TEXT NOT NULL,
	payment_id	TEXT,
	created_at	TEXT NOT NULL,		-- when the request was committed
	updated_at	TEXT NOT NULL
);
CREATE INDEX pay_requests_match ON pay_requests (terminal_id, reference, amount);
CREATE INDEX pay_requests_state ON pay_requests (state, created_at);
CREATE INDEX pay_requests_payment ON pay_requests (payment_id);
