/*
 * sim_http.h - vinr-sim's HTTP side: the Cloud API (/v1/terminal/payments…)
 * behind Bearer sk_test_ keys, and the unauthenticated control endpoints
 * (/_sim/…) that tests use to inject faults and read what happened.
 */
#ifndef VINR_SIM_HTTP_H
#define VINR_SIM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "sim_hook.h"
#include "sim_pay.h"

/* Defaults of --retrieve-limit: 300 retrieves per 10 s per key. */
#define SIM_RETRIEVE_LIMIT		300
#define SIM_RETRIEVE_WINDOW_MS		10000

struct sim_http_config {
	const char	*listen;		/* host:port or [v6]:port */
	const char	*api_key;		/* NULL: any sk_test_… key is valid */
	int64_t		 default_delay_ms;	/* when ?simulateDelay is absent */
	int64_t		 sync_timeout_ms;	/* longest a sync create is held */
	/*
	 * The retrieve rate limit, per API key: a bucket of retrieve_limit
	 * calls, refilled at retrieve_limit per retrieve_window_ms.  0 = no
	 * limit.  Used only when retrieve_limit_set, else the defaults above.
	 */
	long		 retrieve_limit;
	int64_t		 retrieve_window_ms;
	int		 retrieve_limit_set;
};

/*
 * Parses --retrieve-limit N/S (N retrieves per S seconds per key; "0" turns
 * the limit off) into cfg.  Returns 0, or -1 when malformed.
 */
int		 sim_http_config_retrieve_limit(struct sim_http_config *cfg,
		    const char *arg);

/* Binds and serves until sim_http_stop().  pay and hook must outlive it.
 * Returns NULL with a message in err when it cannot listen. */
struct sim_http	*sim_http_start(const struct sim_http_config *, struct sim_pay *,
		    struct sim_hook *, char *err, size_t errlen);
/* Answers the requests in flight (sim_pay_shutdown() first releases held
 * sync creates), closes every connection, frees.  Accepts NULL. */
void		 sim_http_stop(struct sim_http *);

/* Splits "host:port" / "[v6]:port"; host is written without brackets.
 * Returns 0, or -1 when malformed. */
int		 sim_http_parse_listen(const char *listen, char *host, size_t hostlen,
		    unsigned short *port);

#endif
