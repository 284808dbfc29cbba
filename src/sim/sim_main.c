/*
 * sim_main.c - vinr-sim: VINR's Cloud API on loopback, for development and
 * tests (SPEC.md §7, docs-sim.md).
 *
 * DESIGN.  main() parses the flags, starts the three parts - the webhook
 * sender (sim_hook.c), the payment store and its ticker (sim_pay.c), the
 * HTTP server (sim_http.c) - and then waits in sigwait(2) for SIGTERM or
 * SIGINT, which every thread keeps blocked.  It stops them in the reverse
 * order: held sync requests are released first, then the HTTP server,
 * the ticker, and the sender, which discards what it has not sent.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "signature.h"
#include "sim_hook.h"
#include "sim_http.h"
#include "sim_pay.h"
#include "sim_util.h"

#define EX_OK		0
#define EX_FAIL		1
#define EX_USAGE	64

#define DEFAULT_LISTEN		"127.0.0.1:8788"
#define DEFAULT_TERMINAL	"term_test_simulator"
#define MAX_SECRETS		16
#define MAX_TERMINALS		64

static void __attribute__((noreturn))
usage(int code)
{
	FILE *f = code == EX_OK ? stdout : stderr;

	fprintf(f,
	    "usage: vinr-sim [options]\n"
	    "  --listen HOST:PORT       API address (default " DEFAULT_LISTEN ")\n"
	    "  --api-key KEY            accept only this key (default: any sk_test_...)\n"
	    "  --webhook-url URL        where events are POSTed (default: not sent)\n"
	    "  --scheme vinr|standard   signature scheme (default vinr)\n"
	    "  --webhook-secret S       signing secret; repeat to sign with several\n"
	    "                           (default: $VINR_WEBHOOK_SECRET, one per line)\n"
	    "  --drop-rate P            drop each event with probability P (0..1)\n"
	    "  --duplicate-rate P       send each event twice with probability P (0..1)\n"
	    "  --reorder                hold each delivery 0..window ms at random\n"
	    "  --reorder-window MS      the reorder window (default 2000)\n"
	    "  --webhook-delay MS       hold every delivery MS first (default 0)\n"
	    "  --seed N                 seed of the chaos PRNG (default: random)\n"
	    "  --max-retries N          retries of a failed delivery (default 5)\n"
	    "  --webhook-timeout MS     per delivery attempt (default 10000)\n"
	    "  --terminal ID            one more terminal besides " DEFAULT_TERMINAL "\n"
	    "  --timeout-after S        extra processing of the timeout card (default 60)\n"
	    "  --sync-timeout S         longest a sync create is held (default 120)\n"
	    "  --capture-tolerance PCT  capture up to PCT %% over the authorized amount (default 20)\n"
	    "  --retrieve-limit N/S     N retrieves per S seconds per key; 0 = none (default 300/10)\n"
	    "  -v, --verbose            debug logs (every request)\n"
	    "  -h, --help               this help\n");
	exit(code);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("vinr-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	exit(EX_USAGE);
}

static double
num_arg(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(d >= lo && d <= hi))
		bad_usage("%s %s: expected a number from %g to %g", opt, s, lo, hi);
	return d;
}

static long long
int_arg(const char *opt, const char *s, long long lo, long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
		bad_usage("%s %s: expected an integer from %lld to %lld", opt, s, lo, hi);
	return v;
}

enum {
	OPT_LISTEN = 256, OPT_API_KEY, OPT_URL, OPT_SCHEME, OPT_SECRET, OPT_DROP, OPT_DUP,
	OPT_REORDER, OPT_WINDOW, OPT_DELAY, OPT_SEED, OPT_RETRIES, OPT_HOOK_TIMEOUT,
	OPT_TERMINAL, OPT_TIMEOUT_AFTER, OPT_SYNC_TIMEOUT, OPT_TOLERANCE, OPT_RETRIEVE_LIMIT
};

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "api-key", required_argument, NULL, OPT_API_KEY },
	{ "webhook-url", required_argument, NULL, OPT_URL },
	{ "scheme", required_argument, NULL, OPT_SCHEME },
	{ "webhook-secret", required_argument, NULL, OPT_SECRET },
	{ "drop-rate", required_argument, NULL, OPT_DROP },
	{ "duplicate-rate", required_argument, NULL, OPT_DUP },
	{ "reorder", no_argument, NULL, OPT_REORDER },
	{ "reorder-window", required_argument, NULL, OPT_WINDOW },
	{ "webhook-delay", required_argument, NULL, OPT_DELAY },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "max-retries", required_argument, NULL, OPT_RETRIES },
	{ "webhook-timeout", required_argument, NULL, OPT_HOOK_TIMEOUT },
	{ "terminal", required_argument, NULL, OPT_TERMINAL },
	{ "timeout-after", required_argument, NULL, OPT_TIMEOUT_AFTER },
	{ "sync-timeout", required_argument, NULL, OPT_SYNC_TIMEOUT },
	{ "capture-tolerance", required_argument, NULL, OPT_TOLERANCE },
	{ "retrieve-limit", required_argument, NULL, OPT_RETRIEVE_LIMIT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char *argv[])
{
	struct sim_http_config hc = { .listen = DEFAULT_LISTEN, .default_delay_ms = 1000,
	    .sync_timeout_ms = 120000 };
	struct sim_hook_config kc = { .scheme = SIG_SCHEME_VINR, .reorder_window_ms = 2000,
	    .max_retries = 5, .timeout_ms = 10000 };
	struct sim_pay_config pc = { .timeout_after_ms = 60000 };
	const char *secrets[MAX_SECRETS], *terminals[MAX_TERMINALS];
	struct sig_key keys[MAX_SECRETS];
	size_t nsecrets = 0, nterminals = 0, nkeys = 0;
	struct sim_hook *hook = NULL;
	struct sim_pay *pay = NULL;
	struct sim_http *http = NULL;
	char err[512], *envcopy = NULL;
	int ch, verbose = 0, seeded = 0, sig, rc = EX_FAIL;
	sigset_t set;

	terminals[nterminals++] = DEFAULT_TERMINAL;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_LISTEN:
			hc.listen = optarg;
			break;
		case OPT_API_KEY:
			if (*optarg == '\0')
				bad_usage("--api-key: empty");
			hc.api_key = optarg;
			break;
		case OPT_URL:
			if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
				bad_usage("--webhook-url %s: expected http:// or https://", optarg);
			kc.url = optarg;
			break;
		case OPT_SCHEME:
			if (strcmp(optarg, "vinr") == 0)
				kc.scheme = SIG_SCHEME_VINR;
			else if (strcmp(optarg, "standard") == 0)
				kc.scheme = SIG_SCHEME_STANDARD;
			else
				bad_usage("--scheme %s: expected vinr or standard", optarg);
			break;
		case OPT_SECRET:
			if (nsecrets == MAX_SECRETS)
				bad_usage("--webhook-secret: at most %d", MAX_SECRETS);
			secrets[nsecrets++] = optarg;
			break;
		case OPT_DROP:
			kc.drop_rate = num_arg("--drop-rate", optarg, 0, 1);
			break;
		case OPT_DUP:
			kc.duplicate_rate = num_arg("--duplicate-rate", optarg, 0, 1);
			break;
		case OPT_REORDER:
			kc.reorder = 1;
			break;
		case OPT_WINDOW:
			kc.reorder_window_ms = (long)int_arg("--reorder-window", optarg, 0, 600000);
			break;
		case OPT_DELAY:
			kc.delay_ms = (long)int_arg("--webhook-delay", optarg, 0, 600000);
			break;
		case OPT_SEED:
			kc.seed = (uint64_t)int_arg("--seed", optarg, 0, INT64_MAX);
			seeded = 1;
			break;
		case OPT_RETRIES:
			kc.max_retries = (int)int_arg("--max-retries", optarg, 0, 100);
			break;
		case OPT_HOOK_TIMEOUT:
			kc.timeout_ms = (long)int_arg("--webhook-timeout", optarg, 100, 600000);
			break;
		case OPT_TERMINAL:
			if (*optarg == '\0' || strpbrk(optarg, "/?# ") != NULL)
				bad_usage("--terminal %s: not a terminal id", optarg);
			if (nterminals == MAX_TERMINALS)
				bad_usage("--terminal: at most %d", MAX_TERMINALS - 1);
			terminals[nterminals++] = optarg;
			break;
		case OPT_TIMEOUT_AFTER:
			pc.timeout_after_ms = (int64_t)(num_arg("--timeout-after", optarg, 0,
			    86400) * 1000);
			break;
		case OPT_SYNC_TIMEOUT:
			hc.sync_timeout_ms = (int64_t)(num_arg("--sync-timeout", optarg, 0,
			    3600) * 1000);
			break;
		case OPT_TOLERANCE:
			if (sim_pay_config_tolerance(&pc, optarg) == -1)
				bad_usage("--capture-tolerance %s: expected a percentage from 0 to "
				    "100", optarg);
			break;
		case OPT_RETRIEVE_LIMIT:
			if (sim_http_config_retrieve_limit(&hc, optarg) == -1)
				bad_usage("--retrieve-limit %s: expected N/SECONDS, or 0", optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(EX_OK);
		default:
			usage(EX_USAGE);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument %s", argv[optind]);
	{
		char host[256];
		unsigned short port;

		if (sim_http_parse_listen(hc.listen, host, sizeof(host), &port) == -1)
			bad_usage("--listen %s: expected host:port or [v6]:port", hc.listen);
	}

	/* Secrets: the flags, else $VINR_WEBHOOK_SECRET (one per line). */
	if (nsecrets == 0 && getenv("VINR_WEBHOOK_SECRET") != NULL) {
		char *line, *save = NULL;

		if ((envcopy = strdup(getenv("VINR_WEBHOOK_SECRET"))) == NULL)
			bad_usage("out of memory");
		for (line = strtok_r(envcopy, "\r\n", &save); line != NULL && nsecrets <
		    MAX_SECRETS; line = strtok_r(NULL, "\r\n", &save))
			if (*line != '\0' && *line != '#')
				secrets[nsecrets++] = line;
	}
	if (kc.url != NULL && nsecrets == 0)
		bad_usage("--webhook-url needs a secret: --webhook-secret or "
		    "$VINR_WEBHOOK_SECRET");
	for (size_t i = 0; i < nsecrets; i++) {
		if (sig_key_from_secret(kc.scheme, secrets[i], &keys[nkeys]) == -1)
			bad_usage("webhook secret #%zu is not usable with --scheme %s%s", i + 1,
			    kc.scheme == SIG_SCHEME_VINR ? "vinr" : "standard",
			    kc.scheme == SIG_SCHEME_STANDARD ? " (whsec_ + base64 expected)" : "");
		nkeys++;
	}
	kc.keys = keys;
	kc.nkeys = nkeys;
	if (!seeded)
		kc.seed = sim_rand_entropy();
	pc.terminals = terminals;
	pc.nterminals = nterminals;

	log_init(verbose);
	signal(SIGPIPE, SIG_IGN);
	/* Blocked before any thread starts, so only sigwait() below sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_crit("curl_global_init failed");
		goto out;
	}

	if ((hook = sim_hook_start(&kc, err, sizeof(err))) == NULL ||
	    (pay = sim_pay_start(&pc, hook, err, sizeof(err))) == NULL ||
	    (http = sim_http_start(&hc, pay, hook, err, sizeof(err))) == NULL) {
		log_crit("vinr-sim: %s", err);
		goto stop;
	}
	log_info("vinr-sim listening on %s; terminals: %zu (%s%s); keys: %s", hc.listen,
	    nterminals, DEFAULT_TERMINAL, nterminals > 1 ? ", ..." : "",
	    hc.api_key != NULL ? "one fixed key" : "any sk_test_...");
	if (kc.url != NULL)
		log_info("webhooks -> %s (scheme %s, %zu secret%s), drop %g, duplicate %g, "
		    "reorder %s, delay %ld ms, max retries %d, seed %llu", kc.url,
		    kc.scheme == SIG_SCHEME_VINR ? "vinr" : "standard", nkeys,
		    nkeys == 1 ? "" : "s", kc.drop_rate, kc.duplicate_rate,
		    kc.reorder ? "on" : "off", kc.delay_ms, kc.max_retries,
		    (unsigned long long)kc.seed);
	else
		log_info("no --webhook-url: events are recorded (GET /_sim/events), not sent");

	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig != SIGTERM && sig != SIGINT);
	log_info("vinr-sim: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	rc = EX_OK;
stop:
	sim_pay_shutdown(pay);
	sim_http_stop(http);
	sim_pay_stop(pay);
	sim_hook_stop(hook);
	curl_global_cleanup();
out:
	for (size_t i = 0; i < nkeys; i++)
		sig_key_release(&keys[i]);
	free(envcopy);
	return rc;
}
