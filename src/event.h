/*
 * event.h - a VINR webhook event, parsed and validated (SPEC §1.1, §1.4).
 *
 * Pure: no I/O, no globals.  Runs only on authenticated bodies.
 */
#ifndef VINR_EVENT_H
#define VINR_EVENT_H

#include <stddef.h>

#include "payment.h"

enum event_err {
	EVENT_OK = 0,
	EVENT_INVALID_JSON,	/* not JSON at all */
	EVENT_INVALID_EVENT	/* JSON, but no string id / type */
};

struct vinr_event {
	char		*id;		/* the dedupe key */
	char		*type;
	char		*created_at;	/* envelope createdAt, or NULL */
	/*
	 * ignore_reason is NULL when the event applies to a payment (pay is
	 * then filled, pay.status != PAY_NONE); otherwise a static phrase
	 * saying why it is stored but ignored.
	 */
	const char	*ignore_reason;
	struct payment	 pay;
};

/*
 * Parses body.  fallback_id, when not NULL, is the dedupe key to use if the
 * body has no "id" (Standard Webhooks' webhook-id, SPEC §1.3).
 * On EVENT_OK the caller owns ev's contents: free with event_release().
 * On error ev holds nothing to free.
 */
enum event_err	event_parse(const char *body, size_t len, const char *fallback_id,
		    struct vinr_event *ev);
void		event_release(struct vinr_event *);

#endif
