/*
 * store_pg.c - the PostgreSQL engine of the writer (store_engine.h, SPEC §8).
 *
 * DESIGN: the same operations as store_sqlite.c, with the same meaning, on
 * one libpq connection that only the writer thread uses.  What differs:
 *
 * Several writers.  Every instance's writer commits into the same tables.
 * begin() takes the row lock of seq_counter (SELECT ... FOR UPDATE): the
 * writers' transactions run one at a time until COMMIT, so a seq taken from
 * the counter is gap-free in commit order, a dedupe or a payment read is
 * never raced, and two writers never deadlock.  ingest() takes one past
 * the counter (or the writer's proposal when greater) and moves the counter
 * in the same statement group, inside the job's savepoint.
 *
 * Wake-ups.  A transaction that stored outcomes or marked a replay runs
 * pg_notify(STORE_PG_CHANNEL, highest seq) just before COMMIT: PostgreSQL
 * delivers it to every LISTENing instance once the commit is visible.
 *
 * Errors.  Any failed statement aborts a PostgreSQL transaction; only a
 * savepoint brings it back.  A statement that failed for its own data
 * (store_pg_job_error()) is STORE_E_JOB: in the first pass the writer
 * rolls back and runs the batch again with savepoints, in the careful pass
 * savepoint_undo() rolls back to the job's savepoint.  Anything else loses
 * the transaction (STORE_E_TXN).
 *
 * A lost connection.  begin() reconnects (at most once a second) when the
 * connection is known bad, and once at once when its BEGIN finds it gone
 * (nothing of the batch ran yet); probe() reconnects on the writer's idle
 * ticks.  Prepared statements belong to a connection: every (re)connect
 * prepares them again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "store_engine.h"
#include "store_int.h"
#include "store_pg_int.h"
#include "util.h"

#define LOCK_WAIT_MS	5000	/* SPEC §1.4: storage within 5 s */
#define PROBE_WAIT_MS	1000	/* probe(): the counter's lock, at most */
#define RECONNECT_MS	1000	/* begin(): one reconnect a second at most */

enum stmt_id {
	ST_EV_INSERT, ST_PAY_GET, ST_PAY_UPSERT, ST_OUT_INSERT, ST_SEQ_SET,
	ST_CUR_SET, ST_DEAD_INSERT, ST_TRACK, ST_REPLAY, ST_DEAD_DELETE,
	ST_RC_SET, ST_PRUNE_EVENTS, ST_PRUNE_OUTCOMES,
	ST_PR_GET, ST_PR_PUT, ST_PR_SET, ST_PR_MOVE, ST_PR_LINK, ST_PR_LINKED,
	ST_PR_CANDIDATES, ST_PAY_TRACKED,
	ST_COUNT
};

static const char *stmt_sql[ST_COUNT] = {
	[ST_EV_INSERT] = "INSERT INTO events (id, type, payment_id, status, source, "
	    "result, received_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	    "ON CONFLICT (id) DO NOTHING",
	[ST_PAY_GET] = "SELECT " PAYMENT_COLS " FROM payments WHERE id = $1",
	/* ST_PAY_UPSERT and ST_TRACK are written from the field table: pay_sql(). */
	[ST_OUT_INSERT] = "INSERT INTO outcomes (seq, payment_id, status, json, "
	    "recorded_at) VALUES ($1, $2, $3, $4, $5)",
	[ST_SEQ_SET] = "UPDATE seq_counter SET last_seq = $1 WHERE id = 1",
	[ST_CUR_SET] = "INSERT INTO cursors (sink, seq) VALUES ($1, $2) "
	    "ON CONFLICT (sink) DO UPDATE SET seq = greatest(cursors.seq, EXCLUDED.seq)",
	[ST_DEAD_INSERT] = "INSERT INTO dead_letters (sink, seq, attempts, last_error, at) "
	    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sink, seq) DO UPDATE SET "
	    "attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, "
	    "at = EXCLUDED.at, replay = 0",
	[ST_REPLAY] = "UPDATE dead_letters SET replay = 1 WHERE sink = $1 AND seq = $2",
	[ST_DEAD_DELETE] = "DELETE FROM dead_letters WHERE sink = $1 AND seq = $2",
	[ST_RC_SET] = "UPDATE payments SET rc_attempts = $2, rc_next_at = $3, "
	    "rc_state = $4 WHERE id = $1",
	/*
	 * Retention, in chunks.  An outcome goes only once every cursor of
	 * every instance (the table's) and every sink of this one ($3, the
	 * writer's) is past it: another instance's event log may lag.
	 */
	[ST_PRUNE_EVENTS] = "DELETE FROM events WHERE id IN (SELECT id FROM events "
	    "WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
	[ST_PRUNE_OUTCOMES] = "DELETE FROM outcomes WHERE seq IN (SELECT seq FROM "
	    "outcomes WHERE recorded_at < $1 AND seq <= least($3::bigint, "
	    "coalesce((SELECT min(seq) FROM cursors), $3::bigint)) ORDER BY seq LIMIT $2)",
	/* The pay requests of SPEC §4.1; instance: whose "sending" they are. */
	[ST_PR_GET] = "SELECT " PAYREQ_COLS " FROM pay_requests WHERE key = $1",
	[ST_PR_PUT] = "INSERT INTO pay_requests (key, terminal_id, amount, currency, "
	    "reference, capture_method, state, payment_id, instance, created_at, "
	    "updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'sending', NULL, $8, $7, $7) "
	    "ON CONFLICT (key) DO UPDATE SET terminal_id = $2, amount = $3, "
	    "currency = $4, reference = $5, capture_method = $6, state = 'sending', "
	    "payment_id = NULL, instance = $8, created_at = $7, updated_at = $7",
	[ST_PR_SET] = "UPDATE pay_requests SET state = $2, updated_at = $3 WHERE key = $1",
	[ST_PR_MOVE] = "UPDATE pay_requests SET state = $2, updated_at = $4 "
	    "WHERE state = $1::text AND created_at < $3 "
	    "AND ($1::text <> 'sending' OR instance = $5)",
	[ST_PR_LINK] = "UPDATE pay_requests SET state = 'created', payment_id = $2, "
	    "updated_at = $3 WHERE key = $1",
	[ST_PR_LINKED] = "SELECT 1 FROM pay_requests WHERE payment_id = $1 LIMIT 1",
	[ST_PR_CANDIDATES] = "SELECT key, created_at FROM pay_requests "
	    "WHERE state = 'unknown' AND terminal_id = $1 AND reference = $2 "
	    "AND amount = $3 ORDER BY created_at, key",
	[ST_PAY_TRACKED] = "UPDATE payments SET tracked = 1 WHERE id = $1",
};

/*
 * The payment statements (store_pay_sql()): $1 .. $N in PAYMENT_COLS'
 * order, then $N+1 updated_at and $N+2 last_event_id (the upsert).  Built
 * once at the first open, before the writer runs; never freed.
 */
static char pay_upsert_sql[2048], pay_track_sql[2048];

static int
pay_sql(void)
{
	if (store_pay_sql('$', pay_upsert_sql, sizeof(pay_upsert_sql), pay_track_sql,
	    sizeof(pay_track_sql)) == -1)
		return -1;
	stmt_sql[ST_PAY_UPSERT] = pay_upsert_sql;
	stmt_sql[ST_TRACK] = pay_track_sql;
	return 0;
}

/* What the transaction did, for NOTIFY; saved at each savepoint. */
struct txn_mark {
	int64_t		 counter;	/* seq_counter.last_seq as this txn sees it */
	int64_t		 top;		/* the highest seq it stored, 0 none */
	bool		 replayed;	/* it marked a dead letter for replay */
};

struct store_conn {
	PGconn		*pg;
	char		*where;
	char		*instance;
	struct store_params params;	/* password: the caller's; instance: ours */
	int		 lock_wait_ms;
	int64_t		 retry_ms;	/* begin() reconnects no sooner (monotonic) */
	struct txn_mark	 txn, sp;
	char		 err[256];
};

/* A statement's parameters, all text format but the event's body. */
#define MAX_PARAMS	24
struct params {
	int		 n;
	const char	*v[MAX_PARAMS];
	int		 len[MAX_PARAMS];
	int		 fmt[MAX_PARAMS];
	char		 num[MAX_PARAMS][24];
};

static void
p_text(struct params *p, const char *v)
{
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->v[p->n++] = v;
}

static void
p_int(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
	p_text(p, p->num[p->n]);
}

/* Bytes that need not end in NUL (the body): binary format, which for a
 * text column is the text itself, checked as UTF-8 all the same. */
static void
p_bytes(struct params *p, const char *v, size_t len)
{
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->v[p->n++] = v;
}

static char stmt_names[ST_COUNT][24];	/* "vinr_w" and an int */

/* Keeps the error's first line for error(), logs it (rate-limited by
 * SQLSTATE) and says what it lost.  Clears res. */
static int
fail(struct store_conn *c, PGresult *res, const char *what)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char key[24];
	int rc;

	store_pg_errmsg(c->pg, res, c->err, sizeof(c->err));
	rc = c->pg != NULL && store_pg_job_error(c->pg, res) ? STORE_E_JOB : STORE_E_TXN;
	snprintf(key, sizeof(key), "postgres %s", state != NULL ? state : "conn");
	log_warnx_rl(key, "database: %s: %s", what, c->err);
	PQclear(res);
	return rc;
}

/*
 * Runs statement id with p.  Returns the rows it returned or changed
 * (>= 0), with *out when wanted (PQclear() it), or STORE_E_JOB /
 * STORE_E_TXN.
 */
static int
run(struct store_conn *c, enum stmt_id id, const struct params *p, PGresult **out)
{
	ExecStatusType st;
	PGresult *res;
	int rows;

	if (out != NULL)
		*out = NULL;
	if (c->pg == NULL) {
		snprintf(c->err, sizeof(c->err), "not connected");
		return STORE_E_TXN;
	}
	res = PQexecPrepared(c->pg, stmt_names[id], p->n, p->v, p->len, p->fmt, 0);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return fail(c, res, stmt_sql[id]);
	rows = st == PGRES_TUPLES_OK ? PQntuples(res) : atoi(PQcmdTuples(res));
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return rows;
}

/* A command with no parameters (BEGIN ...); 0 or STORE_E_TXN.  tag: the
 * command tag it must answer (COMMIT answers ROLLBACK when the transaction
 * had failed), or NULL. */
static int
command(struct store_conn *c, const char *sql, const char *tag, PGresult **out)
{
	PGresult *res;
	ExecStatusType st;

	if (c->pg == NULL) {
		snprintf(c->err, sizeof(c->err), "not connected");
		return STORE_E_TXN;
	}
	res = PQexec(c->pg, sql);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		fail(c, res, sql);
		return STORE_E_TXN;
	}
	if (tag != NULL && strcmp(PQcmdStatus(res), tag) != 0) {
		snprintf(c->err, sizeof(c->err), "%s answered %s", sql, PQcmdStatus(res));
		log_warnx_rl("postgres tag", "database: %s", c->err);
		PQclear(res);
		return STORE_E_TXN;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

static int
nomem(struct store_conn *c)
{
	snprintf(c->err, sizeof(c->err), "out of memory");
	return STORE_E_TXN;
}

/* Prepares every statement on the connection now.  -1 with err. */
static int
prepare_all(struct store_conn *c, char *err, size_t errlen)
{
	PGresult *res;

	for (int i = 0; i < ST_COUNT; i++) {
		res = PQprepare(c->pg, stmt_names[i], stmt_sql[i], 0, NULL);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			char msg[200];

			snprintf(err, errlen, "preparing \"%s\": %s", stmt_sql[i],
			    store_pg_errmsg(c->pg, res, msg, sizeof(msg)));
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

/* A new connection in place of the old one, its statements prepared.
 * 0, or STORE_E_TXN with c->err. */
static int
reconnect(struct store_conn *c)
{
	char err[256];

	c->retry_ms = util_mono_ms() + RECONNECT_MS;
	PQfinish(c->pg);
	c->pg = NULL;
	if ((c->pg = store_pg_connect(c->where, &c->params, NULL, err,
	    sizeof(err))) == NULL || prepare_all(c, err, sizeof(err)) == -1) {
		PQfinish(c->pg);
		c->pg = NULL;
		snprintf(c->err, sizeof(c->err), "%s", err);
		log_warnx_rl("postgres connect", "database: cannot connect: %s", err);
		return STORE_E_TXN;
	}
	log_info("database: connected again");
	return 0;
}

static bool
connected(struct store_conn *c)
{
	return c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
}

/* ------------------------------------------------------------------ */
/* Ingest: dedupe, state machine, outcome (as store_sqlite.c) */

/*
 * Stores the event unless its id is known: the insert's own conflict is
 * the dedupe.  0 with *dup, or an error.
 */
static int
insert_event(struct store_conn *c, const struct store_ingest *in, const char *result,
    const char *now, bool *dup)
{
	const struct vinr_event *ev = in->ev;
	struct params p = { 0 };
	int rc;

	p_text(&p, ev->id);
	p_text(&p, ev->type);
	p_text(&p, ev->pay.id);
	p_text(&p, pay_status_name(ev->pay.status));
	p_text(&p, in->source);
	p_text(&p, result);
	p_text(&p, now);
	p_bytes(&p, in->body, in->bodylen);
	if ((rc = run(c, ST_EV_INSERT, &p, NULL)) < 0)
		return rc;
	*dup = rc == 0;
	return 0;
}

/* $1 .. $PAY_NFIELDS in PAYMENT_COLS' order, with status in place of p's. */
static void
p_payment(struct params *p, const struct payment *pay, enum pay_status status)
{
	int64_t v;

	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (i == PF_STATUS)
			p_text(p, pay_status_name(status));
		else if (pay_field_is_text(i))
			p_text(p, pay_field_text(pay, i));
		else if (pay_field_int(pay, i, &v))
			p_int(p, v);
		else
			p_text(p, NULL);
	}
}

static int
upsert_payment(struct store_conn *c, const struct payment *pay, const char *now,
    const char *event_id)
{
	struct params p = { 0 };
	int rc;

	p_payment(&p, pay, pay->status);
	p_text(&p, now);
	p_text(&p, event_id);
	return (rc = run(c, ST_PAY_UPSERT, &p, NULL)) < 0 ? rc : 0;
}

/* Loads a payment; cur->status stays PAY_NONE when it is unknown. */
static int
load_payment(struct store_conn *c, const char *id, struct payment *cur)
{
	struct params p = { 0 };
	PGresult *res;
	int rc;

	payment_init(cur);
	p_text(&p, id);
	if ((rc = run(c, ST_PAY_GET, &p, &res)) < 0)
		return rc;
	rc = rc > 0 && store_pg_payment(res, 0, 0, cur) == -1 ? nomem(c) : 0;
	PQclear(res);
	return rc;
}

/*
 * The outcome of a transition, under the next seq: one past the counter
 * (another instance may have moved it) or the writer's proposal when
 * greater.  The counter moves in the same transaction.
 */
static int
insert_outcome(struct store_conn *c, struct store_ingest *in, const struct payment *cur,
    enum pay_status prev, const char *now, int64_t seq)
{
	const struct vinr_event *ev = in->ev;
	struct params p = { 0 }, q = { 0 };
	const char *occurred;
	char *json;
	int rc;

	if (seq <= c->txn.counter)
		seq = c->txn.counter + 1;
	occurred = ev->pay.status_at != NULL ? ev->pay.status_at :
	    ev->created_at != NULL ? ev->created_at : now;
	if ((json = payment_outcome_json(cur, prev, seq, ev->id, in->source, occurred,
	    now)) == NULL)
		return nomem(c);
	p_int(&p, seq);
	p_text(&p, cur->id);
	p_text(&p, pay_status_name(cur->status));
	p_text(&p, json);
	p_text(&p, now);
	rc = run(c, ST_OUT_INSERT, &p, NULL);
	free(json);
	p_int(&q, seq);
	if (rc < 0 || (rc = run(c, ST_SEQ_SET, &q, NULL)) < 0)
		return rc;
	if (rc != 1) {
		snprintf(c->err, sizeof(c->err), "the seq_counter row is missing");
		return STORE_E_TXN;
	}
	c->txn.counter = seq;
	if (seq > c->txn.top)
		c->txn.top = seq;
	in->seq = seq;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pay requests (SPEC §4.1) */

/* Links key's request to payment_id and tracks the payment. */
static int
pay_link(struct store_conn *c, const char *key, const char *payment_id, const char *now)
{
	struct params p = { 0 }, q = { 0 };
	int rc;

	p_text(&p, key);
	p_text(&p, payment_id);
	p_text(&p, now);
	if ((rc = run(c, ST_PR_LINK, &p, NULL)) < 0)
		return rc;
	p_text(&q, payment_id);
	return (rc = run(c, ST_PAY_TRACKED, &q, NULL)) < 0 ? rc : 0;
}

/*
 * The oldest unknown request that pay (a payment just heard of) resolves:
 * same terminal, reference and amount, created after the request
 * (payreq_link_ok), and no request linked to it yet.  Linked and logged.
 */
static int
pay_resolve(struct store_conn *c, const struct payment *pay, bool pay_new, const char *now)
{
	struct params p = { 0 }, q = { 0 };
	PGresult *res;
	char *key = NULL;
	int rc, n;

	if (pay->terminal_id == NULL || pay->reference == NULL || !pay->has_amount)
		return 0;
	p_text(&p, pay->terminal_id);
	p_text(&p, pay->reference);
	p_int(&p, pay->amount);
	if ((n = run(c, ST_PR_CANDIDATES, &p, &res)) < 0)
		return n;
	for (int i = 0; i < n && key == NULL; i++)
		if (payreq_link_ok(PQgetvalue(res, i, 1), pay->created_at, pay_new) &&
		    (key = strdup(PQgetvalue(res, i, 0))) == NULL) {
			PQclear(res);
			return nomem(c);
		}
	PQclear(res);
	if (key == NULL)
		return 0;
	p_text(&q, pay->id);
	if ((rc = run(c, ST_PR_LINKED, &q, NULL)) == 0 &&
	    (rc = pay_link(c, key, pay->id, now)) == 0)
		log_info("pay: the unknown request %s was created: payment %s", key, pay->id);
	free(key);
	return rc < 0 ? rc : 0;
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

static int
pg_ingest(struct store_conn *c, struct store_ingest *in, const char *now, int64_t seq)
{
	const struct vinr_event *ev = in->ev;
	enum pay_status prev = PAY_NONE;
	struct payment cur;
	bool dup, pay_new;
	int rc, d;

	in->decision = -1;
	in->seq = 0;
	if (ev->ignore_reason != NULL) {
		if ((rc = insert_event(c, in, "ignored", now, &dup)) != 0)
			return rc;
		in->result = dup ? INGEST_DUPLICATE : INGEST_IGNORED;
		return dup && in->pay_key != NULL ? pay_link(c, in->pay_key, ev->pay.id,
		    now) : 0;
	}
	if ((rc = load_payment(c, ev->pay.id, &cur)) != 0)
		return rc;
	pay_new = cur.status == PAY_NONE;
	if ((d = payment_apply(&cur, &ev->pay, &prev)) == -1) {
		payment_release(&cur);
		return nomem(c);
	}
	/* Decided before the insert, which tells a duplicate: then the
	 * decision is dropped and nothing else is written. */
	if ((rc = insert_event(c, in, pay_decision_name(d), now, &dup)) != 0)
		goto out;
	if (dup) {
		in->result = INGEST_DUPLICATE;
		if (in->pay_key != NULL)
			rc = pay_link(c, in->pay_key, ev->pay.id, now);
		goto out;
	}
	if (d == PAY_TRANSITION &&
	    ((rc = upsert_payment(c, &cur, now, ev->id)) != 0 ||
	    (rc = insert_outcome(c, in, &cur, prev, now, seq)) != 0))
		goto out;
	if ((rc = pay_after_ingest(c, in, &cur, pay_new, now)) != 0)
		goto out;
	in->result = INGEST_ACCEPTED;
	in->decision = d;
out:
	payment_release(&cur);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The other jobs */

static int
pg_cursor_set(struct store_conn *c, const char *sink, int64_t seq)
{
	struct params p = { 0 };
	int rc;

	p_text(&p, sink);
	p_int(&p, seq);
	return (rc = run(c, ST_CUR_SET, &p, NULL)) < 0 ? rc : 0;
}

static int
pg_dead_letter(struct store_conn *c, const char *sink, int64_t seq, int attempts,
    const char *last_error, const char *now)
{
	struct params p = { 0 };
	int rc;

	p_text(&p, sink);
	p_int(&p, seq);
	p_int(&p, attempts);
	p_text(&p, last_error);
	p_text(&p, now);
	if ((rc = run(c, ST_DEAD_INSERT, &p, NULL)) < 0)
		return rc;
	return pg_cursor_set(c, sink, seq);
}

static int
pg_track(struct store_conn *c, const struct payment *in, struct payment *out,
    const char *now)
{
	struct params p = { 0 };
	int rc;

	p_payment(&p, in, PAY_PENDING);
	p_text(&p, now);
	if ((rc = run(c, ST_TRACK, &p, NULL)) < 0)
		return rc;
	if (out == NULL)
		return 0;
	payment_release(out);
	return load_payment(c, in->id, out);
}

/* ST_REPLAY or ST_DEAD_DELETE for (sink, seq): the rows changed, or an error. */
static int
dead_mark(struct store_conn *c, enum stmt_id id, const char *sink, int64_t seq)
{
	struct params p = { 0 };

	p_text(&p, sink);
	p_int(&p, seq);
	return run(c, id, &p, NULL);
}

static int
pg_replay_mark(struct store_conn *c, const char *sink, int64_t seq)
{
	int rc = dead_mark(c, ST_REPLAY, sink, seq);

	if (rc > 0)
		c->txn.replayed = true;		/* other instances' sinks too */
	return rc;
}

static int
pg_dead_delete(struct store_conn *c, const char *sink, int64_t seq)
{
	return dead_mark(c, ST_DEAD_DELETE, sink, seq);
}

static int
pg_rc_set(struct store_conn *c, const char *payment_id, int attempts,
    const char *next_at, const char *state)
{
	struct params p = { 0 };
	int rc;

	p_text(&p, payment_id);
	p_int(&p, attempts);
	p_text(&p, next_at);
	p_text(&p, state);
	return (rc = run(c, ST_RC_SET, &p, NULL)) < 0 ? rc : 0;
}

static int
pg_pay_begin(struct store_conn *c, const struct pay_request *in,
    struct pay_request *out, const char *now)
{
	struct params p = { 0 }, q = { 0 };
	PGresult *res;
	int rc;

	payreq_release(out);
	p_text(&p, in->key);
	if ((rc = run(c, ST_PR_GET, &p, &res)) < 0)
		return rc;
	if (rc > 0 && store_pg_payreq(res, 0, 0, out) == -1) {
		PQclear(res);
		return nomem(c);
	}
	PQclear(res);
	if (rc > 0 && !payreq_may_create(out->state))
		return payreq_mismatch(out, in) != NULL ? STORE_PAY_MISMATCH :
		    STORE_PAY_EXISTS;
	payreq_release(out);
	p_text(&q, in->key);
	p_text(&q, in->terminal_id);
	p_int(&q, in->amount);
	p_text(&q, in->currency);
	p_text(&q, in->reference);
	p_text(&q, in->capture_method);
	p_text(&q, now);
	p_text(&q, c->instance);
	if ((rc = run(c, ST_PR_PUT, &q, NULL)) < 0)
		return rc;
	if (payreq_copy(out, in) == -1)
		return nomem(c);
	out->state = PR_SENDING;
	snprintf(out->created_at, sizeof(out->created_at), "%s", now);
	return STORE_PAY_NEW;
}

static int
pg_pay_set(struct store_conn *c, const char *key, enum payreq_state state,
    const char *now)
{
	struct params p = { 0 };
	int rc;

	p_text(&p, key);
	p_text(&p, payreq_state_name(state));
	p_text(&p, now);
	return (rc = run(c, ST_PR_SET, &p, NULL)) < 0 ? rc : 0;
}

/* From "sending" only this instance's requests move: another instance's
 * are still being sent (or are its own to recover when it starts). */
static int
pg_pay_move(struct store_conn *c, enum payreq_state from, enum payreq_state to,
    const char *before, const char *now)
{
	struct params p = { 0 };

	p_text(&p, payreq_state_name(from));
	p_text(&p, payreq_state_name(to));
	p_text(&p, before);
	p_text(&p, now);
	p_text(&p, c->instance);
	return run(c, ST_PR_MOVE, &p, NULL);
}

static int
pg_prune(struct store_conn *c, const char *cutoff, int64_t delivered, int chunk)
{
	struct params p = { 0 };
	int rc, changed = 0;

	p_text(&p, cutoff);
	p_int(&p, chunk);
	p_int(&p, delivered);
	for (enum stmt_id id = ST_PRUNE_EVENTS; id <= ST_PRUNE_OUTCOMES; id++) {
		p.n = id == ST_PRUNE_EVENTS ? 2 : 3;
		if ((rc = run(c, id, &p, NULL)) < 0)
			return rc;
		changed += rc;
	}
	return changed;
}

/* ------------------------------------------------------------------ */
/* Transactions */

static void
pg_set_lock_wait(struct store_conn *c, int ms)
{
	c->lock_wait_ms = ms < 1 ? 1 : ms > LOCK_WAIT_MS ? LOCK_WAIT_MS : ms;
}

/* Ends whatever transaction the connection has, keeping nothing. */
static void
abandon(struct store_conn *c)
{
	if (connected(c) && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(PQexec(c->pg, "ROLLBACK"));
}

/*
 * BEGIN and the counter's row lock, waiting at most ms for it: the write
 * lock of every instance.  Reads the counter.  READ COMMITTED whatever the
 * database's default: under REPEATABLE READ the row lock taken after
 * another instance's commit would fail with a serialization error.
 */
static int
lock_counter(struct store_conn *c, int ms)
{
	char sql[192];
	PGresult *res;
	int rc;

	snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL READ COMMITTED; "
	    "SET LOCAL lock_timeout = %d; SELECT "
	    "last_seq FROM seq_counter WHERE id = 1 FOR UPDATE", ms);
	if ((rc = command(c, sql, NULL, &res)) != 0) {
		abandon(c);
		return rc;
	}
	if (PQntuples(res) != 1) {
		snprintf(c->err, sizeof(c->err), "the seq_counter row is missing");
		PQclear(res);
		abandon(c);
		return STORE_E_TXN;
	}
	c->txn = (struct txn_mark){ .counter = store_pg_int(res, 0, 0) };
	PQclear(res);
	return 0;
}

/*
 * Takes the write lock.  A connection known lost is replaced (at most
 * once a second); one found lost by BEGIN itself once more at once, since
 * nothing of the batch has run: a restarted server costs no batch.
 */
static int
pg_begin(struct store_conn *c)
{
	int rc;

	c->txn = (struct txn_mark){ 0 };
	/* Within the second: error() still says why the last attempt failed. */
	if (!connected(c) && (util_mono_ms() < c->retry_ms || reconnect(c) != 0))
		return STORE_E_TXN;
	abandon(c);	/* never carry on a transaction left open */
	if ((rc = lock_counter(c, c->lock_wait_ms)) == 0 || connected(c))
		return rc;
	if (reconnect(c) != 0)
		return STORE_E_TXN;
	return lock_counter(c, c->lock_wait_ms);
}

/* COMMIT, after the NOTIFY that wakes every instance's readers when it
 * is visible. */
static int
pg_commit(struct store_conn *c)
{
	char sql[128];

	if (c->txn.top > 0 || c->txn.replayed) {
		snprintf(sql, sizeof(sql), "SELECT pg_notify('" STORE_PG_CHANNEL "', "
		    "'%lld'); COMMIT", (long long)c->txn.top);
		return command(c, sql, "COMMIT", NULL);
	}
	return command(c, "COMMIT", "COMMIT", NULL);
}

static int
pg_rollback(struct store_conn *c)
{
	/* A lost connection lost its transaction with it. */
	if (!connected(c) || PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return 0;
	return command(c, "ROLLBACK", NULL, NULL);
}

static int
pg_savepoint(struct store_conn *c)
{
	c->sp = c->txn;
	return command(c, "SAVEPOINT job", NULL, NULL);
}

static int
pg_release(struct store_conn *c)
{
	return command(c, "RELEASE SAVEPOINT job", NULL, NULL);
}

static int
pg_savepoint_undo(struct store_conn *c)
{
	c->txn = c->sp;
	return command(c, "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job", NULL, NULL);
}

/*
 * Whether the database takes a write again: a connection (a new one when
 * the old is lost) on which the counter's row lock can be taken, which a
 * standby or a read-only database refuses.  Leaves no transaction open.
 */
static int
pg_probe(struct store_conn *c)
{
	int rc;

	if (!connected(c) && reconnect(c) != 0)
		return STORE_E_TXN;
	abandon(c);
	/*
	 * Refused on a live connection too: a new one, since a multi-host DSN
	 * may find the new primary after a failover (the old one is now a
	 * standby: read-only, 25006).
	 */
	if ((rc = lock_counter(c, PROBE_WAIT_MS)) != 0 && reconnect(c) == 0)
		rc = lock_counter(c, PROBE_WAIT_MS);
	abandon(c);
	return rc;
}

static const char *
pg_error(struct store_conn *c)
{
	return c->err;
}

/* ------------------------------------------------------------------ */
/* Opening */

static void
pg_close(struct store_conn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c->where);
	free(c->instance);
	free(c);
}

static struct store_conn *
pg_open(const char *where, const struct store_params *params, char *err,
    size_t errlen)
{
	struct store_conn *c;

	if (stmt_sql[ST_PAY_UPSERT] == NULL && pay_sql() == -1) {
		snprintf(err, errlen, "the payment statements do not fit their buffers");
		return NULL;
	}
	for (int i = 0; i < ST_COUNT; i++)
		snprintf(stmt_names[i], sizeof(stmt_names[i]), "vinr_w%d", i);
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->where = strdup(where)) == NULL ||
	    (c->instance = strdup(params->instance != NULL ? params->instance :
	    "default")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->params = *params;
	c->params.instance = c->instance;
	c->lock_wait_ms = LOCK_WAIT_MS;
	if ((c->pg = store_pg_connect(where, &c->params, NULL, err, errlen)) == NULL ||
	    store_pg_migrate(c->pg, err, errlen) == -1 ||
	    prepare_all(c, err, errlen) == -1)
		goto fail;
	return c;
fail:
	pg_close(c);
	return NULL;
}

/* The counter survives pruning: it is its own row. */
static int64_t
pg_last_seq(struct store_conn *c)
{
	PGresult *res;
	int64_t seq = -1;

	if (command(c, "SELECT last_seq FROM seq_counter WHERE id = 1", NULL, &res) != 0)
		return -1;
	if (PQntuples(res) == 1)
		seq = store_pg_int(res, 0, 0);
	PQclear(res);
	return seq;
}

const struct store_engine store_pg_engine = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.last_seq = pg_last_seq,
	.error = pg_error,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.savepoint = pg_savepoint,
	.release = pg_release,
	.savepoint_undo = pg_savepoint_undo,
	.ingest = pg_ingest,
	.track = pg_track,
	.cursor_set = pg_cursor_set,
	.dead_letter = pg_dead_letter,
	.replay_mark = pg_replay_mark,
	.dead_delete = pg_dead_delete,
	.rc_set = pg_rc_set,
	.pay_begin = pg_pay_begin,
	.pay_set = pg_pay_set,
	.pay_move = pg_pay_move,
	.prune = pg_prune,
	.probe = pg_probe,
	.set_lock_wait = pg_set_lock_wait,
};
