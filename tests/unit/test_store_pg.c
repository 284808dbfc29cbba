/*
 * test_store_pg.c - the PostgreSQL engine (store_pg.c), called directly
 * against a real server: migrations, dedupe and the state machine, seq
 * gap-free across two writers' connections, cursors, dead letters and
 * their NOTIFY, pay requests per instance, retention, and a connection
 * killed under the engine.
 *
 * Runs when VINR_TEST_PG_DSN (and VINR_TEST_PG_PASSWORD, if the server
 * wants one) is set, e.g. against scripts/pg-scratch.sh's cluster:
 *   VINR_TEST_PG_DSN=postgresql://vinr@127.0.0.1:55501/vinr
 * and skips otherwise.  It works in a schema of its own (vinr_unit, dropped
 * and made again by each test), not in the database's public tables.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "event.h"
#include "log.h"
#include "payment.h"
#include "payreq.h"
#include "store.h"
#include "store_engine.h"
#include "store_pg_int.h"

#define NOW	"2026-06-11T09:00:13.000Z"
#define SCHEMA	"vinr_unit"

static const struct store_engine *e = &store_pg_engine;

struct pgt {
	char			 dsn[512];
	struct store_params	 pa, pb;	/* instances "a" and "b" */
	PGconn			*admin;
	struct store_conn	*open[4];	/* closed by teardown after a failure */
};

/* The DSN with search_path = SCHEMA, URI or key=value alike. */
static void
schema_dsn(const char *dsn, char *buf, size_t len)
{
	if (strncmp(dsn, "postgres://", 11) == 0 || strncmp(dsn, "postgresql://", 13) == 0)
		snprintf(buf, len, "%s%soptions=-csearch_path%%3D" SCHEMA, dsn,
		    strchr(dsn, '?') != NULL ? "&" : "?");
	else
		snprintf(buf, len, "%s options='-csearch_path=" SCHEMA "'", dsn);
}

/* The first column of the first row of sql as an integer; -1 for none. */
static int64_t
q(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	int64_t v = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		v = store_pg_int(res, 0, 0);
	PQclear(res);
	return v;
}

static int
setup(void **state)
{
	const char *dsn = getenv("VINR_TEST_PG_DSN");
	struct pgt *t;
	char err[256];

	if (dsn == NULL || *dsn == '\0') {
		*state = NULL;
		return 0;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	schema_dsn(dsn, t->dsn, sizeof(t->dsn));
	t->pa.password = t->pb.password = getenv("VINR_TEST_PG_PASSWORD");
	t->pa.instance = "a";
	t->pb.instance = "b";
	if ((t->admin = store_pg_connect(t->dsn, &t->pa, "test", err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "connecting: %s\n", err);
		free(t);
		return -1;
	}
	q(t->admin, "SET client_min_messages = warning; SET lock_timeout = 10000; DROP SCHEMA IF EXISTS "
	    SCHEMA " CASCADE; CREATE SCHEMA " SCHEMA);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct pgt *t = *state;

	if (t == NULL)
		return 0;
	for (int i = 0; i < 4; i++)
		e->close(t->open[i]);
	PQfinish(t->admin);
	free(t);
	return 0;
}

static struct pgt *
need_pg(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

static struct store_conn *
open_as(struct pgt *t, const struct store_params *p)
{
	struct store_conn *c;
	char err[256];

	c = e->open(t->dsn, p, err, sizeof(err));
	if (c == NULL)
		fail_msg("open: %s", err);
	for (int i = 0; i < 4; i++)
		if (t->open[i] == NULL) {
			t->open[i] = c;
			return c;
		}
	fail_msg("too many connections open");
	return NULL;
}

static void
done(struct pgt *t, struct store_conn *c)
{
	for (int i = 0; i < 4; i++)
		if (t->open[i] == c)
			t->open[i] = NULL;
	e->close(c);
}

/* One webhook for payment pay in status, through the engine. */
static void
ingest(struct store_conn *c, const char *id, const char *pay, const char *status,
    const char *extra, int64_t seq, struct store_ingest *in, int want_rc)
{
	struct vinr_event ev;
	char body[1024];

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"terminal_payment.%s\","
	    "\"createdAt\":\"2026-06-11T09:00:12Z\",\"data\":{\"object\":{\"id\":\"%s\","
	    "\"status\":\"%s\"%s}}}", id, status, pay, status, extra != NULL ? extra : "");
	assert_int_equal(event_parse(body, strlen(body), NULL, &ev), EVENT_OK);
	*in = (struct store_ingest){ .ev = &ev, .body = body, .bodylen = strlen(body),
	    .source = "webhook" };
	assert_int_equal(e->ingest(c, in, NOW, seq), want_rc);
	event_release(&ev);
}

/* Migrations: applied once, again is a no-op, a newer schema is refused. */
static void
test_pg_open(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *a, *b;
	char err[256];

	a = open_as(t, &t->pa);
	b = open_as(t, &t->pb);			/* migrated already: nothing to do */
	assert_int_equal(q(t->admin, "SELECT version FROM " SCHEMA ".vinr_schema"),
	    pg_nmigrations);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".vinr_schema"), 1);
	assert_int_equal(e->last_seq(a), 0);
	done(t, a);
	done(t, b);
	q(t->admin, "UPDATE " SCHEMA ".vinr_schema SET version = 99");
	assert_null(e->open(t->dsn, &t->pa, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
	e->close(NULL);
}

/* Dedupe, the state machine, exact amounts, a job error in both passes. */
static void
test_pg_ingest(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *c = open_as(t, &t->pa);
	struct store_ingest in;

	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_1", "tpay_1", "authorized", ",\"amount\":9007199254740993",
	    1, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(in.seq, 1);
	ingest(c, "evt_1", "tpay_1", "failed", NULL, 2, &in, 0);	/* same txn */
	assert_int_equal(in.result, INGEST_DUPLICATE);
	assert_int_equal(in.seq, 0);
	assert_int_equal(in.decision, -1);
	/* The careful pass: a job's own error undone, the rest kept. */
	assert_int_equal(e->savepoint(c), 0);
	assert_int_equal(e->dead_letter(c, NULL, 1, 3, "x", NOW), STORE_E_JOB);
	assert_int_equal(e->savepoint_undo(c), 0);
	assert_int_equal(e->commit(c), 0);

	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_1", "tpay_1", "failed", NULL, 2, &in, 0);	/* a later txn */
	assert_int_equal(in.result, INGEST_DUPLICATE);
	ingest(c, "evt_2", "tpay_1", "processing", NULL, 2, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.decision, PAY_STALE);
	assert_int_equal(in.seq, 0);
	ingest(c, "evt_3", "tpay_1", "completed", NULL, 2, &in, 0);
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(in.seq, 2);
	ingest(c, "evt_4", "tpay_1", "failed", NULL, 3, &in, 0);
	assert_int_equal(in.decision, PAY_CONFLICT);
	assert_int_equal(e->commit(c), 0);

	/* The first pass: no savepoint, the error loses the transaction. */
	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_5", "tpay_5", "completed", NULL, 3, &in, 0);
	assert_int_equal(e->dead_letter(c, NULL, 1, 3, "x", NOW), STORE_E_JOB);
	assert_int_equal(e->rollback(c), 0);
	assert_int_equal(e->rollback(c), 0);		/* none open: harmless */
	assert_int_equal(e->last_seq(c), 2);
	/* A failed transaction never rolled back is not carried on by begin(). */
	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_5", "tpay_5", "completed", NULL, 3, &in, 0);
	assert_int_equal(e->dead_letter(c, NULL, 1, 3, "x", NOW), STORE_E_JOB);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_6", "tpay_6", "completed", NULL, 3, &in, 0);
	assert_int_equal(in.seq, 3);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".events WHERE "
	    "id = 'evt_5'"), 0);

	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".events"), 5);
	assert_int_equal(q(t->admin, "SELECT amount FROM " SCHEMA ".payments WHERE "
	    "id = 'tpay_1'"), 9007199254740993LL);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".payments WHERE "
	    "status = 'completed' AND last_event_id = 'evt_3'"), 1);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".outcomes WHERE "
	    "json LIKE '%\"amount\":9007199254740993,%'"), 2);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".events WHERE "
	    "id = 'evt_4' AND result = 'conflict'"), 1);
	done(t, c);
}

/* Waits up to 2 s for a notification on channel; its payload as a number,
 * -1 for none. */
static int64_t
notified(PGconn *pg)
{
	struct pollfd pfd = { .fd = PQsocket(pg), .events = POLLIN };
	PGnotify *n;
	int64_t v;

	for (int i = 0; i < 20; i++) {
		PQconsumeInput(pg);
		if ((n = PQnotifies(pg)) != NULL) {
			assert_string_equal(n->relname, STORE_PG_CHANNEL);
			v = strtoll(n->extra, NULL, 10);
			PQfreemem(n);
			return v;
		}
		poll(&pfd, 1, 100);
	}
	return -1;
}

/*
 * Two writers (two instances) alternate: seq goes on from whatever the
 * other committed, a writer waits for the other's transaction, a job
 * undone by its savepoint gives its seq back.  Each commit with outcomes
 * NOTIFYs the highest.
 */
static void
test_pg_seq_two_writers(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *a = open_as(t, &t->pa), *b = open_as(t, &t->pb);
	struct store_ingest in;
	int64_t want = 1;
	char id[32];

	q(t->admin, "LISTEN " STORE_PG_CHANNEL);
	for (int i = 0; i < 6; i++) {
		struct store_conn *c = i % 2 == 0 ? a : b;

		assert_int_equal(e->begin(c), 0);
		for (int k = 0; k < 3; k++) {
			snprintf(id, sizeof(id), "evt_%d_%d", i, k);
			/* Each writer proposes what it knows: a stays at 1. */
			ingest(c, id, id + 4, "completed", NULL, c == a ? 1 : want,
			    &in, 0);
			assert_int_equal(in.seq, want);
			want++;
		}
		assert_int_equal(e->commit(c), 0);
		assert_int_equal(notified(t->admin), want - 1);
	}
	/* b waits for a's transaction, and gives up after its lock wait. */
	assert_int_equal(e->begin(a), 0);
	e->set_lock_wait(b, 200);
	assert_int_equal(e->begin(b), STORE_E_TXN);
	assert_non_null(strstr(e->error(b), "lock"));
	assert_int_equal(e->rollback(b), 0);
	assert_int_equal(e->commit(a), 0);		/* nothing: no NOTIFY */
	assert_int_equal(notified(t->admin), -1);
	/* The careful pass: an undone job's seq is taken by the next. */
	assert_int_equal(e->begin(b), 0);
	assert_int_equal(e->savepoint(b), 0);
	ingest(b, "evt_undone", "tpay_u", "completed", NULL, 1, &in, 0);
	assert_int_equal(in.seq, want);
	assert_int_equal(e->savepoint_undo(b), 0);
	assert_int_equal(e->savepoint(b), 0);
	ingest(b, "evt_kept", "tpay_k", "completed", NULL, 1, &in, 0);
	assert_int_equal(in.seq, want);
	assert_int_equal(e->release(b), 0);
	assert_int_equal(e->commit(b), 0);
	assert_int_equal(e->last_seq(a), want);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".outcomes"), want);
	assert_int_equal(q(t->admin, "SELECT max(seq) - min(seq) + 1 FROM " SCHEMA
	    ".outcomes"), want);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".events WHERE "
	    "id = 'evt_undone'"), 0);
	done(t, a);
	done(t, b);
}

/* Cursors never go back; dead letters move them, mark, NOTIFY "0", go. */
static void
test_pg_cursors_dead_letters(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *c = open_as(t, &t->pa);

	q(t->admin, "LISTEN " STORE_PG_CHANNEL);
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->cursor_set(c, "hook", 5), 0);
	assert_int_equal(e->cursor_set(c, "hook", 3), 0);
	assert_int_equal(e->dead_letter(c, "eventlog@a", 7, 3, "exit 1", NOW), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT seq FROM " SCHEMA ".cursors WHERE "
	    "sink = 'hook'"), 5);
	assert_int_equal(q(t->admin, "SELECT seq FROM " SCHEMA ".cursors WHERE "
	    "sink = 'eventlog@a'"), 7);
	assert_int_equal(notified(t->admin), -1);

	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->replay_mark(c, "eventlog@a", 7), 1);
	assert_int_equal(e->replay_mark(c, "eventlog@a", 8), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(notified(t->admin), 0);
	assert_int_equal(q(t->admin, "SELECT replay FROM " SCHEMA ".dead_letters"), 1);
	/* Refreshed: the mark goes, the cursor stays. */
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->dead_letter(c, "eventlog@a", 7, 4, "exit 2", NOW), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT replay + 10 * attempts FROM " SCHEMA
	    ".dead_letters"), 40);
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->dead_delete(c, "eventlog@a", 7), 1);
	assert_int_equal(e->dead_delete(c, "eventlog@a", 7), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".dead_letters"), 0);
	done(t, c);
}

static struct pay_request
req(const char *key, int64_t amount)
{
	return (struct pay_request){ .key = (char *)(uintptr_t)key,
	    .terminal_id = (char *)(uintptr_t)"term_1",
	    .reference = (char *)(uintptr_t)"order_1",
	    .currency = (char *)(uintptr_t)"USD",
	    .capture_method = (char *)(uintptr_t)"automatic", .amount = amount };
}

static enum payreq_state
pr_state(struct pgt *t, const char *key)
{
	char sql[160];
	PGresult *res;
	enum payreq_state s = PR_NONE;

	snprintf(sql, sizeof(sql), "SELECT state FROM " SCHEMA ".pay_requests WHERE "
	    "key = '%s'", key);
	res = PQexec(t->admin, sql);
	if (PQntuples(res) == 1)
		s = payreq_state_parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

/* Pay requests: found as before, "sending" moved only by their instance,
 * an unknown one resolved by a matching payment; track and rc_set. */
static void
test_pg_pay_requests(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *a = open_as(t, &t->pa), *b = open_as(t, &t->pb);
	struct pay_request in = req("k1", 2500), other = req("k1", 99), out;
	struct payment tr, got;
	struct store_ingest si;

	payreq_init(&out);
	assert_int_equal(e->begin(a), 0);
	assert_int_equal(e->pay_begin(a, &in, &out, NOW), STORE_PAY_NEW);
	assert_int_equal(out.state, PR_SENDING);
	assert_int_equal(e->pay_begin(a, &in, &out, NOW), STORE_PAY_EXISTS);
	assert_int_equal(e->pay_begin(a, &other, &out, NOW), STORE_PAY_MISMATCH);
	assert_int_equal(out.amount, 2500);
	assert_int_equal(e->commit(a), 0);
	in = req("k2", 2500);
	assert_int_equal(e->begin(b), 0);
	assert_int_equal(e->pay_begin(b, &in, &out, NOW), STORE_PAY_NEW);
	assert_int_equal(e->commit(b), 0);
	/* a starts again: only its own "sending" become unknown. */
	assert_int_equal(e->begin(a), 0);
	assert_int_equal(e->pay_move(a, PR_SENDING, PR_UNKNOWN,
	    "9999-01-01T00:00:00.000Z", NOW), 1);
	assert_int_equal(e->commit(a), 0);
	assert_int_equal(pr_state(t, "k1"), PR_UNKNOWN);
	assert_int_equal(pr_state(t, "k2"), PR_SENDING);
	/* The payment VINR did create for k1, heard of by b's webhook. */
	assert_int_equal(e->begin(b), 0);
	ingest(b, "evt_p", "tpay_p", "pending", ",\"terminalId\":\"term_1\","
	    "\"reference\":\"order_1\",\"amount\":2500", 1, &si, 0);
	assert_int_equal(si.result, INGEST_ACCEPTED);
	assert_int_equal(e->pay_set(b, "k2", PR_NOT_CREATED, NOW), 0);
	assert_int_equal(e->commit(b), 0);
	assert_int_equal(pr_state(t, "k1"), PR_CREATED);
	assert_int_equal(q(t->admin, "SELECT tracked FROM " SCHEMA ".payments WHERE "
	    "id = 'tpay_p'"), 1);
	assert_int_equal(e->begin(b), 0);
	assert_int_equal(e->pay_begin(b, &in, &out, NOW), STORE_PAY_NEW);	/* again */
	/* track keeps the status, fills what is missing; rc_set. */
	payment_init(&tr);
	payment_init(&got);
	tr.id = (char *)(uintptr_t)"tpay_p";
	tr.brand = (char *)(uintptr_t)"visa";
	tr.status = PAY_COMPLETED;
	assert_int_equal(e->track(b, &tr, &got, NOW), 0);
	assert_int_equal(got.status, PAY_PENDING);
	assert_string_equal(got.brand, "visa");
	assert_int_equal(got.amount, 2500);
	assert_int_equal(e->rc_set(b, "tpay_p", 2, NULL, "gave_up"), 0);
	assert_int_equal(e->commit(b), 0);
	assert_int_equal(q(t->admin, "SELECT rc_attempts FROM " SCHEMA ".payments"), 2);
	payment_release(&got);
	payreq_release(&out);
	done(t, a);
	done(t, b);
}

/* Retention keeps what any instance's cursor has not passed. */
static void
test_pg_prune(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *c = open_as(t, &t->pa);
	struct store_ingest in;
	char id[16];

	assert_int_equal(e->begin(c), 0);
	for (int i = 1; i <= 3; i++) {
		snprintf(id, sizeof(id), "evt_%d", i);
		ingest(c, id, id, "completed", NULL, i, &in, 0);
	}
	assert_int_equal(e->cursor_set(c, "eventlog@b", 1), 0);	/* b lags */
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(e->begin(c), 0);
	/* 3 events, and of the outcomes only seq 1: b has not passed 2. */
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 3, 100), 4);
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 3, 100), 0);
	assert_int_equal(e->cursor_set(c, "eventlog@b", 3), 0);
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 2, 1), 1);	/* chunk */
	assert_int_equal(e->prune(c, "2000-01-01T00:00:00.000Z", 3, 100), 0);	/* cutoff */
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT min(seq) FROM " SCHEMA ".outcomes"), 3);
	done(t, c);
	/* The counter survives. */
	c = open_as(t, &t->pa);
	assert_int_equal(e->last_seq(c), 3);
	done(t, c);
}

static void
kill_writer(struct pgt *t)
{
	assert_int_equal(q(t->admin, "SELECT count(pg_terminate_backend(pid)) FROM "
	    "pg_stat_activity WHERE application_name = 'vinr-webhookd/a'"), 1);
	/* Gone for sure before the engine speaks again. */
	for (int i = 0; i < 50 && q(t->admin, "SELECT count(*) FROM pg_stat_activity "
	    "WHERE application_name = 'vinr-webhookd/a'") > 0; i++)
		poll(NULL, 0, 20);
}

/* A connection killed under the engine: the next batch reconnects (its
 * statements prepared again), and so does probe(). */
static void
test_pg_reconnect(void **state)
{
	struct pgt *t = need_pg(state);
	struct store_conn *c = open_as(t, &t->pa);
	struct store_ingest in;

	kill_writer(t);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_r1", "tpay_r1", "completed", NULL, 1, &in, 0);
	assert_int_equal(in.seq, 1);
	assert_int_equal(e->commit(c), 0);
	/* Killed inside a transaction: that batch is lost, not the next. */
	assert_int_equal(e->begin(c), 0);
	kill_writer(t);
	ingest(c, "evt_r2", "tpay_r2", "completed", NULL, 2, &in, STORE_E_TXN);
	assert_int_equal(e->rollback(c), 0);
	assert_int_equal(e->probe(c), 0);
	kill_writer(t);
	assert_int_equal(e->probe(c), 0);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "evt_r2", "tpay_r2", "completed", NULL, 2, &in, 0);
	assert_int_equal(in.seq, 2);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(q(t->admin, "SELECT count(*) FROM " SCHEMA ".outcomes"), 2);
	done(t, c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pg_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_ingest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_seq_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_cursors_dead_letters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pg_pay_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
	};

	log_init(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
