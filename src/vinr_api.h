/*
 * vinr_api.h - VINR's Cloud API (the seed page; SPEC §4.1, §5): create,
 * retrieve, cancel and capture a terminal payment, with a Bearer key.
 *
 * TLS is always verified; plain http:// is refused unless the host is a
 * loopback address (vinr-sim).  The key never reaches a log or an error.
 * One struct per thread: a curl handle is not thread-safe.
 */
#ifndef VINR_API_H
#define VINR_API_H

#include <stdbool.h>
#include <stddef.h>

struct vinr_api;

struct api_result {
	long	 status;		/* HTTP status, 0 when no answer */
	char	*body;			/* NUL-terminated; free with api_result_release */
	size_t	 len;
	long	 retry_after;		/* seconds from Retry-After (number or date), -1 */
	bool	 sent;			/* the request may have reached VINR (false:
					   certainly not: no connection) */
	char	 error[256];		/* why there was no answer */
};

/* Checks api_base (a URL; https, or http to a loopback host): 0, or -1 with
 * a message in err. */
int		 vinr_api_check_base(const char *api_base, char *err, size_t errlen);
/* Checks api_base as above and makes a handle.  NULL with a message in err. */
struct vinr_api	*vinr_api_new(const char *api_base, char *err, size_t errlen);
/* NULL ok. */
void		 vinr_api_free(struct vinr_api *);
/* Replaces the key (copied; the old one is wiped). */
int		 vinr_api_set_key(struct vinr_api *, const char *key);

/*
 * Retrieves one payment.  Returns 0 when VINR answered (any status: see
 * res->status), -1 when it did not (network, TLS, timeout: res->error).
 */
int		 vinr_api_retrieve(struct vinr_api *, const char *payment_id,
		    struct api_result *res);
/*
 * Creates a terminal payment: POST /v1/terminal/payments[?query] with body
 * (the JSON object).  query (NULL: none) is already URL-encoded.  Returns
 * as vinr_api_retrieve(); on -1, res->sent says whether VINR may have
 * received it (then its outcome is unknown).
 */
int		 vinr_api_create(struct vinr_api *, const char *body, const char *query,
		    struct api_result *res);
/* POST /v1/terminal/payments/{id}/cancel.  As vinr_api_retrieve(). */
int		 vinr_api_cancel(struct vinr_api *, const char *payment_id,
		    struct api_result *res);
/* POST /v1/terminal/payments/{id}/capture with body (NULL: {}). */
int		 vinr_api_capture(struct vinr_api *, const char *payment_id,
		    const char *body, struct api_result *res);
/* Limit of one call ([api] timeout), in seconds; <= 0: 15. */
void		 vinr_api_set_timeout(struct vinr_api *, int seconds);
/* True when the key in use is a sandbox key (sk_test_...). */
bool		 vinr_api_sandbox(const struct vinr_api *);
void		 api_result_release(struct api_result *);

/* True when an http:// base may be used: 127.0.0.0/8, ::1, localhost. */
int		 vinr_api_loopback_host(const char *host);

#endif
