/*
 * vinrctl.c - the command-line client of the control socket (SPEC §4).
 *
 * One request per run: build the JSON line from the arguments, send it,
 * print the response line on stdout exactly as received (errors too), and
 * exit 0 ok, 1 an error response, 2 usage or connection trouble, 3 timeout.
 * "tail" is the exception: it subscribes and prints the outcome lines only,
 * one per line, flushed, until the daemon closes or stdout goes away.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jsonnum.h"
#include "version.h"

#define DEFAULT_SOCKET	"/run/vinr-webhookd/control.sock"
#define EXIT_OK		0
#define EXIT_ERROR	1
#define EXIT_USAGE	2
#define EXIT_TIMEOUT	3
#define ANSWER_WAIT_S	60	/* how long a plain request may take */
#define WAIT_DEFAULT_S	150	/* the daemon's default wait timeout */

/* A_FLAG: an option without a value that sets key to fixed. */
enum argtype { A_STRING, A_INT, A_NUMBER, A_FLAG };

struct option_def {
	const char	*flag;		/* "--terminal" */
	const char	*key;		/* the request field */
	enum argtype	 type;
	const char	*meta;		/* for the usage line; NULL for A_FLAG */
	const char	*fixed;		/* A_FLAG: the value it sets */
};

struct command {
	const char		*name;		/* also the request's cmd */
	const char		*cmd;		/* the request's cmd when it differs */
	const char		*pos[2];	/* positional arguments: request fields */
	enum argtype		 postype[2];
	const char		*posmeta[2];
	struct option_def	 opts[10];
	const char		*help;
};

static const struct command commands[] = {
	{ "ping", NULL, { NULL }, { 0 }, { NULL }, { { NULL } },
	    "Checks that the daemon answers; prints its version." },
	{ "get", NULL, { "paymentId" }, { A_STRING }, { "ID" }, { { NULL } },
	    "Prints the payment ID as the daemon knows it (not_found if it does not)." },
	{ "find", NULL, { "reference" }, { A_STRING }, { "REF" }, { { NULL } },
	    "Prints the payments whose reference is REF, newest first." },
	{ "track", NULL, { "paymentId" }, { A_STRING }, { "ID" }, {
		{ "--terminal", "terminalId", A_STRING, "T", NULL },
		{ "--reference", "reference", A_STRING, "R", NULL },
		{ "--amount", "amount", A_INT, "N", NULL },
		{ "--currency", "currency", A_STRING, "C", NULL },
		{ NULL } },
	    "Registers a payment that the POS created with VINR, so that the\n"
	    "daemon watches it (and the reconciler retrieves it) even if no webhook\n"
	    "ever comes.  An unknown payment is stored as pending; a known one keeps\n"
	    "its status and gets the fields it lacks.  Prints the payment." },
	{ "wait", NULL, { "paymentId" }, { A_STRING }, { "ID" }, {
		{ "--timeout", "timeout", A_NUMBER, "S", NULL },
		{ "--final", "until", A_FLAG, NULL, "final" },
		{ NULL } },
	    "Waits until payment ID is authorized, completed, failed or cancelled\n"
	    "(it may still be unknown when asked) and prints it; with --final, until\n"
	    "it is completed, failed or cancelled (an authorized payment waits for\n"
	    "its capture).  After S seconds (default 150, at most 3600) prints a\n"
	    "timeout error and exits 3." },
	{ "pending", NULL, { NULL }, { 0 }, { NULL }, {
		{ "--older-than", "olderThan", A_NUMBER, "S", NULL },
		{ NULL } },
	    "Prints the payments still pending or processing, unchanged for at\n"
	    "least S seconds (default 0)." },
	{ "tail", "subscribe", { NULL }, { 0 }, { NULL }, {
		{ "--since", "since", A_INT, "N", NULL },
		{ NULL } },
	    "Streams outcome lines, one JSON object per line, as they are committed:\n"
	    "with --since N, every outcome after seq N first.  Runs until the daemon\n"
	    "stops or is interrupted.  Made for `vinrctl tail | jq`." },
	{ "reconcile", NULL, { "paymentId" }, { A_STRING }, { "ID" }, { { NULL } },
	    "Retrieves payment ID from VINR now and applies what it says; prints the\n"
	    "payment and whether it changed." },
	{ "stats", NULL, { NULL }, { 0 }, { NULL }, { { NULL } },
	    "Prints the daemon's counters: webhooks, last seq, sinks, reconciler,\n"
	    "control clients, uptime." },
	{ "dead", NULL, { NULL }, { 0 }, { NULL }, { { NULL } },
	    "Prints the dead letters: outcomes a sink gave up delivering." },
	{ "replay", NULL, { "sink", "seq" }, { A_STRING, A_INT }, { "SINK", "SEQ" },
	    { { NULL } },
	    "Queues dead letter SEQ of SINK (eventlog, hook, socket) for another\n"
	    "delivery; it leaves the dead list once delivered." },
	{ "pay", NULL, { NULL }, { 0 }, { NULL }, {
		{ "--terminal", "terminalId", A_STRING, "T", NULL },
		{ "--amount", "amount", A_INT, "N", NULL },
		{ "--currency", "currency", A_STRING, "C", NULL },
		{ "--reference", "reference", A_STRING, "R", NULL },
		{ "--manual", "captureMethod", A_FLAG, NULL, "manual" },
		{ "--key", "key", A_STRING, "K", NULL },
		{ "--wait", "wait", A_NUMBER, "S", NULL },
		{ "--test-card", "testCard", A_STRING, "CARD", NULL },
		{ "--simulate-delay", "simulateDelay", A_NUMBER, "S", NULL },
		{ NULL } },
	    "Makes terminal T take a payment of N (minor units) in currency C for\n"
	    "order R, through the daemon, which holds VINR's API key, and waits for\n"
	    "its outcome: prints the payment once it is authorized, completed, failed\n"
	    "(a decline: exit 0, see declineCode) or cancelled.  --manual authorizes\n"
	    "only (capture it later).  --key K names the request (default: R): the\n"
	    "same key never creates a second payment, so repeating a pay after a\n"
	    "crash or a lost answer is safe.  --wait S: at most S seconds (default\n"
	    "150; 0 = print it as soon as VINR created it), then a timeout error\n"
	    "(exit 3) while the payment goes on.  --test-card and --simulate-delay\n"
	    "are for a sandbox (sk_test_) key only.  upstream_unknown (exit 1): VINR\n"
	    "may or may not have created it; never pay again under another key\n"
	    "before it is resolved." },
	{ "cancel", NULL, { "paymentId" }, { A_STRING }, { "ID" }, { { NULL } },
	    "Asks VINR to cancel payment ID (only possible while it is pending);\n"
	    "prints the payment.  VINR's refusal is upstream_error (exit 1)." },
	{ "capture", NULL, { "paymentId" }, { A_STRING }, { "ID" }, {
		{ "--amount", "amount", A_INT, "N", NULL },
		{ NULL } },
	    "Captures the authorized (manual-capture) payment ID, for N if given\n"
	    "(it may be higher than the authorized amount: a tip); prints it." },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
synopsis(FILE *f, const struct command *c)
{
	fprintf(f, "vinrctl [-s SOCKET] %s", c->name);
	for (int i = 0; i < 2 && c->pos[i] != NULL; i++)
		fprintf(f, " %s", c->posmeta[i]);
	for (int i = 0; c->opts[i].flag != NULL; i++) {
		const struct option_def *o = &c->opts[i];

		/* pay's first four are not optional. */
		if (strcmp(c->name, "pay") == 0 && i < 4)
			fprintf(f, " %s %s", o->flag, o->meta);
		else if (o->type == A_FLAG)
			fprintf(f, " [%s]", o->flag);
		else
			fprintf(f, " [%s %s]", o->flag, o->meta);
	}
	fputc('\n', f);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: vinrctl [-s SOCKET] COMMAND [ARGS...]\n"
	    "       vinrctl help [COMMAND]\n\n"
	    "Talks to vinr-webhookd's control socket: -s SOCKET, else\n"
	    "$VINR_CONTROL_SOCKET, else " DEFAULT_SOCKET ".\n"
	    "Prints the daemon's JSON response on stdout.  Exit status: 0 ok, 1 an\n"
	    "error response, 2 usage or connection problem, 3 timeout.\n\n"
	    "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		fputs("  ", f);
		synopsis(f, &commands[i]);
	}
	fprintf(f, "\n`vinrctl help COMMAND` or `vinrctl COMMAND --help` tells more.\n");
}

static void
command_help(FILE *f, const struct command *c)
{
	fputs("usage: ", f);
	synopsis(f, c);
	fprintf(f, "\n%s\n", c->help);
}

static const struct command *
lookup(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Adds key = text as the type says; false when text does not fit it. */
static bool
add_arg(cJSON *req, const char *key, enum argtype type, const char *text)
{
	char *end;

	errno = 0;
	switch (type) {
	case A_STRING:
		return cJSON_AddStringToObject(req, key, text) != NULL;
	case A_INT: {
		long long v = strtoll(text, &end, 10);

		/* Sent as the literal (jsonnum_add): exact past 2^53. */
		if (errno != 0 || end == text || *end != '\0' || v < 0)
			return false;
		return jsonnum_add(req, key, v) != NULL;
	}
	case A_NUMBER: {
		double v = strtod(text, &end);

		if (errno != 0 || end == text || *end != '\0' || !(v >= 0))
			return false;
		return cJSON_AddNumberToObject(req, key, v) != NULL;
	}
	case A_FLAG:
		return cJSON_AddStringToObject(req, key, text) != NULL;
	}
	return false;
}

static const char *
type_name(enum argtype t)
{
	return t == A_STRING ? "a string" : t == A_INT ? "a whole number >= 0" :
	    "a number >= 0";
}

/*
 * Builds the request from the command's arguments.  Returns NULL after
 * printing why (exit 2), or with *help set when --help was asked.
 */
static cJSON *
build_request(const struct command *c, int argc, char **argv, bool *help)
{
	cJSON *req = cJSON_CreateObject();
	int npos = 0, want = 0;
	bool opts_done = false;

	*help = false;
	while (want < 2 && c->pos[want] != NULL)
		want++;
	cJSON_AddStringToObject(req, "cmd", c->cmd != NULL ? c->cmd : c->name);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val, *eq;
		const struct option_def *o = NULL;
		size_t flen;

		if (!opts_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			*help = true;
			cJSON_Delete(req);
			return NULL;
		}
		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (npos == want) {
				fprintf(stderr, "vinrctl: %s: unexpected argument \"%s\"\n",
				    c->name, a);
				goto usage;
			}
			if (!add_arg(req, c->pos[npos], c->postype[npos], a)) {
				fprintf(stderr, "vinrctl: %s: %s must be %s\n", c->name,
				    c->posmeta[npos], type_name(c->postype[npos]));
				goto usage;
			}
			npos++;
			continue;
		}
		eq = strchr(a, '=');
		flen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		for (int k = 0; c->opts[k].flag != NULL; k++)
			if (strlen(c->opts[k].flag) == flen &&
			    strncmp(c->opts[k].flag, a, flen) == 0)
				o = &c->opts[k];
		if (o == NULL) {
			fprintf(stderr, "vinrctl: %s: unknown option %.*s\n", c->name,
			    (int)flen, a);
			goto usage;
		}
		if (o->type == A_FLAG) {
			if (eq != NULL) {
				fprintf(stderr, "vinrctl: %s: %s takes no value\n", c->name,
				    o->flag);
				goto usage;
			}
			val = o->fixed;
		} else if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			fprintf(stderr, "vinrctl: %s: %s needs a value\n", c->name, o->flag);
			goto usage;
		}
		if (cJSON_GetObjectItemCaseSensitive(req, o->key) != NULL) {
			fprintf(stderr, "vinrctl: %s: %s given twice\n", c->name, o->flag);
			goto usage;
		}
		if (!add_arg(req, o->key, o->type, val)) {
			fprintf(stderr, "vinrctl: %s: %s must be %s\n", c->name, o->flag,
			    type_name(o->type));
			goto usage;
		}
	}
	if (npos < want) {
		fprintf(stderr, "vinrctl: %s: %s is missing\n", c->name, c->posmeta[npos]);
		goto usage;
	}
	for (int k = 0; strcmp(c->name, "pay") == 0 && k < 4; k++)
		if (cJSON_GetObjectItemCaseSensitive(req, c->opts[k].key) == NULL) {
			fprintf(stderr, "vinrctl: pay: %s is required\n", c->opts[k].flag);
			goto usage;
		}
	return req;
usage:
	fputs("usage: ", stderr);
	synopsis(stderr, c);
	cJSON_Delete(req);
	return NULL;
}

/* hint: say how to name another socket when this one is missing. */
static int
connect_socket(const char *path, bool hint)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "vinrctl: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "vinrctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (hint && (errno == ENOENT || errno == ECONNREFUSED))
			fprintf(stderr, "vinrctl: is the daemon running?  If its [control] "
			    "socket is elsewhere, say where\n"
			    "  with -s SOCKET or VINR_CONTROL_SOCKET\n");
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One line from f, without its '\n'.  NULL at EOF or error (errno set). */
static char *
read_line(FILE *f, char **buf, size_t *cap)
{
	ssize_t n;

	errno = 0;
	if ((n = getline(buf, cap, f)) <= 0)
		return NULL;
	if ((*buf)[n - 1] == '\n')
		(*buf)[n - 1] = '\0';
	return *buf;
}

static void
lost(const char *path)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		fprintf(stderr, "vinrctl: no answer from %s\n", path);
	else if (errno != 0)
		fprintf(stderr, "vinrctl: reading from %s: %s\n", path, strerror(errno));
	else
		fprintf(stderr, "vinrctl: %s closed the connection\n", path);
}

/* The exit status a response line means. */
static int
status_of(const char *line)
{
	cJSON *r = cJSON_Parse(line);
	const cJSON *ok, *err;
	int rc;

	if (!cJSON_IsObject(r)) {
		cJSON_Delete(r);
		fprintf(stderr, "vinrctl: the daemon's answer is not JSON\n");
		return EXIT_USAGE;
	}
	ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
	err = cJSON_GetObjectItemCaseSensitive(r, "error");
	if (cJSON_IsTrue(ok))
		rc = EXIT_OK;
	else if (cJSON_IsString(err) && strcmp(err->valuestring, "timeout") == 0)
		rc = EXIT_TIMEOUT;
	else
		rc = EXIT_ERROR;
	cJSON_Delete(r);
	return rc;
}

static bool
is_response(const char *line)
{
	cJSON *r = cJSON_Parse(line);
	bool yes = cJSON_GetObjectItemCaseSensitive(r, "ok") != NULL;

	cJSON_Delete(r);
	return yes;
}

/* tail: the subscription's first line is its answer, then outcome lines. */
static int
tail(FILE *f, const char *path)
{
	char *buf = NULL;
	size_t cap = 0;
	int rc;

	if (read_line(f, &buf, &cap) == NULL) {
		lost(path);
		free(buf);
		return EXIT_USAGE;
	}
	if ((rc = status_of(buf)) != EXIT_OK) {
		printf("%s\n", buf);
		free(buf);
		return rc;
	}
	while (read_line(f, &buf, &cap) != NULL) {
		/* An outcome has a seq; a response has ok (lagging). */
		if (is_response(buf)) {
			fprintf(stderr, "vinrctl: %s\n", buf);
			free(buf);
			return EXIT_ERROR;
		}
		printf("%s\n", buf);
		if (fflush(stdout) == EOF) {
			free(buf);
			return EXIT_ERROR;
		}
	}
	lost(path);
	free(buf);
	return EXIT_USAGE;
}

/*
 * Sends the request line for c to the daemon at path and prints its answer
 * (or, for tail, the stream).  Frees line.  Returns the exit status.
 */
static int
exchange(const struct command *c, const char *path, char *line, struct timeval tv)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;
	int fd, rc;

	/* The packaged default that is not there: say how to name another. */
	if ((fd = connect_socket(path, strcmp(path, DEFAULT_SOCKET) == 0)) == -1) {
		free(line);
		return EXIT_USAGE;
	}
	if (strcmp(c->name, "tail") != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send_all(fd, line, strlen(line)) == -1 || send_all(fd, "\n", 1) == -1) {
		fprintf(stderr, "vinrctl: writing to %s: %s\n", path, strerror(errno));
		free(line);
		close(fd);
		return EXIT_USAGE;
	}
	free(line);
	if ((f = fdopen(fd, "r")) == NULL) {
		fprintf(stderr, "vinrctl: %s\n", strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	if (strcmp(c->name, "tail") == 0)
		rc = tail(f, path);
	else if (read_line(f, &buf, &cap) == NULL) {
		lost(path);
		rc = EXIT_USAGE;
	} else {
		printf("%s\n", buf);
		rc = status_of(buf);
	}
	free(buf);
	fclose(f);
	if (fflush(stdout) == EOF && rc == EXIT_OK)
		rc = EXIT_ERROR;
	return rc;
}

int
main(int argc, char *argv[])
{
	const struct command *c;
	const char *path = getenv("VINR_CONTROL_SOCKET");
	struct timeval tv = { .tv_sec = ANSWER_WAIT_S };
	const cJSON *t;
	char *line;
	bool help;
	cJSON *req;
	int i;

	if (path == NULL || *path == '\0')
		path = DEFAULT_SOCKET;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) {
			if (++i == argc) {
				fprintf(stderr, "vinrctl: -s needs a socket path\n");
				usage(stderr);
				return EXIT_USAGE;
			}
			path = argv[i];
		} else if (strncmp(argv[i], "-s", 2) == 0)
			path = argv[i] + 2;
		else if (strncmp(argv[i], "--socket=", 9) == 0)
			path = argv[i] + 9;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("vinrctl %s\n", VINR_VERSION);
			return EXIT_OK;
		} else {
			fprintf(stderr, "vinrctl: unknown option %s\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 == argc) {
			usage(stdout);
			return EXIT_OK;
		}
		if ((c = lookup(argv[i + 1])) == NULL) {
			fprintf(stderr, "vinrctl: no command \"%s\"\n", argv[i + 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
		command_help(stdout, c);
		return EXIT_OK;
	}
	if ((c = lookup(argv[i])) == NULL) {
		fprintf(stderr, "vinrctl: no command \"%s\"\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((req = build_request(c, argc - i - 1, argv + i + 1, &help)) == NULL) {
		if (!help)
			return EXIT_USAGE;
		command_help(stdout, c);
		return EXIT_OK;
	}
	if ((line = cJSON_PrintUnformatted(req)) == NULL) {
		fprintf(stderr, "vinrctl: out of memory\n");
		cJSON_Delete(req);
		return EXIT_USAGE;
	}
	/* A wait or a pay answers after its timeout: give the daemon that
	 * much more. */
	if (strcmp(c->name, "wait") == 0 || strcmp(c->name, "pay") == 0) {
		t = cJSON_GetObjectItemCaseSensitive(req, c->name[0] == 'w' ? "timeout" :
		    "wait");
		tv.tv_sec += cJSON_IsNumber(t) ? (time_t)t->valuedouble : WAIT_DEFAULT_S;
	}
	cJSON_Delete(req);
	return exchange(c, path, line, tv);
}
