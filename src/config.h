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

enum storage_backend {
	BACKEND_SQLITE = 0,	/* [storage] database, one machine */
	BACKEND_POSTGRES	/* [storage] dsn, several instances (SPEC §8) */
};

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
	int			 max_connections;
	int			 per_ip_connections;	/* 0 = no limit */
	int			 request_timeout;	/* seconds, whole request */

	/* [webhook] */
	enum sig_scheme		 scheme;
	char			*secret_file;	/* default unset: credentials, then env */
	char			*public_key_file; /* default unset: credentials, then env */
	int			 secret_file_line;	/* where set, 0 = not in the file */
	int			 public_key_file_line;
	int			 api_key_file_line;	/* [api] key_file or its alias */
	bool			 api_key_file_alias;	/* set as [reconciler] api_key_file */
	int			 hook_line;
	long			 tolerance;

	/* [storage] */
	char			*database;
	char			*event_log;
	int			 synchronous;	/* 2 = FULL, 1 = NORMAL (SQLite's numbers) */
	int			 retain_days;
	enum storage_backend	 backend;
	char			*dsn;		/* postgres: required, never a password */
	/* postgres: config_load() fills in the host name when unset */
	char			*instance;
	int			 takeover;	/* seconds */

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
	int			 control_idle_timeout;	/* seconds */

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
 * Every file the configuration names, as a start needs it, without creating
 * or binding anything: the directories of the database, event log and
 * control socket; the secret and key files readable; the hook an executable
 * file.  Returns how many problems (0: none), each a line in err that names
 * its key and never its value; *bad gets the CONFIG_BAD_* bits of the files
 * that cannot be read (their contents are not checked then).
 */
#define CONFIG_BAD_SECRET_FILE	0x1
#define CONFIG_BAD_API_KEY_FILE	0x2
#define CONFIG_BAD_PUBLIC_KEY_FILE	0x4
int	config_check(const struct config *, char *err, size_t errlen, unsigned *bad);
/*
 * Appends "KEY: MSG" as one more problem line to err and counts it in *n;
 * a leading "PATH: " of msg is left out (the value of a key, which may be a
 * secret pasted there by mistake).  path may be NULL.
 */
void	config_problem(char *err, size_t errlen, int *n, const char *key,
	    const char *path, const char *msg);

/* Frees what the struct owns; the struct itself is the caller's.  NULL ok. */
void	config_release(struct config *);

#endif
