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
 * card's outcome.  Payments are never freed before the simulator stops, so a
 * pointer found under the lock stays valid across a condition wait.
 */
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

static const struct sim_card cards[] = {
	{ "4242424242424242", "visa", CARD_APPROVE, NULL, "approved" },
	{ "5555555555554444", "mastercard", CARD_APPROVE, NULL, "approved" },
	{ "378282246310005", "amex", CARD_APPROVE, NULL, "approved" },
	{ "4000000000000002", "visa", CARD_DECLINE, "card_declined", "generic decline" },
	{ "4000000000009995", "visa", CARD_DECLINE, "insufficient_funds", "insufficient funds" },
	{ "4000000000000069", "visa", CARD_DECLINE, "expired_card", "expired card" },
	{ "4000000000000127", "visa", CARD_DECLINE, "incorrect_cvc", "incorrect CVC" },
	{ "4000000000000119", "visa", CARD_DECLINE, "processing_error", "processing error" },
	{ "4000000000000259", "visa", CARD_HOLDER_CANCEL, NULL,
	    "the cardholder cancels on the terminal after presenting the card" },
	{ "4000000000003220", "visa", CARD_TIMEOUT, "timeout",
	    "no answer from the card network: stays processing, then fails" },
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
	int			 card_read;	/* entryMethod, last4, brand known */
	char			 auth_code[8];	/* "" = null */
	const char		*decline_code;
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
	int			 stopping;
	pthread_t		 ticker;
};

const struct sim_card *
sim_card_find(const char *number)
{
	for (size_t i = 0; i < sizeof(cards) / sizeof(cards[0]); i++)
		if (strcmp(cards[i].number, number) == 0)
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

/* The payment as the API returns it: every key always present. */
static cJSON *
pay_json(const struct sim_payment *pay)
{
	cJSON *o;
	const char *last4 = NULL;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (pay->card_read) {
		size_t n = strlen(pay->card->number);

		last4 = pay->card->number + (n >= 4 ? n - 4 : 0);
	}
	cJSON_AddStringToObject(o, "id", pay->id);
	cJSON_AddStringToObject(o, "object", "terminal_payment");
	cJSON_AddStringToObject(o, "terminalId", pay->terminal);
	cJSON_AddNumberToObject(o, "amount", (double)pay->amount);
	cJSON_AddNumberToObject(o, "amountCaptured", (double)pay->amount_captured);
	cJSON_AddStringToObject(o, "currency", pay->currency);
	add_str(o, "reference", pay->reference);
	cJSON_AddStringToObject(o, "status", status_names[pay->status]);
	cJSON_AddStringToObject(o, "captureMethod", pay->manual ? "manual" : "automatic");
	cJSON_AddStringToObject(o, "responseMode", pay->sync ? "sync" : "async");
	add_str(o, "entryMethod", pay->card_read ? "contactless" : NULL);
	add_str(o, "last4", last4);
	add_str(o, "brand", pay->card_read ? pay->card->brand : NULL);
	add_str(o, "authCode", pay->auth_code);
	add_str(o, "declineCode", pay->decline_code);
	add_str(o, "cancellationReason", pay->cancel_reason);
	cJSON_AddFalseToObject(o, "livemode");
	add_time(o, "createdAt", pay->created_ms);
	add_time(o, "authorizedAt", pay->authorized_ms);
	add_time(o, "completedAt", pay->completed_ms);
	add_time(o, "failedAt", pay->failed_ms);
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
		pay->card_read = 1;
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
	case CARD_HOLDER_CANCEL:
		pay->cancel_reason = "cardholder";
		set_status(p, pay, PAY_CANCELLED, NULL);
		break;
	}
}

/* Takes pay through every step due by now; several when the delay is 0. */
static void
advance(struct sim_pay *p, struct sim_payment *pay, int64_t now)
{
	while (pay->next_mono != 0 && pay->next_mono <= now) {
		if (pay->status == PAY_PENDING) {
			pay->next_mono = pay->start_mono + pay->delay_ms;
			if (pay->card->kind == CARD_TIMEOUT)
				pay->next_mono += p->timeout_after_ms;
			if (pay->next_mono == 0)	/* 0 means "none" */
				pay->next_mono = 1;
			set_status(p, pay, PAY_PROCESSING, NULL);
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
	p->hook = hook;
	p->timeout_after_ms = cfg->timeout_after_ms;
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
	if ((t = terminal_find(p, rq->terminal_id)) == NULL) {
		sim_err_set(e, 404, "terminal_not_found", "no terminal %s", rq->terminal_id);
		goto fail;
	}
	if (t->busy != NULL) {
		sim_err_set(e, 409, "terminal_busy", "terminal %s is busy with payment %s",
		    t->id, t->busy->id);
		goto fail;
	}
	if ((pay = calloc(1, sizeof(*pay))) == NULL ||
	    (pay->terminal = strdup(t->id)) == NULL ||
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
	pay->next_mono = pay->start_mono + rq->delay_ms / 2;
	pay->drop_webhooks = rq->drop_webhooks;
	pay->duplicate_webhooks = rq->duplicate_webhooks;
	p->all[p->nall++] = pay;
	p->active[p->nactive++] = pay;
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
	} else if (has_amount && (amount < 1 || amount > pay->amount)) {
		sim_err_set(e, 400, "invalid_request", "amount must be an integer from 1 to "
		    "%lld (the authorized amount)", pay->amount);
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
