/*
 * sim_hook.c - see sim_hook.h.
 *
 * DESIGN.  Two kinds of threads meet here.  Producers (the HTTP connection
 * threads and the payment ticker, always while holding the payment store's
 * lock, so events of one payment are queued in the order they happened) call
 * sim_hook_send(), which records the event, makes the chaos decisions with
 * the seeded PRNG and appends deliveries to the queue.  One sender thread
 * owns the curl handle: it takes the delivery that is due first, signs it
 * with the current time, POSTs it without holding the lock, and then either
 * marks it done or puts it back with its next due time (1 s doubling).
 * The queue is a plain list scanned for the earliest due time: a simulator
 * holds at most thousands of deliveries.  hook->mu is a leaf lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "log.h"
#include "secrets.h"
#include "sim_hook.h"
#include "sim_util.h"

#define RESP_KEEP	256		/* bytes of a response kept for logs and /_sim/events */
#define BACKOFF_CAP_MS	60000

struct record {
	char	 id[SIM_ID_LEN];
	char	 type[64];
	char	 payment[SIM_ID_LEN];
	char	 status[16];
	char	*body;		/* freed once no delivery needs it */
	int	 dropped;
	int	 copies;	/* deliveries made for it: 0, 1 or 2 */
	int	 pending;	/* of those, still queued or in flight */
	int	 delivered;	/* answered 2xx */
	int	 attempts;
	int	 gave_up;
	long	 last_status;	/* HTTP status of the last attempt, 0 = none */
	char	 last_error[CURL_ERROR_SIZE];
	char	 last_response[RESP_KEEP];
};

struct delivery {
	size_t		 rec;		/* index into hook->recs */
	int64_t		 due;		/* monotonic ms */
	int		 attempt;	/* attempts made so far */
	struct delivery	*next;
};

struct sim_hook {
	struct sim_hook_config	 cfg;
	char			*url;
	struct sig_key		*keys;
	size_t			 nkeys;

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct record		*recs;
	size_t			 nrecs, caprecs;
	struct delivery		*head, *tail;
	struct sim_rand		 rand;
	int			 stopping;
	atomic_int		 abort;		/* read by curl's progress callback */
	struct sim_hook_stats	 st;

	pthread_t		 thread;
};

static void
queue_append(struct sim_hook *h, struct delivery *d)
{
	d->next = NULL;
	if (h->tail != NULL)
		h->tail->next = d;
	else
		h->head = d;
	h->tail = d;
	h->st.queued++;
}

/* Unlinks and returns the delivery due first (the oldest among equals). */
static struct delivery *
queue_first(struct sim_hook *h, struct delivery **prevp)
{
	struct delivery *d, *prev = NULL, *best = NULL, *bestprev = NULL;

	for (d = h->head; d != NULL; prev = d, d = d->next)
		if (best == NULL || d->due < best->due) {
			best = d;
			bestprev = prev;
		}
	*prevp = bestprev;
	return best;
}

static void
queue_unlink(struct sim_hook *h, struct delivery *d, struct delivery *prev)
{
	if (prev != NULL)
		prev->next = d->next;
	else
		h->head = d->next;
	if (h->tail == d)
		h->tail = prev;
	h->st.queued--;
}

static const char *
record_state(const struct sim_hook *h, const struct record *r)
{
	if (r->dropped)
		return "dropped";
	if (h->url == NULL)
		return "skipped";
	if (r->pending > 0)
		return "queued";
	return r->delivered > 0 ? "delivered" : "failed";
}

/* The signature headers for body at time t, per the configured scheme. */
static struct curl_slist *
sign_headers(struct sim_hook *h, const char *event_id, long long t, const char *body,
    size_t len)
{
	struct curl_slist *hd = NULL, *n;
	char line[2048], one[256];
	size_t off;
	int r;

	if (h->cfg.scheme == SIG_SCHEME_VINR) {
		off = (size_t)snprintf(line, sizeof(line), "Vinr-Signature: t=%lld", t);
		for (size_t i = 0; i < h->nkeys; i++) {
			const char *v1;

			if (sig_sign_vinr(&h->keys[i], t, body, len, one, sizeof(one)) < 0 ||
			    (v1 = strstr(one, ",v1=")) == NULL)
				continue;
			r = snprintf(line + off, sizeof(line) - off, "%s", v1);
			if (r < 0 || (size_t)r >= sizeof(line) - off)
				break;
			off += (size_t)r;
		}
		if ((n = curl_slist_append(hd, line)) == NULL)
			goto fail;
		hd = n;
	} else {
		snprintf(line, sizeof(line), "webhook-id: %s", event_id);
		if ((n = curl_slist_append(hd, line)) == NULL)
			goto fail;
		hd = n;
		snprintf(line, sizeof(line), "webhook-timestamp: %lld", t);
		if ((n = curl_slist_append(hd, line)) == NULL)
			goto fail;
		hd = n;
		off = (size_t)snprintf(line, sizeof(line), "webhook-signature:");
		for (size_t i = 0; i < h->nkeys; i++) {
			if (sig_sign_standard(&h->keys[i], event_id, t, body, len, one,
			    sizeof(one)) < 0)
				continue;
			r = snprintf(line + off, sizeof(line) - off, " %s", one);
			if (r < 0 || (size_t)r >= sizeof(line) - off)
				break;
			off += (size_t)r;
		}
		if ((n = curl_slist_append(hd, line)) == NULL)
			goto fail;
		hd = n;
	}
	if ((n = curl_slist_append(hd, "Content-Type: application/json")) == NULL)
		goto fail;
	hd = n;
	if ((n = curl_slist_append(hd, "User-Agent: vinr-sim/1")) == NULL)
		goto fail;
	hd = n;
	/* curl would otherwise hold the body back for a 100-continue. */
	if ((n = curl_slist_append(hd, "Expect:")) == NULL)
		goto fail;
	return n;
fail:
	curl_slist_free_all(hd);
	return NULL;
}

struct resp {
	char	buf[RESP_KEEP];
	size_t	len;
};

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb, room = sizeof(r->buf) - 1 - r->len;

	memcpy(r->buf + r->len, p, n < room ? n : room);
	r->len += n < room ? n : room;
	r->buf[r->len] = '\0';
	return n;
}

static int
on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct sim_hook *h = arg;

	(void)a; (void)b; (void)c; (void)d;
	return atomic_load(&h->abort) ? 1 : 0;
}

/* One HTTP attempt.  Returns the HTTP status (0 on a network error, with
 * err filled). */
static long
attempt(struct sim_hook *h, CURL *curl, const char *event_id, const char *body,
    struct resp *resp, char *err, size_t errlen)
{
	struct curl_slist *hd;
	char ebuf[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;

	resp->len = 0;
	resp->buf[0] = '\0';
	if ((hd = sign_headers(h, event_id, (long long)time(NULL), body, strlen(body))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return 0;
	}
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, h->url);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, h->cfg.timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, h->cfg.timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, ebuf);
	rc = curl_easy_perform(curl);
	curl_slist_free_all(hd);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", ebuf[0] != '\0' ? ebuf : curl_easy_strerror(rc));
		return 0;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static void *
sender(void *arg)
{
	struct sim_hook *h = arg;
	struct delivery *d, *prev;
	struct timespec ts;
	struct resp resp;
	struct record *r;
	char err[CURL_ERROR_SIZE], id[SIM_ID_LEN], type[64], payment[SIM_ID_LEN];
	char what[RESP_KEEP + 32];
	const char *body;
	int64_t now;
	long code;
	CURL *curl;

	if ((curl = curl_easy_init()) == NULL) {
		log_crit("sim: webhook sender: curl_easy_init failed, no webhooks will be sent");
		return NULL;
	}
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		if ((d = queue_first(h, &prev)) == NULL) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		now = util_mono_ms();
		if (d->due > now) {
			util_deadline(&ts, d->due - now);
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
			continue;
		}
		queue_unlink(h, d, prev);
		r = &h->recs[d->rec];
		/* Only this thread frees a body, so it stays valid unlocked. */
		body = r->body;
		memcpy(id, r->id, sizeof(id));
		memcpy(type, r->type, sizeof(type));
		memcpy(payment, r->payment, sizeof(payment));
		pthread_mutex_unlock(&h->mu);

		err[0] = '\0';
		code = attempt(h, curl, id, body, &resp, err, sizeof(err));
		d->attempt++;

		pthread_mutex_lock(&h->mu);
		r = &h->recs[d->rec];
		r->attempts++;
		h->st.attempts++;
		r->last_status = code;
		snprintf(r->last_error, sizeof(r->last_error), "%s", err);
		snprintf(r->last_response, sizeof(r->last_response), "%s", resp.buf);
		if (code != 0)
			snprintf(what, sizeof(what), "HTTP %ld %s", code, resp.buf);
		else
			snprintf(what, sizeof(what), "%s", err);
		if (code >= 200 && code < 300) {
			log_info("webhook %s %s (%s) -> %s", id, type, payment, what);
			r->delivered++;
			h->st.sent++;
		} else if (h->stopping) {
			/* Aborted by the stop: discarded below with the queue. */
		} else if (d->attempt <= h->cfg.max_retries) {
			int64_t wait = 1000;

			for (int i = 1; i < d->attempt && wait < BACKOFF_CAP_MS; i++)
				wait *= 2;
			if (wait > BACKOFF_CAP_MS)
				wait = BACKOFF_CAP_MS;
			log_info("webhook %s %s (%s) -> %s; retry %d in %lld ms", id, type,
			    payment, what, d->attempt, (long long)wait);
			h->st.retried++;
			d->due = util_mono_ms() + wait;
			queue_append(h, d);
			continue;
		} else {
			log_warnx("webhook %s %s (%s) -> %s; giving up after %d attempt(s)", id,
			    type, payment, what, d->attempt);
			r->gave_up = 1;
			h->st.failed++;
		}
		if (h->stopping && !(code >= 200 && code < 300)) {
			queue_append(h, d);	/* still undelivered: discarded by stop */
			continue;
		}
		free(d);
		if (--r->pending == 0) {
			free(r->body);
			r->body = NULL;
		}
	}
	pthread_mutex_unlock(&h->mu);
	curl_easy_cleanup(curl);
	return NULL;
}

/*
 * Appends the whsk_ keys of cfg->signing_key_file (secret-file rules: one a
 * line, blanks and # comments skipped) to h->keys: they sign v1a items.
 * Returns 0, or -1 with a message that never quotes a key.
 */
static int
load_signing_keys(struct sim_hook *h, const struct sim_hook_config *cfg,
    char *err, size_t errlen)
{
	struct secrets sec = { 0 };
	struct sig_key *k;
	char why[512];
	int rc = -1;

	if (cfg->scheme != SIG_SCHEME_STANDARD) {
		snprintf(err, errlen, "--signing-key-file signs v1a: only with "
		    "--scheme standard");
		return -1;
	}
	if (secrets_load(&sec, cfg->signing_key_file, NULL, NULL, NULL, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "--signing-key-file: %s", why);
		return -1;
	}
	if (sec.n == 0) {
		snprintf(err, errlen, "--signing-key-file %s: no key in it",
		    cfg->signing_key_file);
		goto done;
	}
	if ((k = reallocarray(h->keys, h->nkeys + sec.n, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	h->keys = k;
	for (size_t i = 0; i < sec.n; i++) {
		if (sig_key_from_private(sec.v[i], &h->keys[h->nkeys]) == -1) {
			snprintf(err, errlen, "--signing-key-file %s: key %zu is not "
			    "whsk_ + base64 of an Ed25519 seed", cfg->signing_key_file,
			    i + 1);
			goto done;
		}
		h->nkeys++;
	}
	rc = 0;
done:
	secrets_release(&sec);
	return rc;
}

struct sim_hook *
sim_hook_start(const struct sim_hook_config *cfg, char *err, size_t errlen)
{
	struct sim_hook *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->cfg = *cfg;
	pthread_mutex_init(&h->mu, NULL);
	util_cond_init(&h->cv);
	sim_rand_seed(&h->rand, cfg->seed);
	if (cfg->url != NULL && (h->url = strdup(cfg->url)) == NULL)
		goto oom;
	if (cfg->nkeys > 0) {
		if ((h->keys = calloc(cfg->nkeys, sizeof(*h->keys))) == NULL)
			goto oom;
		for (size_t i = 0; i < cfg->nkeys; i++) {
			if (sig_key_copy(&h->keys[i], &cfg->keys[i]) == -1)
				goto oom;
			h->nkeys++;
		}
	}
	if (cfg->signing_key_file != NULL &&
	    load_signing_keys(h, cfg, err, errlen) == -1)
		goto fail;
	h->cfg.keys = NULL;
	h->cfg.url = NULL;
	h->cfg.signing_key_file = NULL;
	if (pthread_create(&h->thread, NULL, sender, h) != 0) {
		snprintf(err, errlen, "cannot start the webhook sender thread");
		goto fail;
	}
	return h;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	for (size_t i = 0; i < h->nkeys; i++)
		sig_key_release(&h->keys[i]);
	free(h->keys);
	free(h->url);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
	return NULL;
}

static int
add_delivery(struct sim_hook *h, size_t rec, int64_t due)
{
	struct delivery *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -1;
	d->rec = rec;
	d->due = due;
	queue_append(h, d);
	h->recs[rec].copies++;
	h->recs[rec].pending++;
	return 0;
}

void
sim_hook_send(struct sim_hook *h, const char *event_id, const char *type,
    const char *payment_id, const char *status, const char *body, int force_drop,
    int force_duplicate)
{
	struct record *r;
	double u_drop, u_dup, u_d1, u_d2;
	int64_t now = util_mono_ms(), due1, due2;
	int drop, dup;

	pthread_mutex_lock(&h->mu);
	/* Four draws per event whatever is configured: with --seed, the same
	 * sequence of events always meets the same decisions. */
	u_drop = sim_rand_unit(&h->rand);
	u_dup = sim_rand_unit(&h->rand);
	u_d1 = sim_rand_unit(&h->rand);
	u_d2 = sim_rand_unit(&h->rand);

	if (h->nrecs == h->caprecs) {
		size_t cap = h->caprecs ? h->caprecs * 2 : 256;
		struct record *n = realloc(h->recs, cap * sizeof(*n));

		if (n == NULL) {
			pthread_mutex_unlock(&h->mu);
			log_warnx("sim: out of memory, event %s not recorded", event_id);
			return;
		}
		h->recs = n;
		h->caprecs = cap;
	}
	r = &h->recs[h->nrecs];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", event_id);
	snprintf(r->type, sizeof(r->type), "%s", type);
	snprintf(r->payment, sizeof(r->payment), "%s", payment_id);
	snprintf(r->status, sizeof(r->status), "%s", status);
	h->st.events++;

	drop = force_drop || u_drop < h->cfg.drop_rate;
	dup = force_duplicate || u_dup < h->cfg.duplicate_rate;
	if (h->url == NULL) {
		h->nrecs++;
		pthread_mutex_unlock(&h->mu);
		log_debug("event %s %s (%s): no --webhook-url, not sent", event_id, type,
		    payment_id);
		return;
	}
	if (drop) {
		r->dropped = 1;
		h->nrecs++;
		h->st.dropped++;
		pthread_mutex_unlock(&h->mu);
		log_info("webhook %s %s (%s) dropped on purpose", event_id, type, payment_id);
		return;
	}
	if ((r->body = strdup(body)) == NULL) {
		pthread_mutex_unlock(&h->mu);
		log_warnx("sim: out of memory, event %s not sent", event_id);
		return;
	}
	h->nrecs++;
	due1 = now + h->cfg.delay_ms;
	due2 = due1;
	if (h->cfg.reorder) {
		due1 += (int64_t)(u_d1 * (double)h->cfg.reorder_window_ms);
		due2 += (int64_t)(u_d2 * (double)h->cfg.reorder_window_ms);
	}
	if (add_delivery(h, h->nrecs - 1, due1) == -1 ||
	    (dup && add_delivery(h, h->nrecs - 1, due2) == -1))
		log_warnx("sim: out of memory, a delivery of %s is lost", event_id);
	if (dup) {
		h->st.duplicated++;
		log_info("webhook %s %s (%s) will be sent twice on purpose", event_id, type,
		    payment_id);
	}
	if (h->cfg.reorder)
		log_debug("webhook %s held %lld ms (reorder)", event_id, (long long)(due1 - now));
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void
sim_hook_stats_get(struct sim_hook *h, struct sim_hook_stats *st)
{
	pthread_mutex_lock(&h->mu);
	*st = h->st;
	pthread_mutex_unlock(&h->mu);
}

cJSON *
sim_hook_events_json(struct sim_hook *h)
{
	cJSON *arr = cJSON_CreateArray(), *o;

	if (arr == NULL)
		return NULL;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->nrecs; i++) {
		const struct record *r = &h->recs[i];

		if ((o = cJSON_CreateObject()) == NULL)
			break;
		cJSON_AddStringToObject(o, "id", r->id);
		cJSON_AddStringToObject(o, "type", r->type);
		cJSON_AddStringToObject(o, "paymentId", r->payment);
		cJSON_AddStringToObject(o, "status", r->status);
		cJSON_AddStringToObject(o, "delivery", record_state(h, r));
		cJSON_AddNumberToObject(o, "copies", r->copies);
		cJSON_AddNumberToObject(o, "delivered", r->delivered);
		cJSON_AddNumberToObject(o, "attempts", r->attempts);
		if (r->last_status != 0)
			cJSON_AddNumberToObject(o, "lastStatus", (double)r->last_status);
		else
			cJSON_AddNullToObject(o, "lastStatus");
		if (r->last_error[0] != '\0')
			cJSON_AddStringToObject(o, "lastError", r->last_error);
		else
			cJSON_AddNullToObject(o, "lastError");
		if (r->attempts > 0)
			cJSON_AddStringToObject(o, "lastResponse", r->last_response);
		else
			cJSON_AddNullToObject(o, "lastResponse");
		cJSON_AddItemToArray(arr, o);
	}
	pthread_mutex_unlock(&h->mu);
	return arr;
}

void
sim_hook_stop(struct sim_hook *h)
{
	struct delivery *d;
	long left = 0;

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = 1;
	atomic_store(&h->abort, 1);
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);

	while ((d = h->head) != NULL) {
		h->head = d->next;
		free(d);
		left++;
	}
	if (left > 0)
		log_warnx("sim: stopping with %ld webhook deliver%s unsent", left,
		    left == 1 ? "y" : "ies");
	for (size_t i = 0; i < h->nrecs; i++)
		free(h->recs[i].body);
	free(h->recs);
	for (size_t i = 0; i < h->nkeys; i++)
		sig_key_release(&h->keys[i]);
	free(h->keys);
	free(h->url);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
}
