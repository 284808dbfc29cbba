/*
 * pg_listen.h - cross-instance wake-ups (SPEC §8): outcomes committed by
 * another instance wake this one's sinks, "wait" and "subscribe".
 *
 * DESIGN: a thread with its own connection does LISTEN vinr_outcomes; each
 * notification's payload is the decimal seq its sender committed up to ("0"
 * for a replay mark), handed to store_wake().  NOTIFY is not stored, so
 * after every (re)connect it wakes the listeners once to re-read, and while
 * the connection is down it wakes them every second: they poll.
 */
#ifndef VINR_PG_LISTEN_H
#define VINR_PG_LISTEN_H

#include <stdbool.h>

struct pg_listen;
struct store;

#define PG_LISTEN_CHANNEL	"vinr_outcomes"

struct pg_listen_params {
	const char	*dsn;
	const char	*password;	/* NULL: libpq's own; kept valid until
					 * pg_listen_free() */
	int		 takeover;	/* seconds: how soon a dead peer is seen */
	struct store	*store;		/* store_wake() on it */
};

/* Starts the thread.  NULL with a message in err on failure. */
struct pg_listen	*pg_listen_start(const struct pg_listen_params *, char *err,
			    size_t errlen);
/* True while LISTEN is in place.  Any thread; NULL: false. */
bool			 pg_listen_connected(struct pg_listen *);
/* Stops the thread.  Never frees.  NULL ok; twice ok. */
void			 pg_listen_stop(struct pg_listen *);
/* Stops it if needed, closes the connection and frees.  NULL ok. */
void			 pg_listen_free(struct pg_listen *);

#endif
