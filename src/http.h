/*
 * http.h - the webhook endpoint, /healthz and /metrics (SPEC §1.4).
 *
 * DESIGN: libmicrohttpd with a pool of HTTP_THREADS threads, each running
 * its own poll(2) loop over its share of the connections.  A webhook request
 * streams its body into a buffer capped at max_body, is verified and parsed,
 * then queued to the writer (store_ingest_async) and its connection
 * suspended; the writer resumes it after COMMIT, and it is answered.  No
 * thread waits for the disk: many connections, few fsyncs.
 */
#ifndef VINR_HTTP_H
#define VINR_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "signature.h"

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
	 * The /healthz body (SPEC §1.4), a new object the caller deletes;
	 * *ok false answers 503.  Called on libmicrohttpd's threads.
	 */
	cJSON	*(*health)(void *arg, bool *ok);
	/* Prometheus text; the caller frees it.  Called on libmicrohttpd's
	 * threads. */
	char	*(*metrics)(void *arg);
	void	*arg;
};

/* What the endpoint needs of the configuration ([http], [webhook]). */
struct http_params {
	const char		*listen;	/* as configured, for messages */
	const char		*host;		/* numeric: "127.0.0.1", "::1" */
	unsigned short		 port;
	int			 listen_fd;	/* >= 0: socket activation, the above unused */
	const char		*path;		/* the webhook path */
	size_t			 max_body;
	unsigned		 max_connections;	/* 0: 1024 */
	unsigned		 per_ip_connections;	/* 0: no limit */
	unsigned		 request_timeout;	/* s from the first byte; 0: 10 */
	enum sig_scheme		 scheme;
	long			 tolerance;	/* seconds */
	const struct sig_key	*keys;		/* copied */
	size_t			 nkeys;
	struct store		*store;		/* must outlive the endpoint */
	struct http_hooks	 hooks;
};

/* The error code of a reason, as in the HTTP body and in stats. */
const char	*http_reject_name(enum reject_reason);

/*
 * Binds (or takes listen_fd) and starts serving.  The params are copied,
 * strings and keys included.  NULL with a message in err on failure.
 */
struct http	*http_start(const struct http_params *, char *err, size_t errlen);
/* Swaps the HMAC keys (SIGHUP); requests in flight finish with the old. */
int		 http_set_keys(struct http *, const struct sig_key *keys, size_t nkeys);
/*
 * Stops accepting, waits up to timeout_ms for requests in flight to be
 * answered, then stops every thread.  Never frees.  NULL ok; twice ok.
 */
void		 http_stop(struct http *, int timeout_ms);
/* Stops it (at once) if needed, then frees it.  NULL ok. */
void		 http_free(struct http *);
/* The counters so far.  Any thread. */
void		 http_stats_get(struct http *, struct http_stats *);

#endif
