/*
 * reconcile.h - the reconciler (SPEC §5): asks VINR about payments stuck in
 * pending/processing, so that a missed webhook still ends in an outcome.
 *
 * DESIGN: one thread.  Each round it reads the payments that are due
 * (stale, and past their per-payment backoff) with its own read connection,
 * retrieves them one by one through the global rate limiter (at least
 * 1/max_rps s apart; a 429 pauses every request for its Retry-After), and
 * submits what it learns to the store as a synthetic event (source
 * "reconciler", id rcn_<paymentId>_<status>): the same dedupe and state
 * machine as a webhook.  On-demand requests (the control socket's
 * "reconcile") are queued to the same thread and go first.
 */
#ifndef VINR_RECONCILE_H
#define VINR_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>


struct reconciler;
struct store;

enum rc_state {
	RC_OK = 0,
	RC_PAUSED,	/* VINR refused the key (401/403) */
	RC_DISABLED	/* no API key configured */
};

/* The answer to an on-demand request. */
enum rc_answer {
	RC_ANSWER_OK = 0,	/* retrieved and applied; changed says if it moved */
	RC_ANSWER_NOT_FOUND,	/* VINR does not know the payment */
	RC_ANSWER_UPSTREAM,	/* VINR could not be asked (message says why) */
	RC_ANSWER_STOPPING
};

/*
 * Called on the reconciler thread when an on-demand request is done.  msg is
 * a short reason for RC_ANSWER_UPSTREAM (no secret), valid during the call.
 */
typedef void (*reconcile_done_fn)(void *arg, enum rc_answer, bool changed,
    const char *msg);

struct reconcile_stats {
	enum rc_state	state;
	uint64_t	requests;
	uint64_t	errors;
	/* Requests by VINR's answer: 200, 401, 403, 404, 429, 5xx, other, none. */
	uint64_t	by_status[8];
};

extern const char *const reconcile_status_labels[8];

/* What the reconciler needs of the configuration ([api], [reconciler], SPEC §6). */
struct reconcile_params {
	struct store	*store;		/* must outlive the reconciler */
	const char	*api_base;	/* checked: https, or http to loopback */
	const char	*api_key;	/* the key in use; copied, never logged */
	const char	*api_key_file;	/* SIGHUP reloads from here; NULL:
					 * the credential, then the env */
	int		 interval;	/* seconds between rounds */
	int		 stale_after;	/* seconds unchanged before a retrieve */
	int		 max_backoff;	/* cap of the per-payment backoff (s) */
	int		 give_up_after;	/* seconds unchanged before gave_up */
	double		 max_rps;	/* retrieves per second, > 0 */
	int		 timeout_s;	/* [api] timeout: one retrieve */
	/* Starts without rounds (postgres: until this instance leads, see
	 * reconcile_set_rounds()); on-demand requests are served anyway. */
	bool		 rounds_off;
};

/*
 * Starts the thread, or returns NULL with err set.  The params are copied
 * (strings included).
 */
struct reconciler	*reconcile_start(const struct reconcile_params *, char *err,
			    size_t errlen);
/*
 * Stops the thread; pending on-demand requests get RC_ANSWER_STOPPING.
 * Never frees.  NULL ok.
 */
void			 reconcile_stop(struct reconciler *);
/* Stops it if needed, then frees it.  NULL ok. */
void			 reconcile_free(struct reconciler *);
/*
 * Turns the rounds over due payments on or off (SPEC §8: on one instance at
 * a time).  Off takes effect before the next retrieve of a round; on-demand
 * "reconcile" requests are served either way.  Any thread.
 */
void			 reconcile_set_rounds(struct reconciler *, bool on);
/* SIGHUP: reload the API key (from the same sources) and leave "paused". */
void			 reconcile_reload(struct reconciler *);
/*
 * Queues an on-demand retrieve of payment_id.  done is called exactly once,
 * on the reconciler thread.  Returns 0, or -1 (out of memory / stopping).
 */
int			 reconcile_request(struct reconciler *, const char *payment_id,
			    reconcile_done_fn done, void *arg);
/* The counters so far; a NULL reconciler is RC_DISABLED with zeros. */
void			 reconcile_stats_get(struct reconciler *, struct reconcile_stats *);
/* Its thread ticked in the last minute (NULL: true).  Any thread. */
bool			 reconcile_alive(struct reconciler *);
const char		*reconcile_state_name(enum rc_state);

/*
 * The control socket's "reconcile" (struct control_reconciler's reconcile,
 * with arg the reconciler): reconcile_request() answered through
 * control_reconcile_done().
 */
int			 reconcile_control(void *reconciler, const char *payment_id,
			    void *req);

#endif
