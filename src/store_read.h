/*
 * store_read.h - a read connection to the database, for one thread.
 *
 * Sinks and the control socket each open their own, of the store's engine
 * (SQLite: WAL lets them read while the writer commits; PostgreSQL: a
 * connection of their own, which reconnects by itself).  Every call reads
 * one snapshot: a batch being committed is seen whole or not at all.  A
 * call that fails (-1 or NULL) may be tried again later.  Never share one
 * between threads.
 */
#ifndef VINR_STORE_READ_H
#define VINR_STORE_READ_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "payreq.h"

/* The most rows find, pending and dead return. */
#define STORE_READ_MAX	10000

struct store;
struct store_reader;

/*
 * A read connection to where store was opened, with its engine (and, for
 * PostgreSQL, its password).  NULL with a message in err on failure (never
 * the DSN or the password).  Free with store_reader_free(); it does not
 * need the store once open.
 */
struct store_reader	*store_reader_open(struct store *, char *err, size_t errlen);
void			 store_reader_free(struct store_reader *);

/*
 * Calls fn for each outcome with seq > after, in seq order, at most limit.
 * fn returns 0 to go on, anything else to stop early.  json is valid only
 * during the call.  Returns the number of outcomes passed to fn, or -1.
 */
typedef int (*outcome_fn)(void *arg, int64_t seq, const char *status,
    const char *json, int jsonlen);
int	store_reader_outcomes(struct store_reader *, int64_t after, int limit,
	    outcome_fn fn, void *arg);

/* The sink's saved cursor (0 when it has none), or -1 on error. */
int64_t	store_reader_cursor(struct store_reader *, const char *sink);

/*
 * Like store_reader_outcomes() without the JSON: the payment and status of
 * each outcome with seq > after, in seq order, at most limit.  For matching
 * outcomes to waiters cheaply.  Returns the number passed to fn, or -1.
 */
typedef int (*transition_fn)(void *arg, int64_t seq, const char *payment_id,
    const char *status);
int	store_reader_transitions(struct store_reader *, int64_t after, int limit,
	    transition_fn fn, void *arg);

/*
 * The PAYMENT object of SPEC §4 (exactly its keys, "reconcile" included) of
 * payment id.  Returns 1 with *out set (the caller cJSON_Delete()s it), 0
 * when the payment is unknown, -1 on error.
 */
int	store_reader_payment(struct store_reader *, const char *id, cJSON **out);

/*
 * The payments with this reference, newest createdAt first (a payment
 * without createdAt counts by updatedAt), as a new JSON array of PAYMENT
 * objects ([] when none; at most STORE_READ_MAX).  NULL on error.
 */
cJSON	*store_reader_find(struct store_reader *, const char *reference);

/*
 * The payments in pending or processing whose updated_at is at least
 * older_than_s seconds old, oldest first, as a new JSON array of PAYMENT
 * objects (at most STORE_READ_MAX).  NULL on error.
 */
cJSON	*store_reader_pending(struct store_reader *, int64_t older_than_s);

/*
 * The dead letters as a new JSON array of {"sink","seq","attempts",
 * "lastError","at"}, by sink then seq (at most STORE_READ_MAX).  NULL on error.
 */
cJSON	*store_reader_dead(struct store_reader *);

/* How many dead letters sink has, or -1. */
int64_t	store_reader_dead_count(struct store_reader *, const char *sink);

/*
 * Calls fn for each dead letter of sink marked for replay (store_replay()),
 * in seq order, with its outcome line (json is valid only during the call;
 * NULL, with jsonlen 0, if the outcome was pruned).  fn returns 0 to go on,
 * anything else to stop.  Returns the number passed to fn, or -1.
 */
typedef int (*replay_fn)(void *arg, int64_t seq, const char *json, int jsonlen);
int	store_reader_replays(struct store_reader *, const char *sink, replay_fn fn,
	    void *arg);

/*
 * The payments the reconciler should ask about now (SPEC §5): pending or
 * processing, unchanged since stale_before, not given up or not found, and
 * past their next try (now).  Oldest first, at most limit.  fn returns 0 to
 * go on.  Returns how many were passed to fn, or -1.
 */
typedef int (*rc_due_fn)(void *arg, const char *payment_id, int attempts,
    const char *updated_at);
int	store_reader_rc_due(struct store_reader *, const char *now,
	    const char *stale_before, int limit, rc_due_fn fn, void *arg);

/*
 * The pay request of key (SPEC §4.1).  Returns 1 with *out filled
 * (payreq_release it), 0 when there is none, -1 on error.
 */
int	store_reader_pay_request(struct store_reader *, const char *key,
	    struct pay_request *out);

/*
 * When the oldest request in state was committed: 1 with at set, 0 when
 * no request is in that state, -1 on error.
 */
int	store_reader_pay_oldest(struct store_reader *, enum payreq_state state,
	    char at[TS_LEN]);

#endif
