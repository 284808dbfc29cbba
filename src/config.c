/*
 * config.c - the INI configuration of SPEC.md §6 (the secrets: secrets.c).
 *
 * The file is parsed by libinih, but through ini_parse_stream() with our own
 * line reader rather than ini_parse().  The reader is what lets us be strict
 * and precise:
 *
 *  - it counts lines itself, so every error names the line it is on (inih's
 *    handler is not told the line number, and ini_parse() silently splits a
 *    line longer than its buffer into two, which shifts every later number);
 *  - it refuses an overlong line instead of letting inih cut it in two;
 *  - it checks section headers as they are read, so that "[foo]" is reported
 *    on its own line even when no key follows it;
 *  - it strips leading whitespace, which turns off inih's Python-style
 *    continuation lines: an indented "key = value" is an ordinary key, and an
 *    indented line without '=' is a syntax error instead of silently becoming
 *    a second value of the previous key;
 *  - it stops the parse at the first error (by returning NULL).
 *
 * The handler looks the key up in a table, refuses unknown and repeated keys,
 * and parses the value into a copy of the caller's struct.  The copy replaces
 * the caller's struct only when the whole file was good, so a failed load
 * leaves it exactly as it was.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_int.h"
#include "util.h"

#define MAX_BODY_LIMIT		(64 * 1024 * 1024)
#define TEN_YEARS		(10LL * 365 * 86400)
/* How much of a bad value an error message quotes. */
#define QUOTE_MAX		64

enum kind {
	K_STRING,	/* char *, empty = NULL */
	K_REQUIRED,	/* char *, must not be empty */
	K_LISTEN,	/* host:port or [v6]:port */
	K_HTTP_PATH,	/* absolute, not a reserved path */
	K_URL,		/* http:// or https://, one trailing '/' stripped */
	K_SIZE,		/* size_t in [min, max] */
	K_LONG,		/* long in [min, max] */
	K_INT,		/* int in [min, max] */
	K_SCHEME,	/* vinr | standard */
	K_SYNC,		/* full | normal */
	K_BOOL,		/* true | false | yes | no | on | off | 1 | 0 */
	K_EVENTS,	/* outcomes | all */
	K_MODE,		/* octal file mode, at most 0777 */
	K_RATE,		/* double, 0 < x <= CONFIG_MAX_RPS */
	K_BACKEND,	/* sqlite | postgres */
	K_DSN,		/* a libpq connection string without a password */
	K_INSTANCE	/* [A-Za-z0-9._-], at most 64 */
};

struct key {
	const char	*section;
	const char	*name;
	enum kind	 kind;
	size_t		 off;
	long long	 min;
	long long	 max;
};

#define OFF(f)	offsetof(struct config, f)

static const struct key keys[] = {
	{ "http",	"listen",	K_LISTEN,	OFF(listen),		0, 0 },
	{ "http",	"path",		K_HTTP_PATH,	OFF(http_path),		0, 0 },
	{ "http",	"max_body",	K_SIZE,		OFF(max_body),		1, MAX_BODY_LIMIT },
	{ "http",	"max_connections", K_INT,	OFF(max_connections),	1, 65536 },
	{ "http",	"per_ip_connections", K_INT,	OFF(per_ip_connections), 0, 65536 },
	{ "http",	"request_timeout", K_INT,	OFF(request_timeout),	1, 3600 },
	{ "webhook",	"scheme",	K_SCHEME,	OFF(scheme),		0, 0 },
	{ "webhook",	"secret_file",	K_STRING,	OFF(secret_file),	0, 0 },
	{ "webhook",	"public_key_file", K_STRING,	OFF(public_key_file),	0, 0 },
	{ "webhook",	"tolerance",	K_LONG,		OFF(tolerance),		1, 86400 },
	{ "storage",	"database",	K_REQUIRED,	OFF(database),		0, 0 },
	{ "storage",	"event_log",	K_STRING,	OFF(event_log),		0, 0 },
	{ "storage",	"synchronous",	K_SYNC,		OFF(synchronous),	0, 0 },
	{ "storage",	"retain_days",	K_INT,		OFF(retain_days),	0, 36500 },
	{ "storage",	"backend",	K_BACKEND,	OFF(backend),		0, 0 },
	{ "storage",	"dsn",		K_DSN,		OFF(dsn),		0, 0 },
	{ "storage",	"instance",	K_INSTANCE,	OFF(instance),		0, 0 },
	{ "storage",	"takeover",	K_INT,		OFF(takeover),		1, 3600 },
	{ "forward",	"hook",		K_STRING,	OFF(hook),		0, 0 },
	{ "forward",	"hook_timeout",	K_INT,		OFF(hook_timeout),	1, 86400 },
	{ "forward",	"socket",	K_STRING,	OFF(socket),		0, 0 },
	{ "forward",	"socket_ack",	K_BOOL,		OFF(socket_ack),	0, 0 },
	{ "forward",	"max_attempts",	K_INT,		OFF(max_attempts),	1, 1000 },
	{ "forward",	"events",	K_EVENTS,	OFF(events),		0, 0 },
	{ "control",	"socket",	K_STRING,	OFF(control_socket),	0, 0 },
	{ "control",	"mode",		K_MODE,		OFF(control_mode),	0, 0 },
	{ "control",	"idle_timeout",	K_INT,		OFF(control_idle_timeout), 1, 86400 },
	{ "api",	"base",		K_URL,		OFF(api_base),		0, 0 },
	{ "api",	"key_file",	K_STRING,	OFF(api_key_file),	0, 0 },
	{ "api",	"timeout",	K_INT,		OFF(api_timeout),	1, 600 },
	{ "api",	"unknown_after", K_INT,		OFF(unknown_after),	1, TEN_YEARS },
	{ "reconciler",	"interval",	K_INT,		OFF(interval),		1, TEN_YEARS },
	{ "reconciler",	"stale_after",	K_INT,		OFF(stale_after),	1, TEN_YEARS },
	{ "reconciler",	"max_backoff",	K_INT,		OFF(max_backoff),	1, TEN_YEARS },
	{ "reconciler",	"give_up_after", K_INT,		OFF(give_up_after),	1, TEN_YEARS },
	{ "reconciler",	"max_rps",	K_RATE,		OFF(max_rps),		0, 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* Deprecated names that still work (main warns once): old, then new. */
static const struct alias {
	const char	*section, *name;
	const char	*to_section, *to_name;
} aliases[] = {
	{ "reconciler", "api_base", "api", "base" },
	{ "reconciler", "api_key_file", "api", "key_file" },
};
#define NALIASES	(sizeof(aliases) / sizeof(aliases[0]))

static const char *const sections[] = {
	"http", "webhook", "storage", "forward", "control", "api", "reconciler"
};
#define NSECTIONS	(sizeof(sections) / sizeof(sections[0]))

/* Every string the struct owns, for copy and release. */
static const size_t string_fields[] = {
	OFF(file), OFF(listen), OFF(listen_host), OFF(http_path),
	OFF(secret_file), OFF(public_key_file), OFF(database), OFF(event_log), OFF(hook), OFF(socket),
	OFF(dsn), OFF(instance),
	OFF(control_socket), OFF(api_base), OFF(api_key_file)
};
#define NSTRINGS	(sizeof(string_fields) / sizeof(string_fields[0]))

/* A field of struct config by offset. */
#define FIELD(c, off, type)	((type *)(void *)((char *)(c) + (off)))

struct parse {
	struct config	*c;		/* the copy being filled */
	const char	*path;
	FILE		*fp;
	char		*line;		/* getline(3) buffer */
	size_t		 linecap;
	int		 lineno;
	int		 read_errno;	/* set when reading failed */
	int		 errline;	/* line of the first error, 0 = none */
	char		 msg[512];	/* that error, without "file:line: " */
	bool		 stop;		/* an error that ends the parse */
	char		 all[4096];	/* every error, "file:line: msg" lines */
	size_t		 alllen;
	int		 seen[NKEYS];	/* line that set each key, 0 = not yet */
	int		 alias_seen[NKEYS]; /* same, by its deprecated name */
};

static void	 defaults_scalars(struct config *);
static char	*xstrdup(const char *);
static int	 config_copy(struct config *, const struct config *);
static void	 quote(char *, size_t, const char *);
static void	 name_fmt(char *, size_t, const char *, size_t);
static void	 parse_error(struct parse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 section_known(const char *, size_t);
static const char *find_char_or_comment(const char *, const char *);
static char	*parse_reader(char *, int, void *);
static int	 parse_handler(void *, const char *, const char *, const char *);
static const struct key *key_find(const char *, const char *);
static int	 key_set(struct config *, const struct key *, const char *,
		    char *, size_t);
static int	 key_unset(struct config *, const struct key *, char *, size_t);
static int	 set_string(char **, const char *);
static void	 storage_finish(struct parse *);

/*
 * config_defaults() cannot report failure, and a NULL where a default belongs
 * would later read as "unset", so running out of memory this early aborts.
 */
static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL) {
		fputs("config: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* The defaults of every field that is not a string. */
static void
defaults_scalars(struct config *c)
{
	c->listen_port = 8787;
	c->max_body = 262144;
	c->max_connections = 1024;
	c->request_timeout = 10;
	c->control_idle_timeout = 60;
	c->scheme = SIG_SCHEME_VINR;
	c->tolerance = 300;
	c->synchronous = 2;
	c->retain_days = 90;
	c->backend = BACKEND_SQLITE;
	c->takeover = 10;
	c->hook_timeout = 30;
	c->socket_ack = false;
	c->max_attempts = 12;
	c->events = FORWARD_OUTCOMES;
	c->control_mode = 0660;
	c->api_timeout = 30;
	c->unknown_after = 300;
	c->interval = 10;
	c->stale_after = 120;
	c->max_backoff = 900;
	c->give_up_after = 86400;
	c->max_rps = 2.0;
}

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	defaults_scalars(c);
	c->listen = xstrdup("127.0.0.1:8787");
	c->listen_host = xstrdup("127.0.0.1");
	c->http_path = xstrdup("/webhooks/vinr");
	c->database = xstrdup("/var/lib/vinr-webhookd/vinr.db");
	c->event_log = xstrdup("/var/log/vinr-webhookd/events.log");
	c->control_socket = xstrdup("/run/vinr-webhookd/control.sock");
	c->api_base = xstrdup("https://api.vinr.com");
}

void
config_release(struct config *c)
{
	size_t	i;
	char	**p;

	if (c == NULL)
		return;
	for (i = 0; i < NSTRINGS; i++) {
		p = FIELD(c, string_fields[i], char *);
		free(*p);
		*p = NULL;
	}
}

/* A deep copy: dst owns its own strings.  Returns 0, or -1 out of memory. */
static int
config_copy(struct config *dst, const struct config *src)
{
	size_t	  i, j;
	char	**p;

	/* dst starts out sharing src's strings; each is replaced in turn. */
	memcpy(dst, src, sizeof(*dst));
	for (i = 0; i < NSTRINGS; i++) {
		p = FIELD(dst, string_fields[i], char *);
		if (*p != NULL && (*p = strdup(*p)) == NULL) {
			for (j = i + 1; j < NSTRINGS; j++)
				*FIELD(dst, string_fields[j], char *) = NULL;
			config_release(dst);
			return -1;
		}
	}
	return 0;
}

/*
 * Writes v into dst as a quoted string fit for a log line: at most QUOTE_MAX
 * characters of it, with quotes, backslashes and anything unprintable escaped.
 */
static void
quote(char *dst, size_t dstlen, const char *v)
{
	size_t	 n = 0, shown = 0;
	char	 tmp[8];

	if (dstlen < 8) {
		if (dstlen > 0)
			dst[0] = '\0';
		return;
	}
	dst[n++] = '"';
	for (; *v != '\0'; v++, shown++) {
		unsigned char ch = (unsigned char)*v;
		size_t len;

		if (shown == QUOTE_MAX)
			break;
		if (ch == '"' || ch == '\\')
			len = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			len = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		else
			len = (size_t)snprintf(tmp, sizeof(tmp), "%c", ch);
		/* Room for this, the closing quote, "..." and the NUL. */
		if (n + len + 5 > dstlen)
			break;
		memcpy(dst + n, tmp, len);
		n += len;
	}
	dst[n++] = '"';
	if (*v != '\0') {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

/*
 * A section or key name for a message: bare when it is a plain word, quoted
 * (and escaped) otherwise, so that "[ foo ]" or an empty name show as such.
 */
static void
name_fmt(char *dst, size_t dstlen, const char *name, size_t len)
{
	char	*tmp;

	if (len > 0 && len < dstlen && strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") >= len) {
		memcpy(dst, name, len);
		dst[len] = '\0';
		return;
	}
	if ((tmp = strndup(name, len)) == NULL) {
		snprintf(dst, dstlen, "?");
		return;
	}
	quote(dst, dstlen, tmp);
	free(tmp);
}

/*
 * Records an error at the current line.  The parse goes on (so that -t
 * reports every problem), but the file is refused at the end; an error of
 * the reader (a line it cannot make sense of) also stops it.
 */
static void
parse_error(struct parse *p, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->errline == 0) {
		p->errline = p->lineno;
		memcpy(p->msg, msg, sizeof(msg));
	}
	n = snprintf(p->all + p->alllen, sizeof(p->all) - p->alllen, "%s%s:%d: %s",
	    p->alllen > 0 ? "\n" : "", p->path, p->lineno, msg);
	if (n > 0 && p->alllen + (size_t)n < sizeof(p->all))
		p->alllen += (size_t)n;
}

static int
section_known(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < NSECTIONS; i++)
		if (strlen(sections[i]) == len &&
		    memcmp(sections[i], name, len) == 0)
			return 1;
	return 0;
}

/*
 * The first of chars in s, or where an inline comment (" ;") starts, or the
 * end of s: inih's find_chars_or_comment().
 */
static const char *
find_char_or_comment(const char *s, const char *chars)
{
	int	was_space = 0;

	for (; *s != '\0' && strchr(chars, *s) == NULL &&
	    !(was_space && *s == ';'); s++)
		was_space = isspace((unsigned char)*s);
	return s;
}

/* What parse_reader() hands inih for a refused line: a comment. */
static char *
skip_line(char *str)
{
	memcpy(str, ";\n", 3);
	return str;
}

/*
 * The ini_reader: one line per call, so that inih's line count and ours
 * agree.  See the comment at the top of the file.
 */
static char *
parse_reader(char *str, int num, void *stream)
{
	struct parse	*p = stream;
	ssize_t		 n;
	size_t		 len;
	const char	*s, *name, *end;
	char		 q[QUOTE_MAX * 4 + 8];

	if (p->stop || num < 2)
		return NULL;
	errno = 0;
	if ((n = getline(&p->line, &p->linecap, p->fp)) == -1) {
		if (ferror(p->fp))
			p->read_errno = errno != 0 ? errno : EIO;
		return NULL;
	}
	p->lineno++;
	/*
	 * A line we refuse is reported and handed to inih as a comment, so
	 * that the lines after it are still read and every problem of the
	 * file is reported at once (SPEC §6), with line numbers in step.
	 */
	if (memchr(p->line, '\0', (size_t)n) != NULL) {
		parse_error(p, "line contains a NUL byte");
		return skip_line(str);
	}
	s = p->line;
	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	if (len > (size_t)num - 1) {
		parse_error(p, "line too long (the limit is %d characters)",
		    num - 2);
		return skip_line(str);
	}

	/*
	 * The same scans inih does, so that we agree on what the line is.
	 * A section header is checked here, where its line is known.  A key
	 * line must use '=': inih would also take "name: value", which the
	 * SPEC's syntax does not have.
	 */
	name = s;
	if (p->lineno == 1 && strncmp(name, "\xef\xbb\xbf", 3) == 0) {
		name += 3;
		while (isspace((unsigned char)*name))
			name++;
	}
	if (*name == '\0' || *name == ';' || *name == '#')
		;	/* blank or comment */
	else if (*name == '[') {
		name++;
		end = find_char_or_comment(name, "]");
		if (*end != ']') {
			parse_error(p, "syntax error: a [section] without its ]");
			return skip_line(str);
		}
		/* Passed on: its keys are then skipped quietly (parse_handler). */
		if (!section_known(name, (size_t)(end - name))) {
			name_fmt(q, sizeof(q), name, (size_t)(end - name));
			parse_error(p, "unknown section [%s]", q);
		}
	} else if (*find_char_or_comment(name, "=:") != '=') {
		parse_error(p, "syntax error: expected [section] or key = value");
		return skip_line(str);
	}
	memcpy(str, s, len + 1);
	return str;
}

static const struct alias *
alias_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NALIASES; i++)
		if (strcmp(aliases[i].section, section) == 0 &&
		    strcmp(aliases[i].name, name) == 0)
			return &aliases[i];
	return NULL;
}

/*
 * Records that k was set on this line, by its deprecated name when a is
 * not NULL.  A key set twice, under either name, is an error: false.
 */
static bool
key_seen(struct parse *p, const struct key *k, const struct alias *a)
{
	size_t i = (size_t)(k - keys);
	int *mine = a != NULL ? &p->alias_seen[i] : &p->seen[i];
	int other = a != NULL ? p->seen[i] : p->alias_seen[i];
	const char *sec = a != NULL ? a->section : k->section;
	const char *name = a != NULL ? a->name : k->name;
	const struct alias *b = NULL;

	/* The other name: k's own, or its deprecated one. */
	for (size_t j = 0; a == NULL && j < NALIASES; j++)
		if (strcmp(aliases[j].to_section, k->section) == 0 &&
		    strcmp(aliases[j].to_name, k->name) == 0)
			b = &aliases[j];

	if (*mine != 0) {
		parse_error(p, "[%s] %s: repeated key (first set on line %d)", sec, name,
		    *mine);
		return false;
	}
	if (other != 0) {
		parse_error(p, "[%s] %s: already set as [%s] %s on line %d", sec, name,
		    a != NULL ? k->section : b->section, a != NULL ? k->name : b->name,
		    other);
		return false;
	}
	*mine = p->lineno;
	if (a != NULL)
		p->c->api_deprecated = true;
	return true;
}

static const struct key *
key_find(const char *section, const char *name)
{
	size_t	i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static int
parse_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct parse		*p = user;
	const struct key	*k;
	const struct alias	*a;
	char			 q[QUOTE_MAX * 4 + 8], why[256];
	int			 r;

	/* A "new section" call, when inih is built to make them. */
	if (name == NULL)
		return 1;
	if (value == NULL) {
		name_fmt(q, sizeof(q), name, strlen(name));
		parse_error(p, "%s: expected key = value", q);
		return 0;
	}
	if (*section == '\0') {
		name_fmt(q, sizeof(q), name, strlen(name));
		parse_error(p, "%s: key outside any [section]", q);
		return 0;
	}
	/* A deprecated name sets the new key; errors say the name used. */
	a = alias_find(section, name);
	if ((k = a != NULL ? key_find(a->to_section, a->to_name) :
	    key_find(section, name)) == NULL) {
		/* An unknown section was reported at its header already. */
		if (!section_known(section, strlen(section)))
			return 1;
		name_fmt(q, sizeof(q), name, strlen(name));
		parse_error(p, "[%s] %s: unknown key", section, q);
		return 1;
	}
	if (!key_seen(p, k, a))
		return 1;	/* said; parsing goes on to find every problem */

	why[0] = '\0';
	if (*value == '\0')
		r = key_unset(p->c, k, why, sizeof(why));
	else
		r = key_set(p->c, k, value, why, sizeof(why));
	/* Never the value: an operator may have pasted a secret here.  The
	 * section and key are named as written (a deprecated alias too). */
	if (r == -1)
		parse_error(p, "[%s] %s: %s", section, name, why);
	return 1;
}

static int
set_string(char **dst, const char *v)
{
	char	*s = NULL;

	if (v != NULL && (s = strdup(v)) == NULL)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* An empty value: strings become NULL, the rest get their default back. */
static int
key_unset(struct config *c, const struct key *k, char *why, size_t whylen)
{
	struct config	d;

	switch (k->kind) {
	case K_STRING:
	case K_DSN:
	case K_INSTANCE:
		set_string(FIELD(c, k->off, char *), NULL);
		return 0;
	case K_REQUIRED:
	case K_LISTEN:
	case K_HTTP_PATH:
	case K_URL:
		util_seterr(why, whylen, "must not be empty");
		return -1;
	default:
		break;
	}

	memset(&d, 0, sizeof(d));
	defaults_scalars(&d);
	switch (k->kind) {
	case K_SIZE:
		*FIELD(c, k->off, size_t) = *FIELD(&d, k->off, size_t);
		break;
	case K_LONG:
		*FIELD(c, k->off, long) = *FIELD(&d, k->off, long);
		break;
	case K_INT:
	case K_SYNC:
		*FIELD(c, k->off, int) = *FIELD(&d, k->off, int);
		break;
	case K_SCHEME:
		*FIELD(c, k->off, enum sig_scheme) =
		    *FIELD(&d, k->off, enum sig_scheme);
		break;
	case K_EVENTS:
		*FIELD(c, k->off, enum forward_events) =
		    *FIELD(&d, k->off, enum forward_events);
		break;
	case K_BOOL:
		*FIELD(c, k->off, bool) = *FIELD(&d, k->off, bool);
		break;
	case K_MODE:
		*FIELD(c, k->off, mode_t) = *FIELD(&d, k->off, mode_t);
		break;
	case K_RATE:
		*FIELD(c, k->off, double) = *FIELD(&d, k->off, double);
		break;
	case K_BACKEND:
		*FIELD(c, k->off, enum storage_backend) =
		    *FIELD(&d, k->off, enum storage_backend);
		break;
	default:
		break;
	}
	return 0;
}

/* The kinds of [storage] for postgres (SPEC §8). */
static int
key_set_storage(struct config *c, const struct key *k, const char *v, char *why,
    size_t whylen)
{
	if (k->kind == K_BACKEND)
		return config_parse_backend(v, FIELD(c, k->off, enum storage_backend),
		    why, whylen);
	if ((k->kind == K_DSN ? config_parse_dsn(v, why, whylen) :
	    config_parse_instance(v, why, whylen)) == -1)
		return -1;
	if (set_string(FIELD(c, k->off, char *), v) == -1) {
		util_seterr(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* A non-empty value.  Returns 0, or -1 with the reason in why. */
static int
key_set(struct config *c, const struct key *k, const char *v, char *why,
    size_t whylen)
{
	long long	 n;
	char		*url;

	switch (k->kind) {
	case K_STRING:
	case K_REQUIRED:
		if (set_string(FIELD(c, k->off, char *), v) == -1)
			goto oom;
		return 0;
	case K_LISTEN:
		return config_parse_listen(c, v, why, whylen);
	case K_HTTP_PATH:
		if (config_parse_http_path(v, why, whylen) == -1)
			return -1;
		if (set_string(FIELD(c, k->off, char *), v) == -1)
			goto oom;
		return 0;
	case K_URL:
		if (config_parse_url(v, &url, why, whylen) == -1)
			return -1;
		free(*FIELD(c, k->off, char *));
		*FIELD(c, k->off, char *) = url;
		return 0;
	case K_SIZE:
		if (config_parse_integer(v, k->min, k->max, &n, why, whylen) == -1)
			return -1;
		*FIELD(c, k->off, size_t) = (size_t)n;
		return 0;
	case K_LONG:
		if (config_parse_integer(v, k->min, k->max, &n, why, whylen) == -1)
			return -1;
		*FIELD(c, k->off, long) = (long)n;
		return 0;
	case K_INT:
		if (config_parse_integer(v, k->min, k->max, &n, why, whylen) == -1)
			return -1;
		*FIELD(c, k->off, int) = (int)n;
		return 0;
	case K_SCHEME:
		if (strcasecmp(v, "vinr") == 0)
			*FIELD(c, k->off, enum sig_scheme) = SIG_SCHEME_VINR;
		else if (strcasecmp(v, "standard") == 0)
			*FIELD(c, k->off, enum sig_scheme) = SIG_SCHEME_STANDARD;
		else {
			util_seterr(why, whylen, "not vinr or standard");
			return -1;
		}
		return 0;
	case K_SYNC:
		if (strcasecmp(v, "full") == 0)
			*FIELD(c, k->off, int) = 2;
		else if (strcasecmp(v, "normal") == 0)
			*FIELD(c, k->off, int) = 1;
		else {
			util_seterr(why, whylen, "not full or normal");
			return -1;
		}
		return 0;
	case K_BOOL:
		if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
		    strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
			*FIELD(c, k->off, bool) = true;
		else if (strcasecmp(v, "false") == 0 ||
		    strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0 ||
		    strcmp(v, "0") == 0)
			*FIELD(c, k->off, bool) = false;
		else {
			util_seterr(why, whylen, "not a boolean "
			    "(true, false, yes, no, on, off, 1, 0)");
			return -1;
		}
		return 0;
	case K_EVENTS:
		if (strcasecmp(v, "outcomes") == 0)
			*FIELD(c, k->off, enum forward_events) =
			    FORWARD_OUTCOMES;
		else if (strcasecmp(v, "all") == 0)
			*FIELD(c, k->off, enum forward_events) = FORWARD_ALL;
		else {
			util_seterr(why, whylen, "not outcomes or all");
			return -1;
		}
		return 0;
	case K_MODE:
		return config_parse_mode(v, FIELD(c, k->off, mode_t), why, whylen);
	case K_RATE:
		return config_parse_rate(v, FIELD(c, k->off, double), why, whylen);
	case K_BACKEND:
	case K_DSN:
	case K_INSTANCE:
		return key_set_storage(c, k, v, why, whylen);
	}
	util_seterr(why, whylen, "internal error: unknown kind");
	return -1;
oom:
	util_seterr(why, whylen, "out of memory");
	return -1;
}

/*
 * What [storage] needs as a whole, once the file is read: postgres needs a
 * dsn, and an instance name (the host name when unset).  Errors name the
 * backend's line.
 */
static void
storage_finish(struct parse *p)
{
	struct config *c = p->c;
	char host[256], why[256];
	int line = p->seen[key_find("storage", "backend") - keys];

	if (c->backend != BACKEND_POSTGRES)
		return;
	p->lineno = line;
	if (c->dsn == NULL)
		parse_error(p, "[storage] backend: postgres needs [storage] dsn");
	if (c->instance != NULL)
		return;
	if (gethostname(host, sizeof(host)) == -1 || (host[sizeof(host) - 1] = '\0',
	    config_parse_instance(host, why, sizeof(why)) == -1) || host[0] == '\0')
		parse_error(p, "[storage] instance: unset, and the host name cannot "
		    "be used as one (it %s): set it", host[0] == '\0' ? "is empty" : why);
	else if (set_string(&c->instance, host) == -1)
		parse_error(p, "[storage] instance: out of memory");
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct parse	 p;
	struct config	 n;
	size_t		 i;
	int		 ret, rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&p, 0, sizeof(p));
	p.path = path;
	if (config_copy(&n, c) == -1) {
		util_seterr(err, errlen, "%s: out of memory", path);
		return -1;
	}
	p.c = &n;
	if ((p.fp = fopen(path, "re")) == NULL) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}

	ret = ini_parse_stream(parse_reader, &p, parse_handler, &p);
	if (ret == 0 && p.read_errno == 0)
		storage_finish(&p);

	if (p.errline != 0 && (ret <= 0 || ret >= p.errline))
		util_seterr(err, errlen, "%s", p.all);
	else if (ret > 0)
		util_seterr(err, errlen, "%s:%d: syntax error: expected [section] "
		    "or key = value", path, ret);
	else if (ret == -2)
		util_seterr(err, errlen, "%s: out of memory", path);
	else if (ret < 0)
		util_seterr(err, errlen, "%s: cannot parse (inih error %d)", path,
		    ret);
	else if (p.read_errno != 0)
		util_seterr(err, errlen, "%s: %s", path, strerror(p.read_errno));
	else {
		if (set_string(&n.file, path) == -1) {
			util_seterr(err, errlen, "%s: out of memory", path);
			goto done;
		}
		/* For the secrets' errors, which come later (secrets.c). */
		n.secret_file_line = p.seen[key_find("webhook", "secret_file") - keys];
		n.public_key_file_line =
		    p.seen[key_find("webhook", "public_key_file") - keys];
		i = (size_t)(key_find("api", "key_file") - keys);
		n.api_key_file_line = p.seen[i] != 0 ? p.seen[i] : p.alias_seen[i];
		n.api_key_file_alias = p.alias_seen[i] != 0;
		n.hook_line = p.seen[key_find("forward", "hook") - keys];
		config_release(c);
		*c = n;
		memset(&n, 0, sizeof(n));
		rc = 0;
	}
done:
	if (p.fp != NULL)
		fclose(p.fp);
	free(p.line);
	config_release(&n);
	return rc;
}

/* Appends one problem line to err (kept NUL-terminated, cut if full). */
static void
problem(char *err, size_t errlen, int *n, const char *fmt, ...)
{
	size_t	len = strlen(err);
	va_list	ap;

	if (len + 2 < errlen) {
		if (len > 0)
			err[len++] = '\n';
		va_start(ap, fmt);
		vsnprintf(err + len, errlen - len, fmt, ap);
		va_end(ap);
	}
	(*n)++;
}

void
config_problem(char *err, size_t errlen, int *n, const char *key, const char *path,
    const char *msg)
{
	size_t pl = path != NULL ? strlen(path) : 0;

	if (pl > 0 && strncmp(msg, path, pl) == 0 && strncmp(msg + pl, ": ", 2) == 0)
		msg += pl + 2;
	if (key != NULL)
		problem(err, errlen, n, "%s: %s", key, msg);
	else
		problem(err, errlen, n, "%s", msg);
}

/* What is wrong with path for a file we create (its directory), or NULL. */
static const char *
parent_problem(const char *path)
{
	char *copy;
	struct stat st;
	bool ok;

	if ((copy = strdup(path)) == NULL)
		return "out of memory";
	ok = stat(dirname(copy), &st) == 0 && S_ISDIR(st.st_mode);
	free(copy);
	return ok ? NULL : "its directory does not exist";
}

/* What is wrong with path for a file we read (exec: run), or NULL. */
static const char *
file_problem(const char *path, bool exec)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return errno == ENOENT || errno == ENOTDIR ? "no such file" :
		    strerror(errno);
	if (S_ISDIR(st.st_mode))
		return "is a directory";
	if (exec && !S_ISREG(st.st_mode))
		return "not a regular file";
	if (access(path, exec ? X_OK : R_OK) == -1)
		return exec ? "not executable by this user" : "not readable by this user";
	return NULL;
}

int
config_check(const struct config *c, char *err, size_t errlen, unsigned *bad)
{
	const struct {
		const char	*sec, *key, *path;
		int		 how;		/* 0 created, 1 read, 2 run */
		unsigned	 bit;
		int		 line;		/* where it was set, 0 unknown */
	} files[] = {
		/* Unused with postgres: its default directory need not exist. */
		{ "storage", "database", c->backend == BACKEND_POSTGRES ? NULL :
		    c->database, 0, 0, 0 },
		{ "storage", "event_log", c->event_log, 0, 0, 0 },
		{ "control", "socket", c->control_socket, 0, 0, 0 },
		{ "webhook", "secret_file", c->secret_file, 1, CONFIG_BAD_SECRET_FILE,
		    c->secret_file_line },
		/* Under scheme vinr, secrets_webhook_keys() says it is misplaced. */
		{ "webhook", "public_key_file", c->scheme == SIG_SCHEME_STANDARD ?
		    c->public_key_file : NULL, 1, CONFIG_BAD_PUBLIC_KEY_FILE,
		    c->public_key_file_line },
		/* Named as written: a deprecated alias too. */
		{ c->api_key_file_alias ? "reconciler" : "api", c->api_key_file_alias ?
		    "api_key_file" : "key_file", c->api_key_file, 1,
		    CONFIG_BAD_API_KEY_FILE, c->api_key_file_line },
		{ "forward", "hook", c->hook, 2, 0, c->hook_line },
	};
	const char *why;
	int n = 0;

	*bad = 0;
	if (errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path == NULL)
			continue;
		why = files[i].how == 0 ? parent_problem(files[i].path) :
		    file_problem(files[i].path, files[i].how == 2);
		if (why == NULL)
			continue;
		if (files[i].line > 0 && c->file != NULL)
			problem(err, errlen, &n, "%s:%d: [%s] %s: %s", c->file,
			    files[i].line, files[i].sec, files[i].key, why);
		else
			problem(err, errlen, &n, "[%s] %s: %s", files[i].sec,
			    files[i].key, why);
		*bad |= files[i].bit;
	}
	return n;
}
