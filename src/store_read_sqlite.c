/*
 * store_read_sqlite.c - read connections to the SQLite database (see
 * store_read.h and store_read_int.h).  Each call is one statement: WAL gives
 * it a snapshot in which a batch the writer commits is whole or absent.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "jsonnum.h"
#include "log.h"
#include "store_int.h"
#include "store_read_int.h"
#include "util.h"

#define PAYMENT_SELECT "SELECT " PAYMENT_COLS ", " META_COLS " FROM payments "

enum rstmt {
	RS_OUTCOMES, RS_CURSOR, RS_TRANSITIONS, RS_PAYMENT, RS_FIND, RS_PENDING,
	RS_DEAD, RS_DEAD_COUNT, RS_REPLAYS, RS_RC_DUE, RS_PAY_REQUEST,
	RS_PAY_OLDEST,
	RS_COUNT
};

static const char *const rstmt_sql[RS_COUNT] = {
	[RS_OUTCOMES] = "SELECT seq, status, json FROM outcomes WHERE seq > ?1 "
	    "ORDER BY seq LIMIT ?2",
	[RS_CURSOR] = "SELECT seq FROM cursors WHERE sink = ?1",
	[RS_TRANSITIONS] = "SELECT seq, payment_id, status FROM outcomes "
	    "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	[RS_PAYMENT] = PAYMENT_SELECT "WHERE id = ?1",
	/* A tracked payment may have no createdAt yet: it counts by when we
	 * stored it.  Both are RFC 3339 UTC text. */
	[RS_FIND] = PAYMENT_SELECT "WHERE reference = ?1 "
	    "ORDER BY coalesce(created_at, updated_at) DESC, id LIMIT ?2",
	/* updated_at is our own RFC 3339 text with milliseconds: it compares
	 * as text, and the index payments_status (status, updated_at) serves. */
	[RS_PENDING] = PAYMENT_SELECT "WHERE status IN ('pending', 'processing') "
	    "AND updated_at <= ?1 ORDER BY updated_at, id LIMIT ?2",
	[RS_DEAD] = "SELECT sink, seq, attempts, last_error, at FROM dead_letters "
	    "ORDER BY sink, seq LIMIT ?1",
	[RS_DEAD_COUNT] = "SELECT count(*) FROM dead_letters WHERE sink = ?1",
	/* SPEC §5 candidates: stale, not given up, past their backoff. */
	[RS_RC_DUE] = "SELECT id, rc_attempts, updated_at FROM payments "
	    "WHERE status IN ('pending', 'processing') "
	    "AND rc_state IN ('idle', 'scheduled', 'paused') AND updated_at <= ?2 "
	    "AND (rc_next_at IS NULL OR rc_next_at <= ?1) "
	    "ORDER BY coalesce(rc_next_at, updated_at) LIMIT ?3",
	[RS_REPLAYS] = "SELECT d.seq, o.json FROM dead_letters d "
	    "LEFT JOIN outcomes o ON o.seq = d.seq "
	    "WHERE d.sink = ?1 AND d.replay = 1 ORDER BY d.seq",
	[RS_PAY_REQUEST] = "SELECT " PAYREQ_COLS " FROM pay_requests WHERE key = ?1",
	/* The index pay_requests_state (state, created_at) serves. */
	[RS_PAY_OLDEST] = "SELECT min(created_at) FROM pay_requests WHERE state = ?1",
};

struct store_rconn {
	sqlite3		*db;
	sqlite3_stmt	*st[RS_COUNT];
};

static void	sqlite_reader_free(struct store_rconn *);

static struct store_rconn *
sqlite_reader_open(const char *path, const char *password, char *err, size_t errlen)
{
	struct store_rconn *r;

	(void)password;		/* a file has none */
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((r->db = store_connect(path, SQLITE_OPEN_READONLY, err, errlen)) == NULL)
		goto fail;
	for (int i = 0; i < RS_COUNT; i++)
		if (sqlite3_prepare_v3(r->db, rstmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &r->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
			goto fail;
		}
	return r;
fail:
	sqlite_reader_free(r);
	return NULL;
}

static void
sqlite_reader_free(struct store_rconn *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < RS_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
	free(r);
}

static int
sqlite_reader_outcomes(struct store_rconn *r, int64_t after, int limit,
    outcome_fn fn, void *arg)
{
	sqlite3_stmt *st = r->st[RS_OUTCOMES];
	int rc, n = 0;

	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(arg, sqlite3_column_int64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    sqlite3_column_bytes(st, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading outcomes: %s", sqlite3_errmsg(r->db));
		return -1;
	}
	return n;
}

static int64_t
sqlite_reader_cursor(struct store_rconn *r, const char *sink)
{
	sqlite3_stmt *st = r->st[RS_CURSOR];
	int64_t v = -1;
	int rc;

	sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		v = 0;
	else
		log_warnx("database: reading cursor %s: %s", sink, sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	return v;
}

static int
sqlite_reader_transitions(struct store_rconn *r, int64_t after, int limit,
    transition_fn fn, void *arg)
{
	sqlite3_stmt *st = r->st[RS_TRANSITIONS];
	int rc, n = 0;

	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(arg, sqlite3_column_int64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading outcomes: %s", sqlite3_errmsg(r->db));
		return -1;
	}
	return n;
}

static bool
add_text(cJSON *o, const char *k, sqlite3_stmt *st, int col)
{
	const char *v = (const char *)sqlite3_column_text(st, col);

	return (v != NULL ? cJSON_AddStringToObject(o, k, v) :
	    cJSON_AddNullToObject(o, k)) != NULL;
}

/* An integer column, exact (jsonnum_add: never through a double). */
static bool
add_int(cJSON *o, const char *k, sqlite3_stmt *st, int col)
{
	return jsonnum_add_opt(o, k, sqlite3_column_type(st, col) != SQLITE_NULL,
	    sqlite3_column_int64(st, col)) != NULL;
}

/*
 * The PAYMENT object of the current row of a PAYMENT_SELECT statement: the
 * payment's fields as the field table renders them (payment_add_json), then
 * META_COLS.  Keys in the order SPEC §4 lists them.  NULL on allocation
 * failure.
 */
static cJSON *
payment_json(sqlite3_stmt *st)
{
	const int m = PAYMENT_NCOLS;	/* the first of META_COLS */
	struct payment p;
	cJSON *o, *rc;
	bool ok;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (payment_from_row(st, 0, &p) == -1) {
		cJSON_Delete(o);
		return NULL;
	}
	ok = payment_add_json(o, &p, 0, PAY_NFIELDS) == 0 &&
	    add_text(o, "updatedAt", st, m) &&
	    add_text(o, "lastEventId", st, m + 1) &&
	    cJSON_AddBoolToObject(o, "tracked", sqlite3_column_int(st, m + 2) != 0) != NULL &&
	    (rc = cJSON_AddObjectToObject(o, "reconcile")) != NULL &&
	    add_int(rc, "attempts", st, m + 3) &&
	    add_text(rc, "nextAt", st, m + 4) &&
	    add_text(rc, "state", st, m + 5);
	payment_release(&p);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int
sqlite_reader_payment(struct store_rconn *r, const char *id, cJSON **out)
{
	sqlite3_stmt *st = r->st[RS_PAYMENT];
	int rc, found = -1;

	*out = NULL;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		found = (*out = payment_json(st)) != NULL ? 1 : -1;
	else if (rc == SQLITE_DONE)
		found = 0;
	else
		log_warnx("database: reading payment: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

/* Steps a bound PAYMENT_SELECT statement into a new array; resets it. */
static cJSON *
payment_list(struct store_rconn *r, sqlite3_stmt *st)
{
	cJSON *arr, *p;
	int rc;

	if ((arr = cJSON_CreateArray()) == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((p = payment_json(st)) == NULL)
			goto fail;
		cJSON_AddItemToArray(arr, p);
	}
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading payments: %s", sqlite3_errmsg(r->db));
		goto fail;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return arr;
fail:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	cJSON_Delete(arr);
	return NULL;
}

static cJSON *
sqlite_reader_find(struct store_rconn *r, const char *reference)
{
	sqlite3_stmt *st = r->st[RS_FIND];

	sqlite3_bind_text(st, 1, reference, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, STORE_READ_MAX);
	return payment_list(r, st);
}

static cJSON *
sqlite_reader_pending(struct store_rconn *r, const char *before)
{
	sqlite3_stmt *st = r->st[RS_PENDING];

	sqlite3_bind_text(st, 1, before, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 2, STORE_READ_MAX);
	return payment_list(r, st);
}

static cJSON *
sqlite_reader_dead(struct store_rconn *r)
{
	sqlite3_stmt *st = r->st[RS_DEAD];
	cJSON *arr, *o;
	int rc;

	if ((arr = cJSON_CreateArray()) == NULL)
		return NULL;
	sqlite3_bind_int(st, 1, STORE_READ_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((o = cJSON_CreateObject()) == NULL)
			goto fail;
		cJSON_AddItemToArray(arr, o);
		if (!add_text(o, "sink", st, 0) || !add_int(o, "seq", st, 1) ||
		    !add_int(o, "attempts", st, 2) || !add_text(o, "lastError", st, 3) ||
		    !add_text(o, "at", st, 4))
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading dead letters: %s", sqlite3_errmsg(r->db));
		goto fail;
	}
	sqlite3_reset(st);
	return arr;
fail:
	sqlite3_reset(st);
	cJSON_Delete(arr);
	return NULL;
}

static int64_t
sqlite_reader_dead_count(struct store_rconn *r, const char *sink)
{
	sqlite3_stmt *st = r->st[RS_DEAD_COUNT];
	int64_t v = -1;

	sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		log_warnx("database: counting dead letters: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return v;
}

static int
sqlite_reader_replays(struct store_rconn *r, const char *sink, replay_fn fn, void *arg)
{
	sqlite3_stmt *st = r->st[RS_REPLAYS];
	int rc, n = 0;

	sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(arg, sqlite3_column_int64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    sqlite3_column_bytes(st, 1)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading replays of %s: %s", sink, sqlite3_errmsg(r->db));
		return -1;
	}
	return n;
}

static int
sqlite_reader_rc_due(struct store_rconn *r, const char *now, const char *stale_before,
    int limit, rc_due_fn fn, void *arg)
{
	sqlite3_stmt *st = r->st[RS_RC_DUE];
	int rc, n = 0;

	sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, stale_before, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (fn(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
		    (const char *)sqlite3_column_text(st, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
		n++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading due payments: %s", sqlite3_errmsg(r->db));
		return -1;
	}
	return n;
}

static int
sqlite_reader_pay_request(struct store_rconn *r, const char *key, struct pay_request *out)
{
	sqlite3_stmt *st = r->st[RS_PAY_REQUEST];
	int rc, found = -1;

	payreq_init(out);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		found = payreq_from_row(st, 0, out) == 0 ? 1 : -1;
	else if (rc == SQLITE_DONE)
		found = 0;
	else
		log_warnx("database: reading pay request: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

static int
sqlite_reader_pay_oldest(struct store_rconn *r, enum payreq_state state, char at[TS_LEN])
{
	sqlite3_stmt *st = r->st[RS_PAY_OLDEST];
	const char *v;
	int rc, found = -1;

	at[0] = '\0';
	sqlite3_bind_text(st, 1, payreq_state_name(state), -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((v = (const char *)sqlite3_column_text(st, 0)) != NULL)
			snprintf(at, TS_LEN, "%s", v);
		found = v != NULL;
	} else
		log_warnx("database: reading pay requests: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

const struct store_reader_ops store_read_sqlite_ops = {
	.open = sqlite_reader_open,
	.free = sqlite_reader_free,
	.outcomes = sqlite_reader_outcomes,
	.cursor = sqlite_reader_cursor,
	.transitions = sqlite_reader_transitions,
	.payment = sqlite_reader_payment,
	.find = sqlite_reader_find,
	.pending = sqlite_reader_pending,
	.dead = sqlite_reader_dead,
	.dead_count = sqlite_reader_dead_count,
	.replays = sqlite_reader_replays,
	.rc_due = sqlite_reader_rc_due,
	.pay_request = sqlite_reader_pay_request,
	.pay_oldest = sqlite_reader_pay_oldest,
};
