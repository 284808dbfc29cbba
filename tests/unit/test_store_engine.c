/*
 * test_store_engine.c - unit tests of the seam between the writer (store.c)
 * and its engine (store_engine.h), from both sides.
 *
 * The writer's side runs on a fake engine that keeps a journal of what each
 * operation wrote and can fail any of them: a job that fails on its own
 * leaves the rest of its batch committed; a lost transaction leaves nothing
 * and fails every job of the batch; the probe brings /healthz back; seq
 * stays gap-free, and an engine may hand out a greater one than proposed.
 * A "gate" job holds the writer inside begin() while the test queues the
 * next batch, so that the batch is exactly what the test queued.
 *
 * The engine's side runs the SQLite engine directly on a fresh database.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "event.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_engine.h"
#include "store_int.h"
#include "util.h"

/* The fake engine. */

#define MAX_OPS	64
#define OP_LEN	48

struct store_conn {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	bool		 hold;		/* begin() waits while set */
	bool		 in_begin;	/* the writer waits in begin() */
	bool		 down;		/* probe() fails */
	int64_t		 counter;	/* the highest seq another writer took */
	int		 probes, rollbacks;
	char		 pending[MAX_OPS][OP_LEN];
	int		 npending, mark;
	char		 committed[MAX_OPS][OP_LEN];
	int		 ncommitted;
};

static struct store_conn fake;

static int
fake_fails(const char *name)
{
	if (name != NULL && strcmp(name, "job_err") == 0)
		return STORE_E_JOB;
	if (name != NULL && strcmp(name, "txn_err") == 0)
		return STORE_E_TXN;
	return 0;
}

static void
fake_write(struct store_conn *c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->mu);
	assert_true(c->npending < MAX_OPS);
	va_start(ap, fmt);
	vsnprintf(c->pending[c->npending++], OP_LEN, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&c->mu);
}

static struct store_conn *
fake_open(const char *where, const struct store_params *params, char *err,
    size_t errlen)
{
	(void)where;
	(void)params;
	(void)err;
	(void)errlen;
	return &fake;
}

static void
fake_close(struct store_conn *c)
{
	(void)c;
}

static int64_t
fake_last_seq(struct store_conn *c)
{
	return c->counter;
}

static const char *
fake_error(struct store_conn *c)
{
	(void)c;
	return "fake failure";
}

static int
fake_begin(struct store_conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->in_begin = true;
	pthread_cond_broadcast(&c->cv);
	while (c->hold)
		pthread_cond_wait(&c->cv, &c->mu);
	c->in_begin = false;
	c->npending = 0;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static int
fake_commit(struct store_conn *c)
{
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->npending; i++)
		memcpy(c->committed[c->ncommitted++], c->pending[i], OP_LEN);
	c->npending = 0;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static int
fake_rollback(struct store_conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->npending = 0;
	c->rollbacks++;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static int
fake_savepoint(struct store_conn *c)
{
	c->mark = c->npending;
	return 0;
}

static int
fake_release(struct store_conn *c)
{
	(void)c;
	return 0;
}

static int
fake_savepoint_undo(struct store_conn *c)
{
	c->npending = c->mark;
	return 0;
}

/* Takes the seq proposed, or one past what another writer took. */
static int
fake_ingest(struct store_conn *c, struct store_ingest *in, const char *now, int64_t seq)
{
	int rc;

	(void)now;
	if ((rc = fake_fails(in->ev->id)) != 0)
		return rc;
	if (seq <= c->counter)
		seq = c->counter + 1;
	fake_write(c, "ingest %s %lld", in->ev->id, (long long)seq);
	in->result = INGEST_ACCEPTED;
	in->decision = PAY_TRANSITION;
	in->seq = seq;
	return 0;
}

static int
fake_track(struct store_conn *c, const struct payment *in, struct payment *out,
    const char *now)
{
	(void)out;
	(void)now;
	fake_write(c, "track %s", in->id);
	return 0;
}

static int
fake_cursor_set(struct store_conn *c, const char *sink, int64_t seq)
{
	fake_write(c, "cursor %s %lld", sink, (long long)seq);
	return 0;
}

static int
fake_dead_letter(struct store_conn *c, const char *sink, int64_t seq, int attempts,
    const char *last_error, const char *now)
{
	(void)attempts;
	(void)last_error;
	(void)now;
	fake_write(c, "dead %s %lld", sink, (long long)seq);
	return 0;
}

static int
fake_replay_mark(struct store_conn *c, const char *sink, int64_t seq)
{
	int rc;

	if ((rc = fake_fails(sink)) != 0)
		return rc;
	fake_write(c, "replay %s %lld", sink, (long long)seq);
	return 1;
}

static int
fake_dead_delete(struct store_conn *c, const char *sink, int64_t seq)
{
	fake_write(c, "delete %s %lld", sink, (long long)seq);
	return 1;
}

static int
fake_rc_set(struct store_conn *c, const char *payment_id, int attempts,
    const char *next_at, const char *state)
{
	(void)attempts;
	(void)next_at;
	(void)state;
	fake_write(c, "rc %s", payment_id);
	return 0;
}

static int
fake_prune(struct store_conn *c, const char *cutoff, int64_t delivered, int chunk)
{
	(void)c;
	(void)cutoff;
	(void)delivered;
	(void)chunk;
	return 0;
}

static int
fake_probe(struct store_conn *c)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	c->probes++;
	rc = c->down ? STORE_E_TXN : 0;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static const struct store_engine fake_engine = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.last_seq = fake_last_seq,
	.error = fake_error,
	.begin = fake_begin,
	.commit = fake_commit,
	.rollback = fake_rollback,
	.savepoint = fake_savepoint,
	.release = fake_release,
	.savepoint_undo = fake_savepoint_undo,
	.ingest = fake_ingest,
	.track = fake_track,
	.cursor_set = fake_cursor_set,
	.dead_letter = fake_dead_letter,
	.replay_mark = fake_replay_mark,
	.dead_delete = fake_dead_delete,
	.rc_set = fake_rc_set,
	.prune = fake_prune,
	.probe = fake_probe,
};

/* Answers of asynchronous jobs, by slot. */
#define SLOTS	8
struct answers {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 n;
	int		 rc[SLOTS];
};
static struct answers ans;

static void
on_done(void *arg, int rc)
{
	int slot = (int)(intptr_t)arg;

	pthread_mutex_lock(&ans.mu);
	ans.rc[slot] = rc;
	ans.n++;
	pthread_cond_signal(&ans.cv);
	pthread_mutex_unlock(&ans.mu);
}

static void
wait_answers(int n)
{
	pthread_mutex_lock(&ans.mu);
	while (ans.n < n)
		pthread_cond_wait(&ans.cv, &ans.mu);
	pthread_mutex_unlock(&ans.mu);
}

static int
setup_fake(void **state)
{
	struct store_params params = { 0 };
	struct store *s;
	char err[128];

	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.mu, NULL);
	pthread_cond_init(&fake.cv, NULL);
	memset(&ans, 0, sizeof(ans));
	pthread_mutex_init(&ans.mu, NULL);
	pthread_cond_init(&ans.cv, NULL);
	for (int i = 0; i < SLOTS; i++)
		ans.rc[i] = -9;
	if ((s = store_open_engine(&fake_engine, "fake", &params, err, sizeof(err))) == NULL ||
	    store_start(s) == -1)
		return -1;
	*state = s;
	return 0;
}

static int
teardown_fake(void **state)
{
	store_free(*state);
	return 0;
}

/*
 * Holds the writer in begin() with a gate job (slot 0) so that what the test
 * queues next is one batch; open_gate() lets it go.
 */
static void
close_gate(struct store *s)
{
	pthread_mutex_lock(&fake.mu);
	fake.hold = true;
	pthread_mutex_unlock(&fake.mu);
	assert_int_equal(store_replay_async(s, "gate", 1, on_done, (void *)0), 0);
	pthread_mutex_lock(&fake.mu);
	while (!fake.in_begin)
		pthread_cond_wait(&fake.cv, &fake.mu);
	pthread_mutex_unlock(&fake.mu);
}

static void
open_gate(void)
{
	pthread_mutex_lock(&fake.mu);
	fake.hold = false;
	pthread_cond_broadcast(&fake.cv);
	pthread_mutex_unlock(&fake.mu);
}

static void
assert_committed(const char *const *want)
{
	int i;

	pthread_mutex_lock(&fake.mu);
	for (i = 0; want[i] != NULL; i++) {
		assert_true(i < fake.ncommitted);
		assert_string_equal(fake.committed[i], want[i]);
	}
	assert_int_equal(fake.ncommitted, i);
	pthread_mutex_unlock(&fake.mu);
}

static void
test_job_error_keeps_the_rest(void **state)
{
	static const char *const want[] = {
		"replay gate 1", "replay a 2", "replay b 4", "cursor hook 9", NULL
	};
	struct store *s = *state;

	close_gate(s);
	assert_int_equal(store_replay_async(s, "a", 2, on_done, (void *)1), 0);
	assert_int_equal(store_replay_async(s, "job_err", 3, on_done, (void *)2), 0);
	assert_int_equal(store_replay_async(s, "b", 4, on_done, (void *)3), 0);
	store_cursor_set(s, "hook", 7);		/* registers: not dirty */
	store_cursor_set(s, "hook", 9);		/* dirty: rides along */
	open_gate();
	wait_answers(4);
	assert_int_equal(ans.rc[0], 0);
	assert_int_equal(ans.rc[1], 0);
	assert_int_equal(ans.rc[2], -1);
	assert_int_equal(ans.rc[3], 0);
	assert_committed(want);
	/* The optimistic pass was rolled back, then the careful one committed. */
	assert_int_equal(fake.rollbacks, 1);
}

static bool
healthy(struct store *s, const char **reason)
{
	*reason = NULL;
	return store_healthy(s, reason);
}

/* How many times the writer probed. */
static int
probes(void)
{
	int n;

	pthread_mutex_lock(&fake.mu);
	n = fake.probes;
	pthread_mutex_unlock(&fake.mu);
	return n;
}

static void
test_lost_transaction_fails_the_batch(void **state)
{
	static const char *const want[] = { "replay gate 1", NULL };
	static const char *const after[] = { "replay gate 1", "replay c 5", NULL };
	struct store *s = *state;
	const char *reason;
	int64_t t0;

	pthread_mutex_lock(&fake.mu);
	fake.down = true;
	pthread_mutex_unlock(&fake.mu);
	close_gate(s);
	assert_int_equal(store_replay_async(s, "a", 2, on_done, (void *)1), 0);
	assert_int_equal(store_replay_async(s, "txn_err", 3, on_done, (void *)2), 0);
	assert_int_equal(store_replay_async(s, "b", 4, on_done, (void *)3), 0);
	open_gate();
	wait_answers(4);
	assert_int_equal(ans.rc[0], 0);
	assert_int_equal(ans.rc[1], -1);
	assert_int_equal(ans.rc[2], -1);
	assert_int_equal(ans.rc[3], -1);
	assert_committed(want);
	assert_false(healthy(s, &reason));
	assert_string_equal(reason, "storage_unavailable");

	/* Unhealthy while the probe fails; healthy again once it passes. */
	t0 = util_mono_ms();
	while (probes() < 1 && util_mono_ms() - t0 < 5000)
		usleep(50000);
	assert_true(probes() >= 1);
	assert_false(healthy(s, &reason));
	pthread_mutex_lock(&fake.mu);
	fake.down = false;
	pthread_mutex_unlock(&fake.mu);
	t0 = util_mono_ms();
	while (!healthy(s, &reason) && util_mono_ms() - t0 < 5000)
		usleep(50000);
	assert_true(healthy(s, &reason));
	assert_int_equal(store_replay(s, "c", 5), 0);
	assert_committed(after);
}

static void
ingest_one(struct store *s, const char *id, int64_t want_seq)
{
	struct vinr_event ev = { .id = (char *)(uintptr_t)id };
	struct store_ingest in = { .ev = &ev, .body = "{}", .bodylen = 2,
	    .source = "webhook" };

	ev.pay.status = PAY_COMPLETED;
	store_ingest(s, &in);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.seq, want_seq);
	assert_int_equal(store_last_seq(s), want_seq);
}

static void
test_seq_handover(void **state)
{
	struct store *s = *state;
	struct vinr_event ev[3] = { { .id = "e4" }, { .id = "job_err" }, { .id = "e5" } };
	struct store_ingest in[3];
	struct store_metrics m;

	ingest_one(s, "e1", 1);
	/* Another writer took up to 10: the engine says so, the writer follows. */
	pthread_mutex_lock(&fake.mu);
	fake.counter = 10;
	pthread_mutex_unlock(&fake.mu);
	ingest_one(s, "e2", 11);
	ingest_one(s, "e3", 12);

	/* A failing job in the middle leaves no gap. */
	close_gate(s);
	for (int i = 0; i < 3; i++) {
		ev[i].pay.status = PAY_COMPLETED;
		in[i] = (struct store_ingest){ .ev = &ev[i], .body = "{}", .bodylen = 2,
		    .source = "webhook" };
		assert_int_equal(store_ingest_async(s, &in[i], on_done,
		    (void *)(intptr_t)(i + 1)), 0);
	}
	open_gate();
	wait_answers(4);
	assert_int_equal(ans.rc[1], 0);
	assert_int_equal(in[0].seq, 13);
	assert_int_equal(in[1].result, INGEST_UNAVAILABLE);
	assert_int_equal(in[1].seq, 0);
	assert_int_equal(in[2].seq, 14);
	assert_int_equal(store_last_seq(s), 14);
	store_metrics_get(s, &m);
	assert_int_equal(m.outcomes_by_status[PAY_COMPLETED], 5);
}

/* The SQLite engine, called directly. */

struct db {
	char	 dir[64];
	char	 path[128];
};

static int
setup_db(void **state)
{
	struct db *d = calloc(1, sizeof(*d));

	snprintf(d->dir, sizeof(d->dir), "/tmp/vinr-test-engine-XXXXXX");
	if (d == NULL || mkdtemp(d->dir) == NULL)
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

static void
sqlite_ingest(struct store_conn *c, const char *body, int64_t seq,
    struct store_ingest *in, int want_rc)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct vinr_event ev;

	assert_int_equal(event_parse(body, strlen(body), NULL, &ev), EVENT_OK);
	*in = (struct store_ingest){ .ev = &ev, .body = body, .bodylen = strlen(body),
	    .source = "webhook" };
	assert_int_equal(e->ingest(c, in, "2026-06-11T09:00:13.000Z", seq), want_rc);
	event_release(&ev);
}

static void
test_sqlite_engine(void **state)
{
	static const char body[] = "{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\","
	    "\"createdAt\":\"2026-06-11T09:00:12Z\",\"livemode\":true,\"data\":{\"object\":"
	    "{\"id\":\"tpay_1\",\"status\":\"completed\",\"amount\":2500}}}";
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c;
	char err[256];

	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->last_seq(c), 0);

	/* A job that fails on its own keeps the transaction. */
	assert_int_equal(e->begin(c), 0);
	sqlite_ingest(c, body, 1, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.decision, PAY_TRANSITION);
	assert_int_equal(in.seq, 1);
	assert_int_equal(e->savepoint(c), 0);
	assert_int_equal(e->dead_letter(c, NULL, 1, 3, "x", "2026-06-11T09:00:13.000Z"),
	    STORE_E_JOB);				/* sink is NOT NULL */
	assert_int_equal(e->savepoint_undo(c), 0);
	assert_int_equal(e->cursor_set(c, "hook", 1), 0);
	assert_int_equal(e->commit(c), 0);

	/* The dedupe key holds; dead letters mark and go. */
	assert_int_equal(e->begin(c), 0);
	sqlite_ingest(c, body, 2, &in, 0);
	assert_int_equal(in.result, INGEST_DUPLICATE);
	assert_int_equal(in.seq, 0);
	assert_int_equal(e->dead_letter(c, "hook", 1, 3, "exit 1",
	    "2026-06-11T09:00:13.000Z"), 0);
	assert_int_equal(e->replay_mark(c, "hook", 1), 1);
	assert_int_equal(e->replay_mark(c, "hook", 2), 0);
	assert_int_equal(e->dead_delete(c, "hook", 1), 1);
	assert_int_equal(e->dead_delete(c, "hook", 1), 0);
	assert_int_equal(e->commit(c), 0);
	/* Rolled back: nothing of it stays. */
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->dead_letter(c, "hook", 1, 3, "exit 1",
	    "2026-06-11T09:00:13.000Z"), 0);
	assert_int_equal(e->rollback(c), 0);
	assert_int_equal(e->rollback(c), 0);		/* none open: harmless */
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->replay_mark(c, "hook", 1), 0);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(e->probe(c), 0);
	e->close(c);

	/* Pruning everything keeps the counter. */
	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->last_seq(c), 1);
	assert_int_equal(e->begin(c), 0);
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 0, 100), 1);	/* the event */
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 1, 100), 1);	/* the outcome */
	assert_int_equal(e->prune(c, "9999-12-31T00:00:00.000Z", 1, 100), 0);
	assert_int_equal(e->commit(c), 0);
	e->close(c);
	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->last_seq(c), 1);
	e->close(c);
	e->close(NULL);
}

/* The one integer a query returns. */
static int
count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/*
 * The dedupe is the insert's own probe now: a second delivery of a known
 * id, even with another status, writes nothing (no event row, no payment
 * change, no outcome), in the same transaction or a later one.
 */
static void
test_sqlite_duplicate_writes_nothing(void **state)
{
	static const char done[] = "{\"id\":\"evt_d\",\"type\":\"terminal_payment.completed\","
	    "\"data\":{\"object\":{\"id\":\"tpay_d\",\"status\":\"completed\"}}}";
	static const char failed[] = "{\"id\":\"evt_d\",\"type\":\"terminal_payment.failed\","
	    "\"data\":{\"object\":{\"id\":\"tpay_d\",\"status\":\"failed\"}}}";
	static const char other[] = "{\"id\":\"evt_e\",\"type\":\"terminal_payment.failed\","
	    "\"data\":{\"object\":{\"id\":\"tpay_e\",\"status\":\"failed\"}}}";
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c;
	sqlite3 *db;
	char err[256];

	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->begin(c), 0);
	sqlite_ingest(c, done, 1, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	sqlite_ingest(c, failed, 2, &in, 0);		/* same transaction */
	assert_int_equal(in.result, INGEST_DUPLICATE);
	assert_int_equal(in.seq, 0);
	assert_int_equal(in.decision, -1);
	assert_int_equal(e->commit(c), 0);
	assert_int_equal(e->begin(c), 0);
	sqlite_ingest(c, failed, 2, &in, 0);		/* a later one */
	assert_int_equal(in.result, INGEST_DUPLICATE);
	sqlite_ingest(c, other, 2, &in, 0);		/* a new id still goes in */
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.seq, 2);
	assert_int_equal(e->commit(c), 0);
	e->close(c);

	assert_int_equal(sqlite3_open(d->path, &db), SQLITE_OK);
	assert_int_equal(count(db, "SELECT count(*) FROM events"), 2);
	assert_int_equal(count(db, "SELECT count(*) FROM outcomes"), 2);
	assert_int_equal(count(db, "SELECT count(*) FROM payments WHERE id = 'tpay_d' "
	    "AND status = 'completed'"), 1);
	sqlite3_close(db);
}

/*
 * The WAL stays bounded with checkpoints off the writer: 40 MiB of events
 * in 1,000 commits, and the file never passes the 8 MiB it is cut to
 * (plus the commit that crosses the bound).
 */
static void
test_sqlite_wal_bounded(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c;
	struct stat sb;
	char err[256], wal[160], *body, pad[4001];
	off_t biggest = 0;
	int64_t seq = 1;

	memset(pad, 'r', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	assert_non_null(body = malloc(8192));
	snprintf(wal, sizeof(wal), "%s-wal", d->path);
	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	for (int i = 0; i < 1000; i++) {
		snprintf(body, 8192, "{\"id\":\"evt_%d\",\"type\":\"terminal_payment."
		    "completed\",\"data\":{\"object\":{\"id\":\"tpay_%d\",\"status\":"
		    "\"completed\",\"reference\":\"%s\"}}}", i, i, pad);
		assert_int_equal(e->begin(c), 0);
		sqlite_ingest(c, body, seq, &in, 0);
		assert_int_equal(in.result, INGEST_ACCEPTED);
		seq = in.seq + 1;
		assert_int_equal(e->commit(c), 0);
		if (stat(wal, &sb) == 0 && sb.st_size > biggest)
			biggest = sb.st_size;
	}
	e->close(c);
	free(body);
	assert_true(biggest > 0);
	assert_true(biggest <= 9 * 1024 * 1024);
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static int64_t
query_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/*
 * A version 3 database (payments with a rowid, outcomes with AUTOINCREMENT
 * whose newest rows were pruned) migrates in place: every row stays, the
 * counter keeps the pruned seqs (the next outcome is 6, not 4), and it
 * keeps counting after the next commit and another prune.
 */
static void
test_sqlite_migrate_from_v3(void **state)
{
	static const char body[] = "{\"id\":\"evt_9\",\"type\":\"terminal_payment.completed\","
	    "\"data\":{\"object\":{\"id\":\"tpay_1\",\"status\":\"completed\"}}}";
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c;
	sqlite3 *db;
	char err[256];

	assert_int_equal(sqlite3_open(d->path, &db), SQLITE_OK);
	exec_ok(db, "PRAGMA journal_mode = WAL");
	for (int v = 0; v < 3; v++)
		exec_ok(db, sql_migrations[v]);
	exec_ok(db, "PRAGMA user_version = 3;"
	    "INSERT INTO payments (id, status, updated_at, reference) VALUES "
	    "('tpay_1', 'pending', '2026-01-01T00:00:00.000Z', 'r1'), "
	    "('tpay_2', 'completed', '2026-01-01T00:00:01.000Z', 'r2');"
	    "INSERT INTO outcomes (seq, payment_id, status, json, recorded_at) VALUES "
	    "(1, 'tpay_2', 'completed', '{}', 'a'), (2, 'tpay_2', 'completed', '{}', 'a'), "
	    "(3, 'tpay_2', 'completed', '{}', 'a'), (4, 'tpay_2', 'completed', '{}', 'a'), "
	    "(5, 'tpay_2', 'completed', '{}', 'a');"
	    "DELETE FROM outcomes WHERE seq >= 4;");
	sqlite3_close(db);

	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->last_seq(c), 5);
	assert_int_equal(e->begin(c), 0);
	sqlite_ingest(c, body, 6, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(in.seq, 6);
	assert_int_equal(e->commit(c), 0);
	e->close(c);

	assert_int_equal(query_int(d->path, "PRAGMA user_version"), 4);
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM payments"), 2);
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM payments "
	    "WHERE id = 'tpay_1' AND status = 'completed' AND reference = 'r1'"), 1);
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM outcomes"), 4);
	assert_int_equal(query_int(d->path, "SELECT seq FROM outcome_seq"), 6);
	/* WITHOUT ROWID, and no AUTOINCREMENT counter left behind. */
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM sqlite_schema WHERE "
	    "name = 'payments' AND sql LIKE '%WITHOUT ROWID%'"), 1);
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM sqlite_sequence "
	    "WHERE name = 'outcomes'"), 0);

	/* Retention deletes the newest outcome: its seq is still never reused. */
	assert_int_equal(sqlite3_open(d->path, &db), SQLITE_OK);
	exec_ok(db, "DELETE FROM outcomes WHERE seq >= 3");
	sqlite3_close(db);
	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->last_seq(c), 6);
	e->close(c);
}

/*
 * Events look for an unknown pay request to resolve only while one may
 * exist: the engine reads that at the start of each transaction, and a
 * request made unknown inside the transaction counts at once.
 */
static void
test_sqlite_unknown_in_same_transaction(void **state)
{
	static const char body[] = "{\"id\":\"evt_u\",\"type\":\"terminal_payment.pending\","
	    "\"data\":{\"object\":{\"id\":\"tpay_u\",\"status\":\"pending\",\"terminalId\":"
	    "\"term_1\",\"reference\":\"ord_1\",\"amount\":700,\"createdAt\":"
	    "\"2026-06-11T09:00:13Z\"}}}";
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct pay_request rq = { .key = "k_u", .terminal_id = "term_1",
	    .reference = "ord_1", .currency = "USD", .capture_method = "automatic",
	    .amount = 700 }, out = { .key = NULL };
	struct db *d = *state;
	struct store_ingest in;
	struct store_conn *c;
	char err[256];

	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	assert_int_equal(e->begin(c), 0);
	assert_true(e->pay_begin(c, &rq, &out, "2026-06-11T09:00:12.000Z") >= 0);
	payreq_release(&out);
	assert_int_equal(e->pay_set(c, "k_u", PR_UNKNOWN, "2026-06-11T09:00:12.000Z"), 0);
	sqlite_ingest(c, body, 1, &in, 0);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	assert_int_equal(e->commit(c), 0);
	e->close(c);
	assert_int_equal(query_int(d->path, "SELECT count(*) FROM pay_requests WHERE "
	    "key = 'k_u' AND state = 'created' AND payment_id = 'tpay_u'"), 1);
}

/* The pending payments are read through the partial index, finals are not in it. */
static void
test_sqlite_pending_index(void **state)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 1 };
	struct db *d = *state;
	struct store_conn *c;
	sqlite3 *db;
	sqlite3_stmt *st;
	char err[256], plan[512] = "";

	assert_non_null(c = e->open(d->path, &params, err, sizeof(err)));
	e->close(c);
	assert_int_equal(sqlite3_open(d->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT id FROM payments "
	    "WHERE status IN ('pending', 'processing') AND updated_at <= ?1 "
	    "ORDER BY updated_at, id LIMIT 10", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		strncat(plan, (const char *)sqlite3_column_text(st, 3),
		    sizeof(plan) - strlen(plan) - 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(strstr(plan, "payments_open"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_job_error_keeps_the_rest,
		    setup_fake, teardown_fake),
		cmocka_unit_test_setup_teardown(test_lost_transaction_fails_the_batch,
		    setup_fake, teardown_fake),
		cmocka_unit_test_setup_teardown(test_seq_handover, setup_fake,
		    teardown_fake),
		cmocka_unit_test_setup_teardown(test_sqlite_engine, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_sqlite_duplicate_writes_nothing,
		    setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_sqlite_wal_bounded, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_sqlite_migrate_from_v3, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_sqlite_pending_index, setup_db,
		    teardown_db),
		cmocka_unit_test_setup_teardown(test_sqlite_unknown_in_same_transaction,
		    setup_db, teardown_db),
	};

	log_init(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
