/*
 * gateway.h - the pay gateway (SPEC §4.1): the control socket's pay, cancel
 * and capture, sent to VINR's Cloud API on a thread of their own so that
 * the control thread never waits for VINR.
 *
 * DESIGN: one thread, one curl handle, one queue (like the reconciler's
 * on-demand requests).  Calls are made one at a time, at least
 * GATEWAY_GAP_MS apart.  A pay commits its request (payreq.h) before it
 * calls VINR, and records what VINR said (created, not_created, unknown)
 * after; every payment VINR returns goes through the store as a synthetic
 * event (api_event.h, source "api", id api_<paymentId>_<status>).  At start
 * the requests left "sending" by a daemon that died are marked unknown;
 * about once a second the unknown ones older than [api] unknown_after are
 * marked not_created.  The answer goes back through a callback on the
 * gateway's thread (control_gateway_done(), through main's glue).
 */
#ifndef VINR_GATEWAY_H
#define VINR_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payreq.h"

#define GATEWAY_GAP_MS	100	/* at most 10 calls to VINR a second */

struct gateway;
struct store;

enum gateway_kind {
	GW_PAY,
	GW_CANCEL,
	GW_CAPTURE
};

/* One call, as the control socket hands it over.  Copied by gateway_call(). */
struct gateway_call {
	enum gateway_kind	 kind;
	/* GW_PAY: key, terminal_id, reference, currency, capture_method,
	 * amount (state and created_at are ignored). */
	struct pay_request	 req;
	const char		*test_card;	/* GW_PAY, sandbox keys only; NULL */
	const char		*simulate_delay; /* GW_PAY, sandbox only: seconds as text */
	const char		*payment_id;	/* GW_CANCEL, GW_CAPTURE */
	bool			 has_amount;	/* GW_CAPTURE: an amount to capture */
	int64_t			 amount;
};

/* The answer: strings valid during the callback only; never a secret. */
struct gateway_answer {
	const char	*error;		/* NULL: done; else a SPEC §4 code */
	const char	*message;	/* with error */
	long		 status;	/* upstream_error: VINR's HTTP status, 0 for none */
	const char	*code;		/* upstream_error: VINR's error code, or NULL */
	const char	*payment_id;	/* done: the payment, as stored now */
};

/* Called exactly once per call, on the gateway's thread (or in
 * gateway_stop()'s caller when it drops the queue: error "internal"). */
typedef void (*gateway_done_fn)(void *arg, const struct gateway_answer *);

struct gateway_params {
	struct store	*store;		/* must outlive the gateway */
	const char	*api_base;	/* checked: https, or http to loopback */
	const char	*api_key;	/* copied, never logged */
	const char	*api_key_file;	/* SIGHUP reloads from here; NULL: credential, env */
	int		 timeout_s;	/* [api] timeout */
	int		 unknown_after_s; /* [api] unknown_after */
};

struct gateway_stats {
	uint64_t	requests;	/* calls to VINR */
	uint64_t	errors;		/* calls without a 2xx answer */
	uint64_t	unknown;	/* creates whose outcome became unknown */
};

/* Starts the thread, or returns NULL with err set.  The params are copied. */
struct gateway	*gateway_start(const struct gateway_params *, char *err, size_t errlen);
/* Stops the thread; calls still queued are answered "internal".  Never
 * frees.  NULL ok. */
void		 gateway_stop(struct gateway *);
/* Stops it if needed, then frees it.  NULL ok. */
void		 gateway_free(struct gateway *);
/* SIGHUP: reload the API key from the same sources.  Any thread. */
void		 gateway_reload(struct gateway *);
/*
 * Queues a call (copied).  done(arg, answer) is called exactly once.
 * Returns 0, or -1 (out of memory, stopping: done is never called).
 */
int		 gateway_call(struct gateway *, const struct gateway_call *,
		    gateway_done_fn done, void *arg);
/* The counters so far; zeros for NULL.  Any thread. */
void		 gateway_stats_get(struct gateway *, struct gateway_stats *);
/* Its thread ticked recently (NULL: true).  Any thread. */
bool		 gateway_alive(struct gateway *);

#endif
