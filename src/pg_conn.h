/*
 * pg_conn.h - the small libpq connections beside the store's own (SPEC §8):
 * the leader election's and the LISTEN for wake-ups.
 *
 * DESIGN: each is owned by one thread.  TCP keepalives and
 * tcp_user_timeout, on both ends (the server's through per-session
 * settings), make a dead peer noticed within the takeover time.  The
 * password is handed to libpq as a parameter, never written into a string.
 */
#ifndef VINR_PG_CONN_H
#define VINR_PG_CONN_H

#include <stdbool.h>

#include <libpq-fe.h>

/*
 * Connects to dsn with password (NULL: libpq's own sources), noticing a
 * dead peer within takeover_s seconds; app names it in pg_stat_activity.
 * Returns the connection, or NULL with libpq's reason in err (it holds no
 * password: libpq never prints one).
 */
PGconn	*pg_conn_open(const char *dsn, const char *password, int takeover_s,
	    const char *app, char *err, size_t errlen);

/*
 * Runs sql (one statement) and waits at most timeout_ms for its answer.
 * Returns 1 for a first value "t", 0 for any other value or no rows, -1
 * when it failed or timed out (the connection should then be dropped).
 */
int	 pg_conn_query(PGconn *, const char *sql, int timeout_ms);

#endif
