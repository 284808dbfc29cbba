/*
 * vinr_api.c - see vinr_api.h.  libcurl's easy interface, one handle reused
 * across calls so that the TLS session and connection are kept.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "vinr_api.h"

#define MAX_RESPONSE	(1024 * 1024)

struct vinr_api {
	CURL	*curl;
	char	*base;		/* without a trailing '/' */
	char	*auth;		/* "Authorization: Bearer <key>", wiped on change */
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
		snprintf(err, errlen, "[reconciler] api_base %s: not a URL", api_base);
	else if (strcasecmp(scheme, "https") != 0 &&
	    !(strcasecmp(scheme, "http") == 0 && vinr_api_loopback_host(host)))
		snprintf(err, errlen, "[reconciler] api_base %s: only https, or http to a "
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

	if (asprintf(&auth, "Authorization: Bearer %s", key) == -1)
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

int
vinr_api_retrieve(struct vinr_api *a, const char *payment_id, struct api_result *r)
{
	struct curl_slist *hdr = NULL, *h2;
	char *id = NULL, *url = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	curl_off_t ra = -1;
	CURLcode rc;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	if (a->auth == NULL) {
		snprintf(r->error, sizeof(r->error), "no API key");
		return -1;
	}
	if ((id = curl_easy_escape(a->curl, payment_id, 0)) == NULL ||
	    asprintf(&url, "%s/v1/terminal/payments/%s", a->base, id) == -1) {
		url = NULL;
		snprintf(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	if ((h2 = curl_slist_append(hdr, a->auth)) == NULL)
		goto nomem;
	hdr = h2;
	if ((h2 = curl_slist_append(hdr, "Accept: application/json")) == NULL)
		goto nomem;
	hdr = h2;

	curl_easy_reset(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_URL, url);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT, "vinr-webhookd");
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(a->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(a->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, r);

	rc = curl_easy_perform(a->curl);
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
	/* The handle keeps a pointer to the headers: clear it before freeing. */
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	curl_free(id);
	free(url);
	if (ret == -1) {
		free(r->body);
		r->body = NULL;
		r->len = 0;
	}
	return ret;
}

void
api_result_release(struct api_result *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
