/*
 * test_store_read_pg.c - the PostgreSQL reader (store_read_pg.c) answers
 * every call of store_read.h exactly as the SQLite reader does.
 *
 * Runs when VINR_TEST_PG_DSN and VINR_TEST_PG_PASSWORD name a PostgreSQL
 * database we may create a schema in (scripts/pg-scratch.sh makes one);
 * skipped otherwise.  Each test creates a fresh schema with pg_migrations[],
 * writes the same rows into it and into a fresh SQLite database (through
 * its own schema, sql/), opens a reader on each and compares their answers
 * (cJSON_Compare: same keys, same exact integers).  Then the reconnect: a
 * reader whose connection was killed reconnects on its next call, and fails
 * (-1, not a crash) while the database refuses it.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "jsonnum.h"
#include "store.h"
#include "store_engine.h"
#include "store_read.h"
#include "store_read_int.h"

extern const char *const pg_migrations[];
extern const int pg_nmigrations;

struct pgfix {
	char			 dir[64];
	char			 path[128];
	char			 schema[64];
	char			 dsn[1024];	/* the reader's: with search_path */
	const char		*password;
	PGconn			*admin;
	struct store		*store;
	sqlite3			*lite;
	struct store_reader	*sq;		/* the SQLite reader */
	struct store_reader	*pg;		/* the PostgreSQL reader */
};

#define PCOLS "id, terminal_id, reference, status, amount, amount_captured, currency, " \
	"capture_method, entry_method, brand, last4, auth_code, decline_code, livemode, " \
	"created_at, updated_at, last_event_id, tracked, rc_attempts, rc_next_at, rc_state"

/* Rows both schemas take as they are. */
static const char *const rows[] = {
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_a', 'tml_1', 'ref_x', "
	    "'completed', 9007199254740993, 9007199254740993, 'EUR', 'automatic', "
	    "'contactless', 'visa', '4242', 'A1', NULL, 1, '2026-01-01T10:00:00.000Z', "
	    "'2026-01-01T10:00:05.000Z', 'evt_1', 1, 0, NULL, 'idle')",
	/* Same createdAt as pay_a: ordered by id, bytewise ("B" < "a"). */
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_B', 'tml_1', 'ref_x', "
	    "'authorized', 1999, NULL, 'EUR', 'manual', NULL, 'mc', NULL, NULL, NULL, 0, "
	    "'2026-01-01T10:00:00.000Z', '2026-01-01T10:00:01.000Z', 'evt_2', 0, 0, NULL, "
	    "'idle')",
	/* No createdAt: find orders it by updated_at. */
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_c', NULL, 'ref_x', 'pending', "
	    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
	    "'2020-06-01T00:00:00.000Z', NULL, 1, 2, '2020-07-01T00:00:00.000Z', "
	    "'scheduled')",
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_d', 'tml_2', 'ref_y', "
	    "'processing', -42, 0, 'USD', NULL, NULL, NULL, NULL, NULL, 'do_not_honor', "
	    "0, '2020-04-30T00:00:00.000Z', '2020-05-01T00:00:00.000Z', 'evt_4', 0, 0, "
	    "NULL, 'idle')",
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_e', 'tml_2', 'ref_y', 'pending', "
	    "5, NULL, 'USD', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
	    "'2999-01-01T00:00:00.000Z', NULL, 0, 0, NULL, 'idle')",
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_f', 'tml_3', 'ref_z', "
	    "'processing', 7, NULL, 'GBP', NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL, "
	    "'2020-04-01T00:00:00.000Z', NULL, 0, 9, NULL, 'gave_up')",
	/* Same updated_at as pay_d: pending orders them by id. */
	"INSERT INTO payments (" PCOLS ") VALUES ('pay_g', 'tml_3', 'ref_z', 'pending', "
	    "8, NULL, 'GBP', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
	    "'2020-05-01T00:00:00.000Z', NULL, 0, 1, '2020-05-15T00:00:00.000Z', 'paused')",
	"INSERT INTO outcomes (seq, payment_id, status, json, recorded_at) VALUES "
	    "(1, 'pay_B', 'authorized', '{\"seq\":1,\"amount\":1999}', "
	    "'2026-01-01T10:00:01.000Z'), "
	    "(2, 'pay_a', 'authorized', '{\"seq\":2,\"note\":\"caf\xc3\xa9 \\\"q\\\"\"}', "
	    "'2026-01-01T10:00:02.000Z'), "
	    "(3, 'pay_a', 'completed', '{\"seq\":3,\"amount\":9007199254740993}', "
	    "'2026-01-01T10:00:05.000Z'), "
	    "(5, 'pay_d', 'failed', '{\"seq\":5}', '2026-01-01T10:00:06.000Z')",
	"INSERT INTO cursors (sink, seq) VALUES ('eventlog@host1', 3), ('hook', 1)",
	"INSERT INTO dead_letters (sink, seq, attempts, last_error, at, replay) VALUES "
	    "('hook', 3, 5, 'HTTP 500', '2026-01-02T00:00:00.000Z', 1), "
	    "('hook', 2, 1, NULL, '2026-01-02T00:00:01.000Z', 0), "
	    "('hook', 1, 2, 'exit 1', '2026-01-02T00:00:02.000Z', 1), "
	    "('eventlog@host1', 99, 2, 'EIO', '2026-01-02T00:00:03.000Z', 1), "
	    "('Hook', 5, 4000000000, 'x', '2026-01-02T00:00:04.000Z', 0)",
};

/* pay_requests: PostgreSQL's has the instance column too. */
static const char *const payreq_rows[][2] = {
	{ "k1", "'tml_1', 9007199254740993, 'EUR', 'ref_x', 'automatic', 'created', "
	    "'pay_a'%s, '2026-01-01T09:59:00.000Z', '2026-01-01T10:00:05.000Z'" },
	{ "k2", "'tml_2', 5, 'USD', 'ref_y', 'manual', 'unknown', NULL%s, "
	    "'2026-01-03T00:00:00.000Z', '2026-01-03T00:00:00.000Z'" },
	{ "k3", "'tml_2', 6, 'USD', 'ref_y', 'automatic', 'unknown', NULL%s, "
	    "'2026-01-02T00:00:00.000Z', '2026-01-02T00:00:00.000Z'" },
};

static void
pg_exec(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

static void
lite_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static PGconn *
admin_connect(const char *dsn, const char *password)
{
	const char *keys[] = { "dbname", "password", NULL };
	const char *vals[] = { dsn, password, NULL };
	PGconn *pg = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("cannot connect to VINR_TEST_PG_DSN: %s", PQerrorMessage(pg));
	return pg;
}

/* The PostgreSQL side: a fresh schema, the migrations, the reader's DSN. */
static void
pg_side(struct pgfix *f, const char *dsn)
{
	char sql[256];
	bool uri = strncmp(dsn, "postgresql://", 13) == 0 ||
	    strncmp(dsn, "postgres://", 11) == 0;

	snprintf(f->schema, sizeof(f->schema), "vinr_read_test_%d", (int)getpid());
	f->admin = admin_connect(dsn, f->password);
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
	pg_exec(f->admin, "SET client_min_messages = warning");
	pg_exec(f->admin, sql);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->schema);
	pg_exec(f->admin, sql);
	snprintf(sql, sizeof(sql), "SET search_path TO %s", f->schema);
	pg_exec(f->admin, sql);
	for (int i = 0; i < pg_nmigrations; i++)
		pg_exec(f->admin, pg_migrations[i]);
	if (uri)
		snprintf(f->dsn, sizeof(f->dsn), "%s%soptions=-csearch_path%%3D%s", dsn,
		    strchr(dsn, '?') != NULL ? "&" : "?", f->schema);
	else
		snprintf(f->dsn, sizeof(f->dsn), "%s options='-csearch_path=%s'", dsn,
		    f->schema);
}

static int
setup(void **state)
{
	const char *dsn = getenv("VINR_TEST_PG_DSN");
	struct pgfix *f;
	char err[256], sql[512];

	*state = NULL;
	if (dsn == NULL || getenv("VINR_TEST_PG_PASSWORD") == NULL)
		return 0;		/* each test skips */
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	*state = f;
	f->password = getenv("VINR_TEST_PG_PASSWORD");
	pg_side(f, dsn);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vinr-test-readpg-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vinr.db", f->dir);
	if ((f->store = store_open(f->path, 1, err, sizeof(err))) == NULL ||
	    sqlite3_open(f->path, &f->lite) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		pg_exec(f->admin, rows[i]);
		lite_exec(f->lite, rows[i]);
	}
	for (size_t i = 0; i < sizeof(payreq_rows) / sizeof(payreq_rows[0]); i++) {
		char vals[300];

		snprintf(vals, sizeof(vals), payreq_rows[i][1], ", 'host1'");
		snprintf(sql, sizeof(sql), "INSERT INTO pay_requests (key, terminal_id, "
		    "amount, currency, reference, capture_method, state, payment_id, "
		    "instance, created_at, updated_at) VALUES ('%s', %s)",
		    payreq_rows[i][0], vals);
		pg_exec(f->admin, sql);
		snprintf(vals, sizeof(vals), payreq_rows[i][1], "");
		snprintf(sql, sizeof(sql), "INSERT INTO pay_requests (key, terminal_id, "
		    "amount, currency, reference, capture_method, state, payment_id, "
		    "created_at, updated_at) VALUES ('%s', %s)", payreq_rows[i][0], vals);
		lite_exec(f->lite, sql);
	}
	if ((f->sq = store_reader_open(f->store, err, sizeof(err))) == NULL)
		fail_msg("sqlite reader: %s", err);
	if ((f->pg = store_reader_open_where(&store_pg_engine, f->dsn, f->password, err,
	    sizeof(err))) == NULL)
		fail_msg("postgres reader: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	struct pgfix *f = *state;
	char cmd[160];

	if (f == NULL)
		return 0;
	store_reader_free(f->sq);
	store_reader_free(f->pg);
	sqlite3_close(f->lite);
	store_free(f->store);
	if (f->admin != NULL) {
		snprintf(cmd, sizeof(cmd), "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
		pg_exec(f->admin, "DO $$ BEGIN EXECUTE format("
		    "'ALTER DATABASE %I CONNECTION LIMIT -1', current_database()); END $$");
		pg_exec(f->admin, cmd);
		PQfinish(f->admin);
	}
	if (f->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			return -1;
	}
	free(f);
	return 0;
}

static struct pgfix *
fix(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

/* Both answers are there and equal (same keys, same raw integers); frees
 * them. */
static void
assert_same(cJSON *lite, cJSON *pg)
{
	char *a, *b;

	assert_non_null(lite);
	assert_non_null(pg);
	if (!cJSON_Compare(lite, pg, true)) {
		a = cJSON_PrintUnformatted(lite);
		b = cJSON_PrintUnformatted(pg);
		fail_msg("sqlite: %s\npostgres: %s", a, b);
	}
	cJSON_Delete(lite);
	cJSON_Delete(pg);
}

/* Collects what the callbacks are given; stops after stop_at (0: never). */
struct collect {
	cJSON	*arr;
	int	 stop_at;
};

static int
collect_outcome(void *arg, int64_t seq, const char *status, const char *json, int len)
{
	struct collect *c = arg;
	cJSON *o = cJSON_CreateObject();

	jsonnum_add(o, "seq", seq);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "json", json);
	jsonnum_add(o, "len", len);
	cJSON_AddItemToArray(c->arr, o);
	return c->stop_at != 0 && cJSON_GetArraySize(c->arr) >= c->stop_at;
}

static cJSON *
outcomes(struct store_reader *r, int64_t after, int limit, int stop_at)
{
	struct collect c = { cJSON_CreateArray(), stop_at };
	int n = store_reader_outcomes(r, after, limit, collect_outcome, &c);

	cJSON_AddItemToArray(c.arr, cJSON_CreateNumber(n));
	return c.arr;
}

static void
test_outcomes(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *all = outcomes(f->pg, 0, 100, 0);
	char *s = cJSON_PrintUnformatted(all);

	/* Four outcomes and the count, the é and the exact integer intact. */
	assert_int_equal(cJSON_GetArraySize(all), 5);
	assert_non_null(strstr(s, "caf\xc3\xa9"));
	assert_non_null(strstr(s, "9007199254740993"));
	free(s);
	assert_same(outcomes(f->sq, 0, 100, 0), all);
	assert_same(outcomes(f->sq, 1, 2, 0), outcomes(f->pg, 1, 2, 0));
	assert_same(outcomes(f->sq, 0, 100, 2), outcomes(f->pg, 0, 100, 2));
	assert_same(outcomes(f->sq, 5, 100, 0), outcomes(f->pg, 5, 100, 0));
}

static int
collect_transition(void *arg, int64_t seq, const char *payment_id, const char *status)
{
	struct collect *c = arg;
	cJSON *o = cJSON_CreateObject();

	jsonnum_add(o, "seq", seq);
	cJSON_AddStringToObject(o, "paymentId", payment_id);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddItemToArray(c->arr, o);
	return c->stop_at != 0 && cJSON_GetArraySize(c->arr) >= c->stop_at;
}

static cJSON *
transitions(struct store_reader *r, int64_t after, int limit, int stop_at)
{
	struct collect c = { cJSON_CreateArray(), stop_at };
	int n = store_reader_transitions(r, after, limit, collect_transition, &c);

	cJSON_AddItemToArray(c.arr, cJSON_CreateNumber(n));
	return c.arr;
}

static void
test_transitions_and_cursors(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *t = transitions(f->pg, 1, 10, 0);

	assert_int_equal(cJSON_GetArraySize(t), 4);
	assert_same(transitions(f->sq, 1, 10, 0), t);
	assert_same(transitions(f->sq, 0, 2, 0), transitions(f->pg, 0, 2, 0));
	assert_same(transitions(f->sq, 0, 10, 1), transitions(f->pg, 0, 10, 1));
	assert_int_equal(store_reader_cursor(f->pg, "eventlog@host1"), 3);
	assert_int_equal(store_reader_cursor(f->pg, "hook"), 1);
	assert_int_equal(store_reader_cursor(f->pg, "socket@host1"), 0);
	assert_int_equal(store_reader_cursor(f->sq, "eventlog@host1"), 3);
}

static cJSON *
payment(struct store_reader *r, const char *id, int want)
{
	cJSON *p = NULL;

	assert_int_equal(store_reader_payment(r, id, &p), want);
	return want == 1 ? p : cJSON_CreateNull();
}

static void
test_payment(void **state)
{
	struct pgfix *f = fix(state);
	const char *ids[] = { "pay_a", "pay_B", "pay_c", "pay_d", "pay_e", "pay_f", "pay_g" };
	cJSON *a = payment(f->pg, "pay_a", 1);
	char *s = cJSON_PrintUnformatted(a);

	assert_non_null(strstr(s, "\"amount\":9007199254740993,"));
	assert_non_null(strstr(s, "\"tracked\":true"));
	assert_non_null(strstr(s, "\"reconcile\":{\"attempts\":0,\"nextAt\":null,"
	    "\"state\":\"idle\"}"));
	free(s);
	assert_same(payment(f->sq, "pay_a", 1), a);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		assert_same(payment(f->sq, ids[i], 1), payment(f->pg, ids[i], 1));
	assert_same(payment(f->sq, "pay_none", 0), payment(f->pg, "pay_none", 0));
}

/* The ids of an array of PAYMENT objects, joined by spaces. */
static void
ids_of(const cJSON *arr, char *buf, size_t len)
{
	const cJSON *p;

	buf[0] = '\0';
	cJSON_ArrayForEach(p, arr)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s ",
		    cJSON_GetObjectItem(p, "paymentId")->valuestring);
}

static void
test_find_and_pending(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *x = store_reader_find(f->pg, "ref_x");
	cJSON *p0 = store_reader_pending(f->pg, 0);
	char ids[128];

	ids_of(x, ids, sizeof(ids));
	assert_string_equal(ids, "pay_B pay_a pay_c ");
	ids_of(p0, ids, sizeof(ids));
	assert_string_equal(ids, "pay_f pay_d pay_g pay_c ");
	assert_same(store_reader_find(f->sq, "ref_x"), x);
	assert_same(store_reader_find(f->sq, "ref_y"), store_reader_find(f->pg, "ref_y"));
	assert_same(store_reader_find(f->sq, "ref_none"), store_reader_find(f->pg, "ref_none"));
	assert_same(store_reader_pending(f->sq, 0), p0);
	/* pay_e changed in 2999: never old enough. */
	assert_same(store_reader_pending(f->sq, 3600), store_reader_pending(f->pg, 3600));
	assert_same(store_reader_pending(f->sq, (int64_t)1000 * 86400 * 365),
	    store_reader_pending(f->pg, (int64_t)1000 * 86400 * 365));
}

static int
collect_replay(void *arg, int64_t seq, const char *json, int len)
{
	struct collect *c = arg;
	cJSON *o = cJSON_CreateObject();

	jsonnum_add(o, "seq", seq);
	if (json != NULL)
		cJSON_AddStringToObject(o, "json", json);
	else
		cJSON_AddNullToObject(o, "json");
	jsonnum_add(o, "len", len);
	cJSON_AddItemToArray(c->arr, o);
	return c->stop_at != 0 && cJSON_GetArraySize(c->arr) >= c->stop_at;
}

static cJSON *
replays(struct store_reader *r, const char *sink, int stop_at)
{
	struct collect c = { cJSON_CreateArray(), stop_at };
	int n = store_reader_replays(r, sink, collect_replay, &c);

	cJSON_AddItemToArray(c.arr, cJSON_CreateNumber(n));
	return c.arr;
}

static void
test_dead_letters(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *dead = store_reader_dead(f->pg);
	cJSON *r = replays(f->pg, "eventlog@host1", 0);
	char *s = cJSON_PrintUnformatted(dead);

	/* By sink bytewise ("Hook" first), then seq; attempts exact. */
	assert_non_null(strstr(s, "[{\"sink\":\"Hook\",\"seq\":5,\"attempts\":4000000000,"));
	free(s);
	/* The outcome of seq 99 was pruned: its line is null. */
	assert_non_null(strstr(s = cJSON_PrintUnformatted(r),
	    "[{\"seq\":99,\"json\":null,\"len\":0},1]"));
	free(s);
	assert_same(store_reader_dead(f->sq), dead);
	assert_same(replays(f->sq, "eventlog@host1", 0), r);
	assert_same(replays(f->sq, "hook", 0), replays(f->pg, "hook", 0));
	assert_same(replays(f->sq, "hook", 1), replays(f->pg, "hook", 1));
	assert_same(replays(f->sq, "socket", 0), replays(f->pg, "socket", 0));
	assert_int_equal(store_reader_dead_count(f->pg, "hook"), 3);
	assert_int_equal(store_reader_dead_count(f->pg, "eventlog@host1"), 1);
	assert_int_equal(store_reader_dead_count(f->pg, "socket"), 0);
	assert_int_equal(store_reader_dead_count(f->sq, "hook"), 3);
}

static int
collect_due(void *arg, const char *payment_id, int attempts, const char *updated_at)
{
	struct collect *c = arg;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", payment_id);
	jsonnum_add(o, "attempts", attempts);
	cJSON_AddStringToObject(o, "updatedAt", updated_at);
	cJSON_AddItemToArray(c->arr, o);
	return c->stop_at != 0 && cJSON_GetArraySize(c->arr) >= c->stop_at;
}

static cJSON *
due(struct store_reader *r, const char *now, const char *stale, int limit, int stop_at)
{
	struct collect c = { cJSON_CreateArray(), stop_at };
	int n = store_reader_rc_due(r, now, stale, limit, collect_due, &c);

	cJSON_AddItemToArray(c.arr, cJSON_CreateNumber(n));
	return c.arr;
}

static void
test_rc_due(void **state)
{
	struct pgfix *f = fix(state);
	const char *y2021 = "2021-01-01T00:00:00.000Z", *jun = "2020-06-15T00:00:00.000Z";
	cJSON *d = due(f->pg, y2021, y2021, 10, 0);
	char ids[128] = "";
	const cJSON *o;

	cJSON_ArrayForEach(o, d)
		if (cJSON_IsObject(o))
			snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s ",
			    cJSON_GetObjectItem(o, "id")->valuestring);
	assert_string_equal(ids, "pay_d pay_g pay_c ");
	assert_same(due(f->sq, y2021, y2021, 10, 0), d);
	assert_same(due(f->sq, jun, y2021, 10, 0), due(f->pg, jun, y2021, 10, 0));
	assert_same(due(f->sq, y2021, jun, 10, 0), due(f->pg, y2021, jun, 10, 0));
	assert_same(due(f->sq, y2021, y2021, 1, 0), due(f->pg, y2021, y2021, 1, 0));
	assert_same(due(f->sq, y2021, y2021, 10, 2), due(f->pg, y2021, y2021, 10, 2));
}

static cJSON *
pay_request(struct store_reader *r, const char *key)
{
	struct pay_request pr;
	cJSON *o = cJSON_CreateObject();

	jsonnum_add(o, "found", store_reader_pay_request(r, key, &pr));
	cJSON_AddStringToObject(o, "key", pr.key != NULL ? pr.key : "-");
	cJSON_AddStringToObject(o, "terminal", pr.terminal_id != NULL ? pr.terminal_id : "-");
	cJSON_AddStringToObject(o, "reference", pr.reference != NULL ? pr.reference : "-");
	cJSON_AddStringToObject(o, "currency", pr.currency != NULL ? pr.currency : "-");
	cJSON_AddStringToObject(o, "capture", pr.capture_method != NULL ?
	    pr.capture_method : "-");
	jsonnum_add(o, "amount", pr.amount);
	jsonnum_add(o, "state", pr.state);
	cJSON_AddStringToObject(o, "paymentId", pr.payment_id != NULL ? pr.payment_id : "-");
	cJSON_AddStringToObject(o, "createdAt", pr.created_at);
	payreq_release(&pr);
	return o;
}

static cJSON *
oldest(struct store_reader *r, enum payreq_state st)
{
	char at[TS_LEN];
	cJSON *o = cJSON_CreateObject();

	jsonnum_add(o, "found", store_reader_pay_oldest(r, st, at));
	cJSON_AddStringToObject(o, "at", at);
	return o;
}

static void
test_pay_requests(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *k1 = pay_request(f->pg, "k1");
	cJSON *u = oldest(f->pg, PR_UNKNOWN);
	char *s = cJSON_PrintUnformatted(k1);

	assert_non_null(strstr(s, "\"found\":1,\"key\":\"k1\""));
	assert_non_null(strstr(s, "\"amount\":9007199254740993,"));
	free(s);
	assert_string_equal(cJSON_GetObjectItem(u, "at")->valuestring,
	    "2026-01-02T00:00:00.000Z");
	assert_same(pay_request(f->sq, "k1"), k1);
	assert_same(pay_request(f->sq, "k2"), pay_request(f->pg, "k2"));
	assert_same(pay_request(f->sq, "nope"), pay_request(f->pg, "nope"));
	assert_same(oldest(f->sq, PR_UNKNOWN), u);
	assert_same(oldest(f->sq, PR_CREATED), oldest(f->pg, PR_CREATED));
	assert_same(oldest(f->sq, PR_SENDING), oldest(f->pg, PR_SENDING));
}

/* Ends the reader's backend, as a restart or a failover would. */
static void
kill_reader(struct pgfix *f)
{
	pg_exec(f->admin, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
	    "WHERE application_name = 'vinr-webhookd-reader' "
	    "AND datname = current_database()");
}

static void
test_reconnect(void **state)
{
	struct pgfix *f = fix(state);
	cJSON *p = NULL;

	assert_int_equal(store_reader_cursor(f->pg, "eventlog@host1"), 3);
	kill_reader(f);
	/* The next call reconnects and retries: no error at all. */
	assert_int_equal(store_reader_cursor(f->pg, "eventlog@host1"), 3);
	kill_reader(f);
	assert_same(store_reader_find(f->sq, "ref_x"), store_reader_find(f->pg, "ref_x"));

	/* While the database refuses us: -1 (NULL), each time, and back after. */
	pg_exec(f->admin, "DO $$ BEGIN EXECUTE format("
	    "'ALTER DATABASE %I CONNECTION LIMIT 0', current_database()); END $$");
	kill_reader(f);
	assert_int_equal(store_reader_cursor(f->pg, "eventlog@host1"), -1);
	assert_int_equal(store_reader_payment(f->pg, "pay_a", &p), -1);
	assert_null(p);
	assert_null(store_reader_dead(f->pg));
	pg_exec(f->admin, "DO $$ BEGIN EXECUTE format("
	    "'ALTER DATABASE %I CONNECTION LIMIT -1', current_database()); END $$");
	assert_int_equal(store_reader_cursor(f->pg, "eventlog@host1"), 3);
	assert_same(outcomes(f->sq, 0, 100, 0), outcomes(f->pg, 0, 100, 0));
}

/* err never shows the password or the DSN. */
static void
test_open_errors(void **state)
{
	struct pgfix *f = fix(state);
	char err[512];
	const char *bad[] = {
		"postgresql://vinr:uri-s3cret@127.0.0.1:1/vinr?bogus_key=1",
		"host=127.0.0.1 password=kv-s3cret dbname",
	};

	assert_null(store_reader_open_where(&store_pg_engine, f->dsn, "wrong-s3cret",
	    err, sizeof(err)));
	assert_null(strstr(err, "s3cret"));
	assert_null(strstr(err, f->dsn));
	assert_non_null(strstr(err, "password authentication failed"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(store_reader_open_where(&store_pg_engine, bad[i], NULL, err,
		    sizeof(err)));
		assert_null(strstr(err, "s3cret"));
		assert_string_equal(err, "the dsn is not a valid connection string");
	}
}

/* The store keeps its own copy of the password for its readers (no
 * PostgreSQL needed). */
static void
test_store_password(void **state)
{
	char dir[] = "/tmp/vinr-test-readpw-XXXXXX", pw[] = "pw-copy";
	char path[160], err[256], cmd[160];
	struct store_params params = { .synchronous = 1, .password = pw };
	struct store *s, *s2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vinr.db", dir);
	assert_non_null(s = store_open_engine(&store_sqlite_engine, path, &params, err,
	    sizeof(err)));
	assert_ptr_not_equal(store_password(s), pw);
	assert_string_equal(store_password(s), "pw-copy");
	assert_ptr_equal(store_engine_of(s), &store_sqlite_engine);
	assert_string_equal(store_path(s), path);
	store_free(s);
	assert_non_null(s2 = store_open(path, 1, err, sizeof(err)));
	assert_null(store_password(s2));
	store_free(s2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transitions_and_cursors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_payment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_and_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rc_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pay_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test(test_store_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
