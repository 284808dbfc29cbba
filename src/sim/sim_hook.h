/*
 * sim_hook.h - vinr-sim's webhook sender: a queue of signed deliveries, one
 * sender thread with libcurl, retries, and deliberate chaos (drop, duplicate,
 * delay, reorder).
 */
#ifndef VINR_SIM_HOOK_H
#define VINR_SIM_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "signature.h"

struct sim_hook_config {
	const char		*url;		/* NULL: events are recorded, never sent */
	enum sig_scheme		 scheme;
	const struct sig_key	*keys;		/* every key signs every delivery */
	size_t			 nkeys;
	const char		*signing_key_file; /* whsk_ keys: v1a too (standard) */
	double			 drop_rate;	/* 0..1 */
	double			 duplicate_rate;	/* 0..1 */
	int			 reorder;
	long			 reorder_window_ms;
	long			 delay_ms;	/* every delivery waits this long first */
	int			 max_retries;	/* retries after the first attempt */
	long			 timeout_ms;	/* per HTTP attempt */
	uint64_t		 seed;
};

struct sim_hook_stats {
	long	events;		/* events generated */
	long	sent;		/* deliveries answered 2xx (a duplicate counts twice) */
	long	dropped;	/* events never sent on purpose */
	long	duplicated;	/* events sent twice on purpose */
	long	attempts;	/* HTTP attempts, failed ones included */
	long	retried;	/* failed attempts that were scheduled again */
	long	failed;		/* deliveries given up after max_retries */
	long	queued;		/* deliveries waiting in the queue now */
};

/*
 * Copies what it needs from cfg (the keys included) and starts the sender
 * thread.  Returns NULL with a message in err on failure.
 */
struct sim_hook	*sim_hook_start(const struct sim_hook_config *cfg, char *err, size_t errlen);

/*
 * Records one event and queues its delivery; body is copied.  force_drop /
 * force_duplicate are the payment's own "simulate" wishes; the configured
 * rates apply on top.  Never blocks on the network.
 */
void	sim_hook_send(struct sim_hook *, const char *event_id, const char *type,
	    const char *payment_id, const char *status, const char *body,
	    int force_drop, int force_duplicate);

void	sim_hook_stats_get(struct sim_hook *, struct sim_hook_stats *);

/* Every event so far with its delivery state; the caller owns the array. */
cJSON	*sim_hook_events_json(struct sim_hook *);

/* Stops the thread (an attempt in flight is aborted), frees everything.
 * Deliveries still queued are logged and discarded.  Accepts NULL. */
void	sim_hook_stop(struct sim_hook *);

#endif
