/*
 * store_read_pg.c - read connections to PostgreSQL (see store_read.h,
 * store_read_int.h and SPEC §8), the twin of store_read_sqlite.c: the same
 * queries, rows and JSON.
 *
 * Every call is one statement, which PostgreSQL runs on one snapshot: a
 * batch that any instance is committing is seen whole or not at all, and as
 * each batch holds the seq counter's row lock until its COMMIT, the
 * outcomes seen are always a gap-free prefix.  A result comes in whole
 * (PQexecParams), so a callback may take its time without holding a
 * snapshot open.  A connection found broken is reset (PQreset: the same
 * parameters, password included) and the statement tried once more; if the
 * database is still away the call fails, and the next call tries again.
 *
 * The DSN and the password never reach err or the log: only libpq's
 * messages about a connection attempt do, and one that would hold the
 * password is withheld.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "jsonnum.h"
#include "log.h"
#include "payment.h"
#include "store_int.h"
#include "store_read_int.h"
#include "util.h"

#define PAYMENT_SELECT "SELECT " PAYMENT_COLS ", " META_COLS " FROM payments "

enum pstmt {
	PS_OUTCOMES, PS_CURSOR, PS_TRANSITIONS, PS_PAYMENT, PS_FIND, PS_PENDING,
	PS_DEAD, PS_DEAD_COUNT, PS_REPLAYS, PS_RC_DUE, PS_PAY_REQUEST,
	PS_PAY_OLDEST,
	PS_COUNT
};

/*
 * store_read_sqlite.c's statements.  Ids and sink names are ordered by
 * COLLATE "C", as SQLite orders text (by bytes), whatever the database's
 * locale; the timestamp columns are "C" already (sql/pg/001_init.sql).
 */
static const char *const pstmt_sql[PS_COUNT] = {
	[PS_OUTCOMES] = "SELECT seq, status, json FROM outcomes WHERE seq > $1 "
	    "ORDER BY seq LIMIT $2",
	[PS_CURSOR] = "SELECT seq FROM cursors WHERE sink = $1",
	[PS_TRANSITIONS] = "SELECT seq, payment_id, status FROM outcomes "
	    "WHERE seq > $1 ORDER BY seq LIMIT $2",
	[PS_PAYMENT] = PAYMENT_SELECT "WHERE id = $1",
	[PS_FIND] = PAYMENT_SELECT "WHERE reference = $1 "
	    "ORDER BY coalesce(created_at, updated_at) DESC, id COLLATE \"C\" LIMIT $2",
	[PS_PENDING] = PAYMENT_SELECT "WHERE status IN ('pending', 'processing') "
	    "AND updated_at <= $1 ORDER BY updated_at, id COLLATE \"C\" LIMIT $2",
	[PS_DEAD] = "SELECT sink, seq, attempts, last_error, at FROM dead_letters "
	    "ORDER BY sink COLLATE \"C\", seq LIMIT $1",
	[PS_DEAD_COUNT] = "SELECT count(*) FROM dead_letters WHERE sink = $1",
	[PS_RC_DUE] = "SELECT id, rc_attempts, updated_at FROM payments "
	    "WHERE status IN ('pending', 'processing') "
	    "AND rc_state IN ('idle', 'scheduled', 'paused') AND updated_at <= $2 "
	    "AND (rc_next_at IS NULL OR rc_next_at <= $1) "
	    "ORDER BY coalesce(rc_next_at, updated_at) LIMIT $3",
	[PS_REPLAYS] = "SELECT d.seq, o.json FROM dead_letters d "
	    "LEFT JOIN outcomes o ON o.seq = d.seq "
	    "WHERE d.sink = $1 AND d.replay = 1 ORDER BY d.seq",
	[PS_PAY_REQUEST] = "SELECT " PAYREQ_COLS " FROM pay_requests WHERE key = $1",
	[PS_PAY_OLDEST] = "SELECT min(created_at) FROM pay_requests WHERE state = $1",
};

struct store_rconn {
	PGconn	*pg;
	bool	 down;		/* the last reconnect failed (and was logged) */
};

/*
 * libpq's message about the connection, on one line, into buf; withheld if
 * it would show the password.
 */
static void
conn_error(PGconn *pg, char *buf, size_t len)
{
	const char *pw = PQpass(pg);
	char *p;

	snprintf(buf, len, "%s", PQerrorMessage(pg));
	if (pw != NULL && *pw != '\0' && strstr(buf, pw) != NULL)
		snprintf(buf, len, "cannot connect (libpq's message withheld)");
	while ((p = strchr(buf, '\n')) != NULL)
		*p = p[1] != '\0' ? ' ' : '\0';
	if (buf[0] == '\0')
		snprintf(buf, len, "cannot connect");
}

/* Whether libpq reads dsn as a connection string (else a database name). */
static bool
is_conninfo(const char *dsn)
{
	return strchr(dsn, '=') != NULL || strncmp(dsn, "postgresql://", 13) == 0 ||
	    strncmp(dsn, "postgres://", 11) == 0;
}

static void
pg_reader_free(struct store_rconn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c);
}

static struct store_rconn *
pg_reader_open(const char *dsn, const char *password, char *err, size_t errlen)
{
	/*
	 * dsn first: the keywords after it take precedence over its own.  A
	 * NULL password is skipped by libpq: its own (PGPASSFILE, ...) applies.
	 * Keepalives and the TCP user timeout (ms) notice a peer that vanished
	 * (a failover, a cable) instead of waiting on it for many minutes.
	 */
	const char *keys[] = { "dbname", "application_name", "connect_timeout",
	    "keepalives", "keepalives_idle", "keepalives_interval",
	    "keepalives_count", "tcp_user_timeout", "password", NULL };
	const char *vals[] = { dsn, "vinr-webhookd-reader", "5", "1", "30", "10",
	    "3", "15000", password, NULL };
	PQconninfoOption *opts;
	struct store_rconn *c;
	char *perr = NULL;

	/* libpq's parse errors quote the string, which may hold a secret. */
	if (is_conninfo(dsn)) {
		if ((opts = PQconninfoParse(dsn, &perr)) == NULL) {
			PQfreemem(perr);
			snprintf(err, errlen, "the dsn is not a valid connection string");
			return NULL;
		}
		PQconninfoFree(opts);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((c->pg = PQconnectdbParams(keys, vals, 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		conn_error(c->pg, err, errlen);
		goto fail;
	}
	return c;
fail:
	pg_reader_free(c);
	return NULL;
}

/* PQreset; true when connected again.  A failure is logged once per outage. */
static bool
reconnect(struct store_rconn *c)
{
	char msg[256];

	PQreset(c->pg);
	if (PQstatus(c->pg) == CONNECTION_OK) {
		if (c->down)
			log_info("database: reader connected again");
		c->down = false;
		return true;
	}
	if (!c->down) {
		conn_error(c->pg, msg, sizeof(msg));
		log_warnx("database: reader cannot reconnect: %s", msg);
	}
	c->down = true;
	return false;
}

/*
 * Runs statement i with n text parameters (NULL: SQL null).  Returns its
 * rows (PQclear them), or NULL after logging what failed (what: "reading
 * outcomes", ...).  A broken connection is reset and the statement tried
 * once more.
 */
static PGresult *
query(struct store_rconn *c, enum pstmt i, int n, const char *const *v, const char *what)
{
	PGresult *res;
	char msg[256];

	for (int tries = 0; tries < 2; tries++) {
		if (PQstatus(c->pg) != CONNECTION_OK && !reconnect(c))
			return NULL;
		res = PQexecParams(c->pg, pstmt_sql[i], n, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			return res;
		snprintf(msg, sizeof(msg), "%s", res != NULL ?
		    PQresultErrorMessage(res) : PQerrorMessage(c->pg));
		msg[strcspn(msg, "\n")] = '\0';
		PQclear(res);
		if (PQstatus(c->pg) == CONNECTION_OK || tries == 1) {
			log_warnx("database: %s: %s", what, msg);
			return NULL;
		}
	}
	return NULL;
}

/* A column's text, NULL for SQL null. */
static const char *
col_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A bigint column: true and *v, or false (*v = 0) for SQL null. */
static bool
col_int(const PGresult *res, int row, int col, int64_t *v)
{
	*v = 0;
	if (PQgetisnull(res, row, col))
		return false;
	*v = strtoll(PQgetvalue(res, row, col), NULL, 10);
	return true;
}

static int64_t
col_i64(const PGresult *res, int row, int col)
{
	int64_t v;

	col_int(res, row, col, &v);
	return v;
}

static bool
add_text(cJSON *o, const char *k, const PGresult *res, int row, int col)
{
	const char *v = col_text(res, row, col);

	return (v != NULL ? cJSON_AddStringToObject(o, k, v) :
	    cJSON_AddNullToObject(o, k)) != NULL;
}

/* An integer column, exact (jsonnum_add: never through a double). */
static bool
add_int(cJSON *o, const char *k, const PGresult *res, int row, int col)
{
	int64_t v;
	bool has = col_int(res, row, col, &v);

	return jsonnum_add_opt(o, k, has, v) != NULL;
}

/* payment_from_row() of a PostgreSQL row: columns col0 .. col0+14 of
 * PAYMENT_COLS, through the field table.  0 or -1. */
static int
payment_from_pg(const PGresult *res, int row, int col0, struct payment *p)
{
	int64_t v;

	payment_init(p);
	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (PQgetisnull(res, row, col0 + i))
			continue;
		if (!pay_field_is_text(i)) {
			col_int(res, row, col0 + i, &v);
			pay_field_set_int(p, i, true, v);
		} else if (pay_field_set_text(p, i, PQgetvalue(res, row, col0 + i)) == -1) {
			payment_release(p);
			return -1;
		}
	}
	return 0;
}

/* The PAYMENT object of row of a PAYMENT_SELECT result, as
 * store_read_sqlite.c's payment_json() makes it.  NULL on allocation failure. */
static cJSON *
payment_json(const PGresult *res, int row)
{
	const int m = PAYMENT_NCOLS;	/* the first of META_COLS */
	struct payment p;
	cJSON *o, *rc;
	bool ok;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (payment_from_pg(res, row, 0, &p) == -1) {
		cJSON_Delete(o);
		return NULL;
	}
	ok = payment_add_json(o, &p, 0, PAY_NFIELDS) == 0 &&
	    add_text(o, "updatedAt", res, row, m) &&
	    add_text(o, "lastEventId", res, row, m + 1) &&
	    cJSON_AddBoolToObject(o, "tracked", col_i64(res, row, m + 2) != 0) != NULL &&
	    (rc = cJSON_AddObjectToObject(o, "reconcile")) != NULL &&
	    add_int(rc, "attempts", res, row, m + 3) &&
	    add_text(rc, "nextAt", res, row, m + 4) &&
	    add_text(rc, "state", res, row, m + 5);
	payment_release(&p);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int
pg_reader_outcomes(struct store_rconn *c, int64_t after, int limit, outcome_fn fn,
    void *arg)
{
	char a[24], l[24];
	const char *v[] = { a, l };
	PGresult *res;
	int i, n;

	snprintf(a, sizeof(a), "%lld", (long long)after);
	snprintf(l, sizeof(l), "%d", limit);
	if ((res = query(c, PS_OUTCOMES, 2, v, "reading outcomes")) == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		if (fn(arg, col_i64(res, i, 0), col_text(res, i, 1), PQgetvalue(res, i, 2),
		    PQgetlength(res, i, 2)) != 0) {
			i++;
			break;
		}
	PQclear(res);
	return i;
}

static int64_t
pg_reader_cursor(struct store_rconn *c, const char *sink)
{
	const char *v[] = { sink };
	PGresult *res;
	int64_t seq;

	if ((res = query(c, PS_CURSOR, 1, v, "reading a cursor")) == NULL)
		return -1;
	seq = PQntuples(res) > 0 ? col_i64(res, 0, 0) : 0;
	PQclear(res);
	return seq;
}

static int
pg_reader_transitions(struct store_rconn *c, int64_t after, int limit,
    transition_fn fn, void *arg)
{
	char a[24], l[24];
	const char *v[] = { a, l };
	PGresult *res;
	int i, n;

	snprintf(a, sizeof(a), "%lld", (long long)after);
	snprintf(l, sizeof(l), "%d", limit);
	if ((res = query(c, PS_TRANSITIONS, 2, v, "reading outcomes")) == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		if (fn(arg, col_i64(res, i, 0), col_text(res, i, 1),
		    col_text(res, i, 2)) != 0) {
			i++;
			break;
		}
	PQclear(res);
	return i;
}

static int
pg_reader_payment(struct store_rconn *c, const char *id, cJSON **out)
{
	const char *v[] = { id };
	PGresult *res;
	int found;

	*out = NULL;
	if ((res = query(c, PS_PAYMENT, 1, v, "reading payment")) == NULL)
		return -1;
	found = 0;
	if (PQntuples(res) > 0)
		found = (*out = payment_json(res, 0)) != NULL ? 1 : -1;
	PQclear(res);
	return found;
}

/* Runs a PAYMENT_SELECT statement into a new array.  NULL on error. */
static cJSON *
payment_list(struct store_rconn *c, enum pstmt i, int n, const char *const *v)
{
	PGresult *res;
	cJSON *arr, *p;

	if ((res = query(c, i, n, v, "reading payments")) == NULL)
		return NULL;
	if ((arr = cJSON_CreateArray()) == NULL)
		goto fail;
	for (int row = 0; row < PQntuples(res); row++) {
		if ((p = payment_json(res, row)) == NULL)
			goto fail;
		cJSON_AddItemToArray(arr, p);
	}
	PQclear(res);
	return arr;
fail:
	PQclear(res);
	cJSON_Delete(arr);
	return NULL;
}

static cJSON *
pg_reader_find(struct store_rconn *c, const char *reference)
{
	char l[24];
	const char *v[] = { reference, l };

	snprintf(l, sizeof(l), "%d", STORE_READ_MAX);
	return payment_list(c, PS_FIND, 2, v);
}

static cJSON *
pg_reader_pending(struct store_rconn *c, const char *before)
{
	char l[24];
	const char *v[] = { before, l };

	snprintf(l, sizeof(l), "%d", STORE_READ_MAX);
	return payment_list(c, PS_PENDING, 2, v);
}

static cJSON *
pg_reader_dead(struct store_rconn *c)
{
	char l[24];
	const char *v[] = { l };
	PGresult *res;
	cJSON *arr, *o;

	snprintf(l, sizeof(l), "%d", STORE_READ_MAX);
	if ((res = query(c, PS_DEAD, 1, v, "reading dead letters")) == NULL)
		return NULL;
	if ((arr = cJSON_CreateArray()) == NULL)
		goto fail;
	for (int i = 0; i < PQntuples(res); i++) {
		if ((o = cJSON_CreateObject()) == NULL)
			goto fail;
		cJSON_AddItemToArray(arr, o);
		if (!add_text(o, "sink", res, i, 0) || !add_int(o, "seq", res, i, 1) ||
		    !add_int(o, "attempts", res, i, 2) ||
		    !add_text(o, "lastError", res, i, 3) || !add_text(o, "at", res, i, 4))
			goto fail;
	}
	PQclear(res);
	return arr;
fail:
	PQclear(res);
	cJSON_Delete(arr);
	return NULL;
}

static int64_t
pg_reader_dead_count(struct store_rconn *c, const char *sink)
{
	const char *v[] = { sink };
	PGresult *res;
	int64_t n = -1;

	if ((res = query(c, PS_DEAD_COUNT, 1, v, "counting dead letters")) == NULL)
		return -1;
	if (PQntuples(res) > 0)
		n = col_i64(res, 0, 0);
	PQclear(res);
	return n;
}

static int
pg_reader_replays(struct store_rconn *c, const char *sink, replay_fn fn, void *arg)
{
	const char *v[] = { sink };
	PGresult *res;
	int i, n;

	if ((res = query(c, PS_REPLAYS, 1, v, "reading replays")) == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		if (fn(arg, col_i64(res, i, 0), col_text(res, i, 1),
		    PQgetisnull(res, i, 1) ? 0 : PQgetlength(res, i, 1)) != 0) {
			i++;
			break;
		}
	PQclear(res);
	return i;
}

static int
pg_reader_rc_due(struct store_rconn *c, const char *now, const char *stale_before,
    int limit, rc_due_fn fn, void *arg)
{
	char l[24];
	const char *v[] = { now, stale_before, l };
	PGresult *res;
	int i, n;

	snprintf(l, sizeof(l), "%d", limit);
	if ((res = query(c, PS_RC_DUE, 3, v, "reading due payments")) == NULL)
		return -1;
	n = PQntuples(res);
	/* As store_read_sqlite.c: the payment fn stops at is not counted. */
	for (i = 0; i < n; i++)
		if (fn(arg, col_text(res, i, 0), (int)col_i64(res, i, 1),
		    col_text(res, i, 2)) != 0)
			break;
	PQclear(res);
	return i;
}


static int
pg_reader_pay_request(struct store_rconn *c, const char *key, struct pay_request *out)
{
	const char *v[] = { key }, *col[PAYREQ_NCOLS];
	PGresult *res;
	int found = 0;

	payreq_init(out);
	if ((res = query(c, PS_PAY_REQUEST, 1, v, "reading pay request")) == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		for (int i = 0; i < PAYREQ_NCOLS; i++)
			col[i] = col_text(res, 0, i);
		found = payreq_from_columns(out, col, col_i64(res, 0, 5)) == 0 ? 1 : -1;
	}
	PQclear(res);
	return found;
}

static int
pg_reader_pay_oldest(struct store_rconn *c, enum payreq_state state, char at[TS_LEN])
{
	const char *v[] = { payreq_state_name(state) };
	const char *t;
	PGresult *res;
	int found = 0;

	at[0] = '\0';
	if ((res = query(c, PS_PAY_OLDEST, 1, v, "reading pay requests")) == NULL)
		return -1;
	if (PQntuples(res) > 0 && (t = col_text(res, 0, 0)) != NULL) {
		snprintf(at, TS_LEN, "%s", t);
		found = 1;
	}
	PQclear(res);
	return found;
}

const struct store_reader_ops store_read_pg_ops = {
	.open = pg_reader_open,
	.free = pg_reader_free,
	.outcomes = pg_reader_outcomes,
	.cursor = pg_reader_cursor,
	.transitions = pg_reader_transitions,
	.payment = pg_reader_payment,
	.find = pg_reader_find,
	.pending = pg_reader_pending,
	.dead = pg_reader_dead,
	.dead_count = pg_reader_dead_count,
	.replays = pg_reader_replays,
	.rc_due = pg_reader_rc_due,
	.pay_request = pg_reader_pay_request,
	.pay_oldest = pg_reader_pay_oldest,
};
