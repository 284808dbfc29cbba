/*
 * config.h - the INI configuration of SPEC.md §6 (the secrets: secrets.h).
 */
#ifndef VINR_CONFIG_H
#define VINR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "signature.h"

#define CONFIG_DEFAULT_PATH	"/etc/vinr-webhookd/vinr-webhookd.conf"

enum forward_events {
	FORWARD_OUTCOMES = 0,	/* authorized, completed, failed, cancelled only */
	FORWARD_ALL		/* every transition */
};

/*
 * Every string is owned by the struct (free with config_release); NULL means
 * unset (the INI file said "key =" or the key has no default).
 */
struct config {
	char			*file;		/* the file it was read from */

	/* [http] */
	char			*listen;	/* as written: host:port or [v6]:port */
	char			*listen_host;	/* parsed: "127.0.0.1", "::1" */
	unsigned short		 listen_port;
	char			*http_path;
	size_t			 max_body;

	/* [webhook] */
	enum sig_scheme		 scheme;
	char			*secret_file;	/* default unset: credentials, then env */
	long			 tolerance;

	/* [storage] */
	char			*database;
	char			*event_log;
	int			 synchronous;	/* 2 = FULL, 1 = NORMAL (SQLite's numbers) */
	int			 retain_days;

	/* [forward] */
	char			*hook;
	int			 hook_timeout;
	char			*socket;
	bool			 socket_ack;
	int			 max_attempts;
	enum forward_events	 events;

	/* [control] */
	char			*control_socket;
	mode_t			 control_mode;

	/* [api] ([reconciler] api_base and api_key_file: deprecated aliases) */
	char			*api_base;
	char			*api_key_file;	/* default unset: credentials, then env */
	int			 api_timeout;	/* seconds for one API call */
	int			 unknown_after;	/* seconds before an unknown create is not_created */
	bool			 api_deprecated; /* an alias was used: main warns once */

	/* [reconciler] */
	int			 interval;
	int			 stale_after;
	int			 max_backoff;
	int			 give_up_after;
	double			 max_rps;
};

/* Fills every field with its default (SPEC §6). */
void	config_defaults(struct config *);

/*
 * Reads path over the defaults already in c.  Strict: unknown section or key,
 * a repeated key, or a bad value fails.  Returns 0, or -1 with a message that
 * names file, line and key written to err (NUL-terminated, at most errlen).
 */
int	config_load(struct config *c, const char *path, char *err, size_t errlen);

/*
 * Checks that the directory of every file the daemon creates (database,
 * event log, control socket) exists.  Returns 0, or -1 with a message in err.
 */
int	config_check_dirs(const struct config *, char *err, size_t errlen);

/* Frees what the struct owns; the struct itself is the caller's.  NULL ok. */
void	config_release(struct config *);

#endif
