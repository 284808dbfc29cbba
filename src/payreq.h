/*
 * payreq.h - a pay request of the control socket's "pay" (SPEC §4.1): what
 * the POS asked for under one key, and the rules that keep one key from
 * creating two payments.
 *
 * Pure: no I/O, no globals.  The store keeps the requests (sql/003); the
 * gateway (gateway.c) drives them through their states:
 *
 *   (none) ──pay──▶ sending ──VINR's payment──▶ created
 *                      │  └──4xx, or never sent──▶ not_created ──pay──▶ sending
 *                      └──no answer, timeout, 5xx, a crash──▶ unknown
 *   unknown ──a matching payment (webhook or retrieve)──▶ created
 *   unknown ──[api] unknown_after──▶ not_created
 */
#ifndef VINR_PAYREQ_H
#define VINR_PAYREQ_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

enum payreq_state {
	PR_NONE = 0,		/* no such request */
	PR_SENDING,
	PR_CREATED,
	PR_UNKNOWN,
	PR_NOT_CREATED
};

/* Seconds of clock difference allowed between VINR's createdAt and ours
 * when an unknown request is matched to a payment. */
#define PAYREQ_LINK_SLACK_S	5

/* Every string is owned by the struct (payreq_release frees them). */
struct pay_request {
	char		*key;
	char		*terminal_id;
	char		*reference;
	char		*currency;
	char		*capture_method;	/* "automatic" | "manual" */
	int64_t		 amount;
	enum payreq_state state;
	char		*payment_id;		/* NULL until created */
	char		 created_at[TS_LEN];	/* when it was committed */
};

/* Static name ("sending", ...), NULL for PR_NONE. */
const char	*payreq_state_name(enum payreq_state);
/* The state of a name; PR_NONE for anything else (NULL included). */
enum payreq_state payreq_state_parse(const char *);

/*
 * A pay asked again under a stored key: NULL when it asks for the same
 * payment, else the JSON name of the first field that differs
 * ("terminalId", "amount", "currency", "captureMethod").  The reference is
 * not compared: the key defaults to it, and a POS may reuse a key with
 * another reference only for the same payment.
 */
const char	*payreq_mismatch(const struct pay_request *stored,
		    const struct pay_request *asked);

/* Whether a pay under a key in this state creates a payment (again). */
bool		 payreq_may_create(enum payreq_state);

/*
 * Whether a payment may resolve an unknown request committed at
 * req_created_at (our RFC 3339): it must have been created after the
 * request, by VINR's createdAt (give or take PAYREQ_LINK_SLACK_S), or, when
 * it has no usable createdAt, be new to the daemon (pay_new).  The caller
 * has matched terminal, reference and amount already.
 */
bool		 payreq_link_ok(const char *req_created_at, const char *pay_created_at,
		    bool pay_new);

/* Seconds since the epoch of an RFC 3339 time ("Z" or "+hh:mm"), or -1. */
int64_t		 payreq_time_s(const char *ts);

/* An empty request.  Holds nothing. */
void		 payreq_init(struct pay_request *);
/* Deep copy; 0, or -1 (dst then holds nothing). */
int		 payreq_copy(struct pay_request *dst, const struct pay_request *src);
/*
 * A stored row: the columns of PAYREQ_COLS (store_int.h) in their order,
 * each as text or NULL for SQL NULL (col[5], the amount, is not read: it
 * comes as amount).  Fills r; 0, or -1 out of memory (r holds nothing).
 */
#define PAYREQ_NCOLS	9
int		 payreq_from_columns(struct pay_request *r,
		    const char *const col[PAYREQ_NCOLS], int64_t amount);
/* Frees the strings; NULL ok. */
void		 payreq_release(struct pay_request *);

#endif
