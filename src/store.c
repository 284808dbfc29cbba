/*
 * store.c - the writer thread and its connection (see the DESIGN comment in
 * store.h).
 *
 * Threads: any number of submitters (HTTP connection threads, sinks, the
 * control loop) call store_ingest() & co, which queue a job and sleep on
 * done_cv; one writer thread runs the queue.  An asynchronous job (the
 * *_async calls, for the control loop) is on the heap instead: nobody sleeps
 * on it, the writer calls its done function after the commit and frees it.
 * Everything under mu: the queue, the pending cursors, the stopping flag,
 * the listeners.  The writer drops mu while
 * it talks to SQLite, so submitters keep queueing during a commit and the
 * next batch grows while the disk syncs: that is the group commit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define MAX_LISTENERS	16
#define MAX_CURSORS	8
#define MAX_BATCH	2048
#define BUSY_TIMEOUT_MS	5000	/* SPEC §1.4: the write lock within 5 s */

enum job_kind {
	JOB_INGEST,
	JOB_DEAD,
	JOB_TRACK,
	JOB_REPLAY,
	JOB_DEAD_DELIVERED,
	JOB_RC_SET
};

struct job {
	enum job_kind		 kind;
	struct job		*next;
	bool			 done;
	pthread_cond_t		*cv;		/* a blocking submitter sleeps on it */
	int			 rc;		/* 0 committed, -1 not */
	store_done_fn		 done_fn;	/* set: asynchronous, on the heap */
	void			*done_arg;
	union {
		struct store_ingest *ingest;
		struct {
			const char	*sink;
			int64_t		 seq;
			int		 attempts;
			const char	*error;
		} dead;
		struct {
			const struct payment *in;
			struct payment	*out;		/* NULL: not wanted */
		} track;
		struct {
			const char	*sink;		/* also JOB_DEAD_DELIVERED */
			int64_t		 seq;
			bool		 found;
		} replay;
		struct {
			const char	*payment_id;
			int		 attempts;
			const char	*next_at;
			const char	*state;
		} rc;
	} u;
};

struct cursor {
	char		 sink[32];
	int64_t		 seq;
	bool		 dirty;
};

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO,
	ST_EV_EXISTS, ST_EV_INSERT, ST_PAY_GET, ST_PAY_UPSERT, ST_OUT_INSERT,
	ST_CUR_SET, ST_DEAD_INSERT, ST_TRACK, ST_REPLAY, ST_DEAD_DELETE,
	ST_RC_SET, ST_PRUNE_EVENTS, ST_PRUNE_OUTCOMES,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT job",
	[ST_RELEASE] = "RELEASE job",
	[ST_ROLLBACK_TO] = "ROLLBACK TO job",
	[ST_EV_EXISTS] = "SELECT 1 FROM events WHERE id = ?1",
	[ST_EV_INSERT] = "INSERT INTO events (id, type, payment_id, status, source, "
	    "result, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_PAY_GET] = "SELECT " PAYMENT_COLS " FROM payments WHERE id = ?1",
	[ST_PAY_UPSERT] = "INSERT INTO payments (" PAYMENT_COLS ", updated_at, "
	    "last_event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
	    "?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (id) DO UPDATE SET "
	    "terminal_id = ?2, reference = ?3, status = ?4, amount = ?5, "
	    "amount_captured = ?6, currency = ?7, capture_method = ?8, "
	    "entry_method = ?9, brand = ?10, last4 = ?11, auth_code = ?12, "
	    "decline_code = ?13, livemode = ?14, created_at = ?15, updated_at = ?16, "
	    "last_event_id = ?17, rc_attempts = 0, rc_next_at = NULL, rc_state = 'idle'",
	[ST_OUT_INSERT] = "INSERT INTO outcomes (seq, payment_id, status, json, "
	    "recorded_at) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_CUR_SET] = "INSERT INTO cursors (sink, seq) VALUES (?1, ?2) "
	    "ON CONFLICT (sink) DO UPDATE SET seq = max(seq, ?2)",
	[ST_DEAD_INSERT] = "INSERT INTO dead_letters (sink, seq, attempts, last_error, at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sink, seq) DO UPDATE SET "
	    "attempts = ?3, last_error = ?4, at = ?5, replay = 0",
	/*
	 * Binds like ST_PAY_UPSERT (?4 is 'pending').  A known payment keeps
	 * what it has: unqualified names in DO UPDATE are the stored row.
	 */
	[ST_TRACK] = "INSERT INTO payments (" PAYMENT_COLS ", updated_at, tracked) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
	    "?15, ?16, 1) ON CONFLICT (id) DO UPDATE SET "
	    "terminal_id = coalesce(terminal_id, ?2), reference = coalesce(reference, ?3), "
	    "amount = coalesce(amount, ?5), amount_captured = coalesce(amount_captured, ?6), "
	    "currency = coalesce(currency, ?7), capture_method = coalesce(capture_method, ?8), "
	    "entry_method = coalesce(entry_method, ?9), brand = coalesce(brand, ?10), "
	    "last4 = coalesce(last4, ?11), auth_code = coalesce(auth_code, ?12), "
	    "decline_code = coalesce(decline_code, ?13), livemode = coalesce(livemode, ?14), "
	    "created_at = coalesce(created_at, ?15), tracked = 1",
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
};

/* Histogram bounds for /metrics: commit seconds, and jobs per commit. */
const double store_commit_bounds[STORE_HIST_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5
};
const double store_batch_bounds[STORE_HIST_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048
};

struct store {
	char			*path;
	sqlite3			*db;
	sqlite3_stmt		*st[ST_COUNT];

	pthread_t		 thread;
	bool			 started;
	pthread_mutex_t		 mu;
	pthread_cond_t		 work_cv;
	struct job		*head;
	struct job		**tail;
	bool			 stopping;
	struct cursor		 cursors[MAX_CURSORS];
	int			 ncursors;
	int			 listeners[MAX_LISTENERS];
	int			 nlisteners;

	int			 retain_days;
	int64_t			 next_seq;	/* writer thread only */
	int64_t			 cursors_saved_ms; /* writer thread only */
	int64_t			 next_prune_ms;	/* writer thread only */
	/* Counters for /metrics: atomics, read by any thread. */
	_Atomic uint64_t	 outcomes_by_status[PAY_CANCELLED + 1];
	_Atomic uint64_t	 commit_hist[STORE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 batch_hist[STORE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 commit_us_sum, batch_sum, commits;
	_Atomic int64_t		 last_seq;
	_Atomic int64_t		 tick_ms;	/* writer's last sign of life */
	_Atomic bool		 last_ok;	/* last commit succeeded */
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

struct store *
store_open(const char *path, int synchronous, char *err, size_t errlen)
{
	struct store *s;
	sqlite3_stmt *st;
	char pragma[64];

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&s->mu, NULL);
	util_cond_init(&s->work_cv);
	s->tail = &s->head;
	if ((s->db = store_connect(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    err, errlen)) == NULL)
		goto fail;
	/*
	 * WAL lets readers (sinks, control, an operator's sqlite3 shell) read
	 * while we write.  Never exclusive locking mode: SPEC §1.4.
	 */
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous = %d", synchronous);
	if (exec_sql(s->db, "PRAGMA journal_mode = WAL", err, errlen) == -1 ||
	    exec_sql(s->db, pragma, err, errlen) == -1 ||
	    exec_sql(s->db, "PRAGMA foreign_keys = OFF", err, errlen) == -1 ||
	    /* Savepoint journals stay in memory, not in temp files. */
	    exec_sql(s->db, "PRAGMA temp_store = MEMORY", err, errlen) == -1 ||
	    /* Fewer, larger checkpoints: each one runs inside a commit
	     * that requests are waiting on. */
	    exec_sql(s->db, "PRAGMA wal_autocheckpoint = 8192", err, errlen) == -1 ||
	    migrate(s->db, err, errlen) == -1)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &s->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "preparing \"%s\": %s", stmt_sql[i],
			    sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	/* The seq counter survives pruning: AUTOINCREMENT keeps it here. */
	if (sqlite3_prepare_v2(s->db, "SELECT max(coalesce((SELECT seq FROM sqlite_sequence "
	    "WHERE name = 'outcomes'), 0), coalesce((SELECT max(seq) FROM outcomes), 0))",
	    -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		s->next_seq = sqlite3_column_int64(st, 0) + 1;
	sqlite3_finalize(st);
	if (s->next_seq < 1) {
		snprintf(err, errlen, "cannot read the outcome counter");
		goto fail;
	}
	atomic_store(&s->last_seq, s->next_seq - 1);
	atomic_store(&s->last_ok, true);
	atomic_store(&s->tick_ms, util_mono_ms());
	return s;
fail:
	store_free(s);
	return NULL;
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

/* Steps a statement that returns no row; resets it.  SQLite's rc. */
static int
run(struct store *s, enum stmt_id id)
{
	int rc = sqlite3_step(s->st[id]);

	sqlite3_reset(s->st[id]);
	sqlite3_clear_bindings(s->st[id]);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return SQLITE_OK;
	log_warnx("database: %s: %s", stmt_sql[id], sqlite3_errmsg(s->db));
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

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? strdup((const char *)t) : NULL;
}

int
payment_from_row(sqlite3_stmt *st, int c, struct payment *p)
{
	memset(p, 0, sizeof(*p));
	p->livemode = -1;
#define COL(field, i) \
	if (sqlite3_column_type(st, c + (i)) != SQLITE_NULL && \
	    (p->field = col_dup(st, c + (i))) == NULL) goto fail;
	COL(id, 0)
	COL(terminal_id, 1)
	COL(reference, 2)
	COL(currency, 6)
	COL(capture_method, 7)
	COL(entry_method, 8)
	COL(brand, 9)
	COL(last4, 10)
	COL(auth_code, 11)
	COL(decline_code, 12)
	COL(created_at, 14)
#undef COL
	p->status = pay_status_parse((const char *)sqlite3_column_text(st, c + 3));
	if ((p->has_amount = sqlite3_column_type(st, c + 4) != SQLITE_NULL))
		p->amount = sqlite3_column_int64(st, c + 4);
	if ((p->has_amount_captured = sqlite3_column_type(st, c + 5) != SQLITE_NULL))
		p->amount_captured = sqlite3_column_int64(st, c + 5);
	if (sqlite3_column_type(st, c + 13) != SQLITE_NULL)
		p->livemode = sqlite3_column_int(st, c + 13) != 0;
	return 0;
fail:
	payment_release(p);
	return -1;
}

static int
insert_event(struct store *s, const struct store_ingest *in, const char *result,
    const char *now)
{
	sqlite3_stmt *st = s->st[ST_EV_INSERT];
	const struct vinr_event *ev = in->ev;

	bind_text(st, 1, ev->id);
	bind_text(st, 2, ev->type);
	bind_text(st, 3, ev->pay.id);
	bind_text(st, 4, pay_status_name(ev->pay.status));
	bind_text(st, 5, in->source);
	bind_text(st, 6, result);
	bind_text(st, 7, now);
	sqlite3_bind_text(st, 8, in->body, (int)in->bodylen, SQLITE_STATIC);
	return run(s, ST_EV_INSERT);
}

/* Binds ?1 .. ?15 in the order of PAYMENT_COLS. */
static void
bind_payment(sqlite3_stmt *st, const struct payment *p, enum pay_status status)
{
	bind_text(st, 1, p->id);
	bind_text(st, 2, p->terminal_id);
	bind_text(st, 3, p->reference);
	bind_text(st, 4, pay_status_name(status));
	bind_int_opt(st, 5, p->has_amount, p->amount);
	bind_int_opt(st, 6, p->has_amount_captured, p->amount_captured);
	bind_text(st, 7, p->currency);
	bind_text(st, 8, p->capture_method);
	bind_text(st, 9, p->entry_method);
	bind_text(st, 10, p->brand);
	bind_text(st, 11, p->last4);
	bind_text(st, 12, p->auth_code);
	bind_text(st, 13, p->decline_code);
	bind_int_opt(st, 14, p->livemode != -1, p->livemode);
	bind_text(st, 15, p->created_at);
}

static int
upsert_payment(struct store *s, const struct payment *p, const char *now,
    const char *event_id)
{
	sqlite3_stmt *st = s->st[ST_PAY_UPSERT];

	bind_payment(st, p, p->status);
	bind_text(st, 16, now);
	bind_text(st, 17, event_id);
	return run(s, ST_PAY_UPSERT);
}

/* Loads a payment; cur->status stays PAY_NONE when it is unknown. */
static int
load_payment(struct store *s, const char *id, struct payment *cur)
{
	sqlite3_stmt *st = s->st[ST_PAY_GET];
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
		log_warnx("database: loading payment: %s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static const char *const decision_names[] = {
	[PAY_TRANSITION] = "transition",
	[PAY_STALE] = "stale",
	[PAY_CONFLICT] = "conflict",
};

/* One event: dedupe, state machine, outcome.  Returns SQLite's rc. */
static int
ingest_run(struct store *s, struct store_ingest *in, const char *now)
{
	const struct vinr_event *ev = in->ev;
	sqlite3_stmt *st = s->st[ST_EV_EXISTS];
	struct payment cur;
	enum pay_status prev = PAY_NONE;
	const char *occurred;
	char *json;
	int rc, d;

	in->decision = -1;
	in->seq = 0;
	bind_text(st, 1, ev->id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW) {
		in->result = INGEST_DUPLICATE;
		return SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		return rc;

	if (ev->ignore_reason != NULL) {
		in->result = INGEST_IGNORED;
		return insert_event(s, in, "ignored", now);
	}
	if ((rc = load_payment(s, ev->pay.id, &cur)) != SQLITE_OK)
		return rc;
	if ((d = payment_apply(&cur, &ev->pay, &prev)) == -1) {
		payment_release(&cur);
		return SQLITE_NOMEM;
	}
	if ((rc = insert_event(s, in, decision_names[d], now)) != SQLITE_OK)
		goto out;
	if (d == PAY_TRANSITION) {
		if ((rc = upsert_payment(s, &cur, now, ev->id)) != SQLITE_OK)
			goto out;
		occurred = ev->pay.status_at != NULL ? ev->pay.status_at :
		    ev->created_at != NULL ? ev->created_at : now;
		json = payment_outcome_json(&cur, prev, s->next_seq, ev->id,
		    in->source, occurred, now);
		if (json == NULL) {
			rc = SQLITE_NOMEM;
			goto out;
		}
		st = s->st[ST_OUT_INSERT];
		sqlite3_bind_int64(st, 1, s->next_seq);
		bind_text(st, 2, cur.id);
		bind_text(st, 3, pay_status_name(cur.status));
		sqlite3_bind_text(st, 4, json, -1, SQLITE_STATIC);
		bind_text(st, 5, now);
		rc = run(s, ST_OUT_INSERT);
		free(json);
		if (rc != SQLITE_OK)
			goto out;
		in->seq = s->next_seq++;
	}
	in->result = INGEST_ACCEPTED;
	in->decision = d;
out:
	payment_release(&cur);
	return rc;
}

static int
dead_run(struct store *s, struct job *j, const char *now)
{
	sqlite3_stmt *st = s->st[ST_DEAD_INSERT];
	int rc;

	bind_text(st, 1, j->u.dead.sink);
	sqlite3_bind_int64(st, 2, j->u.dead.seq);
	sqlite3_bind_int(st, 3, j->u.dead.attempts);
	bind_text(st, 4, j->u.dead.error);
	bind_text(st, 5, now);
	if ((rc = run(s, ST_DEAD_INSERT)) != SQLITE_OK)
		return rc;
	st = s->st[ST_CUR_SET];
	bind_text(st, 1, j->u.dead.sink);
	sqlite3_bind_int64(st, 2, j->u.dead.seq);
	return run(s, ST_CUR_SET);
}

static int
track_run(struct store *s, struct job *j, const char *now)
{
	sqlite3_stmt *st = s->st[ST_TRACK];
	int rc;

	bind_payment(st, j->u.track.in, PAY_PENDING);
	bind_text(st, 16, now);
	if ((rc = run(s, ST_TRACK)) != SQLITE_OK)
		return rc;
	if (j->u.track.out == NULL)
		return SQLITE_OK;
	payment_release(j->u.track.out);
	return load_payment(s, j->u.track.in->id, j->u.track.out);
}

/* ST_REPLAY or ST_DEAD_DELETE for (sink, seq). */
static int
dead_mark_run(struct store *s, struct job *j, enum stmt_id id)
{
	sqlite3_stmt *st = s->st[id];
	int rc;

	bind_text(st, 1, j->u.replay.sink);
	sqlite3_bind_int64(st, 2, j->u.replay.seq);
	if ((rc = run(s, id)) == SQLITE_OK)
		j->u.replay.found = sqlite3_changes(s->db) > 0;
	return rc;
}

static int
rc_set_run(struct store *s, struct job *j)
{
	sqlite3_stmt *st = s->st[ST_RC_SET];

	bind_text(st, 1, j->u.rc.payment_id);
	sqlite3_bind_int(st, 2, j->u.rc.attempts);
	bind_text(st, 3, j->u.rc.next_at);
	bind_text(st, 4, j->u.rc.state);
	return run(s, ST_RC_SET);
}

static int
job_run(struct store *s, struct job *j, const char *now)
{
	switch (j->kind) {
	case JOB_INGEST:
		return ingest_run(s, j->u.ingest, now);
	case JOB_DEAD:
		return dead_run(s, j, now);
	case JOB_TRACK:
		return track_run(s, j, now);
	case JOB_REPLAY:
		return dead_mark_run(s, j, ST_REPLAY);
	case JOB_DEAD_DELIVERED:
		return dead_mark_run(s, j, ST_DEAD_DELETE);
	case JOB_RC_SET:
		return rc_set_run(s, j);
	}
	return SQLITE_MISUSE;
}

static void
job_fail(struct job *j)
{
	j->rc = -1;
	switch (j->kind) {
	case JOB_INGEST:
		j->u.ingest->result = INGEST_UNAVAILABLE;
		j->u.ingest->decision = -1;
		j->u.ingest->seq = 0;
		break;
	case JOB_TRACK:
		if (j->u.track.out != NULL)
			payment_release(j->u.track.out);
		break;
	default:
		break;
	}
}

/* What the job's caller is told once it is answered. */
static int
job_result(const struct job *j)
{
	if (j->rc == 0 && j->kind == JOB_REPLAY && !j->u.replay.found)
		return 1;
	return j->rc;
}

/*
 * One transaction for the whole batch.  Optimistic first: the jobs run one
 * after the other with no savepoints (a savepoint per job costs a
 * sub-journal write per page).  If a job fails for a reason of its own, the
 * batch is rolled back and run again carefully, each job in its own
 * savepoint, so that the others still commit.  An error that loses the
 * transaction (busy, I/O, disk full) fails the whole batch, and nothing of
 * it stays.  Returns 1 committed, 0 not, -1 run it again carefully.
 */
static int
writer_batch(struct store *s, struct job *batch, struct cursor *cur, int ncur,
    bool careful)
{
	int64_t seq0 = s->next_seq;
	char now[TS_LEN];
	struct job *j;
	int rc, n = 0;

	util_rfc3339(util_now_ms(), now);
	if ((rc = run(s, ST_BEGIN)) != SQLITE_OK)
		goto abort;
	for (j = batch; j != NULL; j = j->next) {
		int64_t seq_before = s->next_seq;

		if (careful && (rc = run(s, ST_SAVEPOINT)) != SQLITE_OK)
			goto abort;
		rc = job_run(s, j, now);
		if (rc == SQLITE_OK) {
			j->rc = 0;
			if (careful && (rc = run(s, ST_RELEASE)) != SQLITE_OK)
				goto abort;
			continue;
		}
		if (fatal_rc(rc))
			goto abort;
		if (!careful) {
			run(s, ST_ROLLBACK);
			s->next_seq = seq0;
			return -1;
		}
		s->next_seq = seq_before;
		job_fail(j);
		if (run(s, ST_ROLLBACK_TO) != SQLITE_OK || run(s, ST_RELEASE) != SQLITE_OK)
			goto abort;
	}
	for (int i = 0; i < ncur; i++) {
		sqlite3_stmt *st = s->st[ST_CUR_SET];

		bind_text(st, 1, cur[i].sink);
		sqlite3_bind_int64(st, 2, cur[i].seq);
		if ((rc = run(s, ST_CUR_SET)) != SQLITE_OK)
			goto abort;
	}
	if ((rc = run(s, ST_COMMIT)) != SQLITE_OK)
		goto abort;
	return 1;
abort:
	if (!sqlite3_get_autocommit(s->db))
		run(s, ST_ROLLBACK);
	s->next_seq = seq0;
	for (j = batch; j != NULL; j = j->next, n++)
		job_fail(j);
	log_warnx("database: transaction not committed (%s): %d job(s) refused",
	    sqlite3_errstr(rc), n);
	return 0;
}

static void
notify_listeners(struct store *s)
{
	uint64_t one = 1;

	for (int i = 0; i < s->nlisteners; i++)
		if (write(s->listeners[i], &one, sizeof(one)) == -1 && errno != EAGAIN)
			log_warn("waking a listener");
}

static void
hist_add(_Atomic uint64_t *hist, const double *bounds, double v)
{
	int i = 0;

	while (i < STORE_HIST_BUCKETS && v > bounds[i])
		i++;
	atomic_fetch_add(&hist[i], 1);
}

/* After a commit: what /metrics counts. */
static void
count_batch(struct store *s, struct job *batch, int n, int64_t us)
{
	for (struct job *j = batch; j != NULL; j = j->next)
		if (j->kind == JOB_INGEST && j->rc == 0 && j->u.ingest->seq > 0)
			atomic_fetch_add(&s->outcomes_by_status[j->u.ingest->ev->pay.status], 1);
	hist_add(s->commit_hist, store_commit_bounds, (double)us / 1e6);
	hist_add(s->batch_hist, store_batch_bounds, n);
	atomic_fetch_add(&s->commit_us_sum, (uint64_t)us);
	atomic_fetch_add(&s->batch_sum, (uint64_t)n);
	atomic_fetch_add(&s->commits, 1);
}

/*
 * While the last commit failed, see on each idle tick whether the database
 * takes a write lock again, so that /healthz recovers without traffic.
 */
static void
writer_probe(struct store *s)
{
	if (run(s, ST_BEGIN) == SQLITE_OK && run(s, ST_ROLLBACK) == SQLITE_OK) {
		atomic_store(&s->last_ok, true);
		log_info("database: writable again");
	} else if (!sqlite3_get_autocommit(s->db))
		run(s, ST_ROLLBACK);
}

/*
 * Retention ([storage] retain_days): one chunk per idle tick, then again in
 * an hour.  Outcomes a sink has not delivered yet are kept.
 */
#define PRUNE_CHUNK	5000
static void
writer_prune(struct store *s)
{
	char cutoff[TS_LEN];
	int64_t delivered = s->next_seq - 1;
	int changed = 0;

	/* Only what every sink configured now has delivered. */
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->ncursors; i++)
		if (s->cursors[i].seq < delivered)
			delivered = s->cursors[i].seq;
	pthread_mutex_unlock(&s->mu);
	util_rfc3339(util_now_ms() - (int64_t)s->retain_days * 86400000, cutoff);
	if (run(s, ST_BEGIN) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s->st[ST_PRUNE_OUTCOMES], 3, delivered);
	for (enum stmt_id id = ST_PRUNE_EVENTS; id <= ST_PRUNE_OUTCOMES; id++) {
		bind_text(s->st[id], 1, cutoff);
		sqlite3_bind_int(s->st[id], 2, PRUNE_CHUNK);
		if (run(s, id) != SQLITE_OK) {
			run(s, ST_ROLLBACK);
			return;
		}
		changed += sqlite3_changes(s->db);
	}
	if (run(s, ST_COMMIT) != SQLITE_OK) {
		if (!sqlite3_get_autocommit(s->db))
			run(s, ST_ROLLBACK);
		return;
	}
	if (changed > 0)
		log_info("database: pruned %d row(s) older than %d days", changed,
		    s->retain_days);
	s->next_prune_ms = util_mono_ms() + (changed > 0 ? 0 : 3600000);
}

/*
 * Dirty cursors ride along with the next batch; alone they are saved at
 * most once a second (and at stop), so that a sink moving its cursor after
 * each delivery does not cost an fsync of its own each time.
 */
static bool
cursors_due(struct store *s)
{
	bool dirty = false;

	for (int i = 0; i < s->ncursors; i++)
		dirty |= s->cursors[i].dirty;
	return dirty && (s->stopping || util_mono_ms() - s->cursors_saved_ms >= 1000);
}

static void *
writer_main(void *arg)
{
	struct store *s = arg;
	struct cursor cur[MAX_CURSORS];
	struct job *batch, *j, *next, *async;
	struct timespec ts;
	int64_t t0;
	int ncur, n = 0, ok;
	bool replayed;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->head == NULL && !cursors_due(s)) {
			if (s->stopping)
				break;
			util_deadline(&ts, 1000 - (util_mono_ms() - s->cursors_saved_ms) % 1000);
			pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
			atomic_store(&s->tick_ms, util_mono_ms());
			if (s->head != NULL || s->stopping)
				continue;
			pthread_mutex_unlock(&s->mu);
			if (!atomic_load(&s->last_ok))
				writer_probe(s);
			else if (s->retain_days > 0 && util_mono_ms() >= s->next_prune_ms)
				writer_prune(s);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		/* Take the whole queue (up to MAX_BATCH) and the dirty cursors. */
		batch = s->head;
		n = 0;
		if (batch != NULL) {
			for (n = 1, j = batch; j->next != NULL && n < MAX_BATCH; n++)
				j = j->next;
			s->head = j->next;
			if (s->head == NULL)
				s->tail = &s->head;
			j->next = NULL;
		}
		ncur = 0;
		for (int i = 0; i < s->ncursors; i++)
			if (s->cursors[i].dirty) {
				cur[ncur++] = s->cursors[i];
				s->cursors[i].dirty = false;
			}
		pthread_mutex_unlock(&s->mu);

		t0 = util_mono_ms();
		if ((ok = writer_batch(s, batch, cur, ncur, false)) == -1)
			ok = writer_batch(s, batch, cur, ncur, true);
		if (ok)
			count_batch(s, batch, n, (util_mono_ms() - t0) * 1000);

		pthread_mutex_lock(&s->mu);
		atomic_store(&s->tick_ms, util_mono_ms());
		atomic_store(&s->last_ok, ok == 1);
		if (ok && ncur > 0)
			s->cursors_saved_ms = util_mono_ms();
		if (!ok) {
			/* Cursors not saved stay dirty, unless a newer value came. */
			for (int c = 0; c < ncur; c++)
				for (int i = 0; i < s->ncursors; i++)
					if (strcmp(s->cursors[i].sink, cur[c].sink) == 0 &&
					    !s->cursors[i].dirty)
						s->cursors[i].dirty = true;
		}
		/*
		 * Wake each blocking submitter on its own condition variable,
		 * while mu is held: it cannot return (and its job vanish from
		 * its stack) before we let go of mu, so read next first.
		 * Asynchronous jobs are answered below, without mu.
		 */
		async = NULL;
		replayed = false;
		for (j = batch; j != NULL; j = next) {
			next = j->next;
			replayed |= j->kind == JOB_REPLAY && job_result(j) == 0;
			if (j->done_fn != NULL) {
				j->next = async;
				async = j;
			} else {
				j->done = true;
				pthread_cond_signal(j->cv);
			}
		}
		if (ok && s->next_seq - 1 != atomic_load(&s->last_seq)) {
			atomic_store(&s->last_seq, s->next_seq - 1);
			notify_listeners(s);
		} else if (replayed)
			notify_listeners(s);
		if (async != NULL) {
			pthread_mutex_unlock(&s->mu);
			for (j = async; j != NULL; j = next) {
				next = j->next;
				j->done_fn(j->done_arg, job_result(j));
				free(j);
			}
			pthread_mutex_lock(&s->mu);
		}
		if (!ok && s->head == NULL) {
			/* Do not spin on a dead disk: let the next jobs wait a bit. */
			util_deadline(&ts, 100);
			pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
store_start(struct store *s)
{
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		log_warnx("cannot start the writer thread");
		return -1;
	}
	s->started = true;
	return 0;
}

/* Queues j and sleeps until the writer has answered it. */
static void
submit(struct store *s, struct job *j)
{
	pthread_cond_t cv;

	j->next = NULL;
	j->done = false;
	pthread_mutex_lock(&s->mu);
	if (s->stopping || !s->started) {
		pthread_mutex_unlock(&s->mu);
		job_fail(j);
		return;
	}
	pthread_cond_init(&cv, NULL);
	j->cv = &cv;
	*s->tail = j;
	s->tail = &j->next;
	pthread_cond_signal(&s->work_cv);
	while (!j->done)
		pthread_cond_wait(&cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&cv);
}

/*
 * Queues a heap job whose done function the writer calls after the commit.
 * Frees j and returns -1 when the store is stopping.
 */
static int
submit_async(struct store *s, struct job *j, store_done_fn done, void *arg)
{
	j->next = NULL;
	j->done = false;
	j->done_fn = done;
	j->done_arg = arg;
	pthread_mutex_lock(&s->mu);
	if (s->stopping || !s->started) {
		pthread_mutex_unlock(&s->mu);
		free(j);
		return -1;
	}
	*s->tail = j;
	s->tail = &j->next;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static struct job *
job_new(enum job_kind kind)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warn("store: queueing a job");
		return NULL;
	}
	j->kind = kind;
	return j;
}

void
store_ingest(struct store *s, struct store_ingest *in)
{
	struct job j = { .kind = JOB_INGEST, .u.ingest = in };

	submit(s, &j);
}

int
store_ingest_async(struct store *s, struct store_ingest *in, store_done_fn done,
    void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_INGEST)) == NULL)
		return -1;
	j->u.ingest = in;
	return submit_async(s, j, done, arg);
}

int
store_dead_letter(struct store *s, const char *sink, int64_t seq, int attempts,
    const char *last_error)
{
	struct job j = { .kind = JOB_DEAD };

	j.u.dead.sink = sink;
	j.u.dead.seq = seq;
	j.u.dead.attempts = attempts;
	j.u.dead.error = last_error;
	submit(s, &j);
	return j.rc;
}

int
store_track(struct store *s, const struct payment *in, struct payment *out)
{
	struct job j = { .kind = JOB_TRACK };

	if (out != NULL) {
		memset(out, 0, sizeof(*out));
		out->livemode = -1;
	}
	j.u.track.in = in;
	j.u.track.out = out;
	submit(s, &j);
	return job_result(&j);
}

int
store_track_async(struct store *s, const struct payment *in, store_done_fn done,
    void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_TRACK)) == NULL)
		return -1;
	j->u.track.in = in;
	return submit_async(s, j, done, arg);
}

int
store_replay(struct store *s, const char *sink, int64_t seq)
{
	struct job j = { .kind = JOB_REPLAY };

	j.u.replay.sink = sink;
	j.u.replay.seq = seq;
	submit(s, &j);
	return job_result(&j);
}

int
store_replay_async(struct store *s, const char *sink, int64_t seq,
    store_done_fn done, void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_REPLAY)) == NULL)
		return -1;
	j->u.replay.sink = sink;
	j->u.replay.seq = seq;
	return submit_async(s, j, done, arg);
}

int
store_dead_delivered(struct store *s, const char *sink, int64_t seq)
{
	struct job j = { .kind = JOB_DEAD_DELIVERED };

	j.u.replay.sink = sink;
	j.u.replay.seq = seq;
	submit(s, &j);
	return j.rc;
}

void
store_cursor_set(struct store *s, const char *sink, int64_t seq)
{
	int i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->ncursors; i++)
		if (strcmp(s->cursors[i].sink, sink) == 0)
			break;
	if (i == s->ncursors && i < MAX_CURSORS) {
		/* A sink's first call registers it with its saved cursor. */
		snprintf(s->cursors[i].sink, sizeof(s->cursors[i].sink), "%s", sink);
		s->cursors[i].seq = seq;
		s->ncursors++;
	}
	if (i < s->ncursors && seq > s->cursors[i].seq) {
		s->cursors[i].seq = seq;
		/* No wake-up: the writer saves it with its next batch, or
		 * within a second (see cursors_due). */
		s->cursors[i].dirty = true;
	}
	pthread_mutex_unlock(&s->mu);
}

int
store_rc_set(struct store *s, const char *payment_id, int attempts, const char *next_at,
    const char *state)
{
	struct job j = { .kind = JOB_RC_SET };

	j.u.rc.payment_id = payment_id;
	j.u.rc.attempts = attempts;
	j.u.rc.next_at = next_at;
	j.u.rc.state = state;
	submit(s, &j);
	return j.rc;
}

void
store_set_retention(struct store *s, int days)
{
	s->retain_days = days;
}

void
store_metrics_get(struct store *s, struct store_metrics *m)
{
	for (int i = 0; i <= PAY_CANCELLED; i++)
		m->outcomes_by_status[i] = atomic_load(&s->outcomes_by_status[i]);
	for (int i = 0; i <= STORE_HIST_BUCKETS; i++) {
		m->commit_hist[i] = atomic_load(&s->commit_hist[i]);
		m->batch_hist[i] = atomic_load(&s->batch_hist[i]);
	}
	m->commit_seconds_sum = (double)atomic_load(&s->commit_us_sum) / 1e6;
	m->batch_sum = atomic_load(&s->batch_sum);
	m->commits = atomic_load(&s->commits);
}

int
store_add_listener(struct store *s, int fd)
{
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (s->nlisteners < MAX_LISTENERS) {
		s->listeners[s->nlisteners++] = fd;
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* notify_listeners() runs under mu: once we hold it, no write is in flight. */
void
store_remove_listener(struct store *s, int fd)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i] == fd) {
			s->listeners[i] = s->listeners[--s->nlisteners];
			break;
		}
	pthread_mutex_unlock(&s->mu);
}

int64_t
store_last_seq(struct store *s)
{
	return atomic_load(&s->last_seq);
}

bool
store_healthy(struct store *s, const char **reason)
{
	if (!atomic_load(&s->last_ok)) {
		*reason = "storage_unavailable";
		return false;
	}
	if (s->started && util_mono_ms() - atomic_load(&s->tick_ms) > 15000) {
		*reason = "writer_stalled";
		return false;
	}
	return true;
}

const char *
store_path(struct store *s)
{
	return s->path;
}

void
store_stop(struct store *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	store_stop(s);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db != NULL)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work_cv);
	free(s->path);
	free(s);
}
