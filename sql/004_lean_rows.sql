-- Version 4: fewer B-trees written per event (issue 11).
--
-- payments is keyed by its text id only: WITHOUT ROWID stores each row in
-- the id's own B-tree, so a new payment writes one B-tree instead of the
-- table and its sqlite_autoindex.  (events stays a rowid table: retention
-- walks it in rowid order, which is arrival order.)  A row with a NULL id
-- could never be looked up and cannot be kept by a WITHOUT ROWID table.
CREATE TABLE payments_v4 (
	id		TEXT PRIMARY KEY,
	terminal_id	TEXT,
	reference	TEXT,
	status		TEXT NOT NULL,
	amount		INTEGER,
	amount_captured	INTEGER,
	currency	TEXT,
	capture_method	TEXT,
	entry_method	TEXT,
	brand		TEXT,
	last4		TEXT,
	auth_code	TEXT,
	decline_code	TEXT,
	livemode	INTEGER,
	created_at	TEXT,
	updated_at	TEXT NOT NULL,
	last_event_id	TEXT,
	tracked		INTEGER NOT NULL DEFAULT 0,
	rc_attempts	INTEGER NOT NULL DEFAULT 0,
	rc_next_at	TEXT,
	rc_state	TEXT NOT NULL DEFAULT 'idle'
) WITHOUT ROWID;
INSERT INTO payments_v4 (id, terminal_id, reference, status, amount, amount_captured,
	currency, capture_method, entry_method, brand, last4, auth_code, decline_code,
	livemode, created_at, updated_at, last_event_id, tracked, rc_attempts, rc_next_at,
	rc_state)
SELECT id, terminal_id, reference, status, amount, amount_captured,
	currency, capture_method, entry_method, brand, last4, auth_code, decline_code,
	livemode, created_at, updated_at, last_event_id, tracked, rc_attempts, rc_next_at,
	rc_state
FROM payments WHERE id IS NOT NULL;
DROP TABLE payments;
ALTER TABLE payments_v4 RENAME TO payments;
CREATE INDEX payments_reference ON payments (reference);
-- Only what the reconciler and "pending" ask for (status IN ('pending',
-- 'processing'), by updated_at): a payment that reaches a final status
-- leaves this index instead of moving inside a (status, updated_at) one.
CREATE INDEX payments_open ON payments (updated_at) WHERE status IN ('pending', 'processing');

-- outcomes: seq without AUTOINCREMENT, which rewrote sqlite_sequence on
-- every insert.  The writer assigns seq itself; outcome_seq keeps the
-- highest seq ever committed, written once per transaction that stored an
-- outcome, so that a seq is never used twice even once retention pruned the
-- newest rows.
CREATE TABLE outcome_seq (
	one		INTEGER PRIMARY KEY CHECK (one = 1),
	seq		INTEGER NOT NULL
);
INSERT INTO outcome_seq (one, seq) VALUES (1, max(
	coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outcomes'), 0),
	coalesce((SELECT max(seq) FROM outcomes), 0)));
CREATE TABLE outcomes_v4 (
	seq		INTEGER PRIMARY KEY,
	payment_id	TEXT NOT NULL,
	status		TEXT NOT NULL,
	json		TEXT NOT NULL,
	recorded_at	TEXT NOT NULL
);
INSERT INTO outcomes_v4 (seq, payment_id, status, json, recorded_at)
SELECT seq, payment_id, status, json, recorded_at FROM outcomes ORDER BY seq;
DROP TABLE outcomes;
ALTER TABLE outcomes_v4 RENAME TO outcomes;
DELETE FROM sqlite_sequence WHERE name = 'outcomes';
