/*
 * api_event.h - a payment object that VINR's API returned, applied through
 * the store as if it were a webhook (SPEC §4.1, §5): a synthetic event with
 * the id <prefix>_<paymentId>_<status>, so that the same status later, by
 * webhook, retrieve or API, is a no-op.
 */
#ifndef VINR_API_EVENT_H
#define VINR_API_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct api_event {
	/* in */
	const char	*source;	/* "reconciler" | "api" */
	const char	*prefix;	/* "rcn" | "api" */
	const char	*expect_id;	/* the payment asked about; NULL: any */
	const char	*pay_key;	/* see struct store_ingest */
	/* out */
	char		 payment_id[256];
	char		 status[32];
	bool		 changed;	/* a transition was committed */
	int64_t		 seq;		/* its seq, 0 if none */
};

/*
 * Applies VINR's answer body (len bytes, a payment object) through store
 * and blocks until committed.  Returns 0, -1 when the body is not a usable
 * payment object (not JSON, no id or status, another id than expect_id),
 * or -2 when the store could not commit it.
 */
int	api_event_apply(struct store *, const char *body, size_t len,
	    struct api_event *ae);

#endif
