/*
 * sim_http.c - see sim_http.h.
 *
 * DESIGN.  libmicrohttpd runs one thread per connection, so a sync create
 * can simply block in its handler until the payment settles (sim_pay_wait).
 * The handler has the usual three phases: allocate a context on the first
 * call, collect the body (capped at MAX_BODY) on the next ones, answer on
 * the last.  The little state of this file - injected faults, the
 * retrieve counters and the rate limit's buckets - sits behind h->mu, a
 * leaf lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "sim_http.h"

#define MAX_BODY		65536
#define MAX_AMOUNT		99999999LL
#define MAX_DELAY_S		600
#define MAX_REFERENCE		255
#define HIST_SECONDS		3600	/* retrievesPerSecond keeps the last hour */
#define MAX_BY_PAYMENT		10000	/* retrievesByPayment keeps this many ids */
#define MAX_FAULT_DELAY_MS	60000
#define MAX_BUCKETS		256	/* rate-limited keys remembered at once */

enum op { OP_CREATE, OP_RETRIEVE, OP_CANCEL, OP_CAPTURE, OP_COUNT };

static const char *const op_names[OP_COUNT] = { "create", "retrieve", "cancel", "capture" };

struct fault {
	int	status;		/* 0: answer normally (after delay_ms) */
	long	count;		/* calls left; -1 = until cleared; 0 = none */
	long	delay_ms;
	char	retry_after[64];	/* "" = no Retry-After header */
};

/* One API key's retrieve allowance (a token bucket); the key is hashed so
 * that the simulator keeps no copy of it. */
struct bucket {
	uint64_t	key;
	double		tokens;
	int64_t		last_ms;	/* monotonic; 0 = slot unused */
};

struct sim_http {
	struct sim_http_config	 cfg;
	struct sim_pay		*pay;
	struct sim_hook		*hook;
	struct MHD_Daemon	*mhd;
	atomic_int		 stopping;

	pthread_mutex_t		 mu;
	struct fault		 faults[OP_COUNT];
	long			 requests;
	long			 retrieves;
	long			 retrieves_faulted;
	long			 retrieves_limited;
	struct bucket		 buckets[MAX_BUCKETS];
	cJSON			*per_second;	/* {"<unix second>": n} oldest first */
	cJSON			*by_payment;	/* {"tpay_…": n} */
};

struct req {
	char	*buf;
	size_t	 len, cap;
	int	 too_large;
};

static const char *const currencies[] = {
	"USD", "EUR", "GBP", "CAD", "AUD", "NZD", "JPY", "CHF", "SEK", "NOK", "DKK",
	"PLN", "CZK", "HUF", "MXN", "SGD", "HKD"
};

/* ---- responses --------------------------------------------------------- */

/* Sends o (consumed) with the given status and optional extra header. */
static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, cJSON *o, const char *hname,
    const char *hvalue)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text = o != NULL ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	if (text == NULL) {
		static const char oom[] =
		    "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";

		status = 500;
		r = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)(uintptr_t)oom,
		    MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	}
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (hname != NULL)
		MHD_add_response_header(r, hname, hvalue);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply_error(struct MHD_Connection *c, int status, const char *code, const char *message,
    const char *hname, const char *hvalue)
{
	cJSON *o = cJSON_CreateObject(), *e;

	if (o != NULL && (e = cJSON_AddObjectToObject(o, "error")) != NULL) {
		cJSON_AddStringToObject(e, "code", code);
		cJSON_AddStringToObject(e, "message", message);
	}
	log_debug("-> %d %s: %s", status, code, message);
	return reply(c, (unsigned)status, o, hname, hvalue);
}

static enum MHD_Result
reply_err(struct MHD_Connection *c, const struct sim_err *e)
{
	return reply_error(c, e->status, e->code, e->message, NULL, NULL);
}

static const char *
code_for_status(int status)
{
	switch (status) {
	case 400: return "invalid_request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 409: return "conflict";
	case 429: return "rate_limited";
	case 500: return "internal_error";
	case 502: return "bad_gateway";
	case 503: return "service_unavailable";
	case 504: return "gateway_timeout";
	default:  return "simulated_error";
	}
}

/* ---- faults and counters ------------------------------------------------ */

static void
count_inc(cJSON *map, const char *key, int keep_last, size_t cap)
{
	cJSON *it = keep_last && map->child != NULL ? map->child->prev : NULL;

	/* The histogram only ever grows at its end: look there first. */
	if (it == NULL || it->string == NULL || strcmp(it->string, key) != 0)
		it = cJSON_GetObjectItemCaseSensitive(map, key);
	if (it != NULL) {
		cJSON_SetNumberValue(it, it->valuedouble + 1);
		return;
	}
	if ((size_t)cJSON_GetArraySize(map) >= cap)
		cJSON_DeleteItemFromArray(map, 0);
	cJSON_AddNumberToObject(map, key, 1);
}

/*
 * Called for every API request of operation op.  Returns the fault to apply
 * (copied to *out, its count used up) or 0 when there is none.
 */
static int
fault_take(struct sim_http *h, enum op op, const char *payment_id, struct fault *out)
{
	struct fault *f = &h->faults[op];
	int hit = 0;

	pthread_mutex_lock(&h->mu);
	h->requests++;
	if (f->count != 0) {
		*out = *f;
		hit = 1;
		if (f->count > 0)
			f->count--;
	}
	if (op == OP_RETRIEVE) {
		char sec[32];

		snprintf(sec, sizeof(sec), "%lld", (long long)(util_now_ms() / 1000));
		h->retrieves++;
		if (hit && out->status != 0)
			h->retrieves_faulted++;
		count_inc(h->per_second, sec, 1, HIST_SECONDS);
		if (payment_id != NULL)
			count_inc(h->by_payment, payment_id, 0, MAX_BY_PAYMENT);
	}
	pthread_mutex_unlock(&h->mu);
	return hit;
}

/* Sleeps ms in short slices so that a stop is never held up for long. */
static void
nap(struct sim_http *h, long ms)
{
	while (ms > 0 && !atomic_load(&h->stopping)) {
		long s = ms < 50 ? ms : 50;

		usleep((useconds_t)s * 1000);
		ms -= s;
	}
}

/* Applies a fault: returns 1 when it answered (into *ret). */
static int
fault_apply(struct sim_http *h, struct MHD_Connection *c, enum op op,
    const char *payment_id, enum MHD_Result *ret)
{
	struct fault f;
	char msg[128];

	if (!fault_take(h, op, payment_id, &f))
		return 0;
	if (f.delay_ms > 0)
		nap(h, f.delay_ms);
	if (f.status == 0)
		return 0;
	snprintf(msg, sizeof(msg), "simulated fault (%s %d)", op_names[op], f.status);
	log_info("fault: %s%s%s answered %d", op_names[op], payment_id ? " " : "",
	    payment_id ? payment_id : "", f.status);
	*ret = reply_error(c, f.status, code_for_status(f.status), msg,
	    f.retry_after[0] != '\0' ? "Retry-After" : NULL, f.retry_after);
	return 1;
}

static cJSON *
faults_json_locked(struct sim_http *h)
{
	cJSON *o = cJSON_CreateObject(), *f;

	for (int i = 0; o != NULL && i < OP_COUNT; i++) {
		const struct fault *ft = &h->faults[i];

		if (ft->count == 0)
			continue;
		if ((f = cJSON_AddObjectToObject(o, op_names[i])) == NULL)
			break;
		if (ft->status != 0)
			cJSON_AddNumberToObject(f, "status", ft->status);
		cJSON_AddNumberToObject(f, "count", (double)ft->count);
		if (ft->delay_ms > 0)
			cJSON_AddNumberToObject(f, "delayMs", (double)ft->delay_ms);
		if (ft->retry_after[0] != '\0')
			cJSON_AddStringToObject(f, "retryAfter", ft->retry_after);
	}
	return o;
}

/* {"retrieve": {"status":429,"retryAfter":2,"count":3,"delayMs":0} | null, …} */
static enum MHD_Result
faults_post(struct sim_http *h, struct MHD_Connection *c, const cJSON *body)
{
	struct fault nf[OP_COUNT];
	int set[OP_COUNT] = { 0 };
	const cJSON *it, *v;
	cJSON *o;
	char msg[160];

	if (!cJSON_IsObject(body))
		return reply_error(c, 400, "invalid_request", "body must be a JSON object",
		    NULL, NULL);
	memset(nf, 0, sizeof(nf));
	cJSON_ArrayForEach(it, body) {
		int op;

		for (op = 0; op < OP_COUNT; op++)
			if (strcmp(it->string, op_names[op]) == 0)
				break;
		if (op == OP_COUNT) {
			snprintf(msg, sizeof(msg), "unknown operation \"%.40s\" (create, retrieve, "
			    "cancel, capture)", it->string);
			return reply_error(c, 400, "invalid_request", msg, NULL, NULL);
		}
		set[op] = 1;
		if (cJSON_IsNull(it))
			continue;	/* clears */
		if (!cJSON_IsObject(it))
			goto bad;
		nf[op].count = 1;
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "status")) != NULL) {
			if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble ||
			    v->valueint < 400 || v->valueint > 599)
				goto bad;
			nf[op].status = v->valueint;
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "count")) != NULL) {
			if (!cJSON_IsNumber(v) || v->valuedouble != (long)v->valuedouble ||
			    v->valuedouble < -1)
				goto bad;
			nf[op].count = (long)v->valuedouble;
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "delayMs")) != NULL) {
			if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
			    v->valuedouble > MAX_FAULT_DELAY_MS)
				goto bad;
			nf[op].delay_ms = (long)v->valuedouble;
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(it, "retryAfter")) != NULL) {
			if (cJSON_IsNumber(v) && v->valuedouble >= 0)
				snprintf(nf[op].retry_after, sizeof(nf[op].retry_after), "%ld",
				    (long)v->valuedouble);
			else if (cJSON_IsString(v) && strlen(v->valuestring) <
			    sizeof(nf[op].retry_after) && strpbrk(v->valuestring, "\r\n") == NULL)
				snprintf(nf[op].retry_after, sizeof(nf[op].retry_after), "%s",
				    v->valuestring);
			else
				goto bad;
		}
		if (nf[op].status == 0 && nf[op].delay_ms == 0)
			goto bad;
	}
	pthread_mutex_lock(&h->mu);
	for (int op = 0; op < OP_COUNT; op++)
		if (set[op]) {
			h->faults[op] = nf[op];
			if (nf[op].count != 0)
				log_info("fault: next %ld %s call(s): status %d, delay %ld ms",
				    nf[op].count, op_names[op], nf[op].status, nf[op].delay_ms);
			else
				log_info("fault: %s cleared", op_names[op]);
		}
	o = cJSON_CreateObject();
	if (o != NULL)
		cJSON_AddItemToObject(o, "faults", faults_json_locked(h));
	pthread_mutex_unlock(&h->mu);
	return reply(c, 200, o, NULL, NULL);
bad:
	return reply_error(c, 400, "invalid_request", "a fault is null or an object "
	    "{\"status\": 400..599, \"count\": n (default 1, -1 = until cleared), "
	    "\"retryAfter\": seconds or HTTP date, \"delayMs\": 0..60000} with a status "
	    "or a delayMs", NULL, NULL);
}

static enum MHD_Result
faults_get(struct sim_http *h, struct MHD_Connection *c, int clear)
{
	cJSON *o = cJSON_CreateObject();

	pthread_mutex_lock(&h->mu);
	if (clear) {
		memset(h->faults, 0, sizeof(h->faults));
		log_info("fault: all cleared");
	}
	if (o != NULL)
		cJSON_AddItemToObject(o, "faults", faults_json_locked(h));
	pthread_mutex_unlock(&h->mu);
	return reply(c, 200, o, NULL, NULL);
}

static enum MHD_Result
stats_get(struct sim_http *h, struct MHD_Connection *c)
{
	struct sim_hook_stats hs;
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return reply(c, 500, NULL, NULL, NULL);
	sim_hook_stats_get(h->hook, &hs);
	cJSON_AddItemToObject(o, "payments", sim_pay_counts_json(h->pay));
	pthread_mutex_lock(&h->mu);
	cJSON_AddNumberToObject(o, "requests", (double)h->requests);
	cJSON_AddNumberToObject(o, "retrieves", (double)h->retrieves);
	cJSON_AddNumberToObject(o, "retrievesFaulted", (double)h->retrieves_faulted);
	cJSON_AddNumberToObject(o, "retrievesLimited", (double)h->retrieves_limited);
	cJSON_AddItemToObject(o, "retrievesPerSecond", cJSON_Duplicate(h->per_second, 1));
	cJSON_AddItemToObject(o, "retrievesByPayment", cJSON_Duplicate(h->by_payment, 1));
	cJSON_AddItemToObject(o, "faults", faults_json_locked(h));
	pthread_mutex_unlock(&h->mu);
	cJSON_AddNumberToObject(o, "webhookEvents", (double)hs.events);
	cJSON_AddNumberToObject(o, "webhooksSent", (double)hs.sent);
	cJSON_AddNumberToObject(o, "webhooksDropped", (double)hs.dropped);
	cJSON_AddNumberToObject(o, "webhooksDuplicated", (double)hs.duplicated);
	cJSON_AddNumberToObject(o, "webhookAttempts", (double)hs.attempts);
	cJSON_AddNumberToObject(o, "webhooksRetried", (double)hs.retried);
	cJSON_AddNumberToObject(o, "webhooksFailed", (double)hs.failed);
	cJSON_AddNumberToObject(o, "webhooksQueued", (double)hs.queued);
	return reply(c, 200, o, NULL, NULL);
}

/* ---- the Cloud API ------------------------------------------------------ */

/* The request's API key when it is a valid one, else NULL. */
static const char *
api_key_of(struct sim_http *h, struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

	if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
		return NULL;
	for (a += 7; *a == ' '; a++)
		;
	if (h->cfg.api_key != NULL)
		return strcmp(a, h->cfg.api_key) == 0 ? a : NULL;
	if (strncmp(a, "sk_test_", 8) == 0 && a[8] != '\0' && strpbrk(a, " \t") == NULL)
		return a;
	return NULL;
}

static uint64_t
fnv1a(const char *s)
{
	uint64_t x = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		x = (x ^ (unsigned char)*s) * 0x100000001b3ULL;
	return x;
}

/*
 * VINR rate-limits sustained polling of retrieve.  Takes one retrieve from
 * key's bucket: returns 1, or 0 with *retry_after_s (at least 1) when the
 * bucket is empty.  A new key gets a full bucket; when every slot is taken,
 * the key idle the longest gives its slot up.
 */
static int
rate_take(struct sim_http *h, const char *key, long *retry_after_s)
{
	uint64_t k = fnv1a(key);
	int64_t now = util_mono_ms();
	double limit = (double)h->cfg.retrieve_limit;
	double per_ms = limit / (double)h->cfg.retrieve_window_ms;
	struct bucket *b = NULL, *oldest = &h->buckets[0];
	int ok;

	if (h->cfg.retrieve_limit == 0)
		return 1;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < MAX_BUCKETS && b == NULL; i++) {
		if (h->buckets[i].last_ms != 0 && h->buckets[i].key == k)
			b = &h->buckets[i];
		else if (h->buckets[i].last_ms < oldest->last_ms)
			oldest = &h->buckets[i];
	}
	if (b == NULL) {
		b = oldest;
		b->key = k;
		b->tokens = limit;
	} else {
		b->tokens += (double)(now - b->last_ms) * per_ms;
		if (b->tokens > limit)
			b->tokens = limit;
	}
	b->last_ms = now > 0 ? now : 1;
	if ((ok = b->tokens >= 1.0)) {
		b->tokens -= 1.0;
	} else {
		/* Whole seconds until the next token, rounded up. */
		double wait_s = (1.0 - b->tokens) / per_ms / 1000.0;

		*retry_after_s = (long)wait_s;
		if ((double)*retry_after_s < wait_s || *retry_after_s < 1)
			(*retry_after_s)++;
		h->retrieves_limited++;
	}
	pthread_mutex_unlock(&h->mu);
	return ok;
}

int
sim_http_config_retrieve_limit(struct sim_http_config *cfg, const char *arg)
{
	char *end;
	long long n;
	double s = 1;

	errno = 0;
	n = strtoll(arg, &end, 10);
	if (end == arg || errno != 0 || n < 0 || n > 1000000)
		return -1;
	if (*end == '/') {
		const char *q = end + 1;

		s = strtod(q, &end);
		if (end == q || errno != 0 || !(s >= 0.001 && s <= 86400))
			return -1;
	} else if (n != 0) {
		return -1;	/* "N/S", or "0" for no limit */
	}
	if (*end != '\0')
		return -1;
	cfg->retrieve_limit = (long)n;
	cfg->retrieve_window_ms = (int64_t)(s * 1000 + 0.5);
	cfg->retrieve_limit_set = 1;
	return 0;
}

/* Parses the body as JSON: NULL (with *bad set) when not JSON.  An empty
 * body gives NULL with *bad clear. */
static cJSON *
parse_body(const struct req *rq, int *bad)
{
	const char *end;
	cJSON *j;

	*bad = 0;
	if (rq->len == 0)
		return NULL;
	if ((j = cJSON_ParseWithLengthOpts(rq->buf, rq->len, &end, 0)) == NULL)
		*bad = 1;
	return j;
}

static int
is_integer(const cJSON *v, long long lo, long long hi)
{
	return cJSON_IsNumber(v) && v->valuedouble >= (double)lo && v->valuedouble <= (double)hi &&
	    v->valuedouble == (double)(long long)v->valuedouble;
}

/* Optional string field: 0 absent/null, 1 set, -1 wrong type. */
static int
opt_string(const cJSON *o, const char *k, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return -1;
	*out = v->valuestring;
	return 1;
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* The sim-only "simulate" wishes of a create (absent or null: none); 0 or -1. */
static int
simulate_parse(const cJSON *sim, struct sim_pay_request *rq)
{
	const cJSON *v;

	if (sim == NULL || cJSON_IsNull(sim))
		return 0;
	if (!cJSON_IsObject(sim))
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(sim, "dropWebhooks")) != NULL) {
		if (!cJSON_IsBool(v))
			return -1;
		rq->drop_webhooks = cJSON_IsTrue(v);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(sim, "duplicateWebhooks")) != NULL) {
		if (!cJSON_IsBool(v))
			return -1;
		rq->duplicate_webhooks = cJSON_IsTrue(v);
	}
	return 0;
}

/* Reads and checks a create body into rq (pointers into body). */
static int
create_parse(struct sim_http *h, struct MHD_Connection *c, const cJSON *body,
    struct sim_pay_request *rq, char currency[4], struct sim_err *e)
{
	const cJSON *v;
	const char *s, *q;
	char *end;
	double d;
	size_t i;

	memset(rq, 0, sizeof(*rq));
	if (!cJSON_IsObject(body)) {
		sim_err_set(e, 400, "invalid_request", "the body must be a JSON object");
		return -1;
	}
	if (opt_string(body, "terminalId", &rq->terminal_id) != 1 || *rq->terminal_id == '\0' ||
	    strlen(rq->terminal_id) > MAX_REFERENCE || has_control(rq->terminal_id)) {
		sim_err_set(e, 400, "invalid_request", "terminalId is required (a string of up "
		    "to %d printable bytes)", MAX_REFERENCE);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(body, "amount");
	if (!is_integer(v, 1, MAX_AMOUNT)) {
		sim_err_set(e, 400, "invalid_request", "amount must be an integer from 1 to %lld "
		    "(minor units, e.g. cents)", MAX_AMOUNT);
		return -1;
	}
	rq->amount = (long long)v->valuedouble;
	if (opt_string(body, "currency", &s) != 1) {
		sim_err_set(e, 400, "invalid_request", "currency is required (ISO 4217, e.g. "
		    "\"USD\")");
		return -1;
	}
	for (i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
		if (strcasecmp(s, currencies[i]) == 0)
			break;
	if (i == sizeof(currencies) / sizeof(currencies[0])) {
		sim_err_set(e, 400, "invalid_request", "currency \"%.16s\" is not supported",
		    s);
		return -1;
	}
	snprintf(currency, 4, "%s", currencies[i]);
	rq->currency = currency;
	switch (opt_string(body, "reference", &rq->reference)) {
	case -1:
		sim_err_set(e, 400, "invalid_request", "reference must be a string");
		return -1;
	case 1:
		if (strlen(rq->reference) > MAX_REFERENCE) {
			sim_err_set(e, 400, "invalid_request", "reference is longer than %d "
			    "bytes", MAX_REFERENCE);
			return -1;
		}
		break;
	}
	s = "automatic";
	if (opt_string(body, "captureMethod", &s) == -1 ||
	    (strcmp(s, "automatic") != 0 && strcmp(s, "manual") != 0)) {
		sim_err_set(e, 400, "invalid_request", "captureMethod must be \"automatic\" "
		    "or \"manual\"");
		return -1;
	}
	rq->manual = strcmp(s, "manual") == 0;
	s = "async";
	if (opt_string(body, "responseMode", &s) == -1 ||
	    (strcmp(s, "sync") != 0 && strcmp(s, "async") != 0)) {
		sim_err_set(e, 400, "invalid_request", "responseMode must be \"sync\" or "
		    "\"async\"");
		return -1;
	}
	rq->sync = strcmp(s, "sync") == 0;
	s = SIM_DEFAULT_CARD;
	if (opt_string(body, "testCard", &s) == -1 || (rq->card = sim_card_find(s)) == NULL) {
		sim_err_set(e, 400, "invalid_request", "testCard must be one of the test card "
		    "numbers (GET /_sim/cards)");
		return -1;
	}
	if (simulate_parse(cJSON_GetObjectItemCaseSensitive(body, "simulate"), rq) == -1) {
		sim_err_set(e, 400, "invalid_request", "simulate must be an object "
		    "{\"dropWebhooks\": bool, \"duplicateWebhooks\": bool}");
		return -1;
	}
	rq->delay_ms = h->cfg.default_delay_ms;
	if ((q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "simulateDelay")) != NULL) {
		errno = 0;
		d = strtod(q, &end);
		if (*q == '\0' || *end != '\0' || errno != 0 || !(d >= 0 && d <= MAX_DELAY_S)) {
			sim_err_set(e, 400, "invalid_request", "simulateDelay must be a number of "
			    "seconds from 0 to %d", MAX_DELAY_S);
			return -1;
		}
		rq->delay_ms = (int64_t)(d * 1000 + 0.5);
	}
	return 0;
}

static enum MHD_Result
api_create(struct sim_http *h, struct MHD_Connection *c, const cJSON *body)
{
	struct sim_pay_request rq;
	struct sim_err e;
	char currency[4], id[SIM_ID_LEN];
	cJSON *o;
	int settled;

	if (create_parse(h, c, body, &rq, currency, &e) == -1)
		return reply_err(c, &e);
	if ((o = sim_pay_create(h->pay, &rq, id, &e)) == NULL)
		return reply_err(c, &e);
	/* Async: 202 Accepted with the payment pending, as the page says. */
	if (!rq.sync)
		return reply(c, 202, o, NULL, NULL);
	cJSON_Delete(o);
	if ((o = sim_pay_wait(h->pay, id, h->cfg.sync_timeout_ms, &settled, &e)) == NULL)
		return reply_err(c, &e);
	/* Not settled in time: the answer says so, the client polls. */
	return reply(c, settled ? 200 : 202, o, NULL, NULL);
}

static enum MHD_Result
api_capture(struct sim_http *h, struct MHD_Connection *c, const char *id, const cJSON *body)
{
	const cJSON *v = NULL;
	struct sim_err e;
	cJSON *o;

	if (body != NULL) {
		if (!cJSON_IsObject(body))
			return reply_error(c, 400, "invalid_request", "the body must be a JSON "
			    "object", NULL, NULL);
		v = cJSON_GetObjectItemCaseSensitive(body, "amount");
		if (cJSON_IsNull(v))
			v = NULL;
		/* sim_pay_capture() checks the upper bound: amount + tolerance. */
		if (v != NULL && !is_integer(v, 1, 2 * MAX_AMOUNT))
			return reply_error(c, 400, "invalid_request", "amount must be a positive "
			    "integer", NULL, NULL);
	}
	o = sim_pay_capture(h->pay, id, v != NULL, v != NULL ? (long long)v->valuedouble : 0, &e);
	return o != NULL ? reply(c, 200, o, NULL, NULL) : reply_err(c, &e);
}

/*
 * /v1/terminal/payments[/{id}[/cancel|/capture]].  Returns -1 when path is
 * not one of them; else the operation, with the id copied out.
 */
static int
api_route(const char *url, char *id, size_t idlen)
{
	static const char base[] = "/v1/terminal/payments";
	const char *p, *slash;
	size_t n;

	if (strncmp(url, base, sizeof(base) - 1) != 0)
		return -1;
	p = url + sizeof(base) - 1;
	if (*p == '\0')
		return OP_CREATE;
	if (*p++ != '/' || *p == '\0' || *p == '/')
		return -1;
	slash = strchr(p, '/');
	n = slash != NULL ? (size_t)(slash - p) : strlen(p);
	if (n >= idlen)
		return -1;
	memcpy(id, p, n);
	id[n] = '\0';
	if (slash == NULL)
		return OP_RETRIEVE;
	if (strcmp(slash, "/cancel") == 0)
		return OP_CANCEL;
	if (strcmp(slash, "/capture") == 0)
		return OP_CAPTURE;
	return -1;
}

static enum MHD_Result
api(struct sim_http *h, struct MHD_Connection *c, const char *url, const char *method,
    const struct req *rq)
{
	char id[SIM_ID_LEN + 64], retry[24];
	enum MHD_Result ret;
	struct sim_err e;
	const char *key;
	cJSON *body, *o;
	long retry_s;
	int op, bad;

	if ((op = api_route(url, id, sizeof(id))) < 0)
		return reply_error(c, 404, "not_found", "no such route", NULL, NULL);
	if (strcmp(method, op == OP_RETRIEVE ? "GET" : "POST") != 0)
		return reply_error(c, 405, "method_not_allowed", "method not allowed",
		    "Allow", op == OP_RETRIEVE ? "GET" : "POST");
	if (fault_apply(h, c, (enum op)op, op == OP_CREATE ? NULL : id, &ret))
		return ret;
	if ((key = api_key_of(h, c)) == NULL)
		return reply_error(c, 401, "unauthorized", h->cfg.api_key != NULL ?
		    "a valid API key is required (Authorization: Bearer <key>)" :
		    "a test API key is required (Authorization: Bearer sk_test_...)",
		    "WWW-Authenticate", "Bearer");
	if (op == OP_RETRIEVE && !rate_take(h, key, &retry_s)) {
		snprintf(retry, sizeof(retry), "%ld", retry_s);
		log_info("rate limit: retrieve %s answered 429 (Retry-After %ld)", id, retry_s);
		return reply_error(c, 429, "rate_limited", "too many retrieve calls with this "
		    "key: use webhooks, and retrieve only after a missed event", "Retry-After",
		    retry);
	}
	if (rq->too_large)
		return reply_error(c, 413, "payload_too_large", "the body is over 64 KiB",
		    NULL, NULL);
	body = parse_body(rq, &bad);
	if (bad)
		return reply_error(c, 400, "invalid_request", "the body is not valid JSON",
		    NULL, NULL);
	switch (op) {
	case OP_CREATE:
		ret = api_create(h, c, body);
		break;
	case OP_RETRIEVE:
		o = sim_pay_get(h->pay, id, &e);
		ret = o != NULL ? reply(c, 200, o, NULL, NULL) : reply_err(c, &e);
		break;
	case OP_CANCEL:
		o = sim_pay_cancel(h->pay, id, &e);
		ret = o != NULL ? reply(c, 200, o, NULL, NULL) : reply_err(c, &e);
		break;
	default:
		ret = api_capture(h, c, id, body);
		break;
	}
	cJSON_Delete(body);
	return ret;
}

/*
 * GET /_sim/terminals, and POST /_sim/terminals/{id} {"online": bool}: takes
 * a terminal offline (its active payment fails: communication_error) or back.
 */
static enum MHD_Result
terminals(struct sim_http *h, struct MHD_Connection *c, const char *url, const char *method,
    const struct req *rq)
{
	const cJSON *v;
	struct sim_err e;
	cJSON *body, *o;
	int bad;

	if (strcmp(url, "/_sim/terminals") == 0) {
		if (strcmp(method, "GET") != 0)
			return reply_error(c, 405, "method_not_allowed", "method not allowed",
			    "Allow", "GET");
		return reply(c, 200, sim_pay_terminals_json(h->pay), NULL, NULL);
	}
	if (strcmp(method, "POST") != 0)
		return reply_error(c, 405, "method_not_allowed", "method not allowed", "Allow",
		    "POST");
	if (rq->too_large)
		return reply_error(c, 413, "payload_too_large", "the body is over 64 KiB",
		    NULL, NULL);
	body = parse_body(rq, &bad);
	v = cJSON_GetObjectItemCaseSensitive(body, "online");
	if (!cJSON_IsBool(v)) {
		cJSON_Delete(body);
		return reply_error(c, 400, "invalid_request", "the body must be {\"online\": "
		    "true|false}", NULL, NULL);
	}
	o = sim_pay_terminal_set(h->pay, url + sizeof("/_sim/terminals/") - 1, cJSON_IsTrue(v),
	    &e);
	cJSON_Delete(body);
	return o != NULL ? reply(c, 200, o, NULL, NULL) : reply_err(c, &e);
}

/* /_sim/...: no key needed, it is a test harness's window into the sim. */
static enum MHD_Result
control(struct sim_http *h, struct MHD_Connection *c, const char *url, const char *method,
    const struct req *rq)
{
	enum MHD_Result ret;
	cJSON *body;
	int get = strcmp(method, "GET") == 0, bad;

	if (strcmp(url, "/_sim/faults") == 0) {
		if (get)
			return faults_get(h, c, 0);
		if (strcmp(method, "DELETE") == 0)
			return faults_get(h, c, 1);
		if (strcmp(method, "POST") != 0)
			return reply_error(c, 405, "method_not_allowed", "method not allowed",
			    "Allow", "GET, POST, DELETE");
		if (rq->too_large)
			return reply_error(c, 413, "payload_too_large", "the body is over "
			    "64 KiB", NULL, NULL);
		body = parse_body(rq, &bad);
		ret = faults_post(h, c, body);
		cJSON_Delete(body);
		return ret;
	}
	if (strcmp(url, "/_sim/terminals") == 0 || (strncmp(url, "/_sim/terminals/", 16) == 0 &&
	    url[16] != '\0'))
		return terminals(h, c, url, method, rq);
	if (strcmp(url, "/_sim/stats") != 0 && strcmp(url, "/_sim/payments") != 0 &&
	    strcmp(url, "/_sim/events") != 0 && strcmp(url, "/_sim/cards") != 0)
		return reply_error(c, 404, "not_found", "no such route", NULL, NULL);
	if (!get)
		return reply_error(c, 405, "method_not_allowed", "method not allowed", "Allow",
		    "GET");
	if (strcmp(url, "/_sim/stats") == 0)
		return stats_get(h, c);
	if (strcmp(url, "/_sim/payments") == 0)
		return reply(c, 200, sim_pay_list_json(h->pay), NULL, NULL);
	if (strcmp(url, "/_sim/events") == 0) {
		cJSON *o = cJSON_CreateObject();

		if (o != NULL)
			cJSON_AddItemToObject(o, "events", sim_hook_events_json(h->hook));
		return reply(c, 200, o, NULL, NULL);
	}
	{
		cJSON *o = cJSON_CreateObject();

		if (o != NULL)
			cJSON_AddItemToObject(o, "cards", sim_cards_json());
		return reply(c, 200, o, NULL, NULL);
	}
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct sim_http *h = cls;
	struct req *rq = *con_cls;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		if (!rq->too_large && rq->len + n > MAX_BODY) {
			rq->too_large = 1;
			free(rq->buf);
			rq->buf = NULL;
			rq->len = rq->cap = 0;
		}
		if (!rq->too_large) {
			if (rq->len + n > rq->cap) {
				size_t cap = rq->cap ? rq->cap : 1024;
				char *nb;

				while (cap < rq->len + n)
					cap *= 2;
				if ((nb = realloc(rq->buf, cap)) == NULL)
					return MHD_NO;
				rq->buf = nb;
				rq->cap = cap;
			}
			memcpy(rq->buf + rq->len, upload_data, n);
			rq->len += n;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	log_debug("%s %s", method, url);
	if (strncmp(url, "/_sim/", 6) == 0)
		return control(h, c, url, method, rq);
	return api(h, c, url, method, rq);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;

	(void)cls; (void)c; (void)toe;
	if (rq != NULL) {
		free(rq->buf);
		free(rq);
		*con_cls = NULL;
	}
}

static void
mhd_log(void *arg, const char *fmt, va_list ap)
{
	char buf[512];

	(void)arg;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_warnx("http: %s", buf);
}

int
sim_http_parse_listen(const char *listen, char *host, size_t hostlen, unsigned short *port)
{
	const char *colon, *hs = listen, *he;
	char *end;
	long p;

	if (listen[0] == '[') {
		hs = listen + 1;
		if ((he = strchr(hs, ']')) == NULL || he[1] != ':')
			return -1;
		colon = he + 1;
	} else {
		if ((colon = strrchr(listen, ':')) == NULL || memchr(listen, ':',
		    (size_t)(colon - listen)) != NULL)
			return -1;
		he = colon;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (unsigned short)p;
	return 0;
}

struct sim_http *
sim_http_start(const struct sim_http_config *cfg, struct sim_pay *pay, struct sim_hook *hook,
    char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST }, *ai = NULL;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct sim_http *h;
	char host[256], port[8];
	unsigned short portn;
	int rc;

	if (sim_http_parse_listen(cfg->listen, host, sizeof(host), &portn) == -1) {
		snprintf(err, errlen, "--listen %s: expected host:port or [v6]:port", cfg->listen);
		return NULL;
	}
	snprintf(port, sizeof(port), "%u", portn);
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "--listen %s: %s", cfg->listen, gai_strerror(rc));
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->per_second = cJSON_CreateObject()) == NULL ||
	    (h->by_payment = cJSON_CreateObject()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->cfg = *cfg;
	if (!cfg->retrieve_limit_set) {
		h->cfg.retrieve_limit = SIM_RETRIEVE_LIMIT;
		h->cfg.retrieve_window_ms = SIM_RETRIEVE_WINDOW_MS;
	}
	h->pay = pay;
	h->hook = hook;
	pthread_mutex_init(&h->mu, NULL);
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
	    MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
	    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen,
		    errno != 0 ? strerror(errno) : "libmicrohttpd refused to start");
		pthread_mutex_destroy(&h->mu);
		goto fail;
	}
	freeaddrinfo(ai);
	return h;
fail:
	if (h != NULL) {
		cJSON_Delete(h->per_second);
		cJSON_Delete(h->by_payment);
		free(h);
	}
	freeaddrinfo(ai);
	return NULL;
}

void
sim_http_stop(struct sim_http *h)
{
	if (h == NULL)
		return;
	atomic_store(&h->stopping, 1);
	MHD_stop_daemon(h->mhd);
	cJSON_Delete(h->per_second);
	cJSON_Delete(h->by_payment);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
