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
 * last batch, and only then frees them.  Only this file, daemon_start.c and
 * config.c know struct config: each subsystem gets a small params struct.
 * With postgres the hook sink runs, and the reconciler makes its rounds,
 * only while this instance leads (cluster.h).
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

#include "cluster.h"
#include "config.h"
#include "daemon.h"
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
#include "store_engine.h"
#include "util.h"
#include "version.h"
#include "vinr_api.h"

#define EXIT_USAGE	64
#define EXIT_CONFIG	78

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
	d->pg = d->cfg.backend == BACKEND_POSTGRES;
	if (d->pg && secrets_pg_password(&d->pg_password, NULL, one, sizeof(one)) == -1)
		config_problem(err, sizeof(err), &n, "[storage] dsn's password", NULL, one);
	if (n > 0)
		fatalx_lines(EXIT_CONFIG, d->file, err);
	if (d->cfg.api_deprecated)	/* once */
		log_warnx("%s: [reconciler] api_* are deprecated: use [api]", d->file);
	log_debug("%zu webhook secret(s); API key from %s", d->nkeys, src);
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
	/* With postgres the hook's slot is swapped by the election's thread. */
	if (d->src.swap != NULL)
		pthread_mutex_lock(d->src.swap);
	for (int i = 0; i < d->src.nsinks; i++)
		sink_reopen(d->src.sinks[i]);
	if (d->src.swap != NULL)
		pthread_mutex_unlock(d->src.swap);
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
	cluster_stop(d->cluster);	/* the hook it runs too */
	reconcile_stop(d->reconciler);
	for (int i = 0; i < d->src.nsinks; i++)
		sink_stop(d->src.sinks[i]);
	store_stop(d->store);
	http_free(d->http);
	control_free(d->control);
	gateway_free(d->gateway);
	reconcile_free(d->reconciler);
	cluster_free(d->cluster);
	for (int i = 0; i < d->src.nsinks; i++)
		sink_free(d->src.sinks[i]);
	store_free(d->store);
	secrets_key_free(d->api_key);
	secrets_key_free(d->pg_password);
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
		secrets_key_free(d.pg_password);
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

	daemon_start(&d);
	sd_notify(0, "READY=1");
	serve(&d, &sigs);
	stop(&d);
	return 0;
}
