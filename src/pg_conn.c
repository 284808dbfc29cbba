/*
 * pg_conn.c - see pg_conn.h.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "pg_conn.h"
#include "util.h"

static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *
pg_conn_open(const char *dsn, const char *password, int takeover_s,
    const char *app, char *err, size_t errlen)
{
	char idle[16], intvl[16], utime[16], ctime[16], opts[256];
	const char *keys[] = { "dbname", "password", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	    "connect_timeout", "application_name", "options", NULL };
	const char *vals[11];
	int t = takeover_s > 0 ? takeover_s : 10;
	int i = t / 4 > 0 ? t / 4 : 1, n = t / 8 > 0 ? t / 8 : 1;
	PGconn *conn;

	/* idle + 3 probes, or unacknowledged data for half of it: < takeover. */
	snprintf(idle, sizeof(idle), "%d", i);
	snprintf(intvl, sizeof(intvl), "%d", n);
	snprintf(utime, sizeof(utime), "%d", t * 500);
	snprintf(ctime, sizeof(ctime), "%d", t > 2 ? t / 2 : 2);
	/* The server's side gives up later than the leader's own checks
	 * (leader.c: takeover/4) and still within takeover: idle takeover/2
	 * + 3 probes takeover/8 apart, or unacknowledged data for 3/4 of it. */
	snprintf(opts, sizeof(opts), "-c tcp_keepalives_idle=%d "
	    "-c tcp_keepalives_interval=%d -c tcp_keepalives_count=3 "
	    "-c tcp_user_timeout=%d", t / 2 > 0 ? t / 2 : 1, n, t * 750);
	vals[0] = dsn;
	vals[1] = password;
	vals[2] = "1";
	vals[3] = idle;
	vals[4] = intvl;
	vals[5] = "3";
	vals[6] = utime;
	vals[7] = ctime;
	vals[8] = app;
	vals[9] = opts;
	vals[10] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* libpq would print the server's notices to stderr, unprefixed. */
	PQsetNoticeProcessor(conn, quiet, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		err[strcspn(err, "\n")] = '\0';
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Waits until libpq has an answer ready without blocking: 0, or -1 when
 * the connection failed or deadline (util_mono_ms()) passed. */
static int
wait_ready(PGconn *conn, int64_t deadline)
{
	struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN };
	int64_t left;

	for (;;) {
		if (PQconsumeInput(conn) != 1)
			return -1;
		if (!PQisBusy(conn))
			return 0;
		if ((left = deadline - util_mono_ms()) <= 0 ||
		    poll(&pfd, 1, (int)left) == -1)
			return -1;
	}
}

int
pg_conn_query(PGconn *conn, const char *sql, int timeout_ms)
{
	int64_t deadline = util_mono_ms() + timeout_ms;
	PGresult *res;
	int rc = 0, st;

	if (PQsocket(conn) < 0 || PQsendQuery(conn, sql) != 1)
		return -1;
	while (PQflush(conn) == 1)
		if (util_mono_ms() > deadline)
			return -1;
	for (;;) {
		if (wait_ready(conn, deadline) == -1)
			return -1;
		if ((res = PQgetResult(conn)) == NULL)
			break;
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && rc == 0 && PQntuples(res) > 0 &&
		    strcmp(PQgetvalue(res, 0, 0), "t") == 0)
			rc = 1;
		else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
			rc = -1;
		PQclear(res);
	}
	return rc;
}
