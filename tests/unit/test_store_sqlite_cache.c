/*
 * test_store_sqlite_cache.c - the SQLite writer's payment cache
 * (store_sqlite_cache.h): the cache alone, and the SQLite engine with it.
 *
 * A wrong cache is a wrong state machine, so every test of the engine
 * reads what the next event decides (transition or stale, previousStatus,
 * the fields of its outcome line) after whatever could leave a stale row
 * behind: a rolled-back batch, an undone savepoint, a track, another
 * connection's commit.  The hit and miss counts show that the cache was
 * used where it should be, so that the tests do not pass on SELECTs alone.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "event.h"
#include "log.h"
#include "payment.h"
#include "store_engine.h"
#include "store_sqlite_cache.h"

#define NOW	"2026-06-11T09:00:13.000Z"

struct db {
	char	dir[64];
	char	path[128];
};

static int
setup_db(void **state)
{
	struct db *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/vinr-test-cache-XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "%s/vinr.db", d->dir);
	*state = d;
	return 0;
}

static int
teardown_db(void **state)
{
	struct db *d = *state;
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		return -1;
	free(d);
	return 0;
}

/* A payment with just an id and a status, owned by the caller. */
static void
mk(struct payment *p, const char *id, enum pay_status s)
{
	payment_init(p);
	assert_int_equal(pay_field_set_text(p, PF_ID, id), 0);
	p->status = s;
}

/* The cache alone: a miss, a hit that empties the slot, eviction, drop, clear. */
static void
test_cache_alone(void **state)
{
	struct pay_cache *pc;
	struct pay_cache_stats st;
	struct payment p, out;

	(void)state;
	assert_non_null(pc = pay_cache_new(1));		/* one slot: every id collides */
	assert_false(pay_cache_take(pc, "a", &out));
	mk(&p, "a", PAY_PENDING);
	p.status_at = strdup("2026-06-11T09:00:12Z");	/* transient: not kept */
	pay_cache_put(pc, &p);
	assert_null(p.id);				/* moved */
	assert_true(pay_cache_take(pc, "a", &out));
	assert_string_equal(out.id, "a");
	assert_int_equal(out.status, PAY_PENDING);
	assert_null(out.status_at);
	assert_false(pay_cache_take(pc, "a", &p));	/* taken: the slot is empty */
	pay_cache_put(pc, &out);
	mk(&p, "b", PAY_AUTHORIZED);
	pay_cache_put(pc, &p);				/* evicts a */
	assert_false(pay_cache_take(pc, "a", &out));
	assert_true(pay_cache_take(pc, "b", &out));
	assert_int_equal(out.status, PAY_AUTHORIZED);
	pay_cache_put(pc, &out);
	pay_cache_drop(pc, "a");			/* not there: b stays */
	pay_cache_drop(pc, NULL);
	assert_true(pay_cache_take(pc, "b", &out));
	pay_cache_put(pc, &out);
	pay_cache_drop(pc, "b");
	assert_false(pay_cache_take(pc, "b", &out));
	mk(&p, "c", PAY_PENDING);
	pay_cache_put(pc, &p);
	pay_cache_clear(pc);
	assert_false(pay_cache_take(pc, "c", &out));
	payment_init(&p);				/* no id: freed, not kept */
	p.reference = strdup("ord_1");
	pay_cache_put(pc, &p);
	assert_null(p.reference);
	pay_cache_stats(pc, &st);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 5);
	assert_int_equal(st.clears, 1);
	pay_cache_free(pc);
	pay_cache_free(NULL);
}

/* Ingests event evt_<eid> for payment pid in status; the engine's result. */
static void
ingest(struct store_conn *c, const char *eid, const char *pid, const char *status,
    const char *extra, int64_t seq, struct store_ingest *in)
{
	char body[512];
	struct vinr_event ev;

	snprintf(body, sizeof(body), "{\"id\":\"evt_%s\",\"type\":\"terminal_payment.%s\","
	    "\"data\":{\"object\":{\"id\":\"%s\",\"status\":\"%s\",\"amount\":700%s}}}",
	    eid, status, pid, status, extra);
	assert_int_equal(event_parse(body, strlen(body), NULL, &ev), EVENT_OK);
	*in = (struct store_ingest){ .ev = &ev, .body = body, .bodylen = strlen(body),
	    .source = "webhook" };
	assert_int_equal(store_sqlite_engine.ingest(c, in, NOW, seq), 0);
	event_release(&ev);
}

/* Whether the outcome line of seq (read by another connection) contains s. */
static bool
outcome_has(const char *path, int64_t seq, const char *s)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	bool has = false;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT json FROM outcomes WHERE seq = ?1",
	    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		has = strstr((const char *)sqlite3_column_text(st, 0), s) != NULL;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return has;
}

static struct store_conn *
open_engine(struct db *d)
{
	struct store_params params = { .synchronous = 1 };
	struct store_conn *c;
	char err[256];

	c = store_sqlite_engine.open(d->path, &params, err, sizeof(err));
	assert_non_null(c);
	return c;
}

static void
expect_stats(struct store_conn *c, uint64_t hits, uint64_t misses)
{
	struct pay_cache_stats st;

	store_sqlite_cache_stats(c, &st);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.misses, misses);
}

/*
 * A hit within a transaction and across commits; a stale or conflicting
 * event leaves the row cached as it is; a duplicate of a transition does
 * not leave its unstored merge behind.
 */
static void
test_engine_hit_and_miss(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c = open_engine(d);

	assert_int_equal(e->begin(c), 0);
	ingest(c, "1", "tpay_h", "pending", "", 1, &in);		/* miss: new */
	ingest(c, "2", "tpay_h", "processing", "", 2, &in);	/* hit */
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(e->commit(c), 0);
	expect_stats(c, 1, 1);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "3", "tpay_h", "pending", "", 3, &in);		/* hit, stale */
	assert_int_equal(in.decision, PAY_STALE);
	/* A duplicate id with a new status: decided, then not stored. */
	ingest(c, "2", "tpay_h", "authorized", "", 3, &in);
	assert_int_equal(in.result, INGEST_DUPLICATE);
	/* A miss: the duplicate's merge was not stored, so not kept either. */
	ingest(c, "4", "tpay_h", "authorized", ",\"last4\":\"4242\"", 3, &in);
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(in.seq, 3);
	ingest(c, "5", "tpay_h", "completed", "", 4, &in);
	ingest(c, "6", "tpay_h", "failed", "", 5, &in);		/* hit, conflict */
	assert_int_equal(in.decision, PAY_CONFLICT);
	assert_int_equal(e->commit(c), 0);
	expect_stats(c, 5, 2);
	assert_true(outcome_has(d->path, 3, "\"previousStatus\":\"processing\""));
	assert_true(outcome_has(d->path, 4, "\"previousStatus\":\"authorized\""));
	assert_true(outcome_has(d->path, 4, "\"last4\":\"4242\""));
	assert_true(outcome_has(d->path, 4, "\"amountCaptured\":700"));
	e->close(c);
}

/* A rolled-back batch takes its rows out of the cache with it. */
static void
test_engine_rollback(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c = open_engine(d);

	assert_int_equal(e->begin(c), 0);
	ingest(c, "1", "tpay_r", "pending", "", 1, &in);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "2", "tpay_r", "authorized", "", 2, &in);
	ingest(c, "3", "tpay_s", "completed", "", 3, &in);
	assert_int_equal(e->rollback(c), 0);
	assert_int_equal(e->begin(c), 0);
	/* Stale if the rolled-back authorized were still cached. */
	ingest(c, "4", "tpay_r", "processing", "", 2, &in);
	assert_int_equal(in.decision, PAY_TRANSITION);
	ingest(c, "5", "tpay_s", "pending", "", 3, &in);	/* new again */
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(e->commit(c), 0);
	assert_true(outcome_has(d->path, 2, "\"previousStatus\":\"pending\""));
	assert_true(outcome_has(d->path, 3, "\"previousStatus\":null"));
	e->close(c);
}

/*
 * Undoing one job's savepoint (store.c's careful run) takes back its row;
 * the jobs before it in the same transaction still commit, and are read
 * correctly afterwards.
 */
static void
test_engine_savepoint_undo(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c = open_engine(d);

	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->savepoint(c), 0);
	ingest(c, "1", "tpay_u", "pending", "", 1, &in);
	assert_int_equal(e->release(c), 0);
	assert_int_equal(e->savepoint(c), 0);
	ingest(c, "2", "tpay_u", "authorized", "", 2, &in);
	assert_int_equal(e->savepoint_undo(c), 0);
	assert_int_equal(e->savepoint(c), 0);
	ingest(c, "3", "tpay_u", "processing", "", 2, &in);
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(e->release(c), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "4", "tpay_u", "authorized", "", 3, &in);	/* hit again */
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(e->commit(c), 0);
	assert_true(outcome_has(d->path, 2, "\"previousStatus\":\"pending\""));
	assert_true(outcome_has(d->path, 3, "\"previousStatus\":\"processing\""));
	e->close(c);
}

/*
 * Track fills the unknown fields of a cached payment (coalesce in SQL): the
 * next event must see them, so the row is not served from the cache; a
 * reconcile state change (rc_set) drops the row too.
 */
static void
test_engine_track(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c = open_engine(d);
	struct payment t, out;

	assert_int_equal(e->begin(c), 0);
	ingest(c, "1", "tpay_t", "pending", "", 1, &in);	/* no terminalId */
	mk(&t, "tpay_t", PAY_PENDING);
	assert_int_equal(pay_field_set_text(&t, PF_TERMINAL_ID, "term_T"), 0);
	payment_init(&out);
	assert_int_equal(e->track(c, &t, &out, NOW), 0);
	assert_string_equal(out.terminal_id, "term_T");
	ingest(c, "2", "tpay_t", "authorized", "", 2, &in);
	assert_int_equal(e->commit(c), 0);
	expect_stats(c, 0, 2);
	assert_true(outcome_has(d->path, 2, "\"terminalId\":\"term_T\""));
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->rc_set(c, "tpay_t", 1, NOW, "due"), 0);
	ingest(c, "3", "tpay_t", "completed", "", 3, &in);
	assert_int_equal(e->commit(c), 0);
	expect_stats(c, 0, 3);
	assert_true(outcome_has(d->path, 3, "\"terminalId\":\"term_T\""));
	payment_release(&t);
	payment_release(&out);
	e->close(c);
}

/* Another connection's commit (an operator's shell) empties the cache. */
static void
test_engine_other_writer(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c = open_engine(d);
	sqlite3 *db;

	assert_int_equal(e->begin(c), 0);
	ingest(c, "1", "tpay_o", "pending", "", 1, &in);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(sqlite3_open(d->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE payments SET status = 'authorized', "
	    "reference = 'ord_O' WHERE id = 'tpay_o'", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(e->begin(c), 0);
	ingest(c, "2", "tpay_o", "processing", "", 2, &in);
	assert_int_equal(in.decision, PAY_STALE);
	ingest(c, "3", "tpay_o", "completed", "", 2, &in);	/* a hit now */
	assert_int_equal(e->commit(c), 0);
	expect_stats(c, 1, 2);
	assert_true(outcome_has(d->path, 2, "\"previousStatus\":\"authorized\""));
	assert_true(outcome_has(d->path, 2, "\"reference\":\"ord_O\""));
	e->close(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_alone),
		cmocka_unit_test_setup_teardown(test_engine_hit_and_miss, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_engine_rollback, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_engine_savepoint_undo, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_engine_track, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_engine_other_writer, setup_db,
		    teardown_db),
	};

	log_init(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
