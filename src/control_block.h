/*
 * control_block.h - the control socket's blocking state (control_block.c):
 * each connection's request (busy, its "id", a wait's payment and
 * deadline), the waiters, and the mailbox of work handed to the writer or
 * the reconciler.  control_block.c is the only code that writes any of it;
 * the commands (control_cmd.c) go through these functions.  Control thread
 * only, unless it says otherwise.  Not for other modules.
 */
#ifndef VINR_CONTROL_BLOCK_H
#define VINR_CONTROL_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "payment.h"

struct control_block;
struct control_conn;
struct control_req;
struct store;
struct store_reader;

enum control_busy {
	B_NONE,
	B_WAIT,
	B_TRACK,
	B_REPLAY,
	B_RECONCILE,
	B_PAY,		/* the gateway's answers (SPEC §4.1) */
	B_CANCEL,
	B_CAPTURE
};

/* Work handed to the writer or the reconciler, until its answer is used.
 * The command fills in what it hands over (pay, id, seq). */
struct control_op {
	struct control_op *next;
	struct control_block *blk;
	uint64_t	 token;		/* its request's */
	enum control_busy kind;
	int		 rc;		/* the store's answer */
	struct payment	 pay;		/* B_TRACK: what to store */
	char		*id;		/* B_RECONCILE: the payment; B_REPLAY: the sink */
	int64_t		 seq;		/* B_REPLAY */
	char		 error[32];	/* B_RECONCILE, B_PAY..: a SPEC code, "" = done */
	char		 message[512];
	bool		 changed;
	/* B_PAY: how long to wait for the outcome once VINR created it. */
	bool		 wait;		/* false: answer as soon as it is created */
	int64_t		 wait_until;	/* monotonic ms, counted from the request */
	/* B_PAY, B_CANCEL, B_CAPTURE: upstream_error's VINR status and code. */
	long		 status;
	char		 code[64];
};

/*
 * Creates the blocking state over store (and reader, the control thread's
 * read connection, which must outlive it): its two eventfds, the first
 * registered as a store listener.  Returns NULL with a message in err.
 */
struct control_block *control_block_new(struct store *, struct store_reader *,
		    char *err, size_t errlen);
/* The eventfds the loop must watch (control_io_watch), for CTL_READY. */
int		 control_block_fd(const struct control_block *, int i);
/*
 * Waits for every op in flight to be answered (the writer and the
 * reconciler must still run), drops their answers, leaves the store's
 * listeners and closes the eventfds.  Call once the loop has stopped.
 * Never frees; NULL ok; a second call does nothing.
 */
void		 control_block_stop(struct control_block *);
/* control_block_stop() if needed, then frees.  NULL ok. */
void		 control_block_free(struct control_block *);

/* From the loop's upcall. */
/* fd (one of control_block_fd()) was readable: answers arrived, or the
 * writer committed outcomes. */
void		 control_block_ready(struct control_block *, int fd);
/* Once per loop turn: matches new outcomes against the waiters and ends
 * the waits whose deadline passed. */
void		 control_block_turn(struct control_block *, int64_t now);
/* The ms until the nearest wait deadline (or a retry), -1 for none. */
int		 control_block_sleep(struct control_block *, int64_t now);
/* A connection's request state, from its CTL_OPEN to its CTL_CLOSE.
 * NULL: out of memory. */
struct control_req *control_block_open(struct control_block *, struct control_conn *);
/* Drops it (a wait or an op in flight is forgotten).  NULL ok. */
void		 control_block_close(struct control_req *);

/* Requests and answers. */
/* A new request line, whose "id" (NULL: none) every answer echoes. */
void		 control_block_begin(struct control_req *, const cJSON *id);
/* A new answer to the current request: {"ok":ok,"id":...}; NULL: no memory. */
cJSON		*control_block_resp(struct control_req *, bool ok);
/* Sends o (deleted; NULL drops the connection) and ends the request. */
void		 control_block_reply(struct control_req *, cJSON *o);
/* Answers with an error, a SPEC §4 code, and ends the request. */
void		 control_block_error(struct control_req *, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answers {"ok":true,"payment":PAYMENT} (with "changed" unless -1), or
 * not_found / internal. */
void		 control_block_payment(struct control_req *, const char *id,
		    int changed);
/* Blocks the request until payment_id has an outcome (with final: a final
 * status) and answers then, or answers timeout at until (monotonic ms). */
void		 control_block_wait(struct control_req *, const char *payment_id,
		    int64_t until, bool final);
/* A new op for the current request; NULL after answering "internal".
 * Free with control_block_op_free() unless handed over. */
struct control_op *control_block_op_new(struct control_req *, enum control_busy);
void		 control_block_op_free(struct control_op *);
/* Puts op (made for this request) in flight and blocks the request; call
 * right before handing it over.  Its answer comes through control_block_store_done() or
 * control_reconcile_done(). */
void		 control_block_op_start(struct control_req *, struct control_op *);
/* The handover failed: takes op out of flight and frees it; then answer
 * the request (an error), which ends it. */
void		 control_block_op_cancel(struct control_op *);
/* Whether a PAYMENT object's status ends a wait (final: completed, failed
 * or cancelled; else any outcome status). */
bool		 control_block_wait_over(const cJSON *payment, bool final);
/* A store_done_fn for an op (the writer's thread). */
void		 control_block_store_done(void *op, int rc);

#endif
