/*
 * payment.h - a payment's state and the monotonic state machine of SPEC §2.
 *
 * Pure: no I/O, no globals.  The store loads a payment, payment_apply()
 * decides what an incoming status means for it, and the store writes back.
 */
#ifndef VINR_PAYMENT_H
#define VINR_PAYMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

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

/*
 * The payment's fields, once: every reader and writer of a payment (event
 * parsing, the outcome line, the PAYMENT object, the hook's environment, the
 * SQL binding and row mapping) iterates this table instead of naming fields.
 * The order is PAYMENT_COLS's (store_int.h) and the PAYMENT object's keys.
 */
enum pay_field_id {
	PF_ID, PF_TERMINAL_ID, PF_REFERENCE, PF_STATUS, PF_AMOUNT, PF_AMOUNT_CAPTURED,
	PF_CURRENCY, PF_CAPTURE_METHOD, PF_ENTRY_METHOD, PF_BRAND, PF_LAST4,
	PF_AUTH_CODE, PF_DECLINE_CODE, PF_LIVEMODE, PF_CREATED_AT,
	PAY_NFIELDS
};

enum pay_ftype {
	PAY_FT_TEXT,	/* char *, NULL = unknown; SQL text, JSON string */
	PAY_FT_INT64,	/* int64_t and its bool has_ flag; SQL integer, JSON integer */
	PAY_FT_BOOL,	/* int: -1 unknown, 0, 1; SQL integer 0/1, JSON bool */
	PAY_FT_STATUS	/* enum pay_status, PAY_NONE = unknown; SQL text, JSON string */
};

struct pay_field {
	const char	*key;		/* JSON key of our outputs (SPEC §2, §4) */
	const char	*vinr_key;	/* key in VINR's payment object (SPEC §1.1);
					   NULL: not read from it */
	const char	*column;	/* SQL column of the payments table */
	enum pay_ftype	 type;
	size_t		 off;		/* offsetof(struct payment, the field) */
	size_t		 has_off;	/* PAY_FT_INT64: offsetof its has_ flag */
	const char	*env;		/* the hook's variable (SPEC §3), or NULL */
	bool		 outcome;	/* in the outcome line (SPEC §2) */
};

/* Indexed by enum pay_field_id. */
extern const struct pay_field pay_fields[PAY_NFIELDS];

/* True for the fields stored and passed as text (TEXT, STATUS), false for
 * those passed as integers (INT64, BOOL). */
bool		 pay_field_is_text(enum pay_field_id);
/* A TEXT field's string, or a STATUS field's name; NULL when unknown (and
 * for an integer field). */
const char	*pay_field_text(const struct payment *, enum pay_field_id);
/* An INT64 field, or a BOOL one as 0/1: true and *v when known, false (and
 * *v = 0) when unknown or a text field. */
bool		 pay_field_int(const struct payment *, enum pay_field_id, int64_t *v);
/* Sets a TEXT field to a copy of v, or a STATUS field to pay_status_parse(v);
 * v NULL = unknown.  Returns 0, or -1 on allocation failure (p unchanged). */
int		 pay_field_set_text(struct payment *, enum pay_field_id, const char *v);
/* Sets a TEXT field to v itself, a malloc'ed string p now owns (freed by
 * payment_release()); the field's old value is freed.  The parser hands
 * over cJSON's strings this way instead of copying them. */
void		 pay_field_take_text(struct payment *, enum pay_field_id, char *v);
/* Sets an INT64 field, or a BOOL one to v != 0; has false = unknown. */
void		 pay_field_set_int(struct payment *, enum pay_field_id, bool has, int64_t v);

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

/* "transition", "stale", "conflict": the events table's result. */
const char	*pay_decision_name(enum pay_decision);

/*
 * The payment a pay request is matched against after an event (terminal,
 * reference, amount, createdAt; payreq_link_ok()): obj's own fields where
 * it has them, else stored's, so that a stale event matches as its object
 * says.  A shallow view: its strings are stored's and obj's, never
 * released through it.
 */
struct payment	 payment_match_view(const struct payment *stored,
		    const struct payment *obj);

/* Fills the table's fields of dst that are unknown from src (for "track").
 * Returns 0, or -1 on allocation failure. */
int	payment_fill_missing(struct payment *dst, const struct payment *src);

/* An empty payment: every field unknown (livemode -1).  Holds nothing. */
void	payment_init(struct payment *);
/* Deep copy; returns 0 or -1 (dst then holds nothing). */
int	payment_copy(struct payment *dst, const struct payment *src);
/* Frees the strings and leaves p empty but for its integers; NULL is fine. */
void	payment_release(struct payment *);

/*
 * Adds the fields from .. to-1 of p to object o under their JSON keys, in
 * table order: null when unknown, integers exact (raw "%lld"), livemode a
 * bool.  The PAYMENT object is payment_add_json(o, p, 0, PAY_NFIELDS) and
 * then the store's own keys.  Returns 0, or -1 on allocation failure.
 */
int	payment_add_json(struct cJSON *o, const struct payment *p, enum pay_field_id from,
	    enum pay_field_id to);

/*
 * The outcome line of SPEC §2 (no trailing newline).  occurred_at and
 * recorded_at are passed through; event_id and source as given.
 * The caller owns the returned string (free(3)); NULL on allocation failure.
 */
char	*payment_outcome_json(const struct payment *p, enum pay_status prev,
	    int64_t seq, const char *event_id, const char *source,
	    const char *occurred_at, const char *recorded_at);

#endif
