/*
 * control.h - the control socket for POS apps (SPEC §4).
 *
 * DESIGN: one thread runs a poll(2) loop over a Unix SOCK_STREAM socket and
 * every client connected to it.  Requests and responses are JSON lines.  The
 * loop never sleeps in the database: reads go through its own read
 * connection (store_read.h) and are short; writes (track, replay) are queued
 * to the store's writer with the *_async calls and answered when the writer
 * reports the commit.  wait and subscribe are woken by the writer's eventfd
 * after each commit with new outcomes, not by polling.
 *
 * Three files, each needing only the ones below it:
 *   control_cmd.c    the command table, subscribe, and this header's
 *                    control_start/_stop/_free/_alive/_clients: it wires
 *                    the other two and receives the loop's one upcall;
 *   control_block.c  the blocking state (busy, wait, the ops handed to the
 *                    writer and the reconciler) and control_reconcile_done;
 *   control.c        the transport: sockets, line framing, buffers, the
 *                    loop (control_int.h).
 */
#ifndef VINR_CONTROL_H
#define VINR_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "gateway.h"

struct control;
struct store;

/* The reconciler's side of "reconcile".  Called on the control thread. */
struct control_reconciler {
	/*
	 * Starts retrieving payment_id from VINR and applying it; must not
	 * block.  Returns 0, and then control_reconcile_done(req, ...) must be
	 * called exactly once, from any thread, before control_stop() returns
	 * (control_stop() waits for it); or -1 when it cannot take the request
	 * (answered "internal"; then never).
	 */
	int	(*reconcile)(void *arg, const char *payment_id, void *req);
	void	*arg;
};

struct control_params {
	const char	*path;		/* [control] socket */
	mode_t		 mode;		/* [control] mode */
	int		 idle_timeout;	/* [control] idle_timeout, s; 0: 60 */
	struct store	*store;
	/*
	 * The STATS object of SPEC §4 "stats" (a new cJSON object the caller
	 * of the callback deletes), or NULL on failure (answered "internal").
	 * Called on the control thread.  NULL stats: answered "internal".
	 */
	cJSON		*(*stats)(void *arg);
	void		*stats_arg;
	/* NULL: reconcile answers reconciler_disabled. */
	const struct control_reconciler *reconciler;
	/*
	 * pay, cancel and capture go to it (gateway_call(), answered through
	 * control_gateway_done()); NULL: they answer api_disabled.  Must
	 * outlive the control: control_stop() waits for its answers.
	 */
	struct gateway	*gateway;
	/*
	 * postgres: this instance's name (copied).  The per-instance sinks
	 * keep their cursors and dead letters as "eventlog@NAME" and
	 * "socket@NAME" (SPEC §8); dead and replay show and take the plain
	 * names, and other instances' dead letters are not listed.  NULL:
	 * names are used as they are (sqlite).
	 */
	const char	*instance;
};

/*
 * Creates the socket and starts the thread.  The socket's directory must
 * exist.  A socket file left by a crash is removed; one that a live process
 * still accepts on is an error, as is a path that is not a socket.  The
 * params are copied (the reconciler struct is not: it must outlive the
 * control).  Returns NULL with a message in err on failure.
 */
struct control	*control_start(const struct control_params *, char *err, size_t errlen);

/*
 * Stops the thread, drops every client, waits for the answers of the writes
 * and reconciles in flight (so the store and the reconciler must still run),
 * leaves the store's listeners and removes the socket file.  Never frees;
 * NULL ok; a second call does nothing.
 */
void		 control_stop(struct control *);
/* Frees everything, calling control_stop() first if needed.  NULL ok. */
void		 control_free(struct control *);

/* For the watchdog and /healthz: the loop turned in the last 15 s (it turns
 * at least every second).  Any thread. */
bool		 control_alive(struct control *);
/* The clients connected now, for /metrics.  Any thread. */
int		 control_clients(struct control *);

/*
 * The reconciler's answer to the request req.  error NULL: done, and changed
 * tells whether the payment changed; the client gets the payment as stored.
 * Else error is a SPEC §4 code ("not_found", "upstream_error",
 * "reconciler_disabled", "internal") and message a short text (NULL ok; no
 * secrets).  Any thread; never blocks for long.  The strings are copied.
 */
void		 control_reconcile_done(void *req, const char *error,
		    const char *message, bool changed);

/*
 * The gateway's answer to the request req (any thread; copied).  A pay then
 * waits for its payment's outcome, unless it asked for "wait":0.
 */
void		 control_gateway_done(void *req, const struct gateway_answer *);

#endif
