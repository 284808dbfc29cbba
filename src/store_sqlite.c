/*
 * store_sqlite.c - the SQLite engine of the writer (see store_engine.h).
 *
 * DESIGN: every line of SQL the writer runs, and every sqlite3 call it
 * makes, is here: the connection and its pragmas, the migrations (sql/,
 * embedded at build time), the prepared statements and the operations of
 * struct store_engine.  One struct store_conn is one write connection; only
 * the writer thread (store.c) uses it, one call at a time, so it needs no
 * lock.  Readers open their own read-only connections (store_read.c) with
 * store_connect(): WAL lets them read while the writer writes.  SQLite's
 * result codes stop here: code() turns them into 0, STORE_E_JOB or
 * STORE_E_TXN, and the statement that failed is logged where it failed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store_checkpoint.h"
#include "store_engine.h"
#include "store_int.h"
#include "store_sqlite_cache.h"
#include "util.h"

#define BUSY_TIMEOUT_MS	5000	/* SPEC §1.4: the write lock within 5 s */
#define WAL_LIMIT	"8388608"	/* bytes the WAL keeps after a checkpoint */
#define CACHE_SLOTS	4096	/* payment rows the writer keeps (store_sqlite_cache.h) */

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO,
	ST_EV_INSERT, ST_PAY_GET, ST_PAY_UPSERT, ST_PAY_UPDATE, ST_OUT_INSERT,
	ST_CUR_SET, ST_DEAD_INSERT, ST_TRACK, ST_REPLAY, ST_DEAD_DELETE,
	ST_RC_SET, ST_PRUNE_EVENTS, ST_PRUNE_OUTCOMES,
	ST_PR_GET, ST_PR_PUT, ST_PR_SET, ST_PR_MOVE, ST_PR_LINK, ST_PR_LINKED,
	ST_PR_CANDIDATES, ST_PR_ANY_UNKNOWN, ST_PAY_TRACKED, ST_SEQ_SAVE, ST_DATA_VERSION,
	ST_COUNT
};

static const char *stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT job",
	[ST_RELEASE] = "RELEASE job",
	[ST_ROLLBACK_TO] = "ROLLBACK TO job",
	[ST_EV_INSERT] = "INSERT INTO events (id, type, payment_id, status, source, "
	    "result, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
	    "ON CONFLICT (id) DO NOTHING",
	[ST_PAY_GET] = "SELECT " PAYMENT_COLS " FROM payments WHERE id = ?1",
	/* ST_PAY_UPSERT and ST_TRACK are written from the field table: pay_sql(). */
	[ST_OUT_INSERT] = "INSERT INTO outcomes (seq, payment_id, status, json, "
	    "recorded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_CUR_SET] = "INSERT INTO cursors (sink, seq) VALUES (?1, ?2) "
	    "ON CONFLICT (sink) DO UPDATE SET seq = max(seq, ?2)",
	[ST_DEAD_INSERT] = "INSERT INTO dead_letters (sink, seq, attempts, last_error, at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sink, seq) DO UPDATE SET "
	    "attempts = ?3, last_error = ?4, at = ?5, replay = 0",
	[ST_REPLAY] = "UPDATE dead_letters SET replay = 1 WHERE sink = ?1 AND seq = ?2",
	[ST_DEAD_DELETE] = "DELETE FROM dead_letters WHERE sink = ?1 AND seq = ?2",
	[ST_RC_SET] = "UPDATE payments SET rc_attempts = ?2, rc_next_at = ?3, "
	    "rc_state = ?4 WHERE id = ?1",
	/* Retention, in chunks so that a big backlog never makes one huge
	 * transaction.  Outcomes go only once every sink is past them. */
	[ST_PRUNE_EVENTS] = "DELETE FROM events WHERE rowid IN (SELECT rowid FROM "
	    "(SELECT rowid, received_at FROM events ORDER BY rowid LIMIT ?2) "
	    "WHERE received_at < ?1)",
	[ST_PRUNE_OUTCOMES] = "DELETE FROM outcomes WHERE seq IN (SELECT seq FROM "
	    "(SELECT seq, recorded_at FROM outcomes ORDER BY seq LIMIT ?2) "
	    "WHERE recorded_at < ?1 AND seq <= ?3)",
	/* The pay requests of SPEC §4.1 (sql/003_pay_requests.sql). */
	[ST_PR_GET] = "SELECT " PAYREQ_COLS " FROM pay_requests WHERE key = ?1",
	[ST_PR_PUT] = "INSERT INTO pay_requests (key, terminal_id, amount, currency, "
	    "reference, capture_method, state, payment_id, created_at, updated_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', NULL, ?7, ?7) "
	    "ON CONFLICT (key) DO UPDATE SET terminal_id = ?2, amount = ?3, "
	    "currency = ?4, reference = ?5, capture_method = ?6, state = 'sending', "
	    "payment_id = NULL, created_at = ?7, updated_at = ?7",
	[ST_PR_SET] = "UPDATE pay_requests SET state = ?2, updated_at = ?3 WHERE key = ?1",
	[ST_PR_MOVE] = "UPDATE pay_requests SET state = ?2, updated_at = ?4 "
	    "WHERE state = ?1 AND created_at < ?3",
	[ST_PR_LINK] = "UPDATE pay_requests SET state = 'created', payment_id = ?2, "
	    "updated_at = ?3 WHERE key = ?1",
	[ST_PR_LINKED] = "SELECT 1 FROM pay_requests WHERE payment_id = ?1",
	[ST_PR_CANDIDATES] = "SELECT key, created_at FROM pay_requests "
	    "WHERE state = 'unknown' AND terminal_id = ?1 AND reference = ?2 "
	    "AND amount = ?3 ORDER BY created_at, key",
	/* Once per transaction: whether ST_PR_CANDIDATES can find anything. */
	[ST_PR_ANY_UNKNOWN] = "SELECT 1 FROM pay_requests WHERE state = 'unknown' LIMIT 1",
	[ST_PAY_TRACKED] = "UPDATE payments SET tracked = 1 WHERE id = ?1",
	/* Once per transaction that stored an outcome (sql/004_lean_rows.sql).
	 * max(seq) of outcomes, not the seq the writer handed out: a job
	 * undone by its savepoint gives its seq back. */
	[ST_SEQ_SAVE] = "UPDATE outcome_seq SET seq = max(seq, "
	    "coalesce((SELECT max(seq) FROM outcomes), 0)) WHERE one = 1",
	/* Changes when another connection committed: then the cache goes. */
	[ST_DATA_VERSION] = "PRAGMA data_version",
};

/*
 * The two statements that write every payment column (store_pay_sql()):
 * both bind ?1 .. ?N as bind_payment() does, then ?N+1 = updated_at, and
 * ?N+2 = last_event_id for the upsert.  Built once, before any thread runs;
 * never freed.
 */
static char pay_upsert_sql[2048], pay_track_sql[2048], pay_update_sql[2048];

/*
 * ST_PAY_UPDATE: the upsert's DO UPDATE as a plain UPDATE, with the same
 * bindings, for a payment the writer knows is stored (its row was just
 * read, or cached): no insert attempt that fails on the key first.
 */
static int
pay_update_text(void)
{
	size_t len;
	int n;

	n = snprintf(pay_update_sql, sizeof(pay_update_sql), "UPDATE payments SET ");
	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (i == PF_ID)
			continue;
		len = strlen(pay_update_sql);
		n = snprintf(pay_update_sql + len, sizeof(pay_update_sql) - len,
		    "%s = ?%d, ", pay_fields[i].column, i + 1);
		if (n < 0 || (size_t)n >= sizeof(pay_update_sql) - len)
			return -1;
	}
	len = strlen(pay_update_sql);
	n = snprintf(pay_update_sql + len, sizeof(pay_update_sql) - len,
	    "updated_at = ?%d, last_event_id = ?%d, rc_attempts = 0, rc_next_at = NULL, "
	    "rc_state = 'idle' WHERE id = ?%d", PAY_NFIELDS + 1, PAY_NFIELDS + 2,
	    PF_ID + 1);
	return n < 0 || (size_t)n >= sizeof(pay_update_sql) - len ? -1 : 0;
}

static int
pay_sql(void)
{
	if (store_pay_sql('?', pay_upsert_sql, sizeof(pay_upsert_sql), pay_track_sql,
	    sizeof(pay_track_sql)) == -1 || pay_update_text() == -1)
		return -1;
	stmt_sql[ST_PAY_UPSERT] = pay_upsert_sql;
	stmt_sql[ST_TRACK] = pay_track_sql;
	stmt_sql[ST_PAY_UPDATE] = pay_update_sql;
	return 0;
}

struct store_conn {
	sqlite3		*db;
	sqlite3_stmt	*st[ST_COUNT];
	int		 last_rc;	/* of the last error, for error() */
	bool		 outcome_added;	/* by the open transaction */
	/*
	 * Whether a pay request may be unknown in the open transaction: read
	 * at its start, set when it makes one.  While false (the daemon made
	 * no request, or all are resolved), no event looks for one to resolve.
	 */
	bool		 unknown_reqs;
	struct store_ckpt ck;
	/*
	 * The payment rows this connection wrote or read last, as stored in
	 * the open transaction (store_sqlite_cache.h), and PRAGMA
	 * data_version when the last transaction began.
	 */
	struct pay_cache *cache;
	int64_t		 data_version;
};

sqlite3 *
store_connect(const char *path, int flags, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 1);
	return db;
}

static int
exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
migrate(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int version = 0;
	char buf[64];

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > sql_nmigrations) {
		snprintf(err, errlen, "database schema version %d is newer than this "
		    "program knows (%d)", version, sql_nmigrations);
		return -1;
	}
	for (int v = version; v < sql_nmigrations; v++) {
		if (exec_sql(db, "BEGIN IMMEDIATE", err, errlen) == -1)
			return -1;
		snprintf(buf, sizeof(buf), "PRAGMA user_version = %d", v + 1);
		if (exec_sql(db, sql_migrations[v], err, errlen) == -1 ||
		    exec_sql(db, buf, err, errlen) == -1) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (exec_sql(db, "COMMIT", err, errlen) == -1) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("database migrated to schema version %d", v + 1);
	}
	return 0;
}

/* Errors after which the transaction is lost, not just one statement. */
static bool
fatal_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_NOTADB:
	case SQLITE_PROTOCOL:
		return true;
	default:
		return false;
	}
}

/* What crosses the seam: 0, STORE_E_JOB or STORE_E_TXN. */
static int
code(struct store_conn *c, int rc)
{
	if (rc == SQLITE_OK)
		return 0;
	c->last_rc = rc;
	return fatal_rc(rc) ? STORE_E_TXN : STORE_E_JOB;
}

/* Steps a statement that returns no row; resets it.  SQLite's rc. */
static int
run(struct store_conn *c, enum stmt_id id)
{
	int rc = sqlite3_step(c->st[id]);

	sqlite3_reset(c->st[id]);
	sqlite3_clear_bindings(c->st[id]);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return SQLITE_OK;
	/* A full disk fails every statement: rate-limited by error code. */
	log_warnx_rl(sqlite3_errstr(rc), "database: %s: %s", stmt_sql[id],
	    sqlite3_errmsg(c->db));
	return rc;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void
bind_int_opt(sqlite3_stmt *st, int i, bool has, int64_t v)
{
	if (has)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Column k of PAYMENT_COLS is pay_fields[k]: the table maps it. */
int
payment_from_row(sqlite3_stmt *st, int c, struct payment *p)
{
	payment_init(p);
	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (sqlite3_column_type(st, c + i) == SQLITE_NULL)
			continue;
		if (!pay_field_is_text(i))
			pay_field_set_int(p, i, true, sqlite3_column_int64(st, c + i));
		else if (pay_field_set_text(p, i,
		    (const char *)sqlite3_column_text(st, c + i)) == -1) {
			payment_release(p);
			return -1;
		}
	}
	return 0;
}

/*
 * Stores the event unless its id is known: the dedupe (SPEC §2) is the
 * insert's own uniqueness probe, with no lookup before it.  SQLITE_OK with
 * *dup set when the id was there already (nothing written), or SQLite's rc.
 */
static int
insert_event(struct store_conn *c, const struct store_ingest *in, const char *result,
    const char *now, bool *dup)
{
	sqlite3_stmt *st = c->st[ST_EV_INSERT];
	const struct vinr_event *ev = in->ev;
	int rc;

	bind_text(st, 1, ev->id);
	bind_text(st, 2, ev->type);
	bind_text(st, 3, ev->pay.id);
	bind_text(st, 4, pay_status_name(ev->pay.status));
	bind_text(st, 5, in->source);
	bind_text(st, 6, result);
	bind_text(st, 7, now);
	sqlite3_bind_text(st, 8, in->body, (int)in->bodylen, SQLITE_STATIC);
	if ((rc = run(c, ST_EV_INSERT)) == SQLITE_OK)
		*dup = sqlite3_changes(c->db) == 0;
	return rc;
}

/*
 * Binds ?1 .. ?PAY_NFIELDS in the order of PAYMENT_COLS (the field table's),
 * with status in place of p's own (track stores a new payment as pending).
 */
static void
bind_payment(sqlite3_stmt *st, const struct payment *p, enum pay_status status)
{
	int64_t v;
	bool has;

	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (i == PF_STATUS)
			bind_text(st, i + 1, pay_status_name(status));
		else if (pay_field_is_text(i))
			bind_text(st, i + 1, pay_field_text(p, i));
		else {
			has = pay_field_int(p, i, &v);
			bind_int_opt(st, i + 1, has, v);
		}
	}
}

/*
 * Writes p: a plain UPDATE when the caller knows the row is stored (stored),
 * else the upsert.  An UPDATE that found no row, which the write lock and
 * the cache's rules exclude, falls back to the upsert all the same.
 */
static int
upsert_payment(struct store_conn *c, const struct payment *p, const char *now,
    const char *event_id, bool stored)
{
	enum stmt_id id = stored ? ST_PAY_UPDATE : ST_PAY_UPSERT;
	int rc;

	for (;;) {
		bind_payment(c->st[id], p, p->status);
		bind_text(c->st[id], PAY_NFIELDS + 1, now);
		bind_text(c->st[id], PAY_NFIELDS + 2, event_id);
		if ((rc = run(c, id)) != SQLITE_OK || id == ST_PAY_UPSERT ||
		    sqlite3_changes(c->db) > 0)
			return rc;
		id = ST_PAY_UPSERT;
	}
}

/* Loads a payment; cur->status stays PAY_NONE when it is unknown. */
static int
load_payment(struct store_conn *c, const char *id, struct payment *cur)
{
	sqlite3_stmt *st = c->st[ST_PAY_GET];
	int rc;

	memset(cur, 0, sizeof(*cur));
	cur->livemode = -1;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && payment_from_row(st, 0, cur) == -1)
		rc = SQLITE_NOMEM;
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
	else
		log_warnx("database: loading payment: %s", sqlite3_errmsg(c->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/*
 * load_payment() through the cache: a hit moves the cached row into cur
 * with no SELECT and no copy.  ingest_run() puts it back once it is stored.
 */
static int
load_cached(struct store_conn *c, const char *id, struct payment *cur)
{
	if (pay_cache_take(c->cache, id, cur))
		return SQLITE_OK;
	return load_payment(c, id, cur);
}

static int
insert_outcome(struct store_conn *c, const struct payment *p, int64_t seq,
    const char *json, const char *now)
{
	sqlite3_stmt *st = c->st[ST_OUT_INSERT];

	sqlite3_bind_int64(st, 1, seq);
	bind_text(st, 2, p->id);
	bind_text(st, 3, pay_status_name(p->status));
	sqlite3_bind_text(st, 4, json, -1, SQLITE_STATIC);
	bind_text(st, 5, now);
	c->outcome_added = true;
	return run(c, ST_OUT_INSERT);
}

/* ------------------------------------------------------------------ */
/* Pay requests (SPEC §4.1) */

int
payreq_from_row(sqlite3_stmt *st, int c, struct pay_request *r)
{
	const char *col[PAYREQ_NCOLS];

	for (int i = 0; i < PAYREQ_NCOLS; i++)
		col[i] = (const char *)sqlite3_column_text(st, c + i);
	return payreq_from_columns(r, col, sqlite3_column_int64(st, c + 5));
}

/* Links key's request to payment_id and tracks the payment.  SQLite's rc. */
static int
pay_link(struct store_conn *c, const char *key, const char *payment_id, const char *now)
{
	sqlite3_stmt *st = c->st[ST_PR_LINK];
	int rc;

	bind_text(st, 1, key);
	bind_text(st, 2, payment_id);
	bind_text(st, 3, now);
	if ((rc = run(c, ST_PR_LINK)) != SQLITE_OK)
		return rc;
	/* tracked is no column of the cache's rows; dropped all the same, so
	 * that no statement that changes a payment leaves its row cached. */
	pay_cache_drop(c->cache, payment_id);
	bind_text(c->st[ST_PAY_TRACKED], 1, payment_id);
	return run(c, ST_PAY_TRACKED);
}

/* SQLITE_OK with *linked: whether a request already has payment_id. */
static int
pay_linked(struct store_conn *c, const char *payment_id, bool *linked)
{
	sqlite3_stmt *st = c->st[ST_PR_LINKED];
	int rc;

	bind_text(st, 1, payment_id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	*linked = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * The oldest unknown request that p (a payment just heard of) resolves:
 * same terminal, reference and amount, created after the request was
 * committed (payreq_link_ok), and no request linked to p yet.  Linked and
 * logged.  SQLite's rc.
 */
static int
pay_resolve(struct store_conn *c, const struct payment *p, bool pay_new, const char *now)
{
	sqlite3_stmt *st = c->st[ST_PR_CANDIDATES];
	char *key = NULL;
	bool linked;
	int rc;

	if (!c->unknown_reqs || p->terminal_id == NULL || p->reference == NULL ||
	    !p->has_amount)
		return SQLITE_OK;
	bind_text(st, 1, p->terminal_id);
	bind_text(st, 2, p->reference);
	sqlite3_bind_int64(st, 3, p->amount);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (payreq_link_ok((const char *)sqlite3_column_text(st, 1), p->created_at,
		    pay_new)) {
			if ((key = strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
				rc = SQLITE_NOMEM;
			break;
		}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		free(key);
		return rc;
	}
	rc = SQLITE_OK;
	if (key != NULL && (rc = pay_linked(c, p->id, &linked)) == SQLITE_OK && !linked &&
	    (rc = pay_link(c, key, p->id, now)) == SQLITE_OK)
		log_info("pay: the unknown request %s was created: payment %s", key, p->id);
	free(key);
	return rc;
}

/*
 * After an event was applied: its pay request (in->pay_key), or the
 * unknown request it resolves.  cur is the payment as stored now.
 */
static int
pay_after_ingest(struct store_conn *c, const struct store_ingest *in,
    const struct payment *cur, bool pay_new, const char *now)
{
	struct payment m;

	if (in->pay_key != NULL)
		return pay_link(c, in->pay_key, in->ev->pay.id, now);
	/* The object's own fields first: a stale event leaves cur as it was. */
	m = payment_match_view(cur, &in->ev->pay);
	return pay_resolve(c, &m, pay_new, now);
}

/* One event: dedupe, state machine, outcome.  Returns SQLite's rc. */
static int
ingest_run(struct store_conn *c, struct store_ingest *in, const char *now,
    int64_t seq)
{
	const struct vinr_event *ev = in->ev;
	struct payment cur;
	enum pay_status prev = PAY_NONE;
	const char *occurred;
	char *json;
	bool dup, pay_new, stored;
	int rc, d;

	in->decision = -1;
	in->seq = 0;
	if (ev->ignore_reason != NULL) {
		if ((rc = insert_event(c, in, "ignored", now, &dup)) != SQLITE_OK)
			return rc;
		in->result = dup ? INGEST_DUPLICATE : INGEST_IGNORED;
		return dup && in->pay_key != NULL ?
		    pay_link(c, in->pay_key, ev->pay.id, now) : SQLITE_OK;
	}
	if ((rc = load_cached(c, ev->pay.id, &cur)) != SQLITE_OK)
		return rc;
	pay_new = cur.status == PAY_NONE;
	if ((d = payment_apply(&cur, &ev->pay, &prev)) == -1) {
		payment_release(&cur);
		return SQLITE_NOMEM;
	}
	/* Whether cur is the row as stored, which the cache may keep. */
	stored = d != PAY_TRANSITION;
	/* Decided before the insert, which tells a duplicate: then the
	 * decision is dropped and nothing else is written. */
	if ((rc = insert_event(c, in, pay_decision_name(d), now, &dup)) != SQLITE_OK)
		goto out;
	if (dup) {
		in->result = INGEST_DUPLICATE;
		if (in->pay_key != NULL)
			rc = pay_link(c, in->pay_key, ev->pay.id, now);
		goto out;
	}
	if (d == PAY_TRANSITION) {
		if ((rc = upsert_payment(c, &cur, now, ev->id, !pay_new)) != SQLITE_OK)
			goto out;
		stored = true;
		occurred = ev->pay.status_at != NULL ? ev->pay.status_at :
		    ev->created_at != NULL ? ev->created_at : now;
		json = payment_outcome_json(&cur, prev, seq, ev->id, in->source,
		    occurred, now);
		if (json == NULL) {
			rc = SQLITE_NOMEM;
			goto out;
		}
		rc = insert_outcome(c, &cur, seq, json, now);
		free(json);
		if (rc != SQLITE_OK)
			goto out;
		in->seq = seq;
	}
	if ((rc = pay_after_ingest(c, in, &cur, pay_new, now)) != SQLITE_OK)
		goto out;
	in->result = INGEST_ACCEPTED;
	in->decision = d;
out:
	/* A job that failed is undone (ROLLBACK or ROLLBACK TO, which clear
	 * the cache): its row is not kept either way. */
	if (rc == SQLITE_OK && stored && cur.status != PAY_NONE)
		pay_cache_put(c->cache, &cur);
	else
		payment_release(&cur);
	return rc;
}

static int
store_sqlite_ingest(struct store_conn *c, struct store_ingest *in, const char *now,
    int64_t seq)
{
	return code(c, ingest_run(c, in, now, seq));
}

static int
store_sqlite_cursor_set(struct store_conn *c, const char *sink, int64_t seq)
{
	sqlite3_stmt *st = c->st[ST_CUR_SET];

	bind_text(st, 1, sink);
	sqlite3_bind_int64(st, 2, seq);
	return code(c, run(c, ST_CUR_SET));
}

static int
store_sqlite_dead_letter(struct store_conn *c, const char *sink, int64_t seq,
    int attempts, const char *last_error, const char *now)
{
	sqlite3_stmt *st = c->st[ST_DEAD_INSERT];
	int rc;

	bind_text(st, 1, sink);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int(st, 3, attempts);
	bind_text(st, 4, last_error);
	bind_text(st, 5, now);
	if ((rc = run(c, ST_DEAD_INSERT)) != SQLITE_OK)
		return code(c, rc);
	return store_sqlite_cursor_set(c, sink, seq);
}

static int
store_sqlite_track(struct store_conn *c, const struct payment *in,
    struct payment *out, const char *now)
{
	sqlite3_stmt *st = c->st[ST_TRACK];
	int rc;

	pay_cache_drop(c->cache, in->id);
	bind_payment(st, in, PAY_PENDING);
	bind_text(st, PAY_NFIELDS + 1, now);
	if ((rc = run(c, ST_TRACK)) != SQLITE_OK)
		return code(c, rc);
	if (out == NULL)
		return 0;
	payment_release(out);
	return code(c, load_payment(c, in->id, out));
}

/* ST_REPLAY or ST_DEAD_DELETE for (sink, seq): the rows changed, or an error. */
static int
dead_mark(struct store_conn *c, enum stmt_id id, const char *sink, int64_t seq)
{
	sqlite3_stmt *st = c->st[id];
	int rc;

	bind_text(st, 1, sink);
	sqlite3_bind_int64(st, 2, seq);
	if ((rc = run(c, id)) != SQLITE_OK)
		return code(c, rc);
	return sqlite3_changes(c->db);
}

static int
store_sqlite_replay_mark(struct store_conn *c, const char *sink, int64_t seq)
{
	return dead_mark(c, ST_REPLAY, sink, seq);
}

static int
store_sqlite_dead_delete(struct store_conn *c, const char *sink, int64_t seq)
{
	return dead_mark(c, ST_DEAD_DELETE, sink, seq);
}

static int
store_sqlite_rc_set(struct store_conn *c, const char *payment_id, int attempts,
    const char *next_at, const char *state)
{
	sqlite3_stmt *st = c->st[ST_RC_SET];

	pay_cache_drop(c->cache, payment_id);	/* as pay_link() does */
	bind_text(st, 1, payment_id);
	sqlite3_bind_int(st, 2, attempts);
	bind_text(st, 3, next_at);
	bind_text(st, 4, state);
	return code(c, run(c, ST_RC_SET));
}

static int
store_sqlite_pay_begin(struct store_conn *c, const struct pay_request *in,
    struct pay_request *out, const char *now)
{
	sqlite3_stmt *st = c->st[ST_PR_GET];
	int rc, found = STORE_PAY_NEW;

	payreq_release(out);
	bind_text(st, 1, in->key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && payreq_from_row(st, 0, out) == -1)
		rc = SQLITE_NOMEM;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return code(c, rc);
	if (rc == SQLITE_ROW && !payreq_may_create(out->state))
		return payreq_mismatch(out, in) != NULL ? STORE_PAY_MISMATCH :
		    STORE_PAY_EXISTS;
	payreq_release(out);
	st = c->st[ST_PR_PUT];
	bind_text(st, 1, in->key);
	bind_text(st, 2, in->terminal_id);
	sqlite3_bind_int64(st, 3, in->amount);
	bind_text(st, 4, in->currency);
	bind_text(st, 5, in->reference);
	bind_text(st, 6, in->capture_method);
	bind_text(st, 7, now);
	if ((rc = run(c, ST_PR_PUT)) != SQLITE_OK || payreq_copy(out, in) == -1)
		return code(c, rc != SQLITE_OK ? rc : SQLITE_NOMEM);
	out->state = PR_SENDING;
	snprintf(out->created_at, sizeof(out->created_at), "%s", now);
	return found;
}

static int
store_sqlite_pay_set(struct store_conn *c, const char *key, enum payreq_state state,
    const char *now)
{
	sqlite3_stmt *st = c->st[ST_PR_SET];

	bind_text(st, 1, key);
	bind_text(st, 2, payreq_state_name(state));
	bind_text(st, 3, now);
	c->unknown_reqs |= state == PR_UNKNOWN;
	return code(c, run(c, ST_PR_SET));
}

static int
store_sqlite_pay_move(struct store_conn *c, enum payreq_state from,
    enum payreq_state to, const char *before, const char *now)
{
	sqlite3_stmt *st = c->st[ST_PR_MOVE];
	int rc;

	bind_text(st, 1, payreq_state_name(from));
	bind_text(st, 2, payreq_state_name(to));
	bind_text(st, 3, before);
	bind_text(st, 4, now);
	c->unknown_reqs |= to == PR_UNKNOWN;
	if ((rc = run(c, ST_PR_MOVE)) != SQLITE_OK)
		return code(c, rc);
	return sqlite3_changes(c->db);
}

static int
store_sqlite_prune(struct store_conn *c, const char *cutoff, int64_t delivered,
    int chunk)
{
	int rc, changed = 0;

	sqlite3_bind_int64(c->st[ST_PRUNE_OUTCOMES], 3, delivered);
	for (enum stmt_id id = ST_PRUNE_EVENTS; id <= ST_PRUNE_OUTCOMES; id++) {
		bind_text(c->st[id], 1, cutoff);
		sqlite3_bind_int(c->st[id], 2, chunk);
		if ((rc = run(c, id)) != SQLITE_OK)
			return code(c, rc);
		changed += sqlite3_changes(c->db);
	}
	return changed;
}

static void
store_sqlite_set_lock_wait(struct store_conn *c, int ms)
{
	sqlite3_busy_timeout(c->db, ms < 1 ? 1 : ms > BUSY_TIMEOUT_MS ? BUSY_TIMEOUT_MS : ms);
}

/*
 * With the write lock held: if another connection committed since the last
 * look (an operator's shell, another program on the file), the cached rows
 * may be stale and go.  Our own commits and checkpoints do not count.
 */
static void
data_version_check(struct store_conn *c)
{
	sqlite3_stmt *st = c->st[ST_DATA_VERSION];
	int64_t v = -1;

	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (v == -1 || v != c->data_version)
		pay_cache_clear(c->cache);
	c->data_version = v;
}

static int
store_sqlite_begin(struct store_conn *c)
{
	sqlite3_stmt *st = c->st[ST_PR_ANY_UNKNOWN];
	int rc;

	store_ckpt_bound(&c->ck);
	c->outcome_added = false;
	if ((rc = run(c, ST_BEGIN)) != SQLITE_OK)
		return code(c, rc);
	rc = sqlite3_step(st);
	/* An error: look every time, as before. */
	c->unknown_reqs = rc != SQLITE_DONE;
	sqlite3_reset(st);
	data_version_check(c);
	return 0;
}

static int
store_sqlite_commit(struct store_conn *c)
{
	int rc;

	if (c->outcome_added && (rc = run(c, ST_SEQ_SAVE)) != SQLITE_OK)
		return code(c, rc);
	c->outcome_added = false;
	return code(c, run(c, ST_COMMIT));
}

/*
 * A transaction lost for lack of space: checkpoint the WAL into the database
 * and truncate it, which gives back the space its frames hold (readers
 * permitting), so that the next commits may fit.
 */
static void
reclaim_space(struct store_conn *c)
{
	int rc, logged = 0, done = 0;

	rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
	    &logged, &done);
	log_warnx_rl("disk_full", "database: disk full; WAL checkpoint %s "
	    "(%d of %d frames)", rc == SQLITE_OK ? "done" : sqlite3_errstr(rc),
	    done, logged);
}

static int
store_sqlite_rollback(struct store_conn *c)
{
	int rc;

	/* Whatever the transaction wrote is undone: so are the rows cached. */
	pay_cache_clear(c->cache);
	if (!sqlite3_get_autocommit(c->db) && (rc = run(c, ST_ROLLBACK)) != SQLITE_OK) {
		c->last_rc = rc;
		return STORE_E_TXN;
	}
	if ((c->last_rc & 0xff) == SQLITE_FULL)
		reclaim_space(c);
	return 0;
}

static int
store_sqlite_savepoint(struct store_conn *c)
{
	return code(c, run(c, ST_SAVEPOINT));
}

static int
store_sqlite_release(struct store_conn *c)
{
	return code(c, run(c, ST_RELEASE));
}

static int
store_sqlite_savepoint_undo(struct store_conn *c)
{
	int rc;

	pay_cache_clear(c->cache);	/* the job's rows, and all others with them */
	if ((rc = run(c, ST_ROLLBACK_TO)) == SQLITE_OK)
		rc = run(c, ST_RELEASE);
	return code(c, rc);
}

/* Whether the write lock can be taken: an empty write transaction. */
static int
store_sqlite_probe(struct store_conn *c)
{
	int rc;

	if ((rc = run(c, ST_BEGIN)) == SQLITE_OK)
		rc = run(c, ST_ROLLBACK);
	if (!sqlite3_get_autocommit(c->db))
		run(c, ST_ROLLBACK);
	return code(c, rc);
}

void
store_sqlite_cache_stats(struct store_conn *c, struct pay_cache_stats *st)
{
	pay_cache_stats(c->cache, st);
}

static const char *
store_sqlite_error(struct store_conn *c)
{
	return sqlite3_errstr(c->last_rc);
}

static void
store_sqlite_close(struct store_conn *c)
{
	if (c == NULL)
		return;
	store_ckpt_stop(&c->ck);
	pay_cache_free(c->cache);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	if (c->db != NULL)
		sqlite3_close(c->db);
	free(c);
}

static struct store_conn *
store_sqlite_open(const char *path, const struct store_params *params, char *err,
    size_t errlen)
{
	struct store_conn *c;
	sqlite3 *ck;
	char pragma[64];

	if (stmt_sql[ST_PAY_UPSERT] == NULL && pay_sql() == -1) {
		snprintf(err, errlen, "the payment statements do not fit their buffers");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->cache = pay_cache_new(CACHE_SLOTS)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(c);
		return NULL;
	}
	if ((c->db = store_connect(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    err, errlen)) == NULL)
		goto fail;
	/*
	 * WAL lets readers (sinks, control, an operator's sqlite3 shell) read
	 * while we write.  Never exclusive locking mode: SPEC §1.4.
	 */
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous = %d",
	    params->synchronous);
	if (exec_sql(c->db, "PRAGMA journal_mode = WAL", err, errlen) == -1 ||
	    exec_sql(c->db, pragma, err, errlen) == -1 ||
	    exec_sql(c->db, "PRAGMA foreign_keys = OFF", err, errlen) == -1 ||
	    /* Savepoint journals stay in memory, not in temp files. */
	    exec_sql(c->db, "PRAGMA temp_store = MEMORY", err, errlen) == -1 ||
	    /*
	     * A bounded WAL: checkpointed from 4 MiB on by the checkpointer
	     * (store_ckpt_start()), and the file cut back to WAL_LIMIT when it
	     * starts over, so that it never holds more than a few MiB of a
	     * disk that may be small.
	     */
	    exec_sql(c->db, "PRAGMA journal_size_limit = " WAL_LIMIT, err, errlen) == -1 ||
	    migrate(c->db, err, errlen) == -1 ||
	    (ck = store_connect(path, SQLITE_OPEN_READWRITE, err, errlen)) == NULL ||
	    store_ckpt_start(&c->ck, c->db, ck, err, errlen) == -1)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &c->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "preparing \"%s\": %s", stmt_sql[i],
			    sqlite3_errmsg(c->db));
			goto fail;
		}
	}
	return c;
fail:
	store_sqlite_close(c);
	return NULL;
}

/*
 * The seq counter survives pruning: outcome_seq keeps the highest seq ever
 * committed (sql/004_lean_rows.sql), whatever retention deleted since.
 */
static int64_t
store_sqlite_last_seq(struct store_conn *c)
{
	sqlite3_stmt *st;
	int64_t seq = -1;

	if (sqlite3_prepare_v2(c->db, "SELECT max(coalesce((SELECT seq FROM outcome_seq "
	    "WHERE one = 1), 0), coalesce((SELECT max(seq) FROM outcomes), 0))",
	    -1, &st, NULL) != SQLITE_OK) {
		log_warnx("database: reading the outcome counter: %s",
		    sqlite3_errmsg(c->db));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		seq = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return seq;
}

const struct store_engine store_sqlite_engine = {
	.name = "sqlite",
	.open = store_sqlite_open,
	.close = store_sqlite_close,
	.last_seq = store_sqlite_last_seq,
	.error = store_sqlite_error,
	.begin = store_sqlite_begin,
	.commit = store_sqlite_commit,
	.rollback = store_sqlite_rollback,
	.savepoint = store_sqlite_savepoint,
	.release = store_sqlite_release,
	.savepoint_undo = store_sqlite_savepoint_undo,
	.ingest = store_sqlite_ingest,
	.track = store_sqlite_track,
	.cursor_set = store_sqlite_cursor_set,
	.dead_letter = store_sqlite_dead_letter,
	.replay_mark = store_sqlite_replay_mark,
	.dead_delete = store_sqlite_dead_delete,
	.rc_set = store_sqlite_rc_set,
	.pay_begin = store_sqlite_pay_begin,
	.pay_set = store_sqlite_pay_set,
	.pay_move = store_sqlite_pay_move,
	.prune = store_sqlite_prune,
	.probe = store_sqlite_probe,
	.set_lock_wait = store_sqlite_set_lock_wait,
};
