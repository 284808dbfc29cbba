/*
 * daemon_start.c - starting the daemon's subsystems (see daemon.h and the
 * order in main.c's comment).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>

#include "cluster.h"
#include "daemon.h"
#include "gateway.h"
#include "http.h"
#include "log.h"
#include "reconcile.h"
#include "secrets.h"
#include "sink.h"
#include "sink_eventlog.h"
#include "sink_hook.h"
#include "sink_socket.h"
#include "store.h"
#include "store_engine.h"
#include "util.h"
#include "version.h"

/* The hook sink: at start, or with postgres each time this instance leads. */
static struct sink *
start_hook(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct sink_hook_params p = { .path = c->hook, .timeout_s = c->hook_timeout,
	    .max_attempts = c->max_attempts, .all_events = c->events == FORWARD_ALL };

	return sink_hook_start(d->store, &p, err, errlen);
}

/* With postgres the event log's and socket's cursors are this instance's
 * (SPEC §8); the hook's is shared, and its slot filled while leading. */
static int
start_sinks(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct sink **s = d->src.sinks;
	int *n = &d->src.nsinks;
	char elkey[96], sokey[96];

	snprintf(elkey, sizeof(elkey), "eventlog@%s", c->instance);
	snprintf(sokey, sizeof(sokey), "socket@%s", c->instance);
	if (c->event_log != NULL) {
		struct sink_eventlog_params p = { .path = c->event_log,
		    .cursor_key = d->pg ? elkey : NULL };

		if ((s[*n] = sink_eventlog_start(d->store, &p, err, errlen)) == NULL)
			return -1;
		(*n)++;
	}
	if (c->hook != NULL && !d->pg && (s[*n] = start_hook(d, err, errlen)) == NULL)
		return -1;
	*n += c->hook != NULL;
	if (c->socket != NULL) {
		struct sink_socket_params p = { .path = c->socket, .ack = c->socket_ack,
		    .max_attempts = c->max_attempts, .all_events = c->events == FORWARD_ALL,
		    .cursor_key = d->pg ? sokey : NULL };

		if ((s[*n] = sink_socket_start(d->store, &p, err, errlen)) == NULL)
			return -1;
		(*n)++;
	}
	return 0;
}

static int
start_http(struct daemon *d, int listen_fd, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct http_params p = { .listen = c->listen, .host = c->listen_host,
	    .port = c->listen_port, .listen_fd = listen_fd, .path = c->http_path,
	    .max_body = c->max_body, .max_connections = (unsigned)c->max_connections,
	    .per_ip_connections = (unsigned)c->per_ip_connections, .scheme = c->scheme,
	    .request_timeout = (unsigned)c->request_timeout, .tolerance = c->tolerance,
	    .keys = d->keys, .nkeys = d->nkeys, .store = d->store,
	    .hooks = { stats_health, stats_metrics, &d->src } };

	d->http = http_start(&p, err, errlen);
	secrets_keys_free(d->keys, d->nkeys);
	d->keys = NULL;
	d->nkeys = 0;
	atomic_store(&d->src.http, d->http);
	return d->http != NULL ? 0 : -1;
}

/* The reconciler and the pay gateway: VINR's API (none without a key). */
static struct reconciler *
start_reconciler(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct reconcile_params p = { .store = d->store, .api_base = c->api_base,
	    .api_key = d->api_key, .api_key_file = c->api_key_file,
	    .interval = c->interval, .stale_after = c->stale_after,
	    .max_backoff = c->max_backoff, .give_up_after = c->give_up_after,
	    .max_rps = c->max_rps, .timeout_s = c->api_timeout,
	    .rounds_off = d->pg };

	return reconcile_start(&p, err, errlen);
}

/* The reconciler (with postgres: its rounds only while leading) and the
 * pay gateway. */
static int
start_api(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct gateway_params g = { d->store, c->api_base, d->api_key, c->api_key_file,
	    c->api_timeout, c->unknown_after };

	if (d->api_key == NULL) {
		log_info("reconciler and pay/cancel/capture disabled: no API key");
		return 0;
	}
	if ((d->reconciler = start_reconciler(d, err, errlen)) != NULL)
		d->gateway = gateway_start(&g, err, errlen);
	secrets_key_free(d->api_key);
	d->api_key = NULL;
	atomic_store(&d->src.reconciler, d->reconciler);
	atomic_store(&d->src.gateway, d->gateway);
	return d->gateway != NULL ? 0 : -1;
}

/* cluster_params' start: on the election's thread, once this one leads. */
static int
lead(void *arg, struct sink **hook)
{
	struct daemon *d = arg;
	char err[512];

	if (d->cfg.hook != NULL && (*hook = start_hook(d, err, sizeof(err))) == NULL) {
		log_warnx("hook: %s", err);
		return -1;
	}
	return 0;
}

/* postgres: the wake-ups from other instances and the leader election. */
static int
start_cluster(struct daemon *d, char *err, size_t errlen)
{
	struct cluster_params p = { .dsn = d->cfg.dsn, .password = d->pg_password,
	    .takeover = d->cfg.takeover, .store = d->store, .src = &d->src,
	    .hook_slot = -1, .start = lead, .arg = d, .reconciler = d->reconciler };

	for (int i = 0; i < d->src.nsinks; i++)
		if (d->src.sinks[i] == NULL)
			p.hook_slot = i;
	d->cluster = cluster_start(&p, err, errlen);
	return d->cluster != NULL ? 0 : -1;
}

static int
start_control(struct daemon *d, char *err, size_t errlen)
{
	struct control_params p = { .path = d->cfg.control_socket,
	    .mode = d->cfg.control_mode, .idle_timeout = d->cfg.control_idle_timeout,
	    .store = d->store, .stats = stats_json, .stats_arg = &d->src,
	    .gateway = d->gateway };

	if (d->cfg.control_socket == NULL)
		return 0;
	if (d->reconciler != NULL) {
		d->rc_glue = (struct control_reconciler){ reconcile_control, d->reconciler };
		p.reconciler = &d->rc_glue;
	}
	p.instance = d->pg ? d->cfg.instance : NULL;
	if ((d->control = control_start(&p, err, errlen)) == NULL)
		return -1;
	atomic_store(&d->src.control, d->control);
	return 0;
}

/*
 * A start that fails once threads run (the writer, the checkpointer, the
 * sinks, postgres' leader and LISTEN threads, which may be inside libpq
 * connecting): exit() would run the libraries' destructors under them
 * (krb5's, through libpq's GSSAPI: an abort under ASan), so the line is
 * logged and _exit() leaves at once.  Nothing is lost: no request was
 * answered yet.
 */
static void __attribute__((noreturn, format(printf, 2, 3)))
start_failed(int code, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_errx("%s", msg);
	_exit(code);
}

/* Starts every subsystem, in order; exits 1 on a failure. */
void
daemon_start(struct daemon *d)
{
	char err[1024];
	int listen_fd = -1;

	/* Before any thread: libcurl's global setup is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d->src.started_ms = util_mono_ms();
	if (sd_listen_fds(1) == 1)
		listen_fd = SD_LISTEN_FDS_START;
	if ((d->store = d->pg ? store_open_engine(&store_pg_engine, d->cfg.dsn,
	    &(struct store_params){ .password = d->pg_password,
	    .instance = d->cfg.instance }, err, sizeof(err)) :
	    store_open(d->cfg.database, d->cfg.synchronous, err, sizeof(err))) == NULL)
		fatalx(EXIT_RUNTIME, "database: %s", err);
	if (d->pg) {	/* the hook sink comes and goes */
		pthread_mutex_init(&d->swap, NULL);
		d->src.swap = &d->swap;
	}
	d->src.store = d->store;
	store_set_retention(d->store, d->cfg.retain_days);
	if (store_start(d->store) == -1)
		start_failed(EXIT_RUNTIME, "cannot start the writer");
	if (start_sinks(d, err, sizeof(err)) == -1)
		start_failed(EXIT_RUNTIME, "%s", err);
	if (start_api(d, err, sizeof(err)) == -1)
		start_failed(EXIT_RUNTIME, "VINR's API: %s", err);
	if (d->pg && start_cluster(d, err, sizeof(err)) == -1)
		start_failed(EXIT_RUNTIME, "postgres: %s", err);
	if (start_control(d, err, sizeof(err)) == -1 ||
	    start_http(d, listen_fd, err, sizeof(err)) == -1)
		start_failed(EXIT_RUNTIME, "%s", err);
	log_info("vinr-webhookd %s listening on %s%s, database %s", VINR_VERSION,
	    listen_fd >= 0 ? "a socket from systemd" : d->cfg.listen,
	    listen_fd >= 0 ? "" : d->cfg.http_path, d->pg ? "postgres" : d->cfg.database);
}
