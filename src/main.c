/*
 * main.c - vinr-webhookd: startup, signals, shutdown.
 *
 * Threads: main (this file) waits for signals with sigtimedwait() and acts on
 * them; every other thread has them blocked.  The others: the store's writer,
 * one per sink, libmicrohttpd's, the reconciler's, the gateway's, control's.
 * Startup order is store, sinks, reconciler, gateway, control, HTTP: once
 * /healthz answers, everything else is up.  Shutdown stops them in the order
 * HTTP, control, gateway, reconciler, sinks, store, so that every request
 * answered and every delivery made is saved before the writer commits its
 * last batch, and only then frees them.  Only this file and config.c know
 * struct config: each subsystem gets a small params struct.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "control.h"
#include "gateway.h"
#include "http.h"
#include "log.h"
#include "reconcile.h"
#include "secrets.h"
#include "sink.h"
#include "sink_eventlog.h"
#include "sink_hook.h"
#include "sink_socket.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "version.h"
#include "vinr_api.h"

#define EXIT_USAGE	64
#define EXIT_CONFIG	78
#define EXIT_RUNTIME	1

struct daemon {
	struct config		 cfg;
	const char		*file;		/* the configuration file */
	bool			 check;		/* -t */
	struct sig_key		*keys;		/* until HTTP has its copy */
	size_t			 nkeys;
	char			*api_key;	/* until the reconciler and gateway have copies */
	struct stats_source	 src;		/* every subsystem, for stats */
	struct store		*store;
	struct http		*http;
	struct control		*control;	/* NULL when [control] socket is unset */
	struct reconciler	*reconciler;	/* NULL when no API key is configured */
	struct gateway		*gateway;	/* NULL when no API key is configured */
	struct control_reconciler rc_glue;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: vinr-webhookd [-c FILE] [-t|--check-config] [-d] "
	    "[-V|--version] [-h|--help]\n"
	    "  -c FILE   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -t        check the configuration and secrets, then exit\n"
	    "  -d        debug logging\n");
}

/* Parses the command line into d; exits on -V, -h and usage errors. */
static void
parse_args(struct daemon *d, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool debug = false;
	int ch;

	d->file = CONFIG_DEFAULT_PATH;
	while ((ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d->file = optarg;
			break;
		case 't':
			d->check = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'V':
			printf("vinr-webhookd %s\n", VINR_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
	log_init(debug);
}

/* All a start checks before it binds anything (-t is this): every problem
 * of the file, its named files (the hook too), the secrets and [api] base
 * (key or not); then exit 78. */
static void
configure(struct daemon *d)
{
	const char *src = "none";
	char err[4096], one[1024];
	unsigned bad;
	int n;

	config_defaults(&d->cfg);
	if (config_load(&d->cfg, d->file, err, sizeof(err)) == -1)
		fatalx_lines(EXIT_CONFIG, d->file, err);
	n = config_check(&d->cfg, err, sizeof(err), &bad);
	if (!(bad & (CONFIG_BAD_SECRET_FILE | CONFIG_BAD_PUBLIC_KEY_FILE)) &&
	    secrets_webhook_keys(&d->cfg, &d->keys, &d->nkeys, one, sizeof(one)) == -1)
		config_problem(err, sizeof(err), &n, NULL, NULL, one);
	if (!(bad & CONFIG_BAD_API_KEY_FILE) && secrets_api_key(d->cfg.api_key_file,
	    &d->api_key, &src, one, sizeof(one)) == -1)
		config_problem(err, sizeof(err), &n, d->cfg.api_key_file_alias ?
		    "[reconciler] api_key_file" : "[api] key_file", NULL, one);
	if (vinr_api_check_base(d->cfg.api_base, one, sizeof(one)) == -1)
		config_problem(err, sizeof(err), &n, "[api] base", NULL, one);
	if (n > 0)
		fatalx_lines(EXIT_CONFIG, d->file, err);
	if (d->cfg.api_deprecated)	/* once */
		log_warnx("%s: [reconciler] api_* are deprecated: use [api]", d->file);
	log_debug("%zu webhook secret(s); API key from %s", d->nkeys, src);
}

static int
start_sinks(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct sink **s = d->src.sinks;
	int *n = &d->src.nsinks;

	if (c->event_log != NULL) {
		struct sink_eventlog_params p = { .path = c->event_log };

		if ((s[*n] = sink_eventlog_start(d->store, &p, err, errlen)) == NULL)
			return -1;
		(*n)++;
	}
	if (c->hook != NULL) {
		struct sink_hook_params p = { .path = c->hook, .timeout_s = c->hook_timeout,
		    .max_attempts = c->max_attempts, .all_events = c->events == FORWARD_ALL };

		if ((s[*n] = sink_hook_start(d->store, &p, err, errlen)) == NULL)
			return -1;
		(*n)++;
	}
	if (c->socket != NULL) {
		struct sink_socket_params p = { .path = c->socket, .ack = c->socket_ack,
		    .max_attempts = c->max_attempts, .all_events = c->events == FORWARD_ALL };

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
static int
start_api(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct reconcile_params p = { .store = d->store, .api_base = c->api_base,
	    .api_key = d->api_key, .api_key_file = c->api_key_file,
	    .interval = c->interval, .stale_after = c->stale_after,
	    .max_backoff = c->max_backoff, .give_up_after = c->give_up_after,
	    .max_rps = c->max_rps, .timeout_s = c->api_timeout };
	struct gateway_params g = { d->store, c->api_base, d->api_key, c->api_key_file,
	    c->api_timeout, c->unknown_after };

	if (d->api_key == NULL) {
		log_info("reconciler and pay/cancel/capture disabled: no API key");
		return 0;
	}
	if ((d->reconciler = reconcile_start(&p, err, errlen)) != NULL)
		d->gateway = gateway_start(&g, err, errlen);
	secrets_key_free(d->api_key);
	d->api_key = NULL;
	atomic_store(&d->src.reconciler, d->reconciler);
	atomic_store(&d->src.gateway, d->gateway);
	return d->gateway != NULL ? 0 : -1;
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
	if ((d->control = control_start(&p, err, errlen)) == NULL)
		return -1;
	atomic_store(&d->src.control, d->control);
	return 0;
}

/* Starts every subsystem, in order; exits 1 on a failure. */
static void
start(struct daemon *d)
{
	char err[1024];
	int listen_fd = -1;

	/* Before any thread: libcurl's global setup is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d->src.started_ms = util_mono_ms();
	if (sd_listen_fds(1) == 1)
		listen_fd = SD_LISTEN_FDS_START;
	if ((d->store = store_open(d->cfg.database, d->cfg.synchronous, err,
	    sizeof(err))) == NULL)
		fatalx(EXIT_RUNTIME, "database: %s", err);
	d->src.store = d->store;
	store_set_retention(d->store, d->cfg.retain_days);
	if (store_start(d->store) == -1)
		fatalx(EXIT_RUNTIME, "cannot start the writer");
	if (start_sinks(d, err, sizeof(err)) == -1)
		fatalx(EXIT_RUNTIME, "%s", err);
	if (start_api(d, err, sizeof(err)) == -1)
		fatalx(EXIT_RUNTIME, "VINR's API: %s", err);
	if (start_control(d, err, sizeof(err)) == -1 ||
	    start_http(d, listen_fd, err, sizeof(err)) == -1)
		fatalx(EXIT_RUNTIME, "%s", err);
	log_info("vinr-webhookd %s listening on %s%s, database %s", VINR_VERSION,
	    listen_fd >= 0 ? "a socket from systemd" : d->cfg.listen,
	    listen_fd >= 0 ? "" : d->cfg.http_path, d->cfg.database);
}

/* SIGHUP: the webhook secrets and the API key again, the event log reopened. */
static void
reload(struct daemon *d)
{
	struct sig_key *keys;
	size_t n;
	char err[512];

	log_info("SIGHUP: reloading secrets, reopening the event log");
	if (secrets_webhook_keys(&d->cfg, &keys, &n, err, sizeof(err)) == -1)
		log_warnx("reload: %s; keeping the secrets in use", err);
	else {
		if (http_set_keys(d->http, keys, n) == -1)
			log_warnx("reload: out of memory; keeping the secrets in use");
		else
			log_info("reload: %zu webhook secret(s) in use", n);
		secrets_keys_free(keys, n);
	}
	for (int i = 0; i < d->src.nsinks; i++)
		sink_reopen(d->src.sinks[i]);
	reconcile_reload(d->reconciler);
	gateway_reload(d->gateway);
}

/*
 * Waits for signals until SIGTERM or SIGINT.  With WATCHDOG_USEC set, pings
 * WATCHDOG=1 every half of it, but only while every thread shows signs of
 * life: a stuck writer or sink stops the pings, and systemd restarts us.
 */
static void
serve(struct daemon *d, const sigset_t *sigs)
{
	struct timespec tick = { 1, 0 };
	uint64_t wd_usec = 0;
	int64_t wd_next = 0;
	struct stats st;
	siginfo_t si;
	int sig;

	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec / 2000 < 1000)
		tick.tv_sec = 0, tick.tv_nsec = (long)(wd_usec / 2) * 1000;
	for (;;) {
		if (wd_usec > 0 && util_mono_ms() >= wd_next) {
			stats_take(&d->src, &st);
			if (st.threads_ok)
				sd_notify(0, "WATCHDOG=1");
			else
				log_warnx("watchdog: a thread is stalled; not pinging");
			wd_next = util_mono_ms() + (int64_t)(wd_usec / 2000);
		}
		sig = sigtimedwait(sigs, &si, &tick);
		if (sig == SIGHUP)
			reload(d);
		else if (sig == SIGTERM || sig == SIGINT)
			return;
	}
}

/* Stops everything (see the order above), then frees it. */
static void
stop(struct daemon *d)
{
	log_info("stopping");
	sd_notify(0, "STOPPING=1");
	http_stop(d->http, 10000);
	control_stop(d->control);
	gateway_stop(d->gateway);
	reconcile_stop(d->reconciler);
	for (int i = 0; i < d->src.nsinks; i++)
		sink_stop(d->src.sinks[i]);
	store_stop(d->store);
	http_free(d->http);
	control_free(d->control);
	gateway_free(d->gateway);
	reconcile_free(d->reconciler);
	for (int i = 0; i < d->src.nsinks; i++)
		sink_free(d->src.sinks[i]);
	store_free(d->store);
	curl_global_cleanup();
	config_release(&d->cfg);
	log_info("stopped");
}

int
main(int argc, char *argv[])
{
	struct daemon d = { 0 };
	sigset_t sigs;

	parse_args(&d, argc, argv);
	configure(&d);
	if (d.check) {
		printf("%s: configuration ok (%zu webhook secret(s), VINR's API %s)\n", d.file,
		    d.nkeys, d.api_key != NULL ? "enabled" : "disabled: no API key");
		secrets_keys_free(d.keys, d.nkeys);
		secrets_key_free(d.api_key);
		config_release(&d.cfg);
		return 0;
	}

	/* Every thread inherits this mask: only main sees these signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	start(&d);
	sd_notify(0, "READY=1");
	serve(&d, &sigs);
	stop(&d);
	return 0;
}
