/*
 * gateway.c - see the DESIGN comment in gateway.h.
 *
 * Threads: the gateway thread does all the work and owns the curl handle
 * and its read connection.  Other threads only queue calls and set the
 * reload flag, under mu, and wake it with cv.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_event.h"
#include "gateway.h"
#include "jsonnum.h"
#include "log.h"
#include "secrets.h"
#include "store.h"
#include "store_read.h"
#include "util.h"
#include "vinr_api.h"

#define SWEEP_MS	1000	/* how often unknown requests are checked */

struct gw_item {
	struct gw_item		*next;
	struct gateway_call	 call;		/* its strings are ours */
	gateway_done_fn		 done;
	void			*arg;
};

struct gateway {
	struct store		*store;
	char			*key_file;
	int			 timeout_s;
	int			 unknown_after_s;
	struct vinr_api		*api;
	struct store_reader	*reader;
	pthread_t		 thread;
	bool			 started;

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	bool			 stopping;
	bool			 reload;
	struct gw_item		*head;
	struct gw_item		**tail;

	_Atomic uint64_t	 requests, errors, unknown;
	_Atomic int64_t		 tick_ms;

	/* Gateway thread only. */
	int64_t			 next_slot_ms;
	int64_t			 next_sweep_ms;
};

/* What one call to VINR came to, for the answer. */
struct outcome {
	const char	*error;
	char		 message[512];
	long		 status;
	char		 code[64];
	char		 payment_id[256];
};

static void
item_free(struct gw_item *q)
{
	if (q == NULL)
		return;
	payreq_release(&q->call.req);
	free((char *)(uintptr_t)q->call.test_card);
	free((char *)(uintptr_t)q->call.simulate_delay);
	free((char *)(uintptr_t)q->call.payment_id);
	free(q);
}

static void
answer(struct gw_item *q, const struct outcome *o)
{
	struct gateway_answer a = { .error = o->error, .message = o->message,
	    .status = o->status, .code = o->code[0] != '\0' ? o->code : NULL,
	    .payment_id = o->payment_id };

	q->done(q->arg, &a);
}

static void
fail(struct outcome *o, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct outcome *o, const char *error, const char *fmt, ...)
{
	va_list ap;

	o->error = error;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof(o->message), fmt, ap);
	va_end(ap);
}

/* Waits for the spacing between calls.  false when stopping. */
static bool
wait_slot(struct gateway *g)
{
	struct timespec ts;
	bool ok;

	pthread_mutex_lock(&g->mu);
	while (!g->stopping && util_mono_ms() < g->next_slot_ms) {
		util_deadline(&ts, g->next_slot_ms - util_mono_ms());
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	ok = !g->stopping;
	pthread_mutex_unlock(&g->mu);
	return ok;
}

/* After each call: counted, and the next one spaced. */
static void
called(struct gateway *g, int rc, const struct api_result *res)
{
	atomic_fetch_add(&g->requests, 1);
	if (rc == -1 || res->status < 200 || res->status > 299)
		atomic_fetch_add(&g->errors, 1);
	atomic_store(&g->tick_ms, util_mono_ms());
	g->next_slot_ms = util_mono_ms() + GATEWAY_GAP_MS;
}

/*
 * VINR's error answer: {"error":{"code","message"}} (vinr-sim's), or the
 * same keys at the top, or "error" as the code.  The status alone when it
 * is none of those.
 */
static void
upstream_error(struct outcome *o, const struct api_result *res, const char *what)
{
	const cJSON *e, *code = NULL, *msg = NULL;
	cJSON *b = cJSON_ParseWithLength(res->body, res->len);

	e = cJSON_GetObjectItemCaseSensitive(b, "error");
	if (cJSON_IsObject(e)) {
		code = cJSON_GetObjectItemCaseSensitive(e, "code");
		msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	} else {
		code = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(b, "code");
		msg = cJSON_GetObjectItemCaseSensitive(b, "message");
	}
	o->error = "upstream_error";
	o->status = res->status;
	if (cJSON_IsString(code))
		snprintf(o->code, sizeof(o->code), "%s", code->valuestring);
	snprintf(o->message, sizeof(o->message), "VINR refused the %s (HTTP %ld)%s%s", what,
	    res->status, cJSON_IsString(msg) ? ": " : "",
	    cJSON_IsString(msg) ? msg->valuestring : "");
	cJSON_Delete(b);
	if (res->status == 401 || res->status == 403)
		log_crit("gateway: VINR answered %ld to our API key; fix the key and "
		    "send SIGHUP", res->status);
}

/* ------------------------------------------------------------------ */
/* pay */

/* The create's body (async: the outcome comes by webhook or retrieve). */
static char *
create_body(const struct gateway_call *c)
{
	cJSON *b;
	char *s;

	if ((b = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(b, "terminalId", c->req.terminal_id);
	jsonnum_add(b, "amount", c->req.amount);
	cJSON_AddStringToObject(b, "currency", c->req.currency);
	cJSON_AddStringToObject(b, "reference", c->req.reference);
	cJSON_AddStringToObject(b, "captureMethod", c->req.capture_method);
	cJSON_AddStringToObject(b, "responseMode", "async");
	if (c->test_card != NULL)
		cJSON_AddStringToObject(b, "testCard", c->test_card);
	s = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return s;
}

/* Records the request's new state; a failure is logged (the key stays
 * "sending": the next start marks it unknown, which is safe). */
static void
set_state(struct gateway *g, const char *key, enum payreq_state st)
{
	if (store_pay_set(g->store, key, st) == -1)
		log_warnx("gateway: pay %s: cannot record it as %s", key,
		    payreq_state_name(st));
}

static void
went_unknown(struct gateway *g, const struct pay_request *rq, struct outcome *o,
    const char *why)
{
	set_state(g, rq->key, PR_UNKNOWN);
	atomic_fetch_add(&g->unknown, 1);
	log_warnx("gateway: pay %s: outcome unknown (%s): not sent again; waiting up to "
	    "%d s for a matching webhook or retrieve", rq->key, why, g->unknown_after_s);
	fail(o, "upstream_unknown", "VINR may or may not have created the payment (%s); "
	    "it is not sent again: a webhook or retrieve of it resolves the request, "
	    "else it is marked not_created after %d s", why, g->unknown_after_s);
}

/* VINR answered the create: created, refused, or unknown. */
static void
create_answered(struct gateway *g, const struct pay_request *rq,
    const struct api_result *res, struct outcome *o)
{
	struct api_event ae = { .source = "api", .prefix = "api", .pay_key = rq->key };
	char why[64];
	int rc;

	if (res->status >= 400 && res->status <= 499) {
		set_state(g, rq->key, PR_NOT_CREATED);
		upstream_error(o, res, "payment");
		log_warnx("gateway: pay %s: %s", rq->key, o->message);
		return;
	}
	snprintf(why, sizeof(why), "HTTP %ld", res->status);
	if (res->status < 200 || res->status > 299) {
		went_unknown(g, rq, o, why);
		return;
	}
	if ((rc = api_event_apply(g->store, res->body, res->len, &ae)) == 0) {
		snprintf(o->payment_id, sizeof(o->payment_id), "%s", ae.payment_id);
		log_info("gateway: pay %s: VINR created payment %s (%s)", rq->key,
		    ae.payment_id, ae.status);
	} else if (rc == -2 && ae.payment_id[0] != '\0') {
		/* Created, but not stored: its webhook will resolve it. */
		went_unknown(g, rq, o, "storage unavailable");
	} else
		went_unknown(g, rq, o, "VINR's answer is not a payment");
}

/* Asks VINR to create rq's payment (committed as sending already). */
static void
create(struct gateway *g, const struct gw_item *q, const struct pay_request *rq,
    struct outcome *o)
{
	struct api_result res;
	char *body, query[64] = "";
	int rc;

	if ((body = create_body(&q->call)) == NULL) {
		set_state(g, rq->key, PR_NOT_CREATED);
		fail(o, "internal", "out of memory: nothing was sent to VINR");
		return;
	}
	if (q->call.simulate_delay != NULL)
		snprintf(query, sizeof(query), "simulateDelay=%s", q->call.simulate_delay);
	rc = vinr_api_create(g->api, body, query[0] ? query : NULL, &res);
	free(body);
	called(g, rc, &res);
	if (rc == -1 && !res.sent) {
		set_state(g, rq->key, PR_NOT_CREATED);
		fail(o, "upstream_error", "VINR unreachable (%s): the payment was not "
		    "created", res.error);
		log_warnx("gateway: pay %s: %s", rq->key, o->message);
	} else if (rc == -1)
		went_unknown(g, rq, o, res.error);
	else
		create_answered(g, rq, &res, o);
	api_result_release(&res);
}

static void
do_pay(struct gateway *g, const struct gw_item *q, struct outcome *o)
{
	struct pay_request got;
	const char *what;
	int found;

	if ((q->call.test_card != NULL || q->call.simulate_delay != NULL) &&
	    !vinr_api_sandbox(g->api)) {
		fail(o, "bad_request", "testCard and simulateDelay need a sandbox "
		    "(sk_test_) API key");
		return;
	}
	found = store_pay_begin(g->store, &q->call.req, &got);
	switch (found) {
	case STORE_PAY_NEW:
		if (wait_slot(g))
			create(g, q, &got, o);
		else {
			set_state(g, got.key, PR_NOT_CREATED);
			fail(o, "internal", "stopping: nothing was sent to VINR");
		}
		break;
	case STORE_PAY_MISMATCH:
		what = payreq_mismatch(&got, &q->call.req);
		fail(o, "bad_request", "key %s was used for another payment (its %s "
		    "differs)", got.key, what != NULL ? what : "request");
		break;
	case STORE_PAY_EXISTS:
		if (got.state == PR_CREATED && got.payment_id != NULL)
			snprintf(o->payment_id, sizeof(o->payment_id), "%s", got.payment_id);
		else
			fail(o, "upstream_unknown", "the create of key %s has an unknown "
			    "outcome: it is not sent again; a webhook or retrieve of it "
			    "resolves it, else it is marked not_created %d s after it "
			    "was sent", got.key, g->unknown_after_s);
		break;
	default:
		fail(o, "internal", "storage unavailable: nothing was sent to VINR");
		break;
	}
	payreq_release(&got);
}

/* ------------------------------------------------------------------ */
/* cancel, capture */

static void
do_change(struct gateway *g, const struct gw_item *q, struct outcome *o)
{
	const char *what = q->call.kind == GW_CANCEL ? "cancel" : "capture";
	struct api_event ae = { .source = "api", .prefix = "api",
	    .expect_id = q->call.payment_id };
	struct api_result res;
	char body[64];
	int rc;

	if (!wait_slot(g)) {
		fail(o, "internal", "stopping: nothing was sent to VINR");
		return;
	}
	if (q->call.kind == GW_CANCEL)
		rc = vinr_api_cancel(g->api, q->call.payment_id, &res);
	else {
		if (q->call.has_amount)
			snprintf(body, sizeof(body), "{\"amount\":%lld}",
			    (long long)q->call.amount);
		rc = vinr_api_capture(g->api, q->call.payment_id,
		    q->call.has_amount ? body : NULL, &res);
	}
	called(g, rc, &res);
	if (rc == -1)
		fail(o, res.sent ? "upstream_unknown" : "upstream_error", "VINR did not "
		    "answer the %s (%s)%s", what, res.error, res.sent ? ": get or "
		    "reconcile the payment to learn its state" : "");
	else if (res.status < 200 || res.status > 299)
		upstream_error(o, &res, what);
	else if ((rc = api_event_apply(g->store, res.body, res.len, &ae)) == 0) {
		snprintf(o->payment_id, sizeof(o->payment_id), "%s", ae.payment_id);
		log_info("gateway: %s of %s: VINR says %s", what, ae.payment_id, ae.status);
	} else
		fail(o, "internal", rc == -2 ? "VINR accepted the %s but it could not be "
		    "stored" : "VINR accepted the %s but its answer is not the payment",
		    what);
	if (o->error != NULL)
		log_warnx("gateway: %s of %s: %s", what, q->call.payment_id, o->message);
	api_result_release(&res);
}

/* ------------------------------------------------------------------ */
/* The thread */

/* [api] unknown_after: unknown requests that nothing resolved in time. */
static void
sweep(struct gateway *g)
{
	char oldest[TS_LEN], cutoff[TS_LEN];
	int n;

	g->next_sweep_ms = util_mono_ms() + SWEEP_MS;
	util_rfc3339(util_now_ms() - (int64_t)g->unknown_after_s * 1000, cutoff);
	if (store_reader_pay_oldest(g->reader, PR_UNKNOWN, oldest) != 1 ||
	    strcmp(oldest, cutoff) >= 0)
		return;
	if ((n = store_pay_move(g->store, PR_UNKNOWN, PR_NOT_CREATED, cutoff)) > 0)
		log_warnx("gateway: %d unknown pay request(s) had no matching payment "
		    "within %d s: marked not_created (their keys may create again)", n,
		    g->unknown_after_s);
}

static void
load_key(struct gateway *g)
{
	const char *src;
	char err[512] = "", *key;

	if (secrets_api_key(g->key_file, &key, &src, err, sizeof(err)) == -1 ||
	    key == NULL)
		log_warnx("gateway: reload: %s; keeping the API key in use",
		    key == NULL && err[0] == '\0' ? "no API key found" : err);
	else if (vinr_api_set_key(g->api, key) == -1)
		log_warnx("gateway: reload: out of memory");
	else
		log_info("gateway: API key reloaded from %s", src);
	secrets_key_free(key);
}

static void
run_item(struct gateway *g, struct gw_item *q)
{
	struct outcome o;

	memset(&o, 0, sizeof(o));
	if (q->call.kind == GW_PAY)
		do_pay(g, q, &o);
	else
		do_change(g, q, &o);
	answer(q, &o);
}

static void *
gateway_main(void *arg)
{
	struct gateway *g = arg;
	struct timespec ts;
	struct gw_item *q;
	bool reload;
	int n;

	if ((n = store_pay_move(g->store, PR_SENDING, PR_UNKNOWN, "9999")) > 0)
		log_warnx("gateway: %d pay request(s) were being sent when the daemon "
		    "stopped: their outcome is unknown; they are not sent again", n);
	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		if ((q = g->head) != NULL && (g->head = q->next) == NULL)
			g->tail = &g->head;
		reload = g->reload;
		g->reload = false;
		pthread_mutex_unlock(&g->mu);
		atomic_store(&g->tick_ms, util_mono_ms());
		if (reload)
			load_key(g);
		if (q != NULL) {
			run_item(g, q);
			item_free(q);
		}
		if (util_mono_ms() >= g->next_sweep_ms)
			sweep(g);
		pthread_mutex_lock(&g->mu);
		if (!g->stopping && !g->reload && g->head == NULL) {
			util_deadline(&ts, SWEEP_MS);
			pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		}
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start, stop, calls */

struct gateway *
gateway_start(const struct gateway_params *p, char *err, size_t errlen)
{
	struct gateway *g;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->store = p->store;
	g->timeout_s = p->timeout_s;
	g->unknown_after_s = p->unknown_after_s;
	g->tail = &g->head;
	atomic_store(&g->tick_ms, util_mono_ms());
	pthread_mutex_init(&g->mu, NULL);
	util_cond_init(&g->cv);
	if (p->api_key_file != NULL && (g->key_file = strdup(p->api_key_file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((g->api = vinr_api_new(p->api_base, err, errlen)) == NULL ||
	    (g->reader = store_reader_open(p->store, err, errlen)) == NULL)
		goto fail;
	vinr_api_set_timeout(g->api, p->timeout_s);
	if (vinr_api_set_key(g->api, p->api_key) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pthread_create(&g->thread, NULL, gateway_main, g) != 0) {
		snprintf(err, errlen, "cannot start the gateway thread");
		goto fail;
	}
	g->started = true;
	return g;
fail:
	gateway_free(g);
	return NULL;
}

void
gateway_stop(struct gateway *g)
{
	struct outcome o = { 0 };
	struct gw_item *q;

	if (g == NULL || !g->started)
		return;
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	g->started = false;
	fail(&o, "internal", "stopping: nothing was sent to VINR");
	while ((q = g->head) != NULL) {
		g->head = q->next;
		answer(q, &o);
		item_free(q);
	}
	g->tail = &g->head;
}

void
gateway_free(struct gateway *g)
{
	if (g == NULL)
		return;
	gateway_stop(g);
	store_reader_free(g->reader);
	vinr_api_free(g->api);
	free(g->key_file);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

void
gateway_reload(struct gateway *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->reload = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static int
dup_str(const char *s, const char **dst)
{
	char *c = NULL;

	if (s != NULL && (c = strdup(s)) == NULL)
		return -1;
	*dst = c;
	return 0;
}

int
gateway_call(struct gateway *g, const struct gateway_call *c, gateway_done_fn done,
    void *arg)
{
	struct gw_item *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->call.kind = c->kind;
	q->call.has_amount = c->has_amount;
	q->call.amount = c->amount;
	if (payreq_copy(&q->call.req, &c->req) == -1 ||
	    dup_str(c->test_card, &q->call.test_card) == -1 ||
	    dup_str(c->simulate_delay, &q->call.simulate_delay) == -1 ||
	    dup_str(c->payment_id, &q->call.payment_id) == -1) {
		item_free(q);
		return -1;
	}
	q->done = done;
	q->arg = arg;
	pthread_mutex_lock(&g->mu);
	if (g->stopping) {
		pthread_mutex_unlock(&g->mu);
		item_free(q);
		return -1;
	}
	*g->tail = q;
	g->tail = &q->next;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

void
gateway_stats_get(struct gateway *g, struct gateway_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (g == NULL)
		return;
	st->requests = atomic_load(&g->requests);
	st->errors = atomic_load(&g->errors);
	st->unknown = atomic_load(&g->unknown);
}

bool
gateway_alive(struct gateway *g)
{
	/* A call may take its whole timeout. */
	return g == NULL || util_mono_ms() - atomic_load(&g->tick_ms) <
	    60000 + (int64_t)g->timeout_s * 1000;
}
