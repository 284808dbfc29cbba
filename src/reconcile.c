/*
 * reconcile.c - see the DESIGN comment in reconcile.h.
 *
 * Threads: the reconciler thread does all the work and owns the curl handle
 * and its read connection.  Other threads only queue on-demand requests and
 * set the reload flag, under mu, and wake it with cv.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_event.h"
#include "control.h"
#include "log.h"
#include "reconcile.h"
#include "secrets.h"
#include "store.h"
#include "store_read.h"
#include "util.h"
#include "vinr_api.h"

#define DUE_BATCH	64
#define DEFAULT_429_S	30	/* a 429 without a usable Retry-After */

const char *const reconcile_status_labels[8] = {
	"200", "401", "403", "404", "429", "5xx", "other", "none"
};

struct rc_request {
	struct rc_request	*next;
	char			*payment_id;
	reconcile_done_fn	 done;
	void			*arg;
};

struct due {
	char	*id;
	int	 attempts;
	char	 updated_at[TS_LEN];
};

struct reconciler {
	struct reconcile_params	 p;		/* api_key, api_base NULL */
	char			*key_file;	/* p.api_key_file, our copy */
	struct store		*store;
	struct vinr_api		*api;
	struct store_reader	*reader;
	pthread_t		 thread;
	bool			 started;	/* thread runs: joined by stop */

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	bool			 stopping;
	bool			 reload;
	struct rc_request	*head;
	struct rc_request	**tail;

	_Atomic int		 state;
	_Atomic bool		 rounds;	/* see reconcile_set_rounds() */
	_Atomic uint64_t	 requests, errors, by_status[8];
	_Atomic int64_t		 tick_ms;

	/* Reconciler thread only. */
	int64_t			 next_slot_ms;	/* rate limit: earliest next request */
	int64_t			 paused_until_ms; /* a 429's Retry-After */
	struct due		 due[DUE_BATCH];
	int			 ndue;
};

const char *
reconcile_state_name(enum rc_state s)
{
	switch (s) {
	case RC_OK:
		return "ok";
	case RC_PAUSED:
		return "paused";
	default:
		return "disabled";
	}
}

/* Sleeps on cv until deadline (monotonic ms) or a wake-up; mu held. */
static void
wait_until(struct reconciler *r, int64_t deadline)
{
	struct timespec ts;
	int64_t ms = deadline - util_mono_ms();

	if (ms <= 0)
		return;
	util_deadline(&ts, ms > 1000 ? 1000 : ms);
	pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	atomic_store(&r->tick_ms, util_mono_ms());
}

/*
 * Waits for the rate limiter and any 429 pause.  Returns false when the
 * daemon stops meanwhile.
 */
static bool
wait_slot(struct reconciler *r)
{
	bool ok;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		int64_t at = r->next_slot_ms > r->paused_until_ms ?
		    r->next_slot_ms : r->paused_until_ms;

		if (r->stopping || util_mono_ms() >= at)
			break;
		wait_until(r, at);
	}
	ok = !r->stopping;
	pthread_mutex_unlock(&r->mu);
	r->next_slot_ms = util_mono_ms() + (int64_t)(1000.0 / r->p.max_rps + 0.999);
	return ok;
}

static int
status_index(long st)
{
	switch (st) {
	case 0:
		return 7;
	case 200:
		return 0;
	case 401:
		return 1;
	case 403:
		return 2;
	case 404:
		return 3;
	case 429:
		return 4;
	default:
		return st >= 500 && st < 600 ? 5 : 6;
	}
}

/* SIGHUP: the API key again, from the same sources as at start. */
static void
load_key(struct reconciler *r)
{
	const char *src;
	char err[512] = "", *key;

	if (secrets_api_key(r->p.api_key_file, &key, &src, err, sizeof(err)) == -1 ||
	    key == NULL) {
		log_warnx("reconciler: reload: %s; keeping the API key in use",
		    key == NULL && err[0] == '\0' ? "no API key found" : err);
	} else if (vinr_api_set_key(r->api, key) == -1)
		log_warnx("reconciler: reload: out of memory");
	else {
		log_info("reconciler: API key reloaded from %s", src);
		if (atomic_exchange(&r->state, RC_OK) == RC_PAUSED)
			log_info("reconciler: resumed");
	}
	secrets_key_free(key);
}

/*
 * Applies a retrieved payment object through the store, as a synthetic
 * event.  Returns 0 (and *changed), or -1 when the object is not usable.
 */
static int
apply(struct reconciler *r, const char *payment_id, const struct api_result *res,
    bool *changed)
{
	struct api_event ae = { .source = "reconciler", .prefix = "rcn",
	    .expect_id = payment_id };
	int rc = api_event_apply(r->store, res->body, res->len, &ae);

	*changed = ae.changed;
	if (rc == -1)
		log_warnx("reconciler: %s: VINR's answer has no usable id/status", payment_id);
	else if (ae.changed)
		log_info("reconciler: payment %s is %s (seq %lld)", payment_id, ae.status,
		    (long long)ae.seq);
	return rc == 0 ? 0 : -1;
}

/*
 * One retrieve, with every answer of SPEC §5 handled.  Fills *answer and
 * msg for on-demand callers; returns the per-payment state to record:
 * NULL = nothing to record (applied, or a global pause), else the state.
 */
static const char *
retrieve(struct reconciler *r, const char *payment_id, enum rc_answer *answer,
    bool *changed, char *msg, size_t msglen)
{
	struct api_result res;
	const char *state = "scheduled";

	*changed = false;
	*answer = RC_ANSWER_UPSTREAM;
	atomic_fetch_add(&r->requests, 1);
	int rc = vinr_api_retrieve(r->api, payment_id, &res);

	atomic_store(&r->tick_ms, util_mono_ms());
	if (rc == -1) {
		atomic_fetch_add(&r->errors, 1);
		atomic_fetch_add(&r->by_status[status_index(0)], 1);
		snprintf(msg, msglen, "VINR unreachable: %s", res.error);
		log_warnx("reconciler: %s: %s", payment_id, msg);
		return state;
	}
	atomic_fetch_add(&r->by_status[status_index(res.status)], 1);
	switch (res.status) {
	case 200:
		if (apply(r, payment_id, &res, changed) == 0) {
			*answer = RC_ANSWER_OK;
			state = *changed ? NULL : "scheduled";
		} else {
			atomic_fetch_add(&r->errors, 1);
			snprintf(msg, msglen, "VINR's answer was not a payment");
		}
		break;
	case 404:
		*answer = RC_ANSWER_NOT_FOUND;
		snprintf(msg, msglen, "VINR does not know payment %s", payment_id);
		log_warnx("reconciler: %s", msg);
		state = "not_found";
		break;
	case 401:
	case 403:
		atomic_fetch_add(&r->errors, 1);
		if (atomic_exchange(&r->state, RC_PAUSED) != RC_PAUSED)
			log_crit("reconciler PAUSED: VINR answered %ld to our API key; fix "
			    "the key and send SIGHUP", res.status);
		snprintf(msg, msglen, "VINR refused the API key (HTTP %ld)", res.status);
		state = "paused";
		break;
	case 429: {
		long s = res.retry_after > 0 ? res.retry_after : DEFAULT_429_S;

		atomic_fetch_add(&r->errors, 1);
		r->paused_until_ms = util_mono_ms() + s * 1000;
		log_warnx("reconciler: rate limited by VINR (429): pausing %ld s", s);
		snprintf(msg, msglen, "rate limited by VINR, retry in %ld s", s);
		state = NULL;
		break;
	}
	default:
		atomic_fetch_add(&r->errors, 1);
		snprintf(msg, msglen, "VINR answered HTTP %ld", res.status);
		log_warnx("reconciler: %s: %s", payment_id, msg);
		break;
	}
	api_result_release(&res);
	return state;
}

static int
collect_due(void *arg, const char *payment_id, int attempts, const char *updated_at)
{
	struct reconciler *r = arg;
	struct due *d = &r->due[r->ndue];

	if (r->ndue == DUE_BATCH || (d->id = strdup(payment_id)) == NULL)
		return -1;
	d->attempts = attempts;
	snprintf(d->updated_at, sizeof(d->updated_at), "%s", updated_at);
	r->ndue++;
	return 0;
}

static void
drop_due(struct reconciler *r)
{
	for (int i = 0; i < r->ndue; i++)
		free(r->due[i].id);
	r->ndue = 0;
}

/* Seconds since an RFC 3339 timestamp of ours (…Z), or -1. */
static int64_t
age_s(const char *ts)
{
	struct tm tm = { 0 };
	char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);

	if (end == NULL)
		return -1;
	return (util_now_ms() / 1000) - (int64_t)timegm(&tm);
}

/* Records the per-payment backoff after an unsuccessful try. */
static void
schedule(struct reconciler *r, const struct due *d, const char *state)
{
	int attempts = d->attempts + 1;
	int64_t wait = r->p.interval;
	char next[TS_LEN];

	for (int i = 1; i < attempts && wait < r->p.max_backoff; i++)
		wait *= 2;
	if (wait > r->p.max_backoff)
		wait = r->p.max_backoff;
	util_rfc3339(util_now_ms() + wait * 1000, next);
	if (strcmp(state, "scheduled") != 0)
		next[0] = '\0';
	if (store_rc_set(r->store, d->id, attempts, next[0] ? next : NULL, state) == -1)
		log_warnx("reconciler: %s: cannot record its state", d->id);
}

static void
answer_requests(struct reconciler *r)
{
	struct rc_request *q;
	enum rc_answer a;
	bool changed;
	char msg[512];

	for (;;) {
		pthread_mutex_lock(&r->mu);
		if ((q = r->head) != NULL && (r->head = q->next) == NULL)
			r->tail = &r->head;
		pthread_mutex_unlock(&r->mu);
		if (q == NULL)
			return;
		msg[0] = '\0';
		if (!wait_slot(r))
			q->done(q->arg, RC_ANSWER_STOPPING, false, "stopping");
		else {
			(void)retrieve(r, q->payment_id, &a, &changed, msg, sizeof(msg));
			q->done(q->arg, a, changed, msg);
		}
		free(q->payment_id);
		free(q);
	}
}

static void
round_due(struct reconciler *r)
{
	char now[TS_LEN], stale[TS_LEN], msg[512];
	int64_t t = util_now_ms();
	enum rc_answer a;
	bool changed;
	const char *state;

	util_rfc3339(t, now);
	util_rfc3339(t - (int64_t)r->p.stale_after * 1000, stale);
	if (store_reader_rc_due(r->reader, now, stale, DUE_BATCH, collect_due, r) == -1) {
		drop_due(r);
		return;
	}
	for (int i = 0; i < r->ndue; i++) {
		struct due *d = &r->due[i];
		int64_t age = age_s(d->updated_at);

		answer_requests(r);	/* a POS waiting on "reconcile" goes first */
		if (atomic_load(&r->state) == RC_PAUSED || !atomic_load(&r->rounds))
			break;
		if (age >= 0 && age > r->p.give_up_after) {
			log_warnx("reconciler: giving up on %s: unchanged for %lld s",
			    d->id, (long long)age);
			schedule(r, d, "gave_up");
			continue;
		}
		if (!wait_slot(r))
			break;
		state = retrieve(r, d->id, &a, &changed, msg, sizeof(msg));
		if (state != NULL)
			schedule(r, d, state);
	}
	drop_due(r);
}

static void *
reconcile_main(void *arg)
{
	struct reconciler *r = arg;
	char err[256];
	int64_t next_round = 0;

	if ((r->reader = store_reader_open(r->store, err, sizeof(err))) == NULL)
		log_warnx("reconciler: %s: stopped", err);
	pthread_mutex_lock(&r->mu);
	while (!r->stopping && r->reader != NULL) {
		bool reload = r->reload;

		r->reload = false;
		pthread_mutex_unlock(&r->mu);
		if (reload)
			load_key(r);
		answer_requests(r);
		if (util_mono_ms() >= next_round) {
			if (atomic_load(&r->state) == RC_OK && atomic_load(&r->rounds))
				round_due(r);
			next_round = util_mono_ms() + (int64_t)r->p.interval * 1000;
		}
		pthread_mutex_lock(&r->mu);
		if (!r->stopping && !r->reload && r->head == NULL)
			wait_until(r, next_round);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct reconciler *
reconcile_start(const struct reconcile_params *p, char *err, size_t errlen)
{
	struct reconciler *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->p = *p;
	r->p.api_key = NULL;
	r->p.api_base = NULL;
	r->p.api_key_file = NULL;
	r->store = p->store;
	r->tail = &r->head;
	atomic_store(&r->tick_ms, util_mono_ms());
	atomic_store(&r->rounds, !p->rounds_off);
	pthread_mutex_init(&r->mu, NULL);
	util_cond_init(&r->cv);
	if (p->api_key_file != NULL &&
	    (r->p.api_key_file = r->key_file = strdup(p->api_key_file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((r->api = vinr_api_new(p->api_base, err, errlen)) == NULL)
		goto fail;
	vinr_api_set_timeout(r->api, p->timeout_s);
	if (vinr_api_set_key(r->api, p->api_key) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pthread_create(&r->thread, NULL, reconcile_main, r) != 0) {
		snprintf(err, errlen, "cannot start the reconciler thread");
		goto fail;
	}
	r->started = true;
	return r;
fail:
	reconcile_free(r);
	return NULL;
}

void
reconcile_stop(struct reconciler *r)
{
	struct rc_request *q;

	if (r == NULL || !r->started)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	r->started = false;
	while ((q = r->head) != NULL) {
		r->head = q->next;
		q->done(q->arg, RC_ANSWER_STOPPING, false, "stopping");
		free(q->payment_id);
		free(q);
	}
	r->tail = &r->head;
}

void
reconcile_free(struct reconciler *r)
{
	if (r == NULL)
		return;
	reconcile_stop(r);
	drop_due(r);
	store_reader_free(r->reader);
	vinr_api_free(r->api);
	free(r->key_file);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

void
reconcile_set_rounds(struct reconciler *r, bool on)
{
	if (r == NULL)
		return;
	atomic_store(&r->rounds, on);
}

void
reconcile_reload(struct reconciler *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->reload = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

int
reconcile_request(struct reconciler *r, const char *payment_id, reconcile_done_fn done,
    void *arg)
{
	struct rc_request *q;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->payment_id = strdup(payment_id)) == NULL) {
		free(q);
		return -1;
	}
	q->done = done;
	q->arg = arg;
	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		free(q->payment_id);
		free(q);
		return -1;
	}
	*r->tail = q;
	r->tail = &q->next;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

void
reconcile_stats_get(struct reconciler *r, struct reconcile_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (r == NULL) {
		st->state = RC_DISABLED;
		return;
	}
	st->state = atomic_load(&r->state);
	st->requests = atomic_load(&r->requests);
	st->errors = atomic_load(&r->errors);
	for (int i = 0; i < 8; i++)
		st->by_status[i] = atomic_load(&r->by_status[i]);
}

bool
reconcile_alive(struct reconciler *r)
{
	/* A retrieve may take its full timeout plus a rate-limit wait. */
	return r == NULL || util_mono_ms() - atomic_load(&r->tick_ms) <
	    60000 + (int64_t)r->p.timeout_s * 1000;
}

/* The control socket's answer for a "reconcile" request req. */
static void
control_answered(void *req, enum rc_answer a, bool changed, const char *msg)
{
	static const char *const code[] = {
		[RC_ANSWER_OK] = NULL,
		[RC_ANSWER_NOT_FOUND] = "not_found",
		[RC_ANSWER_UPSTREAM] = "upstream_error",
		[RC_ANSWER_STOPPING] = "internal",
	};

	control_reconcile_done(req, code[a], msg, changed);
}

int
reconcile_control(void *r, const char *payment_id, void *req)
{
	return reconcile_request(r, payment_id, control_answered, req);
}
