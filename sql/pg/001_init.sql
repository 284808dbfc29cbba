-- vinr-webhookd PostgreSQL schema, version 1 (SPEC §8): the SQLite schema
-- of versions 1-3 plus the seq counter that several instances share.
-- Applied once, in one transaction, under an advisory lock, when the
-- vinr_schema table says a lower version.  Timestamps the daemon makes are
-- RFC 3339 UTC with milliseconds, kept as text that sorts as such: their
-- columns use the "C" collation, whatever the database's locale.

-- Every authenticated delivery that was answered 200 (and every reconciler
-- or API result), keyed by its dedupe key.  result says what it did.
CREATE TABLE events (
	id		TEXT PRIMARY KEY,
	type		TEXT NOT NULL,
	payment_id	TEXT,
	status		TEXT,
	source		TEXT NOT NULL,		-- webhook | reconciler | api
	result		TEXT NOT NULL,		-- transition | stale | conflict | ignored
	received_at	TEXT COLLATE "C" NOT NULL,
	body		TEXT NOT NULL
);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE payments (
	id		TEXT PRIMARY KEY,
	terminal_id	TEXT,
	reference	TEXT,
	status		TEXT NOT NULL,
	amount		BIGINT,
	amount_captured	BIGINT,
	currency	TEXT,
	capture_method	TEXT,
	entry_method	TEXT,
	brand		TEXT,
	last4		TEXT,
	auth_code	TEXT,
	decline_code	TEXT,
	livemode	BIGINT,			-- NULL unknown, 0, 1
	created_at	TEXT COLLATE "C",	-- the payment object's createdAt
	updated_at	TEXT COLLATE "C" NOT NULL, -- when the daemon last changed it
	last_event_id	TEXT,
	tracked		BIGINT NOT NULL DEFAULT 0,
	rc_attempts	BIGINT NOT NULL DEFAULT 0,
	rc_next_at	TEXT COLLATE "C",
	rc_state	TEXT NOT NULL DEFAULT 'idle'
);
CREATE INDEX payments_reference ON payments (reference);
CREATE INDEX payments_status ON payments (status, updated_at);

-- One row per transition.  seq is gap-free in commit order across every
-- instance: it is not a sequence (allocation order is not commit order) but
-- the counter below, taken FOR UPDATE at the start of each write
-- transaction, whose row lock serialises the writers until COMMIT.
CREATE TABLE outcomes (
	seq		BIGINT PRIMARY KEY,
	payment_id	TEXT NOT NULL,
	status		TEXT NOT NULL,
	json		TEXT NOT NULL,
	recorded_at	TEXT COLLATE "C" NOT NULL
);

-- The one counter row: the highest seq ever committed (also when its
-- outcome has been pruned since).
CREATE TABLE seq_counter (
	id		INTEGER PRIMARY KEY CHECK (id = 1),
	last_seq	BIGINT NOT NULL
);
INSERT INTO seq_counter (id, last_seq) VALUES (1, 0);

-- Each sink's position: the last seq it delivered (or dead-lettered).
-- The hook's cursor is shared ("hook"); the event log's and the socket
-- sink's are per instance ("eventlog@NAME", "socket@NAME").
CREATE TABLE cursors (
	sink		TEXT PRIMARY KEY,
	seq		BIGINT NOT NULL
);

CREATE TABLE dead_letters (
	sink		TEXT NOT NULL,
	seq		BIGINT NOT NULL,
	attempts	BIGINT NOT NULL,
	last_error	TEXT,
	at		TEXT COLLATE "C" NOT NULL,
	replay		BIGINT NOT NULL DEFAULT 0,	-- 1 = re-queued by "replay"
	PRIMARY KEY (sink, seq)
);

-- The pay requests of the control socket's "pay" (SPEC §4.1); see
-- sql/003_pay_requests.sql for the states.  instance: the daemon that
-- committed it (only that one moves its own "sending" requests at start).
CREATE TABLE pay_requests (
	key		TEXT PRIMARY KEY,
	terminal_id	TEXT NOT NULL,
	amount		BIGINT NOT NULL,
	currency	TEXT NOT NULL,
	reference	TEXT NOT NULL,
	capture_method	TEXT NOT NULL,		-- automatic | manual
	state		TEXT NOT NULL,
	payment_id	TEXT,
	instance	TEXT NOT NULL,
	created_at	TEXT COLLATE "C" NOT NULL,
	updated_at	TEXT COLLATE "C" NOT NULL
);
CREATE INDEX pay_requests_match ON pay_requests (terminal_id, reference, amount);
CREATE INDEX pay_requests_state ON pay_requests (state, created_at);
CREATE INDEX pay_requests_payment ON pay_requests (payment_id);
