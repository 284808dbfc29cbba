/*
 * payment.h - a payment's state and the monotonic state machine of SPEC §2.
 *
 * Pure: no I/O, no globals.  The store loads a payment, payment_apply()
 * decides what an incoming status means for it, and the store writes back.
 */
#ifndef VINR_PAYMENT_H
#define VINR_PAYMENT_H

#include <stdbool.h>
#include <stdint.h>

enum pay_status {
	PAY_NONE = 0,		/* unknown payment / unknown status */
	PAY_PENDING,
	PAY_PROCESSING,
	PAY_AUTHORIZED,
	PAY_COMPLETED,
	PAY_FAILED,
	PAY_CANCELLED
};

/*
 * Every string is owned by the struct (payment_release frees them); NULL
 * means unknown.  status_at is transient: the incoming object's timestamp for
 * its own status (completedAt for completed, ...), used for occurredAt only.
 */
struct payment {
	char		*id;
	char		*terminal_id;
	char		*reference;
	char		*currency;
	char		*capture_method;
	char		*entry_method;
	char		*brand;
	char		*last4;
	char		*auth_code;
	char		*decline_code;
	char		*created_at;
	char		*status_at;
	enum pay_status	 status;
	bool		 has_amount;
	int64_t		 amount;
	bool		 has_amount_captured;
	int64_t		 amount_captured;
	int		 livemode;	/* -1 unknown, 0, 1 */
};

enum pay_decision {
	PAY_TRANSITION,		/* status changed: a new seq and an outcome */
	PAY_STALE,		/* equal or lower rank: nothing changes */
	PAY_CONFLICT		/* a different final status: the first stays */
};

/* "pending" ... ; PAY_NONE for anything else (NULL included). */
enum pay_status	 pay_status_parse(const char *);
/* Static name, or NULL for PAY_NONE. */
const char	*pay_status_name(enum pay_status);
/* pending 1, processing 2, authorized 3, finals 4, PAY_NONE 0. */
int		 pay_status_rank(enum pay_status);
bool		 pay_status_is_final(enum pay_status);
/* authorized, completed, failed, cancelled: the statuses that are outcomes. */
bool		 pay_status_is_outcome(enum pay_status);

/*
 * Applies an incoming payment object to the stored one.  cur->status ==
 * PAY_NONE means the payment is unknown: it is created from in.  On
 * PAY_TRANSITION cur is updated (known fields of in replace stored ones,
 * amountCaptured per SPEC §2) and *prev is the status before; otherwise cur
 * is left untouched.  in->status must not be PAY_NONE.
 * Returns the decision, or -1 on allocation failure (cur then unchanged).
 */
int	payment_apply(struct payment *cur, const struct payment *in, enum pay_status *prev);

/* Fills the fields of dst that are NULL/unknown from src (for "track").
 * Returns 0, or -1 on allocation failure. */
int	payment_fill_missing(struct payment *dst, const struct payment *src);

/* Deep copy; returns 0 or -1. */
int	payment_copy(struct payment *dst, const struct payment *src);
void	payment_release(struct payment *);

/*
 * The outcome line of SPEC §2 (no trailing newline).  occurred_at and
 * recorded_at are passed through; event_id and source as given.
 * The caller owns the returned string (free(3)); NULL on allocation failure.
 */
char	*payment_outcome_json(const struct payment *p, enum pay_status prev,
	    int64_t seq, const char *event_id, const char *source,
	    const char *occurred_at, const char *recorded_at);

#endif
