/*
 * test_leader_pg.c - leader.c and pg_listen.c against a real PostgreSQL
 * (SPEC §8).  Skipped unless VINR_TEST_PG_DSN is set (and
 * VINR_TEST_PG_PASSWORD, when the server wants one), e.g. a cluster from
 * scripts/pg-scratch.sh.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "leader.h"
#include "pg_conn.h"
#include "pg_listen.h"
#include "store.h"
#include "util.h"

struct who {
	atomic_int	leads, loses;
};

static const char *dsn, *password;

static int
on_lead(void *arg)
{
	atomic_fetch_add(&((struct who *)arg)->leads, 1);
	return 0;
}

static void
on_lose(void *arg)
{
	atomic_fetch_add(&((struct who *)arg)->loses, 1);
}

static PGconn *
admin(void)
{
	char err[256];
	PGconn *c = pg_conn_open(dsn, password, 5, "vinr test", err, sizeof(err));

	if (c == NULL)
		fail_msg("connect: %s", err);
	return c;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Which of the two leads now (exactly one): 0 or 1; -1 none, 2 both. */
static int
who_leads(struct leader *l[2])
{
	bool a = leader_is_leader(l[0]), b = leader_is_leader(l[1]);

	return a && b ? 2 : a ? 0 : b ? 1 : -1;
}

static void
test_one_leader_and_takeover(void **state)
{
	struct who w[2] = { 0 };
	struct leader *l[2];
	int64_t key = 0x76000000LL + (getpid() & 0xffffff);
	char err[256], sql[256];
	int win = -1, takeover = 2;
	int64_t until;
	PGconn *c;
	PGresult *r;

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct leader_params p = { .dsn = dsn, .password = password,
		    .takeover = takeover, .lock_key = key, .on_lead = on_lead,
		    .on_lose = on_lose, .arg = &w[i] };

		l[i] = leader_start(&p, err, sizeof(err));
		assert_non_null(l[i]);
	}
	for (until = util_mono_ms() + 5000; util_mono_ms() < until; sleep_ms(50))
		if ((win = who_leads(l)) >= 0)
			break;
	assert_in_range(win, 0, 1);
	/* It stays that way: the other keeps trying and keeps failing. */
	sleep_ms(2500);
	assert_int_equal(who_leads(l), win);
	assert_int_equal(atomic_load(&w[win].leads), 1);
	assert_int_equal(atomic_load(&w[1 - win].leads), 0);

	/* The winner's session dies (as with SIGKILL of its process). */
	c = admin();
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_locks "
	    "WHERE locktype = 'advisory' AND granted AND objid = %lld",
	    (long long)(key & 0xffffffff));
	r = PQexec(c, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(r), 1);
	PQclear(r);
	PQfinish(c);
	for (until = util_mono_ms() + (takeover + 3) * 1000; util_mono_ms() < until;
	    sleep_ms(50))
		if (atomic_load(&w[win].loses) == 1 && leader_is_leader(l[1 - win]))
			break;
	assert_int_equal(atomic_load(&w[win].loses), 1);
	assert_true(leader_is_leader(l[1 - win]));
	assert_int_equal(atomic_load(&w[1 - win].leads), 1);
	/* The old winner competes again, and loses: never two at once. */
	sleep_ms(1500);
	assert_int_equal(who_leads(l), 1 - win);

	/* Stopping a leader calls on_lose and frees the lock for the other. */
	leader_free(l[1 - win]);
	assert_int_equal(atomic_load(&w[1 - win].loses), 1);
	for (until = util_mono_ms() + 4000; util_mono_ms() < until; sleep_ms(50))
		if (leader_is_leader(l[win]))
			break;
	assert_true(leader_is_leader(l[win]));
	leader_free(l[win]);
	assert_int_equal(atomic_load(&w[win].loses), 2);
}

/* Waits for the eventfd to be written; true if it was within ms. */
static bool
woken(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, ms) != 1)
		return false;
	(void)!read(fd, &v, sizeof(v));
	return true;
}

static void
test_notify_wakes_store(void **state)
{
	char dir[] = "/tmp/vinr-test-listen-XXXXXX", path[128], err[256];
	struct pg_listen_params p = { dsn, password, 2, NULL };
	struct pg_listen *l;
	struct store *s;
	int64_t until;
	int efd;
	PGconn *c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vinr.db", dir);
	assert_non_null(s = store_open(path, 1, err, sizeof(err)));
	assert_true((efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0);
	assert_int_equal(store_add_listener(s, efd), 0);
	p.store = s;
	assert_non_null(l = pg_listen_start(&p, err, sizeof(err)));
	for (until = util_mono_ms() + 5000; util_mono_ms() < until; sleep_ms(20))
		if (pg_listen_connected(l))
			break;
	assert_true(pg_listen_connected(l));
	assert_true(woken(efd, 2000));	/* the re-poll after connecting */
	assert_false(woken(efd, 300));
	int64_t before = store_last_seq(s);

	c = admin();
	PQclear(PQexec(c, "NOTIFY " PG_LISTEN_CHANNEL ", '123'"));
	assert_true(woken(efd, 2000));
	assert_int_equal(store_last_seq(s), before > 123 ? before : 123);
	/* Never lowered; "0" (a replay mark) wakes without a seq. */
	PQclear(PQexec(c, "NOTIFY " PG_LISTEN_CHANNEL ", '7'"));
	assert_true(woken(efd, 2000));
	assert_int_equal(store_last_seq(s), 123);
	PQclear(PQexec(c, "NOTIFY " PG_LISTEN_CHANNEL ", '0'"));
	assert_true(woken(efd, 2000));
	assert_int_equal(store_last_seq(s), 123);

	/* Its session killed: it reconnects and wakes the listeners meanwhile. */
	PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	    "WHERE application_name = 'vinr-webhookd listen' AND pid <> pg_backend_pid()"));
	assert_true(woken(efd, 3000));
	for (until = util_mono_ms() + 5000; util_mono_ms() < until; sleep_ms(50))
		if (pg_listen_connected(l))
			break;
	assert_true(pg_listen_connected(l));
	while (woken(efd, 300))
		;
	PQclear(PQexec(c, "NOTIFY " PG_LISTEN_CHANNEL ", '200'"));
	assert_true(woken(efd, 2000));
	assert_int_equal(store_last_seq(s), 200);
	PQfinish(c);

	pg_listen_free(l);
	store_remove_listener(s, efd);
	close(efd);
	store_free(s);
	snprintf(err, sizeof(err), "rm -rf %s", dir);
	assert_int_equal(system(err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_leader_and_takeover),
		cmocka_unit_test(test_notify_wakes_store),
	};

	if ((dsn = getenv("VINR_TEST_PG_DSN")) == NULL || *dsn == '\0') {
		printf("test_leader_pg: skipped (VINR_TEST_PG_DSN is not set)\n");
		return 0;
	}
	password = getenv("VINR_TEST_PG_PASSWORD");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
