/*
 * config_parse.c - the parsers of single configuration values (see
 * config_int.h); config.c reads the file and knows which key takes which.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "config_int.h"
#include "util.h"

/*
 * A decimal integer in [min, max]: digits only (no sign, no spaces, no
 * trailing junk), checked for overflow.
 */
int
config_parse_integer(const char *v, long long min, long long max, long long *out,
    char *why, size_t whylen)
{
	long long	 n;
	char		*end;

	if (!isdigit((unsigned char)*v)) {
		util_seterr(why, whylen, min >= 1 ? "not a positive integer" :
		    "not a non-negative integer");
		return -1;
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	if (*end != '\0') {
		util_seterr(why, whylen, min >= 1 ? "not a positive integer" :
		    "not a non-negative integer");
		return -1;
	}
	if (errno == ERANGE || n < min || n > max) {
		util_seterr(why, whylen, "out of range (%lld to %lld)", min, max);
		return -1;
	}
	*out = n;
	return 0;
}

/* host:port or [v6]:port, port 1..65535. */
int
config_parse_listen(struct config *c, const char *v, char *why, size_t whylen)
{
	const char	*colon, *portstr;
	char		*host = NULL, *listen = NULL, *pct;
	char		 addr[INET6_ADDRSTRLEN + 64];
	unsigned char	 buf[sizeof(struct in6_addr)];
	long long	 port;
	size_t		 hostlen;

	if (*v == '[') {
		const char *close = strchr(v, ']');

		if (close == NULL) {
			util_seterr(why, whylen, "missing ']' after an IPv6 address");
			return -1;
		}
		if (close[1] != ':') {
			util_seterr(why, whylen, "expected [address]:port");
			return -1;
		}
		hostlen = (size_t)(close - v - 1);
		if (hostlen == 0 || hostlen >= sizeof(addr)) {
			util_seterr(why, whylen, "not an IPv6 address in brackets");
			return -1;
		}
		memcpy(addr, v + 1, hostlen);
		addr[hostlen] = '\0';
		/* A zone ("%eth0") is allowed after the address. */
		if ((pct = strchr(addr, '%')) != NULL) {
			if (pct[1] == '\0') {
				util_seterr(why, whylen, "empty IPv6 zone");
				return -1;
			}
			*pct = '\0';
		}
		if (inet_pton(AF_INET6, addr, buf) != 1) {
			util_seterr(why, whylen, "not an IPv6 address in brackets");
			return -1;
		}
		portstr = close + 2;
		host = strndup(v + 1, hostlen);
	} else {
		if ((colon = strrchr(v, ':')) == NULL) {
			util_seterr(why, whylen, "expected host:port or [v6]:port");
			return -1;
		}
		hostlen = (size_t)(colon - v);
		if (hostlen == 0) {
			util_seterr(why, whylen, "empty host "
			    "(use 0.0.0.0 or [::] for every address)");
			return -1;
		}
		if (memchr(v, ':', hostlen) != NULL) {
			util_seterr(why, whylen, "an IPv6 address must be written "
			    "in brackets: [v6]:port");
			return -1;
		}
		if (strcspn(v, " \t[]") < hostlen) {
			util_seterr(why, whylen, "not a host name or address");
			return -1;
		}
		portstr = colon + 1;
		host = strndup(v, hostlen);
	}
	if (host == NULL)
		goto oom;
	if (!isdigit((unsigned char)*portstr) ||
	    strspn(portstr, "0123456789") != strlen(portstr)) {
		util_seterr(why, whylen, "port is not a number");
		free(host);
		return -1;
	}
	errno = 0;
	port = strtoll(portstr, NULL, 10);
	if (errno == ERANGE || port < 1 || port > 65535) {
		util_seterr(why, whylen, "port out of range (1 to 65535)");
		free(host);
		return -1;
	}
	if ((listen = strdup(v)) == NULL) {
		free(host);
		goto oom;
	}
	free(c->listen);
	free(c->listen_host);
	c->listen = listen;
	c->listen_host = host;
	c->listen_port = (unsigned short)port;
	return 0;
oom:
	util_seterr(why, whylen, "out of memory");
	return -1;
}

/*
 * The URL path that webhooks are posted to: absolute, something a request
 * line can carry, and not one of the daemon's own endpoints.
 */
int
config_parse_http_path(const char *v, char *why, size_t whylen)
{
	const unsigned char	*s;

	if (*v != '/') {
		util_seterr(why, whylen, "must start with '/'");
		return -1;
	}
	for (s = (const unsigned char *)v; *s != '\0'; s++) {
		if (*s <= 0x20 || *s >= 0x7f || *s == '?' || *s == '#') {
			util_seterr(why, whylen, "must not contain spaces, control "
			    "characters, '?' or '#'");
			return -1;
		}
	}
	if (strcmp(v, "/healthz") == 0 || strcmp(v, "/metrics") == 0) {
		util_seterr(why, whylen, "is reserved for the daemon itself");
		return -1;
	}
	return 0;
}

/*
 * http:// or https:// and a host; the scheme is stored in lower case, and one
 * trailing '/' is dropped so that "{api_base}/v1/..." has no double slash.
 */
int
config_parse_url(const char *v, char **out, char *why, size_t whylen)
{
	const unsigned char	*s;
	size_t			 skip, len;
	char			*url;

	if (strncasecmp(v, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(v, "http://", 7) == 0)
		skip = 7;
	else {
		util_seterr(why, whylen, "must start with http:// or https://");
		return -1;
	}
	if (v[skip] == '\0' || v[skip] == '/') {
		util_seterr(why, whylen, "no host after the scheme");
		return -1;
	}
	for (s = (const unsigned char *)v; *s != '\0'; s++) {
		if (*s <= 0x20 || *s >= 0x7f) {
			util_seterr(why, whylen, "must not contain spaces or "
			    "control characters");
			return -1;
		}
	}
	if ((url = strdup(v)) == NULL) {
		util_seterr(why, whylen, "out of memory");
		return -1;
	}
	for (len = 0; len < skip; len++)
		url[len] = (char)tolower((unsigned char)url[len]);
	len = strlen(url);
	if (len > skip && url[len - 1] == '/')
		url[len - 1] = '\0';
	*out = url;
	return 0;
}

/* Octal, like 0660 or 660, at most 0777. */
int
config_parse_mode(const char *v, mode_t *out, char *why, size_t whylen)
{
	unsigned long	m = 0;
	const char	*s;

	if (*v == '\0' || strspn(v, "01234567") != strlen(v)) {
		util_seterr(why, whylen, "not an octal file mode (like 0660)");
		return -1;
	}
	for (s = v; *s != '\0'; s++) {
		m = m * 8 + (unsigned long)(*s - '0');
		if (m > 0777) {
			util_seterr(why, whylen, "out of range (at most 0777)");
			return -1;
		}
	}
	*out = (mode_t)m;
	return 0;
}

/* A plain positive decimal number (strtod), at most CONFIG_MAX_RPS. */
int
config_parse_rate(const char *v, double *out, char *why, size_t whylen)
{
	double	 d;
	char	*end;

	/* No sign, no spaces, no hex, no "inf" or "nan". */
	if ((!isdigit((unsigned char)*v) && *v != '.') ||
	    strspn(v, "0123456789.eE+-") != strlen(v)) {
		util_seterr(why, whylen, "not a positive number");
		return -1;
	}
	errno = 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0') {
		util_seterr(why, whylen, "not a positive number");
		return -1;
	}
	if (errno == ERANGE || !isfinite(d) || !(d > 0) ||
	    d > CONFIG_MAX_RPS) {
		util_seterr(why, whylen, "out of range (more than 0, at most %g)",
		    CONFIG_MAX_RPS);
		return -1;
	}
	*out = d;
	return 0;
}

int
config_parse_backend(const char *v, enum storage_backend *out, char *why,
    size_t whylen)
{
	if (strcasecmp(v, "sqlite") == 0)
		*out = BACKEND_SQLITE;
	else if (strcasecmp(v, "postgres") == 0)
		*out = BACKEND_POSTGRES;
	else {
		util_seterr(why, whylen, "not sqlite or postgres");
		return -1;
	}
	return 0;
}

/*
 * libpq parses it (a URI's user:pass@ lands in "password" too).  Its own
 * error text may quote the string, so it is not passed on.
 */
int
config_parse_dsn(const char *v, char *why, size_t whylen)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;
	bool password = false;

	if ((opts = PQconninfoParse(v, &perr)) == NULL) {
		if (perr == NULL)
			util_seterr(why, whylen, "out of memory");
		else
			util_seterr(why, whylen, "not a libpq connection string "
			    "(keyword=value pairs or a postgresql:// URI)");
		PQfreemem(perr);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			password = true;
	/* The parsed options hold the password too: wiped before freeing. */
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
	if (password) {
		util_seterr(why, whylen, "holds a password: give it as the pg-password "
		    "credential, env VINR_PG_PASSWORD or a PGPASSFILE, never in the file");
		return -1;
	}
	return 0;
}

int
config_parse_instance(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != len) {
		util_seterr(why, whylen, "may hold only letters, digits, '.', '_' "
		    "and '-'");
		return -1;
	}
	if (len > CONFIG_INSTANCE_MAX) {
		util_seterr(why, whylen, "longer than %d characters",
		    CONFIG_INSTANCE_MAX);
		return -1;
	}
	return 0;
}
