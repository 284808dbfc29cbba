/*
 * config_int.h - between config.c (the file, its keys) and config_parse.c
 * (the parsers of single values).  Not for the rest of the daemon.
 *
 * Every parser takes a non-empty value and returns 0, or -1 with the reason
 * in why (never the value itself: an operator may have pasted a secret into
 * the wrong key).
 */
#ifndef VINR_CONFIG_INT_H
#define VINR_CONFIG_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define CONFIG_MAX_RPS		1000.0
#define CONFIG_INSTANCE_MAX	64

/* A decimal integer in [min, max]: digits only, checked for overflow. */
int	config_parse_integer(const char *v, long long min, long long max,
	    long long *out, char *why, size_t whylen);
/* host:port or [v6]:port into c's listen, listen_host and listen_port. */
int	config_parse_listen(struct config *c, const char *v, char *why,
	    size_t whylen);
/* An absolute URL path that is not one of the daemon's own. */
int	config_parse_http_path(const char *v, char *why, size_t whylen);
/* http(s)://host...: *out (the caller's) with the scheme in lower case and
 * one trailing '/' dropped. */
int	config_parse_url(const char *v, char **out, char *why, size_t whylen);
/* Octal, at most 0777. */
int	config_parse_mode(const char *v, mode_t *out, char *why, size_t whylen);
/* A positive decimal number, at most CONFIG_MAX_RPS. */
int	config_parse_rate(const char *v, double *out, char *why, size_t whylen);
/* sqlite | postgres. */
int	config_parse_backend(const char *v, enum storage_backend *out, char *why,
	    size_t whylen);
/* A libpq connection string (keywords or a URI) that libpq accepts and that
 * carries no password. */
int	config_parse_dsn(const char *v, char *why, size_t whylen);
/* An instance name: [A-Za-z0-9._-], 1 to CONFIG_INSTANCE_MAX characters. */
int	config_parse_instance(const char *v, char *why, size_t whylen);

#endif
