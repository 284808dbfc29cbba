/*
 * sim_pay.h - vinr-sim's terminal payments: the test cards, the in-memory
 * store, and the state machine that a ticker thread drives through time
 * (pending -> processing -> authorized | completed | failed | cancelled).
 * Every status change becomes a webhook event handed to sim_hook.
 */
#ifndef VINR_SIM_PAY_H
#define VINR_SIM_PAY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sim_hook.h"
#include "sim_util.h"

enum sim_card_kind {
	CARD_APPROVE,		/* authorized (manual) or completed (automatic) */
	CARD_DECLINE,		/* failed with the card's declineCode */
	CARD_HOLDER_CANCEL,	/* the cardholder cancels on the terminal: cancelled */
	CARD_TIMEOUT		/* no answer from the network: failed "timeout" late */
};

struct sim_card {
	const char		*number;	/* digits only */
	const char		*brand;
	enum sim_card_kind	 kind;
	const char		*decline_code;	/* CARD_DECLINE, CARD_TIMEOUT */
	const char		*description;
	int			 sim_only;	/* not one of the Cloud API page's cards */
};

#define SIM_DEFAULT_CARD	"4242424242424242"

/*
 * The card of that number, written with or without spaces ("4242 4242 4242
 * 4242" as VINR's page writes it, or "4242424242424242"), or NULL when it is
 * not a test card.
 */
const struct sim_card	*sim_card_find(const char *number);
/* The test card table as a JSON array; the caller owns it. */
cJSON			*sim_cards_json(void);

#define SIM_CAPTURE_TOLERANCE_PCT	20	/* default of --capture-tolerance */

struct sim_pay_config {
	const char *const	*terminals;	/* terminal ids that exist */
	size_t			 nterminals;
	int64_t			 timeout_after_ms;	/* CARD_TIMEOUT's extra processing time */
	/* How far a capture may exceed the authorized amount (a tip), in basis
	 * points; used only when capture_tolerance_set, else the default. */
	long			 capture_tolerance_bp;
	int			 capture_tolerance_set;
};

/*
 * Parses --capture-tolerance PCT (a percentage from 0 to 100, fractions
 * allowed) into cfg.  Returns 0, or -1 when pct is not such a number.
 */
int	sim_pay_config_tolerance(struct sim_pay_config *cfg, const char *pct);

/* A validated create request (sim_http.c checks the fields). */
struct sim_pay_request {
	const char		*terminal_id;
	long long		 amount;
	const char		*currency;	/* 3 upper-case letters */
	const char		*reference;	/* may be NULL */
	const struct sim_card	*card;
	int			 manual;	/* captureMethod manual */
	int			 sync;		/* responseMode sync */
	int64_t			 delay_ms;	/* ?simulateDelay */
	int			 drop_webhooks;		/* simulate.dropWebhooks */
	int			 duplicate_webhooks;	/* simulate.duplicateWebhooks */
};

struct sim_pay;

/* Starts the ticker thread.  hook must outlive the store. */
struct sim_pay	*sim_pay_start(const struct sim_pay_config *, struct sim_hook *hook,
		    char *err, size_t errlen);

/*
 * Each of these returns the payment object as the API shows it (the caller
 * owns it; cJSON_Delete), or NULL with e set (404 not_found,
 * 409 payment_not_cancellable, 409 payment_not_capturable, 400
 * invalid_request, 503 when stopping).  A create for a terminal that is
 * unknown, offline or busy still makes a payment: it answers it pending, and
 * the ticker fails it at once with declineCode terminal_not_found,
 * terminal_offline or terminal_busy, as VINR's Cloud API page says.
 */
cJSON	*sim_pay_create(struct sim_pay *, const struct sim_pay_request *,
	    char id_out[SIM_ID_LEN], struct sim_err *e);
cJSON	*sim_pay_get(struct sim_pay *, const char *id, struct sim_err *e);
cJSON	*sim_pay_cancel(struct sim_pay *, const char *id, struct sim_err *e);
cJSON	*sim_pay_capture(struct sim_pay *, const char *id, int has_amount,
	    long long amount, struct sim_err *e);
/* Blocks until the payment leaves pending/processing or timeout_ms pass;
 * *settled says which.  NULL when unknown, or 503 when the simulator stops. */
cJSON	*sim_pay_wait(struct sim_pay *, const char *id, int64_t timeout_ms,
	    int *settled, struct sim_err *e);

/* The terminals: {"terminals":[{"id","online","activePayment"}…]}. */
cJSON	*sim_pay_terminals_json(struct sim_pay *);
/*
 * Takes a terminal offline (online 0) or back online.  Going offline, the
 * terminal drops out of its active session: that payment fails with
 * declineCode communication_error.  Returns the terminal as in the list, or
 * NULL with e set (404 not_found).
 */
cJSON	*sim_pay_terminal_set(struct sim_pay *, const char *id, int online,
	    struct sim_err *e);

/* Every payment, oldest first: {"payments":[…],"counts":{STATUS:n,…}}. */
cJSON	*sim_pay_list_json(struct sim_pay *);
/* {"total":n, STATUS:n, …} */
cJSON	*sim_pay_counts_json(struct sim_pay *);

/* Refuses new payments and wakes every waiter; sim_pay_stop() then joins
 * the ticker and frees.  Both accept NULL. */
void	sim_pay_shutdown(struct sim_pay *);
void	sim_pay_stop(struct sim_pay *);

#endif
