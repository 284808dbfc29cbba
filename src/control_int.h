/*
 * control_int.h - the control socket's transport (control.c), as the layers
 * above it see it: control_block.c (the blocking state) and control_cmd.c
 * (the commands).  Not for other modules.
 *
 * The transport knows sockets, lines and buffers, and no command.  It calls
 * up through exactly one function, the control_upcall_fn handed to
 * control_io_open(); everything else is called down.  The control_io_*
 * lifecycle belongs to the thread that starts and stops the socket; the
 * rest runs on the control thread only unless it says otherwise.
 */
#ifndef VINR_CONTROL_INT_H
#define VINR_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define MAX_LINE	65536		/* SPEC §4: a longer line closes the connection */
#define MAX_CLIENTS	512
#define OUT_HIGH	(256 * 1024)	/* nothing more is read or fed above this */
#define CLOSE_GRACE_MS	5000		/* to write a last answer before closing */
#define CONTROL_WATCH_MAX 2		/* fds the layers above may have polled */
#define CONTROL_IDLE_DEFAULT_MS	60000	/* SPEC §6 [control] idle_timeout */

struct control_io;
struct control_conn;

/* Why the transport calls up. */
enum control_why {
	/* A connection was accepted.  Return 0, or -1 to refuse it (closed
	 * at once, without CTL_CLOSE). */
	CTL_OPEN,
	/* conn sent a request line (line, len: without its '\n'). */
	CTL_LINE,
	/* conn's turn, after its lines and before its output is written. */
	CTL_CONN,
	/* conn is about to be freed: forget it. */
	CTL_CLOSE,
	/* fd, a watched one, was readable (and is drained). */
	CTL_READY,
	/* Once per loop turn, after the sockets were read and before the
	 * connections' turns. */
	CTL_TURN,
	/* Before poll: return the most ms the loop may sleep, -1 for no
	 * limit of the caller's own. */
	CTL_SLEEP
};

struct control_ev {
	enum control_why	 why;
	struct control_conn	*conn;	/* OPEN, LINE, CONN, CLOSE; else NULL */
	const char		*line;	/* LINE */
	size_t			 len;
	int			 fd;	/* READY */
	int64_t			 now;	/* util_mono_ms() of this turn */
};

/* The one way up; see enum control_why for what it returns. */
typedef int	(*control_upcall_fn)(void *arg, const struct control_ev *);

/*
 * Binds and listens on path (mode), removing a socket file left by a crash;
 * no thread yet.  Returns NULL with a message in err on failure.  Free with
 * control_io_free().
 */
struct control_io *control_io_open(const char *path, mode_t mode,
		    control_upcall_fn, void *arg, char *err, size_t errlen);
/* Has the loop poll fd as well (an eventfd: it is drained, then CTL_READY).
 * Before control_io_start(); at most CONTROL_WATCH_MAX.  Returns 0 or -1. */
int		 control_io_watch(struct control_io *, int fd);
/*
 * A client with no request outstanding (held) that is not streaming and
 * sends nothing for ms is closed (SPEC §4 idle_timeout; ms <= 0: the
 * default).  Before control_io_start().
 */
void		 control_io_set_idle(struct control_io *, int64_t ms);
/* Starts the control thread.  Returns 0, or -1 with a message in err. */
int		 control_io_start(struct control_io *, char *err, size_t errlen);
/*
 * Stops the thread, which drops every connection (CTL_CLOSE each) on its
 * way out, then closes the listening socket and removes the socket file if
 * it is still ours.  Never frees; NULL ok; a second call does nothing.
 */
void		 control_io_stop(struct control_io *);
/* control_io_stop() if needed, then frees.  NULL ok. */
void		 control_io_free(struct control_io *);
/* Any thread: the loop turned in the last 15 s; the connections now. */
bool		 control_io_alive(struct control_io *);
int		 control_io_clients(struct control_io *);

/* One connection, from CTL_OPEN to CTL_CLOSE.  data is the caller's. */
void		*control_conn_data(struct control_conn *);
void		 control_conn_set_data(struct control_conn *, void *);
/* Appends o as one line to the output and deletes o.  NULL o (an
 * allocation failed) drops the connection. */
void		 control_conn_send_json(struct control_conn *, cJSON *o);
/* Appends len raw bytes.  Returns 0, or -1 (the connection is dropped). */
int		 control_conn_append(struct control_conn *, const char *, size_t);
/* The output not yet written. */
size_t		 control_conn_unsent(const struct control_conn *);
/* How long (ms, at now) the output has been waiting without a byte of it
 * taken by the peer; 0 when nothing is unsent. */
int64_t		 control_conn_stalled_ms(const struct control_conn *, int64_t now);
/* Writes what the socket takes now, without blocking. */
void		 control_conn_flush(struct control_conn *);
/* Drops the output lines not yet begun (one partly written is kept whole:
 * never a torn line). */
void		 control_conn_drop_unbegun(struct control_conn *);
/*
 * hold: no further line is read or handed up until release (a request is
 * being answered; a peer that hangs up meanwhile is dropped).  Only the
 * owner of the blocking state calls these.
 */
void		 control_conn_hold(struct control_conn *);
void		 control_conn_release(struct control_conn *);
/* The connection streams: the peer's end of input does not close it. */
void		 control_conn_stream(struct control_conn *);
/* Closes once the output is written (or CLOSE_GRACE_MS passed). */
void		 control_conn_close_after(struct control_conn *);
bool		 control_conn_closing(const struct control_conn *);
/* It will be closed at the end of this loop turn. */
bool		 control_conn_dead(const struct control_conn *);

#endif
