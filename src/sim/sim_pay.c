/*
 * sim_pay.c - see sim_pay.h.
 *
 * DESIGN.  All payments live in memory behind one mutex (p->mu) for the
 * simulator's whole run.  Three kinds of threads touch them:
 * - HTTP connection threads create, read, cancel and capture, and a sync
 *   create sleeps on p->changed until its payment settles;
 * - the ticker thread sleeps until the earliest scheduled step of an active
 *   payment (p->tick), then moves every due payment on;
 * - the webhook sender is never called back: a status change hands its event
 *   to sim_hook_send() while p->mu is held, so one payment's events enter
 *   the queue in the order they happened (hook->mu is the inner lock).
 * A payment's schedule is fixed at creation from ?simulateDelay=D: pending
 * until D/2 (the terminal waits for the card), processing until D, then the
 * card's outcome.  A payment that its terminal refuses (unknown, offline,
 * busy: the decline codes of VINR's page) is due at once and fails from
 * pending.  Payments are never freed before the simulator stops, so a
 * pointer found under the lock stays valid across a condition wait.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sim_pay.h"

enum pay_status {
	PAY_PENDING = 0,
	PAY_PROCESSING,
	PAY_AUTHORIZED,
	PAY_COMPLETED,
	PAY_FAILED,
	PAY_CANCELLED,
	PAY_NSTATUS
};

static const char *const status_names[PAY_NSTATUS] = {
	"pending", "processing", "authorized", "completed", "failed", "cancelled"
};

/* The Cloud API page's five cards first, then the simulator's own. */
static const struct sim_card cards[] = {
	{ "4242424242424242", "visa", CARD_APPROVE, NULL, "approved", 0 },
	{ "4000000000000002", "visa", CARD_DECLINE, "card_declined", "generic decline", 0 },
	{ "4000000000009995", "visa", CARD_DECLINE, "insufficient_funds", "insufficient funds",
	    0 },
	{ "4000000000000069", "visa", CARD_DECLINE, "expired_card", "expired card", 0 },
	{ "4100000000000019", "visa", CARD_DECLINE, "lost_or_stolen",
	    "card flagged by the card network", 0 },
	{ "5555555555554444", "mastercard", CARD_APPROVE, NULL, "approved", 1 },
	{ "378282246310005", "amex", CARD_APPROVE, NULL, "approved", 1 },
	{ "4000000000000127", "visa", CARD_DECLINE, "incorrect_cvc", "incorrect CVC", 1 },
	{ "4000000000000119", "visa", CARD_DECLINE, "processing_error", "processing error", 1 },
	{ "4000000000000408", "visa", CARD_DECLINE, "communication_error",
	    "the terminal loses its connection while the authorization is in flight", 1 },
	{ "4000000000000259", "visa", CARD_HOLDER_CANCEL, NULL,
	    "no card is presented: the cardholder cancels on the terminal", 1 },
	{ "4000000000003220", "visa", CARD_TIMEOUT, "timeout",
	    "no answer from the card network: stays processing, then fails", 1 },
};

struct sim_payment {
	char			 id[SIM_ID_LEN];
	char			*terminal;
	char			*reference;
	long long		 amount;
	long long		 amount_captured;
	char			 currency[4];
	enum pay_status		 status;
	int			 manual, sync;
	const struct sim_card	*card;
	char			 auth_code[8];	/* "" = null */
	const char		*decline_code;
	const char		*preset_fail;	/* fails with it at once (terminal_…) */
	const char		*cancel_reason;
	int64_t			 created_ms, authorized_ms, completed_ms, failed_ms,
				 cancelled_ms;	/* wall clock, 0 = null */
	int64_t			 start_mono, delay_ms;
	int64_t			 next_mono;	/* next scheduled step, 0 = none */
	int			 drop_webhooks, duplicate_webhooks;
};

struct terminal {
	const char		*id;
	struct sim_payment	*busy;		/* its pending/processing payment */
	int			 online;
};

struct sim_pay {
	pthread_mutex_t		 mu;
	pthread_cond_t		 tick;		/* the ticker's: schedule changed */
	pthread_cond_t		 changed;	/* broadcast on every status change */
	struct sim_payment	**all;
	size_t			 nall, capall;
	struct sim_payment	**active;	/* those with next_mono != 0 */
	size_t			 nactive, capactive;
	struct terminal		*terms;
	size_t			 nterms;
	struct sim_hook		*hook;
	int64_t			 timeout_after_ms;
	long			 capture_tolerance_bp;
	int			 stopping;
	pthread_t		 ticker;
};

const struct sim_card *
sim_card_find(const char *number)
{
	char digits[32];
	size_t n = 0;

	/* VINR's page writes its cards in groups of four: accept both forms. */
	for (; *number != '\0'; number++) {
		if (*number == ' ')
			continue;
		if (*number < '0' || *number > '9' || n == sizeof(digits) - 1)
			return NULL;
		digits[n++] = *number;
	}
	digits[n] = '\0';
	for (size_t i = 0; i < sizeof(cards) / sizeof(cards[0]); i++)
		if (strcmp(cards[i].number, digits) == 0)
			return &cards[i];
	return NULL;
}

static const char *
card_outcome(const struct sim_card *c)
{
	switch (c->kind) {
	case CARD_APPROVE:
		return "approved";
	case CARD_DECLINE:
		return "declined";
	case CARD_HOLDER_CANCEL:
		return "cancelled";
	case CARD_TIMEOUT:
		return "timeout";
	}
	return "?";
}

cJSON *
sim_cards_json(void)
{
	cJSON *arr = cJSON_CreateArray(), *o;

	for (size_t i = 0; arr != NULL && i < sizeof(cards) / sizeof(cards[0]); i++) {
		if ((o = cJSON_CreateObject()) == NULL)
			break;
		cJSON_AddStringToObject(o, "number", cards[i].number);
		cJSON_AddStringToObject(o, "brand", cards[i].brand);
		cJSON_AddStringToObject(o, "outcome", card_outcome(&cards[i]));
		if (cards[i].decline_code != NULL)
			cJSON_AddStringToObject(o, "declineCode", cards[i].decline_code);
		else
			cJSON_AddNullToObject(o, "declineCode");
		cJSON_AddStringToObject(o, "description", cards[i].description);
		cJSON_AddBoolToObject(o, "simOnly", cards[i].sim_only);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

/* ---- the payment object ------------------------------------------------ */

static void
add_str(cJSON *o, const char *k, const char *v)
{
	if (v != NULL && *v != '\0')
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void
add_time(cJSON *o, const char *k, int64_t ms)
{
	char ts[TS_LEN];

	if (ms == 0) {
		cJSON_AddNullToObject(o, k);
		return;
	}
	sim_rfc3339(ms, ts);
	cJSON_AddStringToObject(o, k, ts);
}

/*
 * The payment as the API returns it.  The keys of a pending, a completed
 * (automatic capture) and a failed payment, and their order, are exactly
 * those of the Cloud API page's examples: a key that does not apply to the
 * status is left out rather than sent as null.  The page shows no processing,
 * authorized or cancelled payment; for those the sim picks the nearest
 * example (docs/vinr-sim.md says which keys are its own).
 */
static cJSON *
pay_json(const struct sim_payment *pay)
{
	int approved = pay->status == PAY_AUTHORIZED || pay->status == PAY_COMPLETED;
	size_t n = strlen(pay->card->number);
	cJSON *o;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "id", pay->id);
	cJSON_AddStringToObject(o, "terminalId", pay->terminal);
	cJSON_AddNumberToObject(o, "amount", (double)pay->amount);
	if (approved)
		cJSON_AddNumberToObject(o, "amountCaptured", (double)pay->amount_captured);
	cJSON_AddStringToObject(o, "currency", pay->currency);
	add_str(o, "reference", pay->reference);
	cJSON_AddStringToObject(o, "status", status_names[pay->status]);
	if (approved)
		cJSON_AddStringToObject(o, "captureMethod", pay->manual ? "manual" : "automatic");
	cJSON_AddStringToObject(o, "responseMode", pay->sync ? "sync" : "async");
	if (approved) {
		cJSON_AddStringToObject(o, "entryMethod", "contactless");
		cJSON_AddStringToObject(o, "last4", pay->card->number + (n >= 4 ? n - 4 : 0));
		cJSON_AddStringToObject(o, "brand", pay->card->brand);
		cJSON_AddStringToObject(o, "authCode", pay->auth_code);
	}
	if (pay->status == PAY_FAILED)
		cJSON_AddStringToObject(o, "declineCode", pay->decline_code);
	if (pay->status == PAY_CANCELLED)
		cJSON_AddStringToObject(o, "cancellationReason", pay->cancel_reason);
	add_time(o, "createdAt", pay->created_ms);
	if (approved && pay->manual)
		add_time(o, "authorizedAt", pay->authorized_ms);
	if (pay->status == PAY_COMPLETED)
		add_time(o, "completedAt", pay->completed_ms);
	if (pay->status == PAY_FAILED)
		add_time(o, "failedAt", pay->failed_ms);
	if (pay->status == PAY_CANCELLED)
		add_time(o, "cancelledAt", pay->cancelled_ms);
	return o;
}

/* ---- transitions (p->mu held) ------------------------------------------ */

static void
emit(struct sim_pay *p, const struct sim_payment *pay, const char *type, int64_t now_ms)
{
	cJSON *ev, *data, *obj;
	char id[SIM_ID_LEN], ts[TS_LEN], *body;

	sim_new_id("evt_", id);
	sim_rfc3339(now_ms, ts);
	if ((ev = cJSON_CreateObject()) == NULL || (obj = pay_json(pay)) == NULL) {
		cJSON_Delete(ev);
		log_warnx("sim: out of memory, event for %s lost", pay->id);
		return;
	}
	cJSON_AddStringToObject(ev, "id", id);
	cJSON_AddStringToObject(ev, "object", "event");
	cJSON_AddStringToObject(ev, "type", type);
	cJSON_AddStringToObject(ev, "createdAt", ts);
	cJSON_AddFalseToObject(ev, "livemode");
	if ((data = cJSON_AddObjectToObject(ev, "data")) != NULL)
		cJSON_AddItemToObject(data, "object", obj);
	else
		cJSON_Delete(obj);
	body = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	if (body == NULL) {
		log_warnx("sim: out of memory, event for %s lost", pay->id);
		return;
	}
	sim_hook_send(p->hook, id, type, pay->id, status_names[pay->status], body,
	    pay->drop_webhooks, pay->duplicate_webhooks);
	free(body);
}

static void
active_remove(struct sim_pay *p, struct sim_payment *pay)
{
	for (size_t i = 0; i < p->nactive; i++)
		if (p->active[i] == pay) {
			p->active[i] = p->active[--p->nactive];
			return;
		}
}

static struct terminal *
terminal_find(struct sim_pay *p, const char *id)
{
	for (size_t i = 0; i < p->nterms; i++)
		if (strcmp(p->terms[i].id, id) == 0)
			return &p->terms[i];
	return NULL;
}

/*
 * Moves pay to status, stamps the status's time, frees its terminal once the
 * card interaction is over, and sends the event (type NULL: by status).
 */
static void
set_status(struct sim_pay *p, struct sim_payment *pay, enum pay_status st, const char *type)
{
	int64_t now = util_now_ms();
	enum pay_status old = pay->status;
	char tbuf[64];
	struct terminal *t;

	pay->status = st;
	switch (st) {
	case PAY_PENDING:
		break;
	case PAY_PROCESSING:
		break;
	case PAY_AUTHORIZED:
		pay->authorized_ms = now;
		break;
	case PAY_COMPLETED:
		if (pay->authorized_ms == 0)
			pay->authorized_ms = now;
		pay->completed_ms = now;
		break;
	case PAY_FAILED:
		pay->failed_ms = now;
		break;
	case PAY_CANCELLED:
		pay->cancelled_ms = now;
		break;
	case PAY_NSTATUS:
		break;
	}
	if (st >= PAY_AUTHORIZED) {
		pay->next_mono = 0;
		active_remove(p, pay);
		if ((t = terminal_find(p, pay->terminal)) != NULL && t->busy == pay)
			t->busy = NULL;
	}
	if (type == NULL) {
		snprintf(tbuf, sizeof(tbuf), "terminal_payment.%s",
		    st == PAY_PENDING ? "created" : status_names[st]);
		type = tbuf;
	}
	if (st == PAY_PENDING)
		log_info("payment %s created: %s %lld %s card %s %s %s", pay->id, pay->terminal,
		    pay->amount, pay->currency, pay->card->number, pay->manual ? "manual" :
		    "automatic", pay->sync ? "sync" : "async");
	else
		log_info("payment %s %s -> %s%s%s%s", pay->id, status_names[old],
		    status_names[st], pay->decline_code ? " (" : "",
		    pay->decline_code ? pay->decline_code : "", pay->decline_code ? ")" : "");
	emit(p, pay, type, now);
	pthread_cond_broadcast(&p->changed);
}

static void
make_auth_code(char out[8])
{
	static const char al[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
	uint64_t r = sim_rand_entropy();

	for (int i = 0; i < 6; i++) {
		out[i] = al[r % (sizeof(al) - 1)];
		r /= sizeof(al) - 1;
	}
	out[6] = '\0';
}

/* The card's verdict at the end of processing. */
static void
decide(struct sim_pay *p, struct sim_payment *pay)
{
	switch (pay->card->kind) {
	case CARD_APPROVE:
		make_auth_code(pay->auth_code);
		if (pay->manual) {
			set_status(p, pay, PAY_AUTHORIZED, NULL);
		} else {
			pay->amount_captured = pay->amount;
			set_status(p, pay, PAY_COMPLETED, NULL);
		}
		break;
	case CARD_DECLINE:
	case CARD_TIMEOUT:
		pay->decline_code = pay->card->decline_code;
		set_status(p, pay, PAY_FAILED, NULL);
		break;
	case CARD_HOLDER_CANCEL:	/* cancelled in end_pending() */
		break;
	}
}

/*
 * The end of pending, when the card would be presented: a payment refused at
 * creation fails (it never reaches the terminal), the cancel card is
 * cancelled on the terminal, any other card moves on to processing.
 */
static void
end_pending(struct sim_pay *p, struct sim_payment *pay)
{
	if (pay->preset_fail != NULL) {
		pay->decline_code = pay->preset_fail;
		set_status(p, pay, PAY_FAILED, NULL);
	} else if (pay->card->kind == CARD_HOLDER_CANCEL) {
		pay->cancel_reason = "cardholder";
		set_status(p, pay, PAY_CANCELLED, NULL);
	} else {
		pay->next_mono = pay->start_mono + pay->delay_ms;
		if (pay->card->kind == CARD_TIMEOUT)
			pay->next_mono += p->timeout_after_ms;
		if (pay->next_mono == 0)	/* 0 means "none" */
			pay->next_mono = 1;
		set_status(p, pay, PAY_PROCESSING, NULL);
	}
}

/* Takes pay through every step due by now; several when the delay is 0. */
static void
advance(struct sim_pay *p, struct sim_payment *pay, int64_t now)
{
	while (pay->next_mono != 0 && pay->next_mono <= now) {
		if (pay->status == PAY_PENDING) {
			end_pending(p, pay);
		} else if (pay->status == PAY_PROCESSING) {
			decide(p, pay);		/* clears next_mono */
		} else {
			pay->next_mono = 0;
			active_remove(p, pay);
		}
	}
}

static void *
ticker(void *arg)
{
	struct sim_pay *p = arg;
	struct timespec ts;
	int64_t now, next;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		now = util_mono_ms();
		next = 0;
		/* advance() may remove from active: walk it backwards. */
		for (size_t i = p->nactive; i-- > 0;) {
			if (i >= p->nactive)
				continue;
			advance(p, p->active[i], now);
		}
		for (size_t i = 0; i < p->nactive; i++)
			if (next == 0 || p->active[i]->next_mono < next)
				next = p->active[i]->next_mono;
		if (next == 0) {
			pthread_cond_wait(&p->tick, &p->mu);
		} else if (next > now) {
			util_deadline(&ts, next - now);
			pthread_cond_timedwait(&p->tick, &p->mu, &ts);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- API --------------------------------------------------------------- */

struct sim_pay *
sim_pay_start(const struct sim_pay_config *cfg, struct sim_hook *hook, char *err,
    size_t errlen)
{
	struct sim_pay *p;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->terms = calloc(cfg->nterminals, sizeof(*p->terms))) == NULL) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->nterminals; i++)
		p->terms[i].id = cfg->terminals[i];
	p->nterms = cfg->nterminals;
	for (size_t i = 0; i < cfg->nterminals; i++)
		p->terms[i].online = 1;
	p->hook = hook;
	p->timeout_after_ms = cfg->timeout_after_ms;
	p->capture_tolerance_bp = cfg->capture_tolerance_set ? cfg->capture_tolerance_bp :
	    SIM_CAPTURE_TOLERANCE_PCT * 100L;
	pthread_mutex_init(&p->mu, NULL);
	util_cond_init(&p->tick);
	util_cond_init(&p->changed);
	if (pthread_create(&p->ticker, NULL, ticker, p) != 0) {
		snprintf(err, errlen, "cannot start the payment ticker thread");
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->tick);
		pthread_cond_destroy(&p->changed);
		free(p->terms);
		free(p);
		return NULL;
	}
	return p;
}

/* Makes room for one more pointer in *arr; 0 or -1. */
static int
grow(struct sim_payment ***arr, size_t *cap, size_t n)
{
	struct sim_payment **nv;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	if ((nv = realloc(*arr, c * sizeof(*nv))) == NULL)
		return -1;
	*arr = nv;
	*cap = c;
	return 0;
}

static struct sim_payment *
find(struct sim_pay *p, const char *id)
{
	for (size_t i = p->nall; i-- > 0;)
		if (strcmp(p->all[i]->id, id) == 0)
			return p->all[i];
	return NULL;
}

/*
 * The page's error table makes an unknown, offline or busy terminal a decline
 * code, not an HTTP error: the payment is made, and fails as its first step.
 */
static const char *
terminal_refusal(struct terminal *t)
{
	if (t == NULL)
		return "terminal_not_found";
	if (!t->online)
		return "terminal_offline";
	if (t->busy != NULL)
		return "terminal_busy";
	return NULL;
}

cJSON *
sim_pay_create(struct sim_pay *p, const struct sim_pay_request *rq, char id_out[SIM_ID_LEN],
    struct sim_err *e)
{
	struct sim_payment *pay = NULL;
	struct terminal *t;
	cJSON *o;

	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		sim_err_set(e, 503, "service_unavailable", "the simulator is stopping");
		goto fail;
	}
	t = terminal_find(p, rq->terminal_id);
	if ((pay = calloc(1, sizeof(*pay))) == NULL ||
	    (pay->terminal = strdup(rq->terminal_id)) == NULL ||
	    (rq->reference != NULL && (pay->reference = strdup(rq->reference)) == NULL) ||
	    grow(&p->all, &p->capall, p->nall) == -1 ||
	    grow(&p->active, &p->capactive, p->nactive) == -1) {
		sim_err_set(e, 500, "internal_error", "out of memory");
		goto fail;
	}
	sim_new_id("tpay_", pay->id);
	pay->amount = rq->amount;
	snprintf(pay->currency, sizeof(pay->currency), "%s", rq->currency);
	pay->status = PAY_PENDING;
	pay->manual = rq->manual;
	pay->sync = rq->sync;
	pay->card = rq->card;
	pay->created_ms = util_now_ms();
	pay->start_mono = util_mono_ms();
	pay->delay_ms = rq->delay_ms;
	pay->preset_fail = terminal_refusal(t);
	pay->next_mono = pay->start_mono + (pay->preset_fail != NULL ? 0 : rq->delay_ms / 2);
	if (pay->next_mono == 0)	/* 0 means "none" */
		pay->next_mono = 1;
	pay->drop_webhooks = rq->drop_webhooks;
	pay->duplicate_webhooks = rq->duplicate_webhooks;
	p->all[p->nall++] = pay;
	p->active[p->nactive++] = pay;
	if (pay->preset_fail == NULL)
		t->busy = pay;
	set_status(p, pay, PAY_PENDING, NULL);
	o = pay_json(pay);
	memcpy(id_out, pay->id, SIM_ID_LEN);
	pthread_cond_signal(&p->tick);
	pthread_mutex_unlock(&p->mu);
	if (o == NULL)
		sim_err_set(e, 500, "internal_error", "out of memory");
	return o;
fail:
	pthread_mutex_unlock(&p->mu);
	if (pay != NULL) {
		free(pay->terminal);
		free(pay->reference);
		free(pay);
	}
	return NULL;
}

static cJSON *
answer(struct sim_payment *pay, struct sim_err *e)
{
	cJSON *o = pay_json(pay);

	if (o == NULL)
		sim_err_set(e, 500, "internal_error", "out of memory");
	return o;
}

cJSON *
sim_pay_get(struct sim_pay *p, const char *id, struct sim_err *e)
{
	struct sim_payment *pay;
	cJSON *o = NULL;

	pthread_mutex_lock(&p->mu);
	if ((pay = find(p, id)) == NULL)
		sim_err_set(e, 404, "not_found", "no payment %s", id);
	else
		o = answer(pay, e);
	pthread_mutex_unlock(&p->mu);
	return o;
}

cJSON *
sim_pay_cancel(struct sim_pay *p, const char *id, struct sim_err *e)
{
	struct sim_payment *pay;
	cJSON *o = NULL;

	pthread_mutex_lock(&p->mu);
	if ((pay = find(p, id)) == NULL) {
		sim_err_set(e, 404, "not_found", "no payment %s", id);
	} else if (pay->status != PAY_PENDING) {
		sim_err_set(e, 409, "payment_not_cancellable", "payment %s is %s; only a "
		    "pending payment can be cancelled", id, status_names[pay->status]);
	} else {
		pay->cancel_reason = "requested";
		set_status(p, pay, PAY_CANCELLED, NULL);
		o = answer(pay, e);
	}
	pthread_mutex_unlock(&p->mu);
	return o;
}

/* The most that may be captured: the authorized amount plus the tolerance
 * (a tip), rounded down to a whole minor unit. */
static long long
capture_max(const struct sim_pay *p, const struct sim_payment *pay)
{
	return pay->amount + pay->amount * p->capture_tolerance_bp / 10000;
}

cJSON *
sim_pay_capture(struct sim_pay *p, const char *id, int has_amount, long long amount,
    struct sim_err *e)
{
	struct sim_payment *pay;
	cJSON *o = NULL;

	pthread_mutex_lock(&p->mu);
	if ((pay = find(p, id)) == NULL) {
		sim_err_set(e, 404, "not_found", "no payment %s", id);
	} else if (pay->status != PAY_AUTHORIZED) {
		sim_err_set(e, 409, "payment_not_capturable", "payment %s is %s; only an "
		    "authorized payment can be captured", id, status_names[pay->status]);
	} else if (has_amount && (amount < 1 || amount > capture_max(p, pay))) {
		sim_err_set(e, 400, "invalid_request", "amount must be an integer from 1 to "
		    "%lld (the authorized %lld plus the capture tolerance of %ld.%02ld%%)",
		    capture_max(p, pay), pay->amount, p->capture_tolerance_bp / 100,
		    p->capture_tolerance_bp % 100);
	} else {
		pay->amount_captured = has_amount ? amount : pay->amount;
		set_status(p, pay, PAY_COMPLETED, "terminal_payment.captured");
		o = answer(pay, e);
	}
	pthread_mutex_unlock(&p->mu);
	return o;
}

cJSON *
sim_pay_wait(struct sim_pay *p, const char *id, int64_t timeout_ms, int *settled,
    struct sim_err *e)
{
	struct sim_payment *pay;
	struct timespec ts;
	cJSON *o = NULL;
	int64_t until = util_mono_ms() + timeout_ms, now;

	*settled = 0;
	pthread_mutex_lock(&p->mu);
	if ((pay = find(p, id)) == NULL) {
		sim_err_set(e, 404, "not_found", "no payment %s", id);
		goto out;
	}
	while (pay->status <= PAY_PROCESSING && !p->stopping &&
	    (now = util_mono_ms()) < until) {
		util_deadline(&ts, until - now);
		pthread_cond_timedwait(&p->changed, &p->mu, &ts);
	}
	if (pay->status <= PAY_PROCESSING && p->stopping) {
		sim_err_set(e, 503, "service_unavailable", "the simulator is stopping");
		goto out;
	}
	*settled = pay->status > PAY_PROCESSING;
	o = answer(pay, e);
out:
	pthread_mutex_unlock(&p->mu);
	return o;
}

static cJSON *
terminal_json(const struct terminal *t)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "id", t->id);
	cJSON_AddBoolToObject(o, "online", t->online);
	add_str(o, "activePayment", t->busy != NULL ? t->busy->id : NULL);
	return o;
}

cJSON *
sim_pay_terminals_json(struct sim_pay *p)
{
	cJSON *o, *arr, *c;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if ((arr = cJSON_AddArrayToObject(o, "terminals")) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nterms; i++)
		if ((c = terminal_json(&p->terms[i])) != NULL)
			cJSON_AddItemToArray(arr, c);
	pthread_mutex_unlock(&p->mu);
	return o;
}

cJSON *
sim_pay_terminal_set(struct sim_pay *p, const char *id, int online, struct sim_err *e)
{
	struct sim_payment *pay;
	struct terminal *t;
	cJSON *o = NULL;

	pthread_mutex_lock(&p->mu);
	if ((t = terminal_find(p, id)) == NULL) {
		sim_err_set(e, 404, "not_found", "no terminal %s", id);
		goto out;
	}
	if (t->online != online)
		log_info("terminal %s goes %s", t->id, online ? "online" : "offline");
	t->online = online;
	if (!online && (pay = t->busy) != NULL) {
		/* The terminal drops out of its session mid-way. */
		pay->decline_code = "communication_error";
		set_status(p, pay, PAY_FAILED, NULL);	/* frees t->busy */
	}
	if ((o = terminal_json(t)) == NULL)
		sim_err_set(e, 500, "internal_error", "out of memory");
out:
	pthread_mutex_unlock(&p->mu);
	return o;
}

int
sim_pay_config_tolerance(struct sim_pay_config *cfg, const char *pct)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(pct, &end);
	if (*pct == '\0' || *end != '\0' || errno != 0 || !(d >= 0 && d <= 100))
		return -1;
	cfg->capture_tolerance_bp = (long)(d * 100 + 0.5);
	cfg->capture_tolerance_set = 1;
	return 0;
}

static cJSON *
counts_locked(struct sim_pay *p)
{
	long n[PAY_NSTATUS] = { 0 };
	cJSON *o;

	for (size_t i = 0; i < p->nall; i++)
		n[p->all[i]->status]++;
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "total", (double)p->nall);
	for (int s = 0; s < PAY_NSTATUS; s++)
		cJSON_AddNumberToObject(o, status_names[s], (double)n[s]);
	return o;
}

cJSON *
sim_pay_counts_json(struct sim_pay *p)
{
	cJSON *o;

	pthread_mutex_lock(&p->mu);
	o = counts_locked(p);
	pthread_mutex_unlock(&p->mu);
	return o;
}

cJSON *
sim_pay_list_json(struct sim_pay *p)
{
	cJSON *o, *arr, *c;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if ((arr = cJSON_AddArrayToObject(o, "payments")) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nall; i++)
		if ((c = pay_json(p->all[i])) != NULL)
			cJSON_AddItemToArray(arr, c);
	if ((c = counts_locked(p)) != NULL)
		cJSON_AddItemToObject(o, "counts", c);
	pthread_mutex_unlock(&p->mu);
	return o;
}

void
sim_pay_shutdown(struct sim_pay *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->tick);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->mu);
}

void
sim_pay_stop(struct sim_pay *p)
{
	if (p == NULL)
		return;
	sim_pay_shutdown(p);
	pthread_join(p->ticker, NULL);
	for (size_t i = 0; i < p->nall; i++) {
		free(p->all[i]->terminal);
		free(p->all[i]->reference);
		free(p->all[i]);
	}
	free(p->all);
	free(p->active);
	free(p->terms);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->tick);
	pthread_cond_destroy(&p->changed);
	free(p);
}
