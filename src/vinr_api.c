/*
 * vinr_api.c - see vinr_api.h.  libcurl's easy interface, one handle reused
 * across calls so that the TLS session and connection are kept.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "vinr_api.h"

#define MAX_RESPONSE	(1024 * 1024)

#define AUTH_PREFIX	"Authorization: Bearer "

struct vinr_api {
	CURL	*curl;
	char	*base;		/* without a trailing '/' */
	char	*auth;		/* AUTH_PREFIX "<key>", wiped on change */
	long	 timeout_ms;	/* of one call */
};

int
vinr_api_loopback_host(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char h[64];
	size_t n;

	if (host == NULL)
		return 0;
	n = strlen(host);
	/* curl gives "[::1]" with brackets. */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(h)) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		host = h;
	}
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int
vinr_api_check_base(const char *api_base, char *err, size_t errlen)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if ((u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, api_base, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		snprintf(err, errlen, "[api] base %s: not a URL", api_base);
	else if (strcasecmp(scheme, "https") != 0 &&
	    !(strcasecmp(scheme, "http") == 0 && vinr_api_loopback_host(host)))
		snprintf(err, errlen, "[api] base %s: only https, or http to a "
		    "loopback address", api_base);
	else
		rc = 0;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

struct vinr_api *
vinr_api_new(const char *api_base, char *err, size_t errlen)
{
	struct vinr_api *a;

	if (vinr_api_check_base(api_base, err, errlen) == -1)
		return NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->base = strdup(api_base)) == NULL ||
	    (a->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		vinr_api_free(a);
		return NULL;
	}
	a->timeout_ms = 15000L;
	for (size_t n = strlen(a->base); n > 0 && a->base[n - 1] == '/'; n--)
		a->base[n - 1] = '\0';
	return a;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
vinr_api_free(struct vinr_api *a)
{
	if (a == NULL)
		return;
	if (a->curl != NULL)
		curl_easy_cleanup(a->curl);
	wipe_free(a->auth);
	free(a->base);
	free(a);
}

int
vinr_api_set_key(struct vinr_api *a, const char *key)
{
	char *auth;

	if (asprintf(&auth, AUTH_PREFIX "%s", key) == -1)
		return -1;
	wipe_free(a->auth);
	a->auth = auth;
	return 0;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct api_result *r = arg;
	size_t len = size * n;
	char *b;

	if (r->len + len > MAX_RESPONSE)
		return 0;	/* makes curl fail the transfer */
	if ((b = realloc(r->body, r->len + len + 1)) == NULL)
		return 0;
	memcpy(b + r->len, data, len);
	r->len += len;
	b[r->len] = '\0';
	r->body = b;
	return len;
}

/* Adds one header; false when out of memory. */
static bool
add_header(struct curl_slist **hdr, const char *h)
{
	struct curl_slist *n;

	if ((n = curl_slist_append(*hdr, h)) == NULL)
		return false;
	*hdr = n;
	return true;
}

static void
set_options(struct vinr_api *a, const char *url, struct curl_slist *hdr, const char *body,
    char *cerr, struct api_result *r)
{
	curl_easy_reset(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_URL, url);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT, "vinr-webhookd");
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS,
	    a->timeout_ms < 5000 ? a->timeout_ms : 5000L);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, a->timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(a->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, r);
	if (body != NULL) {
		curl_easy_setopt(a->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
}

/*
 * One call: method GET when body is NULL, else POST with body (JSON).
 * path is below the base and already escaped.  See vinr_api_retrieve().
 */
static int
perform(struct vinr_api *a, const char *path, const char *body, struct api_result *r)
{
	struct curl_slist *hdr = NULL;
	char *url = NULL, cerr[CURL_ERROR_SIZE] = "";
	curl_off_t ra = -1;
	long reqsize = 0;
	CURLcode rc;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	if (a->auth == NULL) {
		snprintf(r->error, sizeof(r->error), "no API key");
		return -1;
	}
	if (asprintf(&url, "%s%s", a->base, path) == -1) {
		url = NULL;
		goto nomem;
	}
	if (!add_header(&hdr, a->auth) || !add_header(&hdr, "Accept: application/json") ||
	    (body != NULL && !add_header(&hdr, "Content-Type: application/json")))
		goto nomem;
	set_options(a, url, hdr, body, cerr, r);
	rc = curl_easy_perform(a->curl);
	/* Bytes of the request handed to the connection: 0 means VINR never
	 * saw it (no connection, TLS refused). */
	curl_easy_getinfo(a->curl, CURLINFO_REQUEST_SIZE, &reqsize);
	r->sent = reqsize > 0;
	if (rc != CURLE_OK) {
		snprintf(r->error, sizeof(r->error), "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(a->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		r->retry_after = (long)ra;
	if (r->body == NULL && (r->body = strdup("")) == NULL)
		goto nomem;
	ret = 0;
	goto out;
nomem:
	snprintf(r->error, sizeof(r->error), "out of memory");
out:
	/* The handle keeps pointers to the headers and the body: clear them
	 * before freeing. */
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(hdr);
	free(url);
	if (ret == -1) {
		free(r->body);
		r->body = NULL;
		r->len = 0;
	}
	return ret;
}

/* "/v1/terminal/payments/<escaped id><suffix>", or NULL. */
static char *
payment_path(struct vinr_api *a, const char *payment_id, const char *suffix)
{
	char *id, *path;

	if ((id = curl_easy_escape(a->curl, payment_id, 0)) == NULL)
		return NULL;
	if (asprintf(&path, "/v1/terminal/payments/%s%s", id, suffix) == -1)
		path = NULL;
	curl_free(id);
	return path;
}

/* perform() on path, which the caller built (NULL: it ran out of memory);
 * frees path. */
static int
perform_at(struct vinr_api *a, char *path, const char *body, struct api_result *r)
{
	int rc;

	if (path == NULL) {
		memset(r, 0, sizeof(*r));
		r->retry_after = -1;
		snprintf(r->error, sizeof(r->error), "out of memory");
		return -1;
	}
	rc = perform(a, path, body, r);
	free(path);
	return rc;
}

static int
payment_call(struct vinr_api *a, const char *payment_id, const char *suffix,
    const char *body, struct api_result *r)
{
	return perform_at(a, payment_path(a, payment_id, suffix), body, r);
}

int
vinr_api_retrieve(struct vinr_api *a, const char *payment_id, struct api_result *r)
{
	return payment_call(a, payment_id, "", NULL, r);
}

int
vinr_api_create(struct vinr_api *a, const char *body, const char *query,
    struct api_result *r)
{
	char *path;

	if (asprintf(&path, "/v1/terminal/payments%s%s", query != NULL ? "?" : "",
	    query != NULL ? query : "") == -1)
		path = NULL;
	return perform_at(a, path, body, r);
}

int
vinr_api_cancel(struct vinr_api *a, const char *payment_id, struct api_result *r)
{
	return payment_call(a, payment_id, "/cancel", "{}", r);
}

int
vinr_api_capture(struct vinr_api *a, const char *payment_id, const char *body,
    struct api_result *r)
{
	return payment_call(a, payment_id, "/capture", body != NULL ? body : "{}", r);
}

void
vinr_api_set_timeout(struct vinr_api *a, int seconds)
{
	a->timeout_ms = seconds > 0 ? (long)seconds * 1000 : 15000L;
}

bool
vinr_api_sandbox(const struct vinr_api *a)
{
	return a->auth != NULL && strncmp(a->auth + strlen(AUTH_PREFIX), "sk_test_", 8) == 0;
}

void
api_result_release(struct api_result *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
