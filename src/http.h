/*
 * http.h - the webhook endpoint, /healthz and /metrics (SPEC §1.4).
 *
 * DESIGN: libmicrohttpd with a pool of HTTP_THREADS poll(2) threads.  A
 * webhook request streams its body into a buffer capped at max_body, is
 * verified and parsed, then queued to the writer (store_ingest_async) and
 * its connection suspended; the writer resumes it after COMMIT, and it is
 * answered.  No thread waits for the disk: many connections, few fsyncs.
 */
#ifndef VINR_HTTP_H
#define VINR_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"

struct http;
struct store;

enum reject_reason {
	REJ_NOT_FOUND, REJ_METHOD, REJ_TOO_LARGE, REJ_MEDIA, REJ_MISSING_SIG,
	REJ_TOLERANCE, REJ_INVALID_SIG, REJ_INVALID_JSON, REJ_INVALID_EVENT,
	REJ_STORAGE,
	REJ_COUNT
};

struct http_stats {
	uint64_t	accepted;	/* newly stored, ignored ones included */
	uint64_t	duplicate;
	uint64_t	ignored;
	uint64_t	rejected[REJ_COUNT];
};

struct http_hooks {
	/*
	 * Fills warnings and reasons (JSON arrays of strings) and returns
	 * true when healthy.  Called on connection threads.
	 */
	bool	(*health)(void *arg, cJSON *warnings, cJSON *reasons);
	/* Prometheus text; the caller frees it.  Called on connection threads. */
	char	*(*metrics)(void *arg);
	void	*arg;
};

/* The error code of a reason, as in the HTTP body and in stats. */
const char	*http_reject_name(enum reject_reason);

/*
 * Binds [http] listen (or uses listen_fd when >= 0: socket activation) and
 * starts serving.  keys are copied.  NULL with a message in err on failure.
 */
struct http	*http_start(const struct config *, struct store *,
		    const struct sig_key *keys, size_t nkeys, int listen_fd,
		    const struct http_hooks *, char *err, size_t errlen);
/* Swaps the HMAC keys (SIGHUP); requests in flight finish with the old. */
int		 http_set_keys(struct http *, const struct sig_key *keys, size_t nkeys);
/*
 * Stops accepting, waits up to timeout_ms for requests in flight to be
 * answered, then stops.  NULL ok.
 */
void		 http_stop(struct http *, int timeout_ms);
void		 http_stats_get(struct http *, struct http_stats *);

#endif
