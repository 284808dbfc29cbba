/*
 * main.c - vinr-webhookd: startup, signals, shutdown.
 *
 * Threads: main (this file) waits for signals with sigtimedwait() and acts on
 * them; every other thread has them blocked.  The others: the store's writer,
 * one per sink, libmicrohttpd's, the reconciler's, the control socket's.
 * Startup order is store, sinks, HTTP, reconciler, control; shutdown is HTTP,
 * control, reconciler, sinks, store, so that every request answered and every
 * delivery made is saved before the writer commits its last batch.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "control.h"
#include "http.h"
#include "log.h"
#include "reconcile.h"
#include "signature.h"
#include "sink.h"
#include "sink_eventlog.h"
#include "sink_hook.h"
#include "sink_socket.h"
#include "store.h"
#include "util.h"
#include "version.h"
#include "vinr_api.h"

#define EXIT_USAGE	64
#define EXIT_CONFIG	78
#define EXIT_RUNTIME	1

struct daemon {
	struct config	 cfg;
	struct store	*store;
	struct http	*http;
	struct sink	*sinks[3];	/* eventlog, hook, socket: those configured */
	int		 nsinks;
	struct control	*control;	/* NULL when [control] socket is unset */
	struct reconciler *reconciler;	/* NULL when no API key is configured */
	int64_t		 started_ms;
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

/*
 * Loads the webhook secrets and turns them into HMAC keys.  Returns the
 * number of keys (> 0) or -1 with a message in err.
 */
static int
load_keys(const struct config *cfg, struct sig_key **keys, char *err, size_t errlen)
{
	struct secrets sec = { 0 };
	const char *src;
	struct sig_key *k;
	size_t i;

	if (secrets_load(&sec, cfg->secret_file, "webhook-secret", "VINR_WEBHOOK_SECRET",
	    &src, err, errlen) == -1)
		return -1;
	if (sec.n == 0) {
		snprintf(err, errlen, "no webhook secret: set [webhook] secret_file, the "
		    "webhook-secret credential, or VINR_WEBHOOK_SECRET");
		secrets_release(&sec);
		return -1;
	}
	if ((k = calloc(sec.n, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		secrets_release(&sec);
		return -1;
	}
	for (i = 0; i < sec.n; i++)
		if (sig_key_from_secret(cfg->scheme, sec.v[i], &k[i]) == -1) {
			snprintf(err, errlen, "webhook secret %zu (from %s) is not valid "
			    "for scheme standard: expected whsec_ + base64", i + 1, src);
			while (i-- > 0)
				sig_key_release(&k[i]);
			free(k);
			secrets_release(&sec);
			return -1;
		}
	log_debug("%zu webhook secret(s) from %s", sec.n, src);
	secrets_release(&sec);
	*keys = k;
	return (int)i;
}

static void
free_keys(struct sig_key *k, int n)
{
	for (int i = 0; i < n; i++)
		sig_key_release(&k[i]);
	free(k);
}

/*
 * Loads the API key (the first one of its source) into *key, NULL when none
 * is configured, and checks api_base when there is one.  The caller wipes
 * and frees *key.  Returns 0 or -1 with a message in err.
 */
static int
load_api_key(const struct config *cfg, char **key, char *err, size_t errlen)
{
	struct secrets sec = { 0 };
	struct vinr_api *api;
	const char *src;

	*key = NULL;
	if (secrets_load(&sec, cfg->api_key_file, "api-key", "VINR_API_KEY", &src,
	    err, errlen) == -1)
		return -1;
	if (sec.n > 0) {
		if ((api = vinr_api_new(cfg->api_base, err, errlen)) == NULL) {
			secrets_release(&sec);
			return -1;
		}
		vinr_api_free(api);
		*key = sec.v[0];
		sec.v[0] = NULL;
		log_debug("API key from %s", src);
	}
	secrets_release(&sec);
	return 0;
}

static void
free_api_key(char *key)
{
	if (key != NULL) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
}

/* A file's directory must exist: we create files, never directories. */
static int
check_parent(const char *what, const char *path, char *err, size_t errlen)
{
	char *copy, *dir;
	struct stat st;
	int rc = 0;

	if (path == NULL)
		return 0;
	if ((copy = strdup(path)) == NULL)
		return -1;
	dir = dirname(copy);
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s %s: directory %s does not exist", what, path, dir);
		rc = -1;
	}
	free(copy);
	return rc;
}

/* Records "<who>_stalled" in reasons (when not NULL); returns false. */
static bool
stalled(cJSON *reasons, const char *who)
{
	char why[64];

	if (reasons != NULL) {
		snprintf(why, sizeof(why), "%s_stalled", who);
		cJSON_AddItemToArray(reasons, cJSON_CreateString(why));
	}
	return false;
}

/*
 * Whether every thread ticks: the watchdog's question, and part of
 * /healthz's.  A failing disk is not a stuck thread (restarting would not
 * mend it), so of the writer only a stall counts here.
 */
static bool
threads_alive(struct daemon *d, cJSON *reasons)
{
	const char *why = NULL;
	bool ok = true;

	if (!store_healthy(d->store, &why) && strcmp(why, "writer_stalled") == 0)
		ok = stalled(reasons, "writer");
	for (int i = 0; i < d->nsinks; i++)
		if (!sink_alive(d->sinks[i]))
			ok = stalled(reasons, sink_name(d->sinks[i]));
	if (d->control != NULL && !control_alive(d->control))
		ok = stalled(reasons, "control");
	if (!reconcile_alive(d->reconciler))
		ok = stalled(reasons, "reconciler");
	return ok;
}

static bool
health(void *arg, cJSON *warnings, cJSON *reasons)
{
	struct daemon *d = arg;
	struct reconcile_stats rs;
	const char *why = NULL;
	bool ok = threads_alive(d, reasons);

	if (!store_healthy(d->store, &why) && strcmp(why, "writer_stalled") != 0) {
		cJSON_AddItemToArray(reasons, cJSON_CreateString(why));
		ok = false;
	}
	/* Ingest still works while the reconciler waits for a new key. */
	reconcile_stats_get(d->reconciler, &rs);
	if (rs.state == RC_PAUSED)
		cJSON_AddItemToArray(warnings, cJSON_CreateString("reconciler_paused"));
	return ok;
}

/* A Prometheus histogram from per-bucket counts (the last is +Inf). */
static void
histogram(FILE *f, const char *name, const char *help, const double *bounds,
    const uint64_t *counts, double sum, const char *sumfmt)
{
	uint64_t cum = 0;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < STORE_HIST_BUCKETS; i++) {
		cum += counts[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
		    (unsigned long long)cum);
	}
	cum += counts[STORE_HIST_BUCKETS];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)cum,
	    name);
	fprintf(f, sumfmt, sum);
	fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)cum);
}

static char *
metrics(void *arg)
{
	struct daemon *d = arg;
	struct http_stats st;
	struct store_metrics sm;
	struct reconcile_stats rs;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	http_stats_get(d->http, &st);
	fprintf(f, "# HELP vinr_webhooks_total Webhook deliveries by result.\n"
	    "# TYPE vinr_webhooks_total counter\n");
	fprintf(f, "vinr_webhooks_total{result=\"accepted\"} %llu\n",
	    (unsigned long long)st.accepted);
	fprintf(f, "vinr_webhooks_total{result=\"duplicate\"} %llu\n",
	    (unsigned long long)st.duplicate);
	fprintf(f, "vinr_webhooks_total{result=\"ignored\"} %llu\n",
	    (unsigned long long)st.ignored);
	for (int i = 0; i < REJ_COUNT; i++)
		fprintf(f, "vinr_webhooks_total{result=\"rejected\",reason=\"%s\"} %llu\n",
		    http_reject_name(i), (unsigned long long)st.rejected[i]);
	fprintf(f, "# HELP vinr_outcome_last_seq The last outcome seq committed.\n"
	    "# TYPE vinr_outcome_last_seq gauge\nvinr_outcome_last_seq %lld\n",
	    (long long)store_last_seq(d->store));
	fprintf(f, "# HELP vinr_sink_lag Outcomes not yet delivered by a sink.\n"
	    "# TYPE vinr_sink_lag gauge\n");
	for (int i = 0; i < d->nsinks; i++)
		fprintf(f, "vinr_sink_lag{sink=\"%s\"} %lld\n", sink_name(d->sinks[i]),
		    (long long)(store_last_seq(d->store) - sink_cursor(d->sinks[i])));
	fprintf(f, "# HELP vinr_sink_dead_letters Dead letters waiting, per sink.\n"
	    "# TYPE vinr_sink_dead_letters gauge\n");
	for (int i = 0; i < d->nsinks; i++)
		fprintf(f, "vinr_sink_dead_letters{sink=\"%s\"} %lld\n",
		    sink_name(d->sinks[i]), (long long)sink_dead_letters(d->sinks[i]));
	store_metrics_get(d->store, &sm);
	fprintf(f, "# HELP vinr_outcomes_total Payment transitions recorded, by new status.\n"
	    "# TYPE vinr_outcomes_total counter\n");
	for (int i = PAY_PENDING; i <= PAY_CANCELLED; i++)
		fprintf(f, "vinr_outcomes_total{status=\"%s\"} %llu\n", pay_status_name(i),
		    (unsigned long long)sm.outcomes_by_status[i]);
	histogram(f, "vinr_commit_seconds", "Time to run and commit one transaction.",
	    store_commit_bounds, sm.commit_hist, sm.commit_seconds_sum, "%g");
	histogram(f, "vinr_commit_batch_size", "Jobs (mostly webhooks) per transaction.",
	    store_batch_bounds, sm.batch_hist, (double)sm.batch_sum, "%.0f");
	reconcile_stats_get(d->reconciler, &rs);
	fprintf(f, "# HELP vinr_reconciler_requests_total Retrieve calls to VINR, by "
	    "answer (none = no answer).\n# TYPE vinr_reconciler_requests_total counter\n");
	for (int i = 0; i < 8; i++)
		fprintf(f, "vinr_reconciler_requests_total{status=\"%s\"} %llu\n",
		    reconcile_status_labels[i], (unsigned long long)rs.by_status[i]);
	fprintf(f, "# HELP vinr_control_clients Clients connected to the control socket.\n"
	    "# TYPE vinr_control_clients gauge\nvinr_control_clients %d\n",
	    d->control != NULL ? control_clients(d->control) : 0);
	fprintf(f, "# HELP vinr_uptime_seconds Seconds since start.\n"
	    "# TYPE vinr_uptime_seconds gauge\nvinr_uptime_seconds %lld\n",
	    (long long)((util_mono_ms() - d->started_ms) / 1000));
	fclose(f);
	return buf;
}

/* The control socket's "reconcile", answered by the reconciler. */
static void
rc_answered(void *req, enum rc_answer a, bool changed, const char *msg)
{
	static const char *const code[] = {
		[RC_ANSWER_OK] = NULL,
		[RC_ANSWER_NOT_FOUND] = "not_found",
		[RC_ANSWER_UPSTREAM] = "upstream_error",
		[RC_ANSWER_STOPPING] = "internal",
	};

	control_reconcile_done(req, code[a], msg, changed);
}

static int
rc_request(void *arg, const char *payment_id, void *req)
{
	return reconcile_request(arg, payment_id, rc_answered, req);
}

/* The control socket's "stats" (SPEC §4), on the control thread. */
static cJSON *
control_stats(void *arg)
{
	struct daemon *d = arg;
	struct http_stats hs;
	struct reconcile_stats rs;
	int64_t last = store_last_seq(d->store);
	cJSON *st, *w, *rej, *sinks, *s, *r;

	if ((st = cJSON_CreateObject()) == NULL)
		return NULL;
	http_stats_get(d->http, &hs);
	w = cJSON_AddObjectToObject(st, "webhooks");
	cJSON_AddNumberToObject(w, "accepted", (double)hs.accepted);
	cJSON_AddNumberToObject(w, "duplicate", (double)hs.duplicate);
	cJSON_AddNumberToObject(w, "ignored", (double)hs.ignored);
	rej = cJSON_AddObjectToObject(w, "rejected");
	for (int i = 0; i < REJ_COUNT; i++)
		cJSON_AddNumberToObject(rej, http_reject_name(i), (double)hs.rejected[i]);
	cJSON_AddNumberToObject(st, "lastSeq", (double)last);
	sinks = cJSON_AddObjectToObject(st, "sinks");
	for (int i = 0; i < d->nsinks; i++) {
		int64_t cur = sink_cursor(d->sinks[i]);
		int64_t dead = sink_dead_letters(d->sinks[i]);

		s = cJSON_AddObjectToObject(sinks, sink_name(d->sinks[i]));
		cJSON_AddNumberToObject(s, "cursor", (double)cur);
		cJSON_AddNumberToObject(s, "lag", (double)(last > cur ? last - cur : 0));
		cJSON_AddNumberToObject(s, "dead", (double)(dead > 0 ? dead : 0));
	}
	reconcile_stats_get(d->reconciler, &rs);
	r = cJSON_AddObjectToObject(st, "reconciler");
	cJSON_AddStringToObject(r, "state", reconcile_state_name(rs.state));
	cJSON_AddNumberToObject(r, "requests", (double)rs.requests);
	cJSON_AddNumberToObject(r, "errors", (double)rs.errors);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(st, "control"), "clients",
	    d->control != NULL ? (double)control_clients(d->control) : 0);
	cJSON_AddNumberToObject(st, "uptimeSeconds",
	    (double)((util_mono_ms() - d->started_ms) / 1000));
	return st;
}

static int
start_sinks(struct daemon *d, char *err, size_t errlen)
{
	struct sink *s;

	if (d->cfg.event_log != NULL) {
		if ((s = eventlog_start(d->store, d->cfg.event_log, err, errlen)) == NULL)
			return -1;
		d->sinks[d->nsinks++] = s;
	}
	if (d->cfg.hook != NULL) {
		if ((s = hook_start(d->store, &d->cfg, err, errlen)) == NULL)
			return -1;
		d->sinks[d->nsinks++] = s;
	}
	if (d->cfg.socket != NULL) {
		if ((s = socket_sink_start(d->store, &d->cfg, err, errlen)) == NULL)
			return -1;
		d->sinks[d->nsinks++] = s;
	}
	return 0;
}

static void
reload(struct daemon *d)
{
	struct sig_key *keys;
	char err[512];
	int n;

	log_info("SIGHUP: reloading secrets, reopening the event log");
	if ((n = load_keys(&d->cfg, &keys, err, sizeof(err))) == -1)
		log_warnx("reload: %s; keeping the secrets in use", err);
	else {
		if (http_set_keys(d->http, keys, (size_t)n) == -1)
			log_warnx("reload: out of memory; keeping the secrets in use");
		else
			log_info("reload: %d webhook secret(s) in use", n);
		free_keys(keys, n);
	}
	for (int i = 0; i < d->nsinks; i++)
		sink_reopen(d->sinks[i]);
	reconcile_reload(d->reconciler);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct daemon d = { 0 };
	struct http_hooks hooks = { health, metrics, &d };
	static struct control_reconciler rc_glue = { rc_request, NULL };
	const char *file = CONFIG_DEFAULT_PATH;
	struct sig_key *keys = NULL;
	bool check = false, debug = false;
	char *api_key = NULL;
	char err[1024];
	sigset_t sigs;
	siginfo_t si;
	struct timespec tick = { 1, 0 };
	int ch, nkeys, listen_fd = -1;
	uint64_t wd_usec = 0;
	int64_t wd_next = 0;

	while ((ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'V':
			printf("vinr-webhookd %s\n", VINR_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_init(debug);

	config_defaults(&d.cfg);
	if (config_load(&d.cfg, file, err, sizeof(err)) == -1)
		fatalx(EXIT_CONFIG, "configuration: %s", err);
	if ((nkeys = load_keys(&d.cfg, &keys, err, sizeof(err))) == -1 ||
	    load_api_key(&d.cfg, &api_key, err, sizeof(err)) == -1 ||
	    check_parent("database", d.cfg.database, err, sizeof(err)) == -1 ||
	    check_parent("event log", d.cfg.event_log, err, sizeof(err)) == -1 ||
	    check_parent("control socket", d.cfg.control_socket, err, sizeof(err)) == -1)
		fatalx(EXIT_CONFIG, "configuration %s: %s", file, err);
	if (check) {
		printf("%s: configuration ok (%d webhook secret(s), reconciler %s)\n",
		    file, nkeys, api_key != NULL ? "enabled" : "disabled: no API key");
		free_keys(keys, nkeys);
		free_api_key(api_key);
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

	/* Before any thread: libcurl's global setup is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d.started_ms = util_mono_ms();
	if (sd_listen_fds(1) == 1)
		listen_fd = SD_LISTEN_FDS_START;
	if ((d.store = store_open(d.cfg.database, d.cfg.synchronous, err, sizeof(err))) == NULL)
		fatalx(EXIT_RUNTIME, "database: %s", err);
	store_set_retention(d.store, d.cfg.retain_days);
	if (store_start(d.store) == -1)
		fatalx(EXIT_RUNTIME, "cannot start the writer");
	if (start_sinks(&d, err, sizeof(err)) == -1)
		fatalx(EXIT_RUNTIME, "%s", err);
	if ((d.http = http_start(&d.cfg, d.store, keys, (size_t)nkeys, listen_fd, &hooks,
	    err, sizeof(err))) == NULL)
		fatalx(EXIT_RUNTIME, "%s", err);
	free_keys(keys, nkeys);
	if (api_key != NULL) {
		d.reconciler = reconcile_start(&d.cfg, d.store, api_key, err, sizeof(err));
		free_api_key(api_key);
		if (d.reconciler == NULL)
			fatalx(EXIT_RUNTIME, "reconciler: %s", err);
	} else
		log_info("reconciler disabled: no API key configured");
	rc_glue.arg = d.reconciler;
	if (d.cfg.control_socket != NULL) {
		struct control_params cp = { .path = d.cfg.control_socket,
		    .mode = d.cfg.control_mode, .store = d.store,
		    .stats = control_stats, .stats_arg = &d,
		    .reconciler = d.reconciler != NULL ? &rc_glue : NULL };

		if ((d.control = control_start(&cp, err, sizeof(err))) == NULL)
			fatalx(EXIT_RUNTIME, "%s", err);
	}
	log_info("vinr-webhookd %s listening on %s%s, database %s", VINR_VERSION,
	    listen_fd >= 0 ? "a socket from systemd" : d.cfg.listen,
	    listen_fd >= 0 ? "" : d.cfg.http_path, d.cfg.database);
	sd_notify(0, "READY=1");

	/*
	 * WATCHDOG=1 every half of WATCHDOG_USEC, but only while every thread
	 * shows signs of life: a stuck writer or sink stops the pings, and
	 * systemd restarts us.
	 */
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec / 2000 < 1000)
		tick.tv_sec = 0, tick.tv_nsec = (long)(wd_usec / 2) * 1000;
	for (;;) {
		int sig;

		if (wd_usec > 0 && util_mono_ms() >= wd_next) {
			if (threads_alive(&d, NULL))
				sd_notify(0, "WATCHDOG=1");
			else
				log_warnx("watchdog: a thread is stalled; not pinging");
			wd_next = util_mono_ms() + (int64_t)(wd_usec / 2000);
		}
		sig = sigtimedwait(&sigs, &si, &tick);

		if (sig == SIGHUP)
			reload(&d);
		else if (sig == SIGTERM || sig == SIGINT)
			break;
	}

	log_info("stopping");
	sd_notify(0, "STOPPING=1");
	http_stop(d.http, 10000);
	control_free(d.control);
	reconcile_stop(d.reconciler);
	for (int i = 0; i < d.nsinks; i++)
		sink_stop(d.sinks[i]);
	store_free(d.store);
	config_release(&d.cfg);
	log_info("stopped");
	return 0;
}
