/*
 * leader.h - one hook runner and one reconciler among the instances that
 * share a PostgreSQL database (SPEC §8).
 *
 * DESIGN: a thread with its own connection tries a session-level advisory
 * lock (pg_try_advisory_lock) every second until it holds it, then calls
 * on_lead.  The lock lives as long as the session: when this process dies,
 * even by SIGKILL, the server releases it as soon as the socket closes.
 * While leading, the thread watches the connection (readable socket at
 * once, a "SELECT 1" every takeover/8 s, with a deadline of takeover/8 s,
 * and no more than takeover/4 s without a good answer); when it fails,
 * on_lose is called before anything else, so that nothing goes on
 * delivering without the lock, and the thread reconnects and competes
 * again.  The server's keepalives (pg_conn.h) drop a silent leader's
 * session, and so its lock, after about 7/8 takeover: later than the
 * leader gives up, and within takeover seconds.
 */
#ifndef VINR_LEADER_H
#define VINR_LEADER_H

#include <stdbool.h>
#include <stdint.h>

struct leader;

/* The advisory lock's key: "vinr" in ASCII. */
#define LEADER_LOCK_KEY	0x76696e72LL

struct leader_params {
	const char	*dsn;
	const char	*password;	/* NULL: libpq's own; the caller's, kept
					 * valid until leader_free() */
	int		 takeover;	/* seconds, at least 1 */
	int64_t		 lock_key;	/* 0: LEADER_LOCK_KEY */
	/* Called on the leader's thread: on_lead once the lock is held, on_lose
	 * once it may no longer be (also from leader_stop()).  They alternate,
	 * on_lead first.  on_lead returns 0, or -1 when it could not take up
	 * the work: then on_lose follows at once and the lock is given up, so
	 * that another instance (or this one, later) tries. */
	int		(*on_lead)(void *arg);
	void		(*on_lose)(void *arg);
	void		*arg;
};

/* Starts competing.  Returns NULL with a message in err on failure. */
struct leader	*leader_start(const struct leader_params *, char *err, size_t errlen);
/* True while this instance holds the lock.  Any thread; NULL: false. */
bool		 leader_is_leader(struct leader *);
/* Its thread ticked in the last 15 s (a blocked connect counts).  NULL: true. */
bool		 leader_alive(struct leader *);
/* Stops the thread; if leading, calls on_lose and closes the connection,
 * which releases the lock.  Never frees.  NULL ok; twice ok. */
void		 leader_stop(struct leader *);
/* Stops it if needed and frees.  NULL ok. */
void		 leader_free(struct leader *);

#endif
