/*
 * vinr_api.h - VINR's Cloud API, the one call the daemon makes (SPEC §5):
 * GET {api_base}/v1/terminal/payments/{id} with a Bearer key.
 *
 * TLS is always verified; plain http:// is refused unless the host is a
 * loopback address (vinr-sim).  The key never reaches a log or an error.
 * One struct per thread: a curl handle is not thread-safe.
 */
#ifndef VINR_API_H
#define VINR_API_H

#include <stddef.h>

struct vinr_api;

struct api_result {
	long	 status;		/* HTTP status, 0 when no answer */
	char	*body;			/* NUL-terminated; free with api_result_release */
	size_t	 len;
	long	 retry_after;		/* seconds from Retry-After (number or date), -1 */
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
void		 api_result_release(struct api_result *);

/* True when an http:// base may be used: 127.0.0.0/8, ::1, localhost. */
int		 vinr_api_loopback_host(const char *host);

#endif
