/*
 * leader.c - see leader.h.
 *
 * Threads: one (leader_main, a worker.h thread) owns the connection and
 * calls the callbacks; other threads only read the atomics and, in
 * leader_stop(), stop the worker.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leader.h"
#include "log.h"
#include "pg_conn.h"
#include "util.h"
#include "worker.h"

struct leader {
	struct leader_params	 p;
	struct worker		 w;
	PGconn			*conn;
	atomic_bool		 leading;
	_Atomic int64_t		 tick_ms;
	int64_t			 rejoin_ms;	/* no competing before this */
	int64_t			 ok_ms;		/* leading: the last good check */
};

/*
 * After losing the lock, competing again waits longer than the others' one
 * second between tries: a survivor takes over rather than the instance
 * whose connection just failed.
 */
#define REJOIN_MS	2500

bool
leader_is_leader(struct leader *l)
{
	return l != NULL && atomic_load(&l->leading);
}

bool
leader_alive(struct leader *l)
{
	return l == NULL || util_mono_ms() - atomic_load(&l->tick_ms) <
	    15000 + (int64_t)l->p.takeover * 1000;
}

/*
 * Sleeps ms, or less when stopped; while leading, also wakes when the
 * connection has something to say (the server ending the session).
 * Returns -1 when the connection failed meanwhile.
 */
static int
nap(struct leader *l, int ms)
{
	atomic_store(&l->tick_ms, util_mono_ms());
	if (worker_wait(&l->w, l->conn != NULL ? PQsocket(l->conn) : -1, ms) &&
	    (PQconsumeInput(l->conn) != 1 || PQstatus(l->conn) != CONNECTION_OK))
		return -1;
	atomic_store(&l->tick_ms, util_mono_ms());
	return 0;
}

/* Leadership is gone or in doubt: stop first, then drop the session. */
static void
lose(struct leader *l, const char *why)
{
	if (atomic_exchange(&l->leading, false)) {
		l->p.on_lose(l->p.arg);
		log_info("lost leadership (%s): hook and reconciler rounds stopped", why);
		l->rejoin_ms = util_mono_ms() + REJOIN_MS;
	}
	if (l->conn != NULL) {
		PQfinish(l->conn);
		l->conn = NULL;
	}
}

/* One round of the loop, with a connection: compete, or watch it. */
static void
round_connected(struct leader *l)
{
	char sql[96];
	int r, takeover_ms = l->p.takeover * 1000;

	if (!atomic_load(&l->leading)) {
		snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%" PRId64 ")",
		    l->p.lock_key);
		if ((r = pg_conn_query(l->conn, sql, takeover_ms / 2 + 1)) == -1) {
			log_warnx("leader election: the query failed; reconnecting");
			lose(l, "query failed");
			return;
		}
		if (r == 1) {
			atomic_store(&l->leading, true);
			log_info("became leader: starting the hook and the reconciler rounds");
			if (l->p.on_lead(l->p.arg) == -1)
				lose(l, "the hook did not start");
			else
				l->ok_ms = util_mono_ms();
			return;
		}
		if (nap(l, 1000) == -1)
			lose(l, "connection lost");
		return;
	}
	/*
	 * Check every takeover/8 with a deadline of takeover/8, and give up once
	 * the last good check is older than takeover/4 (pg_conn.h): well before
	 * the server, whose keepalives give up after about 7/8 takeover, drops
	 * the session and the lock, so that this one has stopped delivering
	 * before another instance can lead.
	 */
	if (nap(l, takeover_ms / 8 > 125 ? takeover_ms / 8 : 125) == -1)
		lose(l, "connection lost");
	else if (!worker_stopping(&l->w) &&
	    pg_conn_query(l->conn, "SELECT 1", takeover_ms / 8 + 1) == -1)
		lose(l, "connection check failed");
	else if (util_mono_ms() - l->ok_ms > takeover_ms / 4 + 250)
		lose(l, "connection checks too slow");
	else
		l->ok_ms = util_mono_ms();
}

static void *
leader_main(void *arg)
{
	struct leader *l = arg;
	char err[256];
	bool said = false;

	while (!worker_stopping(&l->w)) {
		atomic_store(&l->tick_ms, util_mono_ms());
		if (util_mono_ms() < l->rejoin_ms) {
			nap(l, (int)(l->rejoin_ms - util_mono_ms()));
			continue;
		}
		if (l->conn == NULL) {
			l->conn = pg_conn_open(l->p.dsn, l->p.password, l->p.takeover,
			    "vinr-webhookd leader", err, sizeof(err));
			if (l->conn == NULL) {
				if (!said)
					log_warnx("leader election: cannot connect: %s", err);
				said = true;
				nap(l, 1000);
				continue;
			}
			said = false;
		}
		round_connected(l);
	}
	lose(l, "stopping");
	return NULL;
}

struct leader *
leader_start(const struct leader_params *p, char *err, size_t errlen)
{
	struct leader *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->p = *p;
	if (l->p.lock_key == 0)
		l->p.lock_key = LEADER_LOCK_KEY;
	if (l->p.takeover < 1)
		l->p.takeover = 1;
	atomic_store(&l->tick_ms, util_mono_ms());
	if (worker_start(&l->w, leader_main, l, "leader election", err, errlen) == -1)
		goto fail;
	return l;
fail:
	leader_free(l);
	return NULL;
}

void
leader_stop(struct leader *l)
{
	if (l != NULL)
		worker_stop(&l->w);
}

void
leader_free(struct leader *l)
{
	if (l == NULL)
		return;
	worker_close(&l->w);
	if (l->conn != NULL)
		PQfinish(l->conn);
	free(l);
}
