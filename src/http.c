/*
 * http.c - see http.h.
 *
 * Threads: libmicrohttpd's HTTP_THREADS pool threads run every handler (a
 * connection stays on the thread that accepted it); the writer thread only
 * calls stored(), which queues the request for the resumer thread: that
 * one calls MHD_resume_connection (a mutex and a write to the worker's
 * eventfd, each time), so that the writer, which a whole batch waits on,
 * does not.  A struct req belongs to its connection's thread, except while
 * REQ_STORING, when the writer, then the resumer, own its ev/in until the
 * connection is resumed.  Shared
 * state: the HMAC keys (rwlock, swapped on SIGHUP), the counters (atomics)
 * and the number of requests in flight (atomic, for a clean stop).
 *
 * A request goes through the checks of SPEC §1.4 in its order; nothing is
 * parsed as JSON before the signature holds.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "event.h"
#include "http.h"
#include "http_reply.h"
#include "log.h"
#include "signature.h"
#include "store.h"
#include "util.h"

/*
 * A chunked body (no Content-Length) cannot be refused before it is read;
 * past max_body it is read and thrown away, but one that goes on this much
 * further has the connection closed instead.
 */
#define DISCARD_SLACK	(1024 * 1024)

/*
 * libmicrohttpd's threads.  No request blocks one: a webhook suspends its
 * connection until the writer has committed it, so two threads (one per
 * core) serve any number of connections.
 */
#define HTTP_THREADS	2

/*
 * libmicrohttpd's own timeout: idle time, restarted by every byte.  It ends
 * idle keep-alive connections (config/nginx.conf keeps its upstream ones
 * for less); the whole-request deadline (request_timeout) is ours.
 */
#define IDLE_TIMEOUT_S	30	/* MHD_OPTION_CONNECTION_TIMEOUT's below */
/*
 * Each connection's libmicrohttpd memory pool (its default is 32 KiB).  The
 * pool is zeroed whole before every request of a keep-alive connection, so
 * its size is paid per request; 16 KiB still holds a request's header block
 * up to about 15 KiB (a larger one is 431), far beyond what VINR or nginx
 * sends.
 */
#define CONN_POOL	(16 * 1024)

struct http {
	char			*path;		/* the webhook path */
	size_t			 max_body;
	enum sig_scheme		 scheme;
	long			 tolerance;
	struct store		*store;
	struct MHD_Daemon	*mhd;
	struct http_hooks	 hooks;

	pthread_rwlock_t	 keys_lock;
	struct sig_key		*keys;
	size_t			 nkeys;

	/*
	 * Every open connection, for the request deadline: the sweeper thread
	 * shuts down a connection whose request has not arrived whole within
	 * request_timeout of its start.  libmicrohttpd's own timeout is idle
	 * time, restarted by every byte, which a slow client drips past.
	 */
	pthread_mutex_t		 conns_lock;
	struct hconn		*conns;
	int64_t			 request_timeout_ms;
	unsigned		 per_ip;	/* 0: no limit */
	pthread_t		 sweeper;
	bool			 sweeping;	/* the sweeper thread runs */
	atomic_bool		 sweep_stop;

	/*
	 * Requests the writer has answered, for the resumer thread to resume
	 * (a LIFO list through req.resume_next).  Once resume_stop is set,
	 * stored() resumes by itself.
	 */
	pthread_mutex_t		 resume_lock;
	pthread_cond_t		 resume_cv;
	struct req		*resume_head;
	bool			 resume_stop;
	bool			 resuming;	/* the resumer thread runs */
	pthread_t		 resumer;

	bool			 stopped;	/* mhd stopped (main thread's) */
	atomic_int		 in_flight;
	_Atomic uint64_t	 accepted, duplicate, ignored;
	_Atomic uint64_t	 rejected[REJ_COUNT];
};

/* One TCP connection (libmicrohttpd's socket context). */
struct hconn {
	struct hconn	*prev, *next;	/* in h->conns, under conns_lock */
	int		 fd;
	struct sockaddr_storage addr;	/* the peer's, for per_ip_connections */
	_Atomic int64_t	 start_ms;	/* its current request's first byte (or
					   the end of the previous one) */
	atomic_bool	 whole;		/* that request has arrived whole */
	atomic_bool	 idle;		/* between requests (keep-alive) */
	bool		 cut;		/* shut down by the sweeper */
};

enum req_kind {
	REQ_WEBHOOK,	/* receiving the body */
	REQ_STORING,	/* suspended until the writer has committed it */
	REQ_DONE	/* answered */
};

struct req {
	enum req_kind	 kind;
	struct MHD_Connection *conn;
	struct http	*h;
	struct req	*resume_next;	/* in h->resume_head */
	struct vinr_event ev;		/* REQ_STORING: the parsed event */
	struct store_ingest in;		/* REQ_STORING: the writer's answer */
	char		*body;
	size_t		 len;
	size_t		 cap;
	size_t		 seen;		/* bytes received, kept or not */
	size_t		 declared;	/* Content-Length (<= max_body), or 0 */
	bool		 too_large;
	bool		 counted;	/* in in_flight */
};

static const char *const reject_names[REJ_COUNT] = {
	[REJ_NOT_FOUND] = "not_found",
	[REJ_METHOD] = "method_not_allowed",
	[REJ_TOO_LARGE] = "payload_too_large",
	[REJ_MEDIA] = "unsupported_media_type",
	[REJ_MISSING_SIG] = "missing_signature",
	[REJ_TOLERANCE] = "timestamp_out_of_tolerance",
	[REJ_INVALID_SIG] = "invalid_signature",
	[REJ_INVALID_JSON] = "invalid_json",
	[REJ_INVALID_EVENT] = "invalid_event",
	[REJ_STORAGE] = "storage_unavailable",
};

static const unsigned reject_status[REJ_COUNT] = {
	[REJ_NOT_FOUND] = 404,
	[REJ_METHOD] = 405,
	[REJ_TOO_LARGE] = 413,
	[REJ_MEDIA] = 415,
	[REJ_MISSING_SIG] = 401,
	[REJ_TOLERANCE] = 401,
	[REJ_INVALID_SIG] = 401,
	[REJ_INVALID_JSON] = 400,
	[REJ_INVALID_EVENT] = 400,
	[REJ_STORAGE] = 503,
};

const char *
http_reject_name(enum reject_reason r)
{
	return r < REJ_COUNT ? reject_names[r] : "unknown";
}

static enum MHD_Result
send_mem(struct MHD_Connection *c, unsigned status, const char *body, size_t len,
    enum MHD_ResponseMemoryMode mode, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_body(struct MHD_Connection *c, unsigned status, const char *body,
    const char *ctype)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	enum MHD_Result ret;

	cJSON_Delete(o);
	if (s == NULL)
		return MHD_NO;
	ret = send_body(c, status, s, "application/json");
	free(s);
	return ret;
}

/*
 * The error bodies of SPEC §1.4, constant: libmicrohttpd sends them from
 * here (MHD_RESPMEM_PERSISTENT), with no JSON built, printed or copied.
 */
#define ERROR_BODY(name)	"{\"error\":\"" name "\"}"
static const char *const reject_bodies[REJ_COUNT] = {
	[REJ_NOT_FOUND] = ERROR_BODY("not_found"),
	[REJ_METHOD] = ERROR_BODY("method_not_allowed"),
	[REJ_TOO_LARGE] = ERROR_BODY("payload_too_large"),
	[REJ_MEDIA] = ERROR_BODY("unsupported_media_type"),
	[REJ_MISSING_SIG] = ERROR_BODY("missing_signature"),
	[REJ_TOLERANCE] = ERROR_BODY("timestamp_out_of_tolerance"),
	[REJ_INVALID_SIG] = ERROR_BODY("invalid_signature"),
	[REJ_INVALID_JSON] = ERROR_BODY("invalid_json"),
	[REJ_INVALID_EVENT] = ERROR_BODY("invalid_event"),
	[REJ_STORAGE] = ERROR_BODY("storage_unavailable"),
};

/* Answers an error of SPEC §1.4; allow is the Allow header of a 405. */
static enum MHD_Result
reject_allow(struct http *h, struct MHD_Connection *c, struct req *r,
    enum reject_reason why, const char *allow)
{
	atomic_fetch_add(&h->rejected[why], 1);
	r->kind = REQ_DONE;
	return send_mem(c, reject_status[why], reject_bodies[why], strlen(reject_bodies[why]),
	    MHD_RESPMEM_PERSISTENT, allow);
}

static enum MHD_Result
reject(struct http *h, struct MHD_Connection *c, struct req *r, enum reject_reason why)
{
	return reject_allow(h, c, r, why, why == REJ_METHOD ? "POST" : NULL);
}

static const char *
peer(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL ||
	    getnameinfo(ci->client_addr, ci->client_addr->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), buf, (socklen_t)len,
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, len, "?");
	return buf;
}

/* "application/json", any case, optionally followed by ";" parameters. */
static bool
json_media_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* SPEC §1.3: the webhook-* headers, else (none of them came) the svix-* ones. */
static void
std_headers(struct MHD_Connection *c, const char *v[3])
{
	static const char *const wh[3] = {
		"webhook-id", "webhook-timestamp", "webhook-signature"
	};
	static const char *const svix[3] = {
		"svix-id", "svix-timestamp", "svix-signature"
	};
	int i, use_svix;

	for (i = 0; i < 3; i++)
		v[i] = MHD_lookup_connection_value(c, MHD_HEADER_KIND, wh[i]);
	use_svix = sig_standard_use_svix(v);
	for (i = 0; i < 3 && use_svix; i++)
		v[i] = MHD_lookup_connection_value(c, MHD_HEADER_KIND, svix[i]);
}

static enum sig_result
verify(struct http *h, struct MHD_Connection *c, const struct req *r)
{
	enum sig_result res;
	time_t now = time(NULL);
	const char *sh[3];

	pthread_rwlock_rdlock(&h->keys_lock);
	if (h->scheme == SIG_SCHEME_STANDARD) {
		std_headers(c, sh);
		res = sig_verify_standard(sh[0], sh[1], sh[2], r->body, r->len,
		    h->keys, h->nkeys, now, h->tolerance);
	} else
		res = sig_verify_vinr(
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Vinr-Signature"),
		    r->body, r->len, h->keys, h->nkeys, now, h->tolerance);
	pthread_rwlock_unlock(&h->keys_lock);
	return res;
}

static void stored(void *, int);

static enum MHD_Result
webhook(struct http *h, struct MHD_Connection *c, struct req *r)
{
	static const enum reject_reason sig_reject[] = {
		[SIG_MISSING] = REJ_MISSING_SIG,
		[SIG_TOLERANCE] = REJ_TOLERANCE,
		[SIG_INVALID] = REJ_INVALID_SIG,
	};
	struct vinr_event ev;
	enum sig_result sr;
	enum event_err ee;
	char addr[64];
	const char *sh[3] = { NULL, NULL, NULL };

	if (r->too_large)
		return reject(h, c, r, REJ_TOO_LARGE);
	if (!json_media_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE)))
		return reject(h, c, r, REJ_MEDIA);
	if ((sr = verify(h, c, r)) != SIG_OK) {
		log_warnx_rl(reject_names[sig_reject[sr]], "webhook from %s refused: %s",
		    peer(c, addr, sizeof(addr)), reject_names[sig_reject[sr]]);
		return reject(h, c, r, sig_reject[sr]);
	}
	if (h->scheme == SIG_SCHEME_STANDARD)
		std_headers(c, sh);
	/* SPEC §4: every line the daemon writes is valid UTF-8; an event that
	 * is not (RFC 8259 §8.1) is refused as invalid_json, never mended. */
	ee = !util_utf8_valid(r->body != NULL ? r->body : "", r->len) ?
	    EVENT_INVALID_JSON : event_parse(r->body != NULL ? r->body : "", r->len,
	    sh[0], &ev);
	if (ee != EVENT_OK) {
		const char *why = ee == EVENT_INVALID_JSON ? "invalid_json" :
		    "invalid_event";

		log_warnx_rl(why, "webhook from %s refused: %s",
		    peer(c, addr, sizeof(addr)), why);
		return reject(h, c, r, ee == EVENT_INVALID_JSON ?
		    REJ_INVALID_JSON : REJ_INVALID_EVENT);
	}

	/*
	 * Suspend first, then queue: the writer may answer (and resume us)
	 * before this handler returns, and a resume must find the connection
	 * suspended.  Nothing blocks this thread meanwhile.
	 */
	r->ev = ev;
	r->in.ev = &r->ev;
	r->in.body = r->body != NULL ? r->body : "";
	r->in.bodylen = r->len;
	r->in.source = "webhook";
	r->kind = REQ_STORING;
	MHD_suspend_connection(c);
	if (store_ingest_async(h->store, &r->in, stored, r) == -1) {
		r->in.result = INGEST_UNAVAILABLE;
		MHD_resume_connection(c);
	}
	return MHD_YES;
}

/*
 * The writer's thread: the event is committed (or not); its request goes to
 * the resumer, which is woken once for all the requests of a batch.
 */
static void
stored(void *arg, int rc)
{
	struct req *r = arg;
	struct http *h = r->h;
	bool wake, now;

	(void)rc;	/* r->in.result says it all */
	pthread_mutex_lock(&h->resume_lock);
	if (!(now = h->resume_stop)) {
		wake = h->resume_head == NULL;
		r->resume_next = h->resume_head;
		h->resume_head = r;
		if (wake)
			pthread_cond_signal(&h->resume_cv);
	}
	pthread_mutex_unlock(&h->resume_lock);
	if (now)
		MHD_resume_connection(r->conn);
}

/* Resumes what stored() queued, a whole list at a time, until stopped. */
static void *
resumer_main(void *arg)
{
	struct http *h = arg;
	struct req *r, *next;
	bool stop;

	pthread_setname_np(pthread_self(), "http-resumer");
	pthread_mutex_lock(&h->resume_lock);
	for (;;) {
		while (h->resume_head == NULL && !h->resume_stop)
			pthread_cond_wait(&h->resume_cv, &h->resume_lock);
		r = h->resume_head;
		h->resume_head = NULL;
		stop = h->resume_stop;
		pthread_mutex_unlock(&h->resume_lock);
		for (; r != NULL; r = next) {
			next = r->resume_next;
			MHD_resume_connection(r->conn);
		}
		if (stop)
			return NULL;
		pthread_mutex_lock(&h->resume_lock);
	}
}

/* Stops the resumer after it has resumed everything queued; stored()
 * resumes by itself from then on. */
static void
resumer_stop(struct http *h)
{
	if (!h->resuming)
		return;
	pthread_mutex_lock(&h->resume_lock);
	h->resume_stop = true;
	pthread_cond_signal(&h->resume_cv);
	pthread_mutex_unlock(&h->resume_lock);
	pthread_join(h->resumer, NULL);
	h->resuming = false;
}

/* The 200 of SPEC §1.4, on the stack unless the id is long. */
static enum MHD_Result
send_received(struct MHD_Connection *c, const char *id, bool dup, bool ignored)
{
	char stack[512], *buf = stack;
	size_t need = HTTP_REPLY_SIZE(strlen(id)), len;
	enum MHD_Result ret;

	if (need > sizeof(stack) && (buf = malloc(need)) == NULL)
		return MHD_NO;
	len = http_reply_received(buf, id, dup, ignored);
	ret = send_mem(c, 200, buf, len, MHD_RESPMEM_MUST_COPY, NULL);
	if (buf != stack)
		free(buf);
	return ret;
}

/* Resumed after the commit: the answer of SPEC §1.4. */
static enum MHD_Result
answer_stored(struct http *h, struct MHD_Connection *c, struct req *r)
{
	struct store_ingest in = r->in;
	struct vinr_event ev = r->ev;
	enum MHD_Result ret;

	memset(&r->ev, 0, sizeof(r->ev));
	if (in.result == INGEST_UNAVAILABLE) {
		event_release(&ev);
		return reject(h, c, r, REJ_STORAGE);
	}
	switch (in.result) {
	case INGEST_DUPLICATE:
		atomic_fetch_add(&h->duplicate, 1);
		log_debug("event %s: duplicate", ev.id);
		break;
	case INGEST_IGNORED:
		atomic_fetch_add(&h->accepted, 1);
		atomic_fetch_add(&h->ignored, 1);
		log_warnx("event %s (%s) stored but ignored: %s", ev.id, ev.type,
		    ev.ignore_reason);
		break;
	default:
		atomic_fetch_add(&h->accepted, 1);
		if (in.decision == PAY_CONFLICT)
			log_warnx("event %s: payment %s is already final; %s ignored",
			    ev.id, ev.pay.id, pay_status_name(ev.pay.status));
		else if (in.decision == PAY_TRANSITION)
			log_debug("event %s: payment %s -> %s (seq %lld)", ev.id,
			    ev.pay.id, pay_status_name(ev.pay.status), (long long)in.seq);
		break;
	}
	r->kind = REQ_DONE;
	ret = send_received(c, ev.id, in.result == INGEST_DUPLICATE,
	    in.result == INGEST_IGNORED);
	event_release(&ev);
	return ret;
}

static enum MHD_Result
healthz(struct http *h, struct MHD_Connection *c)
{
	bool ok = false;
	cJSON *o = h->hooks.health(h->hooks.arg, &ok);

	if (o == NULL)
		return MHD_NO;
	return send_json(c, ok ? 200 : 503, o);
}

static enum MHD_Result
metrics(struct http *h, struct MHD_Connection *c)
{
	char *text = h->hooks.metrics(h->hooks.arg);
	enum MHD_Result ret;

	if (text == NULL)
		return MHD_NO;
	ret = send_body(c, 200, text, "text/plain; version=0.0.4; charset=utf-8");
	free(text);
	return ret;
}

static bool
is_get(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

struct framing {
	int		 ncl;		/* Content-Length headers */
	bool		 cl_differ;	/* ... with different values */
	bool		 te;		/* a Transfer-Encoding header */
	const char	*cl;
};

static enum MHD_Result
framing_header(void *arg, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct framing *f = arg;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		f->te = true;
	else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->ncl++ > 0 && strcmp(f->cl, value != NULL ? value : "") != 0)
			f->cl_differ = true;
		f->cl = value != NULL ? value : "";
	}
	return MHD_YES;
}

/*
 * RFC 9112 §6.3: a message with both Content-Length and Transfer-Encoding,
 * or with Content-Lengths that disagree, is a smuggling attempt (or a broken
 * proxy).  It is refused and its connection closed, so that nothing after
 * it on the connection is ever read as a request.
 */
static bool
bad_framing(struct MHD_Connection *c)
{
	struct framing f = { 0 };

	MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header, &f);
	return (f.te && f.ncl > 0) || f.cl_differ;
}

static enum MHD_Result
refuse_framing(struct MHD_Connection *c, struct req *r)
{
	static const char body[] = "{\"error\":\"bad_request\"}";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char addr[64];

	log_warnx_rl("bad_framing", "request from %s refused: both Content-Length "
	    "and Transfer-Encoding, or two different Content-Lengths",
	    peer(c, addr, sizeof(addr)));
	r->kind = REQ_DONE;
	resp = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, 400, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The three-phase handler: headers, body chunks, end of body. */
static enum MHD_Result
handle(struct http *h, struct MHD_Connection *c, const char *url, const char *method,
    const char *upload, size_t *upload_size, void **ctx)
{
	struct req *r = *ctx;
	const char *cl;
	size_t max = h->max_body;
	unsigned long long declared;

	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->conn = c;
		r->h = h;
		*ctx = r;
		atomic_fetch_add(&h->in_flight, 1);
		r->counted = true;
		if (bad_framing(c))
			return refuse_framing(c, r);
		if (strcmp(url, h->path) != 0) {
			bool health = strcmp(url, "/healthz") == 0;

			if (!health && strcmp(url, "/metrics") != 0)
				return reject(h, c, r, REJ_NOT_FOUND);
			if (!is_get(method))
				return reject_allow(h, c, r, REJ_METHOD, "GET, HEAD");
			r->kind = REQ_DONE;
			return health ? healthz(h, c) : metrics(h, c);
		}
		if (strcmp(method, "POST") != 0)
			return reject(h, c, r, REJ_METHOD);
		/* A declared length over the cap is refused before any body
		 * is read (and before "100 Continue" is sent). */
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
		if (declared > max)
			return reject(h, c, r, REJ_TOO_LARGE);
		r->declared = (size_t)declared;
		if (cl != NULL && !json_media_type(MHD_lookup_connection_value(c,
		    MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
			return reject(h, c, r, REJ_MEDIA);
		r->kind = REQ_WEBHOOK;
		return MHD_YES;
	}
	if (r->kind == REQ_STORING)
		return answer_stored(h, c, r);
	if (r->kind == REQ_DONE) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		size_t n = *upload_size;

		*upload_size = 0;
		r->seen += n;
		if (r->too_large)
			return r->seen > max + DISCARD_SLACK ? MHD_NO : MHD_YES;
		if (r->len + n > max) {
			r->too_large = true;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n > r->cap) {
			/*
			 * The declared length when there is one: a 4 KiB
			 * block is a large-bin request for glibc, which first
			 * consolidates the small chunks the last request's
			 * JSON parse freed (~1 us).  At most 64 KiB at first:
			 * the signature is not checked yet, and a client that
			 * declares max_body and sends one byte must not get
			 * it all.
			 */
			size_t cap = r->cap ? r->cap : r->declared ?
			    (r->declared < 65536 ? r->declared : 65536) : 4096;
			char *b;

			while (cap < r->len + n)
				cap *= 2;
			if (cap > max)
				cap = max;
			if ((b = realloc(r->body, cap)) == NULL)
				return MHD_NO;
			r->body = b;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		return MHD_YES;
	}
	return webhook(h, c, r);
}

static struct hconn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	struct http *h = cls;
	struct hconn *hc;
	struct req *r;
	enum MHD_Result ret;

	(void)version;
	ret = handle(h, c, url, method, upload, upload_size, ctx);
	/* Answered or handed to the writer: the deadline no longer applies. */
	if ((r = *ctx) != NULL && r->kind != REQ_WEBHOOK && (hc = conn_of(c)) != NULL)
		atomic_store(&hc->whole, true);
	return ret;
}

static void
completed(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct req *r = *ctx;

	struct hconn *hc = conn_of(c);

	(void)toe;
	/*
	 * Keep-alive: the next request may start up to IDLE_TIMEOUT_S from
	 * now; its own clock starts with its request line (uri_seen).
	 */
	if (hc != NULL) {
		atomic_store(&hc->start_ms, util_mono_ms());
		atomic_store(&hc->idle, true);
		atomic_store(&hc->whole, false);
	}
	if (r == NULL)
		return;
	if (r->counted)
		atomic_fetch_sub(&h->in_flight, 1);
	event_release(&r->ev);
	free(r->body);
	free(r);
	*ctx = NULL;
}

static bool
same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		    &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr,
		    sizeof(struct in6_addr)) == 0;
	return false;
}

/*
 * Adds hc to the list; with per_ip set, a connection past the limit for its
 * address is shut down at once (libmicrohttpd's own limit counts per pool
 * thread, so it would let threads x limit through).  Under conns_lock.
 */
static void
conn_add(struct http *h, struct hconn *hc)
{
	unsigned same = 0;
	char addr[64];

	for (struct hconn *o = h->conns; o != NULL && h->per_ip > 0; o = o->next)
		if (!o->cut && same_host(&o->addr, &hc->addr))
			same++;
	if ((hc->next = h->conns) != NULL)
		hc->next->prev = hc;
	h->conns = hc;
	if (h->per_ip > 0 && same >= h->per_ip) {
		hc->cut = true;
		shutdown(hc->fd, SHUT_RDWR);
		if (getnameinfo((struct sockaddr *)&hc->addr, sizeof(hc->addr), addr,
		    sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof(addr), "?");
		log_warnx_rl("per_ip_connections", "http: %s has %u connections "
		    "open already: refusing another", addr, same);
	}
}

/*
 * A request line has arrived.  On a keep-alive connection this is the
 * nearest we get to the first byte of its next request.  (On a new
 * connection the clock runs from the accept.)  Returns the request's
 * initial context: none, handler() makes it.
 */
static void *
uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct hconn *hc = conn_of(c);

	(void)cls;
	(void)uri;
	if (hc != NULL && atomic_load(&hc->idle)) {
		atomic_store(&hc->start_ms, util_mono_ms());
		atomic_store(&hc->idle, false);
	}
	return NULL;
}

/* A connection opens or closes: keep the sweeper's list. */
static void
notify_conn(void *cls, struct MHD_Connection *c, void **sctx,
    enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	struct hconn *hc = *sctx;
	const union MHD_ConnectionInfo *ci, *ai;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci == NULL || (hc = calloc(1, sizeof(*hc))) == NULL)
			return;
		hc->fd = ci->connect_fd;
		if (ai != NULL && ai->client_addr != NULL)
			memcpy(&hc->addr, ai->client_addr,
			    ai->client_addr->sa_family == AF_INET6 ?
			    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
		atomic_store(&hc->start_ms, util_mono_ms());
		pthread_mutex_lock(&h->conns_lock);
		conn_add(h, hc);
		pthread_mutex_unlock(&h->conns_lock);
		*sctx = hc;
		return;
	}
	if (hc == NULL)
		return;
	/* Called before libmicrohttpd closes the socket: once off the list,
	 * the sweeper can no longer touch a descriptor that may be reused. */
	pthread_mutex_lock(&h->conns_lock);
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		h->conns = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	pthread_mutex_unlock(&h->conns_lock);
	free(hc);
	*sctx = NULL;
}

/*
 * Shuts down every connection whose request is late: libmicrohttpd then
 * sees the end of the stream on its next poll and closes it.
 */
static void *
sweeper_main(void *arg)
{
	struct http *h = arg;
	int64_t now;
	int late;

	while (!atomic_load(&h->sweep_stop)) {
		usleep(100000);
		now = util_mono_ms();
		late = 0;
		pthread_mutex_lock(&h->conns_lock);
		for (struct hconn *hc = h->conns; hc != NULL; hc = hc->next) {
			if (hc->cut || atomic_load(&hc->whole) ||
			    now - atomic_load(&hc->start_ms) < h->request_timeout_ms +
			    (atomic_load(&hc->idle) ? IDLE_TIMEOUT_S * 1000 : 0))
				continue;
			hc->cut = true;
			late++;
			shutdown(hc->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&h->conns_lock);
		if (late > 0)
			log_warnx_rl("request_timeout", "http: closed %d connection(s) "
			    "whose request did not arrive whole within %lld s", late,
			    (long long)(h->request_timeout_ms / 1000));
	}
	return NULL;
}

/*
 * libmicrohttpd 0.9.75 answers the requests it cannot parse itself
 * (malformed, header too big, bad chunking) with fixed HTML pages and has no
 * option to change them.  It builds them through this exported function (a
 * call through its PLT), so the daemon's definition stands in for it: those
 * pages become the JSON error bodies of SPEC §1.4; every other response
 * goes through unchanged to libmicrohttpd's own function.
 */
struct MHD_Response *
MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
	static const char big[] = "{\"error\":\"request_too_large\"}";
	static const char bad[] = "{\"error\":\"bad_request\"}";
	static struct MHD_Response *(*real)(size_t, void *, enum MHD_ResponseMemoryMode);
	struct MHD_Response *resp;
	const char *json;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "MHD_create_response_from_buffer");
	if (real == NULL)
		return NULL;
	if (mode != MHD_RESPMEM_PERSISTENT || size < 6 || buffer == NULL ||
	    strncmp(buffer, "<html>", 6) != 0)
		return real(size, buffer, mode);
	json = memmem(buffer, size, "too big", 7) != NULL ? big : bad;
	if ((resp = real(strlen(json), (void *)(uintptr_t)json, MHD_RESPMEM_PERSISTENT)) != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

/*
 * libmicrohttpd's own messages, in our words.  Those of a failed start
 * are dropped: http_start() says what failed (with errno) itself.  The
 * rest are caused by peers, so they are rate-limited.
 */
static void
mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct http *h = arg;
	char buf[512];
	static const char perr[] = "Error processing request (HTTP response code is ";

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	if (h->stopped)
		return;
	if (strncmp(buf, perr, sizeof(perr) - 1) == 0)
		log_warnx_rl("malformed_request", "http: a request libmicrohttpd "
		    "could not parse was refused (HTTP %d) and its connection closed",
		    atoi(buf + sizeof(perr) - 1));
	else if (strstr(buf, "limit") != NULL || strstr(buf, "too many") != NULL)
		log_warnx_rl("http_limit", "http: connection refused: %s", buf);
	else
		log_warnx_rl("http_peer", "http: libmicrohttpd: %s", buf);
}

static void
free_keys(struct sig_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sig_key_release(&keys[i]);
	free(keys);
}

static struct sig_key *
copy_keys(const struct sig_key *keys, size_t n)
{
	struct sig_key *k = calloc(n ? n : 1, sizeof(*k));

	if (k == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (sig_key_copy(&k[i], &keys[i]) == -1) {
			free_keys(k, i);
			return NULL;
		}
	}
	return k;
}

int
http_set_keys(struct http *h, const struct sig_key *keys, size_t nkeys)
{
	struct sig_key *k, *old;
	size_t oldn;

	if ((k = copy_keys(keys, nkeys)) == NULL)
		return -1;
	pthread_rwlock_wrlock(&h->keys_lock);
	old = h->keys;
	oldn = h->nkeys;
	h->keys = k;
	h->nkeys = nkeys;
	pthread_rwlock_unlock(&h->keys_lock);
	free_keys(old, oldn);
	return 0;
}

/* Resolves where to listen: *ai for the address, IPv6 in *flags. */
static int
resolve(const struct http_params *p, struct addrinfo **ai, unsigned *flags, char *err,
    size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", p->port);
	if ((rc = getaddrinfo(p->host, port, &hints, ai)) != 0) {
		snprintf(err, errlen, "listen %s: %s", p->listen, gai_strerror(rc));
		return -1;
	}
	if ((*ai)->ai_family == AF_INET6)
		*flags |= MHD_USE_IPv6;
	return 0;
}

struct http *
http_start(const struct http_params *p, char *err, size_t errlen)
{
	struct http *h;
	struct addrinfo *ai = NULL;
	/*
	 * poll(2), not epoll: with epoll worker pools, MHD_quiesce_daemon() in
	 * libmicrohttpd 0.9.75 races the workers over the listen socket's
	 * epoll registration and can abort the process at stop.
	 */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->max_body = p->max_body;
	h->scheme = p->scheme;
	h->tolerance = p->tolerance;
	h->store = p->store;
	h->hooks = p->hooks;
	h->stopped = true;
	h->request_timeout_ms = 1000LL * (p->request_timeout ? p->request_timeout : 10);
	h->per_ip = p->per_ip_connections;
	pthread_rwlock_init(&h->keys_lock, NULL);
	pthread_mutex_init(&h->conns_lock, NULL);
	pthread_mutex_init(&h->resume_lock, NULL);
	pthread_cond_init(&h->resume_cv, NULL);
	if ((h->path = strdup(p->path)) == NULL ||
	    (h->keys = copy_keys(p->keys, p->nkeys)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->nkeys = p->nkeys;
	if (p->listen_fd < 0 && resolve(p, &ai, &flags, err, errlen) == -1)
		goto fail;
	errno = 0;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, notify_conn, h,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_seen, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL,
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)(p->max_connections ? p->max_connections : 1024),
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
	    p->listen_fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
	    p->listen_fd >= 0 ? (intptr_t)p->listen_fd : (intptr_t)ai->ai_addr,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", p->listen,
		    errno != 0 ? strerror(errno) : "libmicrohttpd refused to start");
		goto fail;
	}
	h->stopped = false;
	if (pthread_create(&h->resumer, NULL, resumer_main, h) != 0) {
		snprintf(err, errlen, "cannot start the resumer thread");
		goto fail;
	}
	h->resuming = true;
	if (pthread_create(&h->sweeper, NULL, sweeper_main, h) != 0) {
		snprintf(err, errlen, "cannot start the request deadline thread");
		goto fail;
	}
	h->sweeping = true;
	if (ai != NULL)
		freeaddrinfo(ai);
	return h;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	http_free(h);
	return NULL;
}

void
http_stop(struct http *h, int timeout_ms)
{
	int64_t until = util_mono_ms() + timeout_ms;
	int fd;

	if (h == NULL || h->stopped)
		return;
	/*
	 * Stop accepting; let the requests in flight get their answers.  The
	 * listen socket is closed only after MHD_stop_daemon(): the pool's
	 * threads may still poll it until they have seen the quiesce, and
	 * libmicrohttpd aborts if it is closed under them.
	 */
	fd = MHD_quiesce_daemon(h->mhd);
	while (atomic_load(&h->in_flight) > 0 && util_mono_ms() < until)
		usleep(10000);
	if (atomic_load(&h->in_flight) > 0)
		log_warnx("http: stopping with %d request(s) unanswered",
		    atomic_load(&h->in_flight));
	/* Before the daemon goes: every resume queued reaches it. */
	resumer_stop(h);
	MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
	h->stopped = true;
	if (h->sweeping) {
		atomic_store(&h->sweep_stop, true);
		pthread_join(h->sweeper, NULL);
		h->sweeping = false;
	}
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	http_stop(h, 0);
	free_keys(h->keys, h->nkeys);
	pthread_rwlock_destroy(&h->keys_lock);
	pthread_mutex_destroy(&h->conns_lock);
	pthread_mutex_destroy(&h->resume_lock);
	pthread_cond_destroy(&h->resume_cv);
	free(h->path);
	free(h);
}

void
http_stats_get(struct http *h, struct http_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (h == NULL)
		return;
	st->accepted = atomic_load(&h->accepted);
	st->duplicate = atomic_load(&h->duplicate);
	st->ignored = atomic_load(&h->ignored);
	for (int i = 0; i < REJ_COUNT; i++)
		st->rejected[i] = atomic_load(&h->rejected[i]);
}
