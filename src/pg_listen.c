/*
 * pg_listen.c - see pg_listen.h.
 *
 * Threads: one (listen_main, a worker.h thread) owns the connection;
 * pg_listen_stop() stops the worker.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pg_conn.h"
#include "pg_listen.h"
#include "store.h"
#include "worker.h"

struct pg_listen {
	struct pg_listen_params	 p;
	struct worker		 w;
	PGconn			*conn;
	atomic_bool		 connected;
};

bool
pg_listen_connected(struct pg_listen *l)
{
	return l != NULL && atomic_load(&l->connected);
}

/* A payload's seq; 0 for anything else (re-read, whatever it was). */
static int64_t
payload_seq(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

/* Passes on every notification waiting.  -1: the connection failed. */
static int
drain(struct pg_listen *l)
{
	PGnotify *n;

	if (PQconsumeInput(l->conn) != 1 || PQstatus(l->conn) != CONNECTION_OK)
		return -1;
	while ((n = PQnotifies(l->conn)) != NULL) {
		store_wake(l->p.store, payload_seq(n->extra));
		PQfreemem(n);
	}
	return 0;
}

static void
drop(struct pg_listen *l)
{
	if (l->conn != NULL)
		PQfinish(l->conn);
	l->conn = NULL;
	atomic_store(&l->connected, false);
}

/* Connects and listens.  0, or -1 (not connected). */
static int
connect_listen(struct pg_listen *l, bool *said)
{
	char err[256];

	l->conn = pg_conn_open(l->p.dsn, l->p.password, l->p.takeover,
	    "vinr-webhookd listen", err, sizeof(err));
	if (l->conn != NULL && pg_conn_query(l->conn, "LISTEN " PG_LISTEN_CHANNEL,
	    l->p.takeover * 1000) == -1) {
		snprintf(err, sizeof(err), "LISTEN failed");
		drop(l);
	}
	if (l->conn == NULL) {
		if (!*said)
			log_warnx("wake-ups from other instances: %s; polling every "
			    "second meanwhile", err);
		*said = true;
		return -1;
	}
	if (*said)
		log_info("wake-ups from other instances: listening again");
	*said = false;
	atomic_store(&l->connected, true);
	return 0;
}

static void *
listen_main(void *arg)
{
	struct pg_listen *l = arg;
	bool said = false;

	while (!worker_stopping(&l->w)) {
		if (l->conn == NULL) {
			/* Connected or not, the listeners re-read now: what was
			 * committed while down sent no notification here. */
			if (connect_listen(l, &said) == 0) {
				store_wake(l->p.store, 0);
				continue;
			}
			store_wake(l->p.store, 0);
			worker_wait(&l->w, -1, 1000);
			continue;
		}
		if (worker_wait(&l->w, PQsocket(l->conn), 1000) && drain(l) == -1) {
			log_warnx("wake-ups from other instances: connection lost");
			drop(l);
		}
	}
	drop(l);
	return NULL;
}

struct pg_listen *
pg_listen_start(const struct pg_listen_params *p, char *err, size_t errlen)
{
	struct pg_listen *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->p = *p;
	if (l->p.takeover < 1)
		l->p.takeover = 1;
	if (worker_start(&l->w, listen_main, l, "LISTEN", err, errlen) == -1)
		goto fail;
	return l;
fail:
	pg_listen_free(l);
	return NULL;
}

void
pg_listen_stop(struct pg_listen *l)
{
	if (l != NULL)
		worker_stop(&l->w);
}

void
pg_listen_free(struct pg_listen *l)
{
	if (l == NULL)
		return;
	worker_close(&l->w);
	drop(l);
	free(l);
}
