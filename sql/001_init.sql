-- vinr-webhookd schema, version 1.  Applied once, in one transaction, when
-- PRAGMA user_version is below 1.  Timestamps the daemon makes are RFC 3339
-- UTC with milliseconds, which sort as text.

-- Every authenticated delivery that was answered 200 (and every reconciler
-- result), keyed by its dedupe key.  result says what it did.
CREATE TABLE events (
	id		TEXT PRIMARY KEY,
	type		TEXT NOT NULL,
	payment_id	TEXT,
	status		TEXT,
	source		TEXT NOT NULL,		-- webhook | reconciler
	result		TEXT NOT NULL,		-- transition | stale | conflict | ignored
	received_at	TEXT NOT NULL,
	body		TEXT NOT NULL
);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE payments (
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
	livemode	INTEGER,		-- NULL unknown, 0, 1
	created_at	TEXT,			-- the payment object's createdAt
	updated_at	TEXT NOT NULL,		-- when the daemon last changed it
	last_event_id	TEXT,
	tracked		INTEGER NOT NULL DEFAULT 0,
	rc_attempts	INTEGER NOT NULL DEFAULT 0,
	rc_next_at	TEXT,
	rc_state	TEXT NOT NULL DEFAULT 'idle'
);
CREATE INDEX payments_reference ON payments (reference);
CREATE INDEX payments_status ON payments (status, updated_at);

-- One row per transition.  seq is gap-free: the writer assigns it in commit
-- order, and AUTOINCREMENT keeps the counter even if old rows are pruned.
CREATE TABLE outcomes (
	seq		INTEGER PRIMARY KEY AUTOINCREMENT,
	payment_id	TEXT NOT NULL,
	status		TEXT NOT NULL,
	json		TEXT NOT NULL,
	recorded_at	TEXT NOT NULL
);
CREATE INDEX outcomes_recorded ON outcomes (recorded_at);

-- Each sink's position: the last seq it delivered (or dead-lettered).
CREATE TABLE cursors (
	sink		TEXT PRIMARY KEY,
	seq		INTEGER NOT NULL
);

CREATE TABLE dead_letters (
	sink		TEXT NOT NULL,
	seq		INTEGER NOT NULL,
	attempts	INTEGER NOT NULL,
	last_error	TEXT,
	at		TEXT NOT NULL,
	replay		INTEGER NOT NULL DEFAULT 0,	-- 1 = re-queued by "replay"
	PRIMARY KEY (sink, seq)
);
