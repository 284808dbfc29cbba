/*
 * daemon.h - the daemon's parts, between main.c (command line, signals,
 * stop) and daemon_start.c (starting every subsystem in order).  Only these
 * two files and config.c know struct config: each subsystem gets a small
 * params struct.
 */
#ifndef VINR_DAEMON_H
#define VINR_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "control.h"
#include "stats.h"

#define EXIT_RUNTIME	1

struct cluster;
struct sig_key;

struct daemon {
	struct config		 cfg;
	const char		*file;		/* the configuration file */
	bool			 check;		/* -t */
	struct sig_key		*keys;		/* until HTTP has its copy */
	size_t			 nkeys;
	char			*api_key;	/* until the reconciler and gateway have
						 * copies */
	char			*pg_password;	/* postgres: NULL = libpq's own */
	bool			 pg;		/* [storage] backend = postgres */
	struct cluster		*cluster;	/* postgres: the hook, the rounds */
	pthread_mutex_t		 swap;		/* src.swap with postgres */
	struct stats_source	 src;		/* every subsystem, for stats */
	struct store		*store;
	struct http		*http;
	struct control		*control;	/* NULL when [control] socket is unset */
	struct reconciler	*reconciler;	/* NULL when no API key is configured */
	struct gateway		*gateway;	/* NULL when no API key is configured */
	struct control_reconciler rc_glue;
};

/*
 * Starts every subsystem of d, in order: the store, the sinks, VINR's API,
 * with postgres the cluster (wake-ups, the election), control, HTTP.  Exits
 * 1 on a failure.
 */
void	daemon_start(struct daemon *d);

#endif
