/*
 * sim_main.c - vinr-sim: VINR's Cloud API on loopback, for development and
 * tests (SPEC.md §7, docs/vinr-sim.md).
 *
 * DESIGN.  main() parses the flags, starts the three parts - the webhook
 * sender (sim_hook.c), the payment store and its ticker (sim_pay.c), the
 * HTTP server (sim_http.c) - and then waits in sigwait(2) for SIGTERM or
 * SIGINT, which every thread keeps blocked.  It stops them in the reverse
 * order: held sync requests are released first, then the HTTP server,
 * the ticker, and the sender, which discards what it has not sent.
 *
 * Secrets (the webhook signing secrets, the one fixed API key) come from a
 * file or the environment, never from the command line, where ps(1) and
 * /proc/PID/cmdline would show them to every user (SPEC §7).  The files are
 * read by secrets.c, under the daemon's rules for its secret files.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "secrets.h"
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
	    "  --api-key-file FILE      accept only the key in FILE (default:\n"
	    "                           $VINR_SIM_API_KEY, else any sk_test_...)\n"
	    "  --webhook-url URL        where events are POSTed (default: not sent)\n"
	    "  --scheme vinr|standard   signature scheme (default vinr)\n"
	    "  --webhook-secret-file F  signing secrets, one per line; all sign\n"
	    "                           (default: the one in $VINR_WEBHOOK_SECRET)\n"
	    "  --signing-key-file F     also sign v1a (Ed25519) with the whsk_ keys in F\n"
	    "                           (--scheme standard)\n"
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
	OPT_TERMINAL, OPT_TIMEOUT_AFTER, OPT_SYNC_TIMEOUT, OPT_TOLERANCE, OPT_RETRIEVE_LIMIT,
	OPT_SIGNING_KEY, OPT_SECRET_FILE, OPT_API_KEY_FILE
};

static const struct option longopts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "api-key", required_argument, NULL, OPT_API_KEY },
	{ "webhook-url", required_argument, NULL, OPT_URL },
	{ "scheme", required_argument, NULL, OPT_SCHEME },
	{ "webhook-secret-file", required_argument, NULL, OPT_SECRET_FILE },
	{ "api-key-file", required_argument, NULL, OPT_API_KEY_FILE },
	/* Refused, with what to use instead: see refuse_secret_flag(). */
	{ "webhook-secret", required_argument, NULL, OPT_SECRET },
	{ "signing-key-file", required_argument, NULL, OPT_SIGNING_KEY },
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

/* What the command line says. */
struct opts {
	struct sim_http_config	 hc;
	struct sim_hook_config	 kc;
	struct sim_pay_config	 pc;
	const char		*secret_file;	/* NULL: $VINR_WEBHOOK_SECRET */
	const char		*api_key_file;	/* NULL: $VINR_SIM_API_KEY */
	const char		*terminals[MAX_TERMINALS];
	size_t			 nterminals;
	int			 verbose;
	int			 seeded;
};

/*
 * The flags that used to take a secret on the command line.  The value is
 * never repeated: it is the secret.
 */
static void __attribute__((noreturn))
refuse_secret_flag(int ch)
{
	if (ch == OPT_SECRET)
		bad_usage("--webhook-secret is refused: a secret on the command line is "
		    "visible to every user (ps, /proc/PID/cmdline).  Put the secrets in a "
		    "file, one per line, mode 0600, and use --webhook-secret-file FILE, "
		    "or set $VINR_WEBHOOK_SECRET");
	bad_usage("--api-key is refused: a key on the command line is visible to "
	    "every user (ps, /proc/PID/cmdline).  Put the key in a file, mode 0600, "
	    "and use --api-key-file FILE, or set $VINR_SIM_API_KEY");
}

/* The webhook options; exits on a bad value. */
static bool
parse_hook_opt(struct opts *o, int ch, const char *arg)
{
	switch (ch) {
	case OPT_URL:
		if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
			bad_usage("--webhook-url %s: expected http:// or https://", arg);
		o->kc.url = arg;
		return true;
	case OPT_SCHEME:
		if (strcmp(arg, "vinr") == 0)
			o->kc.scheme = SIG_SCHEME_VINR;
		else if (strcmp(arg, "standard") == 0)
			o->kc.scheme = SIG_SCHEME_STANDARD;
		else
			bad_usage("--scheme %s: expected vinr or standard", arg);
		return true;
	case OPT_SECRET_FILE:
		o->secret_file = arg;
		return true;
	case OPT_SIGNING_KEY:
		o->kc.signing_key_file = arg;
		return true;
	case OPT_DROP:
		o->kc.drop_rate = num_arg("--drop-rate", arg, 0, 1);
		return true;
	case OPT_DUP:
		o->kc.duplicate_rate = num_arg("--duplicate-rate", arg, 0, 1);
		return true;
	case OPT_REORDER:
		o->kc.reorder = 1;
		return true;
	case OPT_WINDOW:
		o->kc.reorder_window_ms = (long)int_arg("--reorder-window", arg, 0, 600000);
		return true;
	case OPT_DELAY:
		o->kc.delay_ms = (long)int_arg("--webhook-delay", arg, 0, 600000);
		return true;
	case OPT_SEED:
		o->kc.seed = (uint64_t)int_arg("--seed", arg, 0, INT64_MAX);
		o->seeded = 1;
		return true;
	case OPT_RETRIES:
		o->kc.max_retries = (int)int_arg("--max-retries", arg, 0, 100);
		return true;
	case OPT_HOOK_TIMEOUT:
		o->kc.timeout_ms = (long)int_arg("--webhook-timeout", arg, 100, 600000);
		return true;
	}
	return false;
}

/* The API and payment options; exits on a bad value or an unknown one. */
static void
parse_opt(struct opts *o, int ch, const char *arg)
{
	if (parse_hook_opt(o, ch, arg))
		return;
	switch (ch) {
	case OPT_LISTEN:
		o->hc.listen = arg;
		break;
	case OPT_API_KEY_FILE:
		o->api_key_file = arg;
		break;
	case OPT_SECRET:
	case OPT_API_KEY:
		refuse_secret_flag(ch);
	case OPT_TERMINAL:
		if (*arg == '\0' || strpbrk(arg, "/?# ") != NULL)
			bad_usage("--terminal %s: not a terminal id", arg);
		if (o->nterminals == MAX_TERMINALS)
			bad_usage("--terminal: at most %d", MAX_TERMINALS - 1);
		o->terminals[o->nterminals++] = arg;
		break;
	case OPT_TIMEOUT_AFTER:
		o->pc.timeout_after_ms = (int64_t)(num_arg("--timeout-after", arg, 0,
		    86400) * 1000);
		break;
	case OPT_SYNC_TIMEOUT:
		o->hc.sync_timeout_ms = (int64_t)(num_arg("--sync-timeout", arg, 0,
		    3600) * 1000);
		break;
	case OPT_TOLERANCE:
		if (sim_pay_config_tolerance(&o->pc, arg) == -1)
			bad_usage("--capture-tolerance %s: expected a percentage from 0 to 100",
			    arg);
		break;
	case OPT_RETRIEVE_LIMIT:
		if (sim_http_config_retrieve_limit(&o->hc, arg) == -1)
			bad_usage("--retrieve-limit %s: expected N/SECONDS, or 0", arg);
		break;
	case 'v':
		o->verbose = 1;
		break;
	case 'h':
		usage(EX_OK);
	default:
		usage(EX_USAGE);
	}
}

static void
parse_args(struct opts *o, int argc, char *argv[])
{
	char host[256];
	unsigned short port;
	int ch;

	o->terminals[o->nterminals++] = DEFAULT_TERMINAL;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1)
		parse_opt(o, ch, optarg);
	if (optind < argc)
		bad_usage("unexpected argument %s", argv[optind]);
	if (sim_http_parse_listen(o->hc.listen, host, sizeof(host), &port) == -1)
		bad_usage("--listen %s: expected host:port or [v6]:port", o->hc.listen);
	o->pc.terminals = o->terminals;
	o->pc.nterminals = o->nterminals;
	if (!o->seeded)
		o->kc.seed = sim_rand_entropy();
}

/*
 * The secrets (each one a noun) of the flag what: from file if non-NULL,
 * else the environment variable envname, into *out (the caller releases
 * it).  Exits when a named file cannot be read or holds none; the message
 * names the flag, never a secret.
 */
static void
load_secrets(struct secrets *out, const char *what, const char *noun,
    const char *file, const char *envname)
{
	char err[256];

	if (secrets_load(out, file, NULL, envname, NULL, err, sizeof(err)) == -1)
		bad_usage("%s: %s", what, err);
	if (file != NULL && out->n == 0)
		bad_usage("%s: the file holds no %s (blank and # lines are skipped)",
		    what, noun);
}

/*
 * The fixed API key (--api-key-file, else $VINR_SIM_API_KEY; none: any
 * sk_test_... key) and the signing keys (--webhook-secret-file, else
 * $VINR_WEBHOOK_SECRET) into o and keys.  Exits on an unusable secret.
 */
static size_t
load_keys(struct opts *o, struct secrets *apikey, struct secrets *secrets,
    struct sig_key *keys)
{
	size_t nkeys = 0;

	load_secrets(apikey, "--api-key-file", "key", o->api_key_file, "VINR_SIM_API_KEY");
	if (apikey->n > 1)
		bad_usage("--api-key-file: %zu keys, the sim takes one", apikey->n);
	if (apikey->n == 1)
		o->hc.api_key = apikey->v[0];
	load_secrets(secrets, "--webhook-secret-file", "secret", o->secret_file,
	    "VINR_WEBHOOK_SECRET");
	if (secrets->n > MAX_SECRETS)
		bad_usage("--webhook-secret-file: %zu secrets, at most %d", secrets->n,
		    MAX_SECRETS);
	if (o->kc.url != NULL && secrets->n == 0 && o->kc.signing_key_file == NULL)
		bad_usage("--webhook-url needs a secret: --webhook-secret-file, "
		    "$VINR_WEBHOOK_SECRET or --signing-key-file");
	for (size_t i = 0; i < secrets->n; i++) {
		if (sig_key_from_secret(o->kc.scheme, secrets->v[i], &keys[nkeys]) == -1)
			bad_usage("webhook secret #%zu is not usable with --scheme %s%s", i + 1,
			    o->kc.scheme == SIG_SCHEME_VINR ? "vinr" : "standard",
			    o->kc.scheme == SIG_SCHEME_STANDARD ?
			    " (whsec_ + base64 expected)" : "");
		nkeys++;
	}
	o->kc.keys = keys;
	o->kc.nkeys = nkeys;
	return nkeys;
}

static void
log_banner(const struct opts *o)
{
	const struct sim_hook_config *kc = &o->kc;

	log_info("vinr-sim listening on %s; terminals: %zu (%s%s); keys: %s", o->hc.listen,
	    o->nterminals, DEFAULT_TERMINAL, o->nterminals > 1 ? ", ..." : "",
	    o->hc.api_key != NULL ? "one fixed key" : "any sk_test_...");
	if (kc->url != NULL)
		log_info("webhooks -> %s (scheme %s, %zu secret%s), drop %g, duplicate %g, "
		    "reorder %s, delay %ld ms, max retries %d, seed %llu", kc->url,
		    kc->scheme == SIG_SCHEME_VINR ? "vinr" : "standard", kc->nkeys,
		    kc->nkeys == 1 ? "" : "s", kc->drop_rate, kc->duplicate_rate,
		    kc->reorder ? "on" : "off", kc->delay_ms, kc->max_retries,
		    (unsigned long long)kc->seed);
	else
		log_info("no --webhook-url: events are recorded (GET /_sim/events), not sent");
}

int
main(int argc, char *argv[])
{
	struct opts o = {
		.hc = { .listen = DEFAULT_LISTEN, .default_delay_ms = 1000,
		    .sync_timeout_ms = 120000 },
		.kc = { .scheme = SIG_SCHEME_VINR, .reorder_window_ms = 2000,
		    .max_retries = 5, .timeout_ms = 10000 },
		.pc = { .timeout_after_ms = 60000 },
	};
	struct sig_key keys[MAX_SECRETS];
	struct secrets apikey = { NULL, 0 }, secrets = { NULL, 0 };
	size_t nkeys;
	struct sim_hook *hook = NULL;
	struct sim_pay *pay = NULL;
	struct sim_http *http = NULL;
	char err[512];
	int sig, rc = EX_FAIL;
	sigset_t set;

	parse_args(&o, argc, argv);
	nkeys = load_keys(&o, &apikey, &secrets, keys);
	log_init(o.verbose);
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

	if ((hook = sim_hook_start(&o.kc, err, sizeof(err))) == NULL ||
	    (pay = sim_pay_start(&o.pc, hook, err, sizeof(err))) == NULL ||
	    (http = sim_http_start(&o.hc, pay, hook, err, sizeof(err))) == NULL) {
		log_crit("vinr-sim: %s", err);
		goto stop;
	}
	log_banner(&o);
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
	secrets_release(&secrets);
	secrets_release(&apikey);
	return rc;
}
