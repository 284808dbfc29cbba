/*
 * pg_listen.c - see pg_listen.h.
 *
 * Threads: one (listen_main) owns the connection; pg_listen_stop() sets a
 * flag and wakes it through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pg_conn.h"
#include "pg_listen.h"
#include "store.h"

struct pg_listen {
	struct pg_listen_params	 p;
	pthread_t		 thread;
	bool			 running;
	int			 wake[2];
	PGconn			*conn;
	atomic_bool		 stopping;
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
	struct pollfd pfd[2];
	bool said = false;

	while (!atomic_load(&l->stopping)) {
		pfd[0] = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
		if (l->conn == NULL) {
			/* Connected or not, the listeners re-read now: what was
			 * committed while down sent no notification here. */
			if (connect_listen(l, &said) == 0) {
				store_wake(l->p.store, 0);
				continue;
			}
			store_wake(l->p.store, 0);
			poll(pfd, 1, 1000);
			continue;
		}
		pfd[1] = (struct pollfd){ .fd = PQsocket(l->conn), .events = POLLIN };
		if (poll(pfd, 2, 1000) > 0 && pfd[1].revents != 0 && drain(l) == -1) {
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
	l->wake[0] = l->wake[1] = -1;
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
		snprintf(err, errlen, "cannot start the LISTEN thread");
		goto fail;
	}
	l->running = true;
	return l;
fail:
	pg_listen_free(l);
	return NULL;
}

void
pg_listen_stop(struct pg_listen *l)
{
	if (l == NULL || !l->running)
		return;
	atomic_store(&l->stopping, true);
	(void)!write(l->wake[1], "x", 1);
	pthread_join(l->thread, NULL);
	l->running = false;
}

void
pg_listen_free(struct pg_listen *l)
{
	if (l == NULL)
		return;
	pg_listen_stop(l);
	drop(l);
	for (int i = 0; i < 2; i++)
		if (l->wake[i] != -1)
			close(l->wake[i]);
	free(l);
}
