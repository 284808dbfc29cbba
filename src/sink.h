/*
 * sink.h - delivers outcomes, in seq order and at least once, to one
 * destination (SPEC §3).
 *
 * DESIGN: one thread per sink.  It reads the outcomes after its cursor with
 * its own read connection, hands each line to its driver (event log, hook,
 * socket), and after the driver's flush() moves the cursor through the
 * store's writer.  A crash loses nothing: the saved cursor says where to
 * resume, so a line may repeat but is never skipped.  The writer wakes the
 * thread through an eventfd after each commit with new outcomes.
 */
#ifndef VINR_SINK_H
#define VINR_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink;
struct store;

enum sink_rc {
	SINK_OK = 0,	/* delivered */
	SINK_FAIL,	/* this outcome failed: an attempt, backoff, then dead letter */
	SINK_DOWN	/* the destination is away: retry later, no attempt counted */
};

struct sink_ops {
	const char	*name;		/* cursor name: eventlog | hook | socket */
	/*
	 * Delivers one line (the outcome JSON and its '\n'; len counts it).
	 * On failure writes a short reason (no secrets) to err.
	 */
	enum sink_rc	(*deliver)(struct sink *, int64_t seq, const char *line,
			    size_t len, char *err, size_t errlen);
	/* Makes what was delivered durable before the cursor moves: 0 or -1. */
	int		(*flush)(struct sink *);
	/*
	 * Hands what was delivered to the destination without making it
	 * durable (the event log's write(2) without its fdatasync): 0 or -1.
	 * With it, flush() runs at most every SINK_SYNC_GAP_MS under load
	 * (and at once after a quiet moment); the cursor moves only after a
	 * flush.  May be NULL: then flush() runs for every batch.
	 */
	int		(*push)(struct sink *);
	/* SIGHUP: reopen files, reconnect.  May be NULL. */
	void		(*reopen)(struct sink *);
	/* Frees the driver's state (impl) in sink_free().  May be NULL. */
	void		(*close)(struct sink *);
};

struct sink_params {
	bool		 all_events;	/* every transition, or outcome statuses only */
	int		 max_attempts;	/* SINK_FAIL attempts before a dead letter */
	int64_t		 fail_cap_ms;	/* backoff cap after SINK_FAIL (1 s doubling) */
	int64_t		 down_cap_ms;	/* backoff cap after SINK_DOWN (1 s doubling) */
	/*
	 * The name of its cursor and dead letters in the database, copied;
	 * NULL: ops->name.  With postgres the per-instance sinks use
	 * "NAME@INSTANCE" (SPEC §8); what users see stays ops->name.
	 */
	const char	*cursor_key;
};

/*
 * Starts the sink's thread.  impl is the driver's state (sink_impl()): the
 * sink owns it from a successful start (ops->close frees it); on failure it
 * is still the caller's.  Returns NULL with a message in err on failure.
 */
struct sink	*sink_start(struct store *, const struct sink_ops *, void *impl,
		    const struct sink_params *, char *err, size_t errlen);
/* SIGHUP: asks for ops->reopen, run on the sink's own thread.  Not
 * async-signal-safe: call it from main's loop, not a signal handler. */
void		 sink_reopen(struct sink *);
/*
 * Stops the thread after the delivery in progress (the cursor is saved) and
 * removes the sink's store listener.  Never frees.  NULL ok; twice ok.
 */
void		 sink_stop(struct sink *);
/* Stops it if needed, frees the driver (ops->close), closes the eventfd,
 * frees it.  NULL ok. */
void		 sink_free(struct sink *);

/* For drivers: their state, the stop flag, a sign of life in long waits. */
void		*sink_impl(struct sink *);
bool		 sink_stopping(struct sink *);
void		 sink_tick(struct sink *);

/* For health and stats; any thread. */
const char	*sink_name(struct sink *);
/* Its thread ticked in the last 15 s. */
bool		 sink_alive(struct sink *);
/* The last seq delivered (or dead-lettered) and saved. */
int64_t		 sink_cursor(struct sink *);
/* Its dead letters: the rows of dead_letters, as of its last change. */
int64_t		 sink_dead_letters(struct sink *);
/* The last delivery failed and outcomes are still waiting (SPEC §1.4's
 * sink_failing warning). */
bool		 sink_failing(struct sink *);

#endif
