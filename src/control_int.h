/*
 * control_int.h - what control.c (the loop: sockets, buffers, waiters,
 * subscribers, answers from other threads) and control_cmd.c (the requests
 * of SPEC §4 and their answers) share.  Everything here runs on the control
 * thread unless it says otherwise.  Not for other modules.
 */
#ifndef VINR_CONTROL_INT_H
#define VINR_CONTROL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "payment.h"

#define MAX_LINE	65536		/* SPEC §4: a longer line closes the connection */
#define MAX_CLIENTS	512
#define MAX_SINKS	8
#define MAX_ID_LEN	255		/* payment ids, references, sink names */
#define OUT_LOW		(64 * 1024)	/* a subscriber is fed below this */
#define OUT_HIGH	(256 * 1024)	/* nothing more is read or fed above this */
#define LAG_MAX		1000		/* outcomes a live subscriber may fall behind */
#define FEED_ROUNDS	8		/* pulls per subscriber per loop turn */
#define PULL_BATCH	256
#define MATCH_BATCH	1024
#define CLOSE_GRACE_MS	5000		/* to write a last answer before closing */
#define WAIT_DEFAULT_S	150
#define WAIT_MAX_S	3600
#define MAX_NUMBER	9007199254740992.0	/* 2^53: beyond, doubles skip integers */

enum busy {
	B_NONE,
	B_WAIT,
	B_TRACK,
	B_REPLAY,
	B_RECONCILE
};

struct client {
	int		 fd;
	uint64_t	 token;		/* unique: matches late answers to it */
	char		*in;		/* bytes read, not yet a whole line */
	size_t		 inlen, incap;
	char		*out;		/* out[outoff .. outlen) is unsent */
	size_t		 outoff, outlen, outcap;
	bool		 midline;	/* what was sent ends inside a line */
	bool		 eof;		/* the peer will send nothing more */
	bool		 hup;		/* the peer is gone */
	bool		 closing;	/* close once out is written */
	int64_t		 close_by;	/* ... or at this monotonic ms */
	bool		 dead;		/* close at the end of this loop turn */

	enum busy	 busy;		/* the request being answered */
	cJSON		*req_id;	/* its "id", echoed */
	char		*wait_id;	/* B_WAIT: the payment */
	int64_t		 wait_until;	/* B_WAIT: monotonic ms */

	bool		 subscribed;
	bool		 caught_up;	/* has been live once: may now lag */
	int64_t		 sub_seq;	/* the last seq put in out */
};

/* Work handed to the writer or the reconciler, until its answer is used. */
struct op {
	struct op	*next;
	struct control	*ctl;
	uint64_t	 token;
	enum busy	 kind;
	int		 rc;		/* the store's answer */
	struct payment	 pay;		/* B_TRACK: what to store */
	char		*id;		/* B_RECONCILE: the payment; B_REPLAY: the sink */
	int64_t		 seq;		/* B_REPLAY */
	char		 error[32];	/* B_RECONCILE: a SPEC code, "" = done */
	char		 message[256];
	bool		 changed;
};

struct control {
	char		*path;
	ino_t		 ino;		/* of the socket file we bound */
	struct store	*store;
	cJSON		*(*stats)(void *);
	void		*stats_arg;
	const struct control_reconciler *rc;

	struct store_reader *reader;
	int		 lfd;
	int		 outcome_fd;	/* written by the store's writer */
	int		 wake_fd;	/* written by control_stop and answers */
	bool		 listening;	/* outcome_fd is a store listener */
	pthread_t	 thread;
	bool		 started;
	atomic_bool	 stopping;
	_Atomic int64_t	 tick_ms;	/* the loop's last turn */
	atomic_int	 nclients_now;	/* nclients, for other threads */

	/* The control thread's own. */
	struct client	*clients[MAX_CLIENTS];
	int		 nclients;
	uint64_t	 next_token;
	int64_t		 seen_seq;	/* outcomes matched against waiters */
	bool		 unseen;	/* the writer said there are more */
	int		 nwaiters;
	bool		 again;		/* work left: poll without sleeping */

	/* Under mu: the doors from other threads. */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* signalled when ninflight drops */
	struct op	*inflight;
	struct op	*done;
	int		 ninflight;
};

/* control.c: buffers */

/* Appends o as one line to the client's output and deletes o.  NULL o (an
 * allocation failed) drops the client. */
void		 control_send_json(struct client *, cJSON *o);
/* Closes the client once its output is written (or CLOSE_GRACE_MS passed). */
void		 control_close_after(struct client *);

/* control.c: work handed to the writer or the reconciler */

/* A new op for the client's current request; NULL after answering
 * "internal".  Free with control_op_free(). */
struct op	*control_op_new(struct control *, struct client *, enum busy kind);
/* Puts op on the inflight list; call before handing it over. */
void		 control_op_register(struct control *, struct op *);
/* Takes op back off the inflight list (the handover failed) and frees it. */
void		 control_op_cancel(struct control *, struct op *);
void		 control_op_free(struct op *);
/* The store's done callback (store_done_fn) for an op; writer thread. */
void		 control_store_done(void *op, int rc);

/* control_cmd.c: requests and answers */

/* Answers one request line (without its '\n'); it may leave the client
 * busy (wait, track, replay, reconcile). */
void		 control_handle_line(struct control *, struct client *,
		    const char *line, size_t len);
/* Answers the client's current request with an error; ends the request. */
void		 control_reply_error(struct control *, struct client *, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answers the client's wait: its payment, ok unless timed_out. */
void		 control_reply_wait(struct control *, struct client *, bool timed_out);
/* Answers the request an op was for, if its client is still there. */
void		 control_answer(struct control *, struct client *, struct op *);

#endif
