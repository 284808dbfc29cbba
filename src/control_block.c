/*
 * control_block.c - the control socket's blocking state (see
 * control_block.h, SPEC §4): what each connection's request is waiting for,
 * and the only code that writes it (busy, the request's "id", a wait's
 * payment and deadline, the waiters' count, the ops in flight).  A pay is
 * an op (the gateway's answer) and then, once VINR created its payment, a
 * wait on it: the request stays blocked across both.  The model
 * is Redis's blocked.c: a command blocks its client through here, and only
 * here is it unblocked and answered.
 *
 * DESIGN.  Thread: the control thread (control.c's loop) calls everything
 * here through control_cmd.c, but for the lifecycle (_new, _stop, _free: the
 * thread that starts and stops the control socket, once the loop is not
 * running) and the two doors for other threads.  The
 * store's writer writes outcome_fd after each commit with new outcomes
 * (store_add_listener); the answers to work handed elsewhere (the writer's
 * done callback for track and replay, control_reconcile_done() from the
 * reconciler) move their op from the inflight list to the done list under
 * mu and write answer_fd.  The loop watches both eventfds and calls
 * control_block_ready(), on its own thread, where the answers are sent.
 *
 * wait: a waiter is a request blocked on a payment id with a deadline.  On
 * each wake-up from the writer the new outcomes (seq, payment, status only)
 * are read once, after seen_seq, and matched against the waiters; the loop
 * sleeps at most until the nearest deadline.  Nothing slips between a
 * wait's check and its registration: both happen on the control thread, so
 * an outcome committed before the check is seen by it, and one committed
 * after it has a seq above seen_seq and is matched at the next wake-up.
 *
 * A late answer finds its request by token: a connection that was closed
 * meanwhile misses it (the work is done all the same).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "control_block.h"
#include "control_int.h"
#include "jsonnum.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_read.h"
#include "util.h"

#define MATCH_BATCH	1024

/* One connection's request. */
struct control_req {
	struct control_req *prev, *next;	/* blk->reqs */
	struct control_block *blk;
	struct control_conn *conn;
	uint64_t	 token;		/* unique: matches late answers to it */
	enum control_busy busy;		/* what the request waits for */
	cJSON		*req_id;	/* its "id", echoed */
	char		*wait_id;	/* B_WAIT: the payment */
	int64_t		 wait_until;	/* B_WAIT: monotonic ms */
	bool		 wait_final;	/* B_WAIT: until a final status */
};

struct control_block {
	struct store	*store;
	struct store_reader *reader;
	int		 outcome_fd;	/* written by the store's writer */
	int		 answer_fd;	/* written by op_done */
	bool		 listening;	/* outcome_fd is a store listener */
	bool		 mu_init;
	bool		 stopped;

	/* The control thread's own. */
	struct control_req *reqs;
	uint64_t	 next_token;
	int64_t		 seen_seq;	/* outcomes matched against waiters */
	bool		 unseen;	/* the writer said there are more */
	int		 nwaiters;

	/* Under mu: the door from other threads. */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* signalled when ninflight drops */
	struct control_op *inflight;
	struct control_op *done;
	int		 ninflight;
};

/* ------------------------------------------------------------------ */
/* Blocking and unblocking: the only writers of busy and nwaiters */

static void
block_on(struct control_req *rq, enum control_busy kind)
{
	rq->busy = kind;
	if (kind == B_WAIT)
		rq->blk->nwaiters++;
	control_conn_hold(rq->conn);
}

/* Ends the current request: the next line may be read. */
static void
request_done(struct control_req *rq)
{
	if (rq->busy == B_WAIT)
		rq->blk->nwaiters--;
	if (rq->busy != B_NONE)
		control_conn_release(rq->conn);
	rq->busy = B_NONE;
	free(rq->wait_id);
	rq->wait_id = NULL;
	cJSON_Delete(rq->req_id);
	rq->req_id = NULL;
}

struct control_req *
control_block_open(struct control_block *blk, struct control_conn *conn)
{
	struct control_req *rq;

	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return NULL;
	rq->blk = blk;
	rq->conn = conn;
	rq->token = ++blk->next_token;
	if ((rq->next = blk->reqs) != NULL)
		rq->next->prev = rq;
	blk->reqs = rq;
	return rq;
}

void
control_block_close(struct control_req *rq)
{
	if (rq == NULL)
		return;
	if (rq->busy == B_WAIT)
		rq->blk->nwaiters--;
	if (rq->prev != NULL)
		rq->prev->next = rq->next;
	else
		rq->blk->reqs = rq->next;
	if (rq->next != NULL)
		rq->next->prev = rq->prev;
	cJSON_Delete(rq->req_id);
	free(rq->wait_id);
	free(rq);
}

void
control_block_begin(struct control_req *rq, const cJSON *id)
{
	cJSON_Delete(rq->req_id);
	rq->req_id = id != NULL ? cJSON_Duplicate(id, true) : NULL;
}

/* ------------------------------------------------------------------ */
/* Answers */

cJSON *
control_block_resp(struct control_req *rq, bool ok)
{
	cJSON *o;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddBoolToObject(o, "ok", ok);
	if (rq->req_id != NULL)
		cJSON_AddItemToObject(o, "id", cJSON_Duplicate(rq->req_id, true));
	return o;
}

void
control_block_reply(struct control_req *rq, cJSON *o)
{
	control_conn_send_json(rq->conn, o);
	request_done(rq);
}

void
control_block_error(struct control_req *rq, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((o = control_block_resp(rq, false)) != NULL) {
		cJSON_AddStringToObject(o, "error", code);
		cJSON_AddStringToObject(o, "message", msg);
	}
	control_block_reply(rq, o);
}

void
control_block_payment(struct control_req *rq, const char *id, int changed)
{
	cJSON *p, *o;
	int r;

	if ((r = store_reader_payment(rq->blk->reader, id, &p)) == -1) {
		control_block_error(rq, "internal", "cannot read the database");
		return;
	}
	if (r == 0) {
		control_block_error(rq, "not_found", "no payment %s", id);
		return;
	}
	if ((o = control_block_resp(rq, true)) != NULL) {
		cJSON_AddItemToObject(o, "payment", p);
		if (changed != -1)
			cJSON_AddBoolToObject(o, "changed", changed);
	} else
		cJSON_Delete(p);
	control_block_reply(rq, o);
}

/* The answer of a wait: the payment, and timeout unless it has an outcome. */
static void
reply_wait(struct control_req *rq, bool timed_out)
{
	cJSON *p = NULL, *o;

	if (store_reader_payment(rq->blk->reader, rq->wait_id, &p) == -1) {
		control_block_error(rq, "internal", "cannot read the database");
		return;
	}
	if ((o = control_block_resp(rq, !timed_out)) == NULL) {
		cJSON_Delete(p);
		control_block_reply(rq, NULL);
		return;
	}
	if (timed_out) {
		cJSON_AddStringToObject(o, "error", "timeout");
		cJSON_AddStringToObject(o, "message", "no outcome before the timeout");
	}
	if (p != NULL)
		cJSON_AddItemToObject(o, "payment", p);
	else
		cJSON_AddNullToObject(o, "payment");
	control_block_reply(rq, o);
}

/*
 * upstream_error of SPEC §4.1: VINR's HTTP status and error code beside the
 * message (null when VINR gave none, or did not answer at all).
 */
static void
reply_upstream(struct control_req *rq, const struct control_op *op)
{
	cJSON *o;

	if ((o = control_block_resp(rq, false)) != NULL) {
		cJSON_AddStringToObject(o, "error", "upstream_error");
		if (op->status > 0)
			jsonnum_add(o, "status", op->status);
		else
			cJSON_AddNullToObject(o, "status");
		if (op->code[0] != '\0')
			cJSON_AddStringToObject(o, "code", op->code);
		else
			cJSON_AddNullToObject(o, "code");
		cJSON_AddStringToObject(o, "message", op->message);
	}
	control_block_reply(rq, o);
}

bool
control_block_wait_over(const cJSON *payment, bool final)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(payment, "status");
	enum pay_status s;

	if (!cJSON_IsString(st))
		return false;
	s = pay_status_parse(st->valuestring);
	return final ? pay_status_is_final(s) : pay_status_is_outcome(s);
}

/*
 * VINR created the pay's payment: answer it now if it has an outcome, else
 * wait for one until the pay's deadline.  The request stays held: it goes
 * from B_PAY to B_WAIT.  Nothing slips between the check and the wait, for
 * the reason given at the top of this file.
 */
static void
pay_wait(struct control_req *rq, struct control_op *op)
{
	cJSON *p = NULL, *o;
	int r;

	if ((r = store_reader_payment(rq->blk->reader, op->id, &p)) == -1) {
		control_block_error(rq, "internal", "cannot read the database");
		return;
	}
	if (r == 1 && control_block_wait_over(p, false)) {
		if ((o = control_block_resp(rq, true)) != NULL)
			cJSON_AddItemToObject(o, "payment", p);
		else
			cJSON_Delete(p);
		control_block_reply(rq, o);
		return;
	}
	cJSON_Delete(p);
	if ((rq->wait_id = strdup(op->id)) == NULL) {
		control_block_error(rq, "internal", "out of memory");
		return;
	}
	rq->wait_until = op->wait_until;
	rq->wait_final = false;
	rq->busy = B_WAIT;	/* held since B_PAY */
	rq->blk->nwaiters++;
}

/* The late answer of an op, to the request it was for. */
static void
answer(struct control_req *rq, struct control_op *op)
{
	switch (op->kind) {
	case B_TRACK:
		if (op->rc != 0)
			control_block_error(rq, "internal",
			    "storage unavailable: not tracked");
		else
			control_block_payment(rq, op->pay.id, -1);
		break;
	case B_REPLAY:
		if (op->rc == 1)
			control_block_error(rq, "not_found", "no dead letter %.*s %lld",
			    (int)strcspn(op->id, "@"), op->id, (long long)op->seq);
		else if (op->rc != 0)
			control_block_error(rq, "internal",
			    "storage unavailable: not replayed");
		else
			control_block_reply(rq, control_block_resp(rq, true));
		break;
	case B_RECONCILE:
		if (op->error[0] != '\0')
			control_block_error(rq, op->error, "%s", op->message);
		else
			control_block_payment(rq, op->id, op->changed);
		break;
	case B_PAY:
	case B_CANCEL:
	case B_CAPTURE:
		if (strcmp(op->error, "upstream_error") == 0)
			reply_upstream(rq, op);
		else if (op->error[0] != '\0')
			control_block_error(rq, op->error, "%s", op->message);
		else if (op->kind == B_PAY && op->wait)
			pay_wait(rq, op);
		else
			control_block_payment(rq, op->id, -1);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Waiters */

void
control_block_wait(struct control_req *rq, const char *payment_id, int64_t until,
    bool final)
{
	if ((rq->wait_id = strdup(payment_id)) == NULL) {
		control_block_error(rq, "internal", "out of memory");
		return;
	}
	rq->wait_until = until;
	rq->wait_final = final;
	block_on(rq, B_WAIT);
}

static int
match_waiters(void *arg, int64_t seq, const char *payment_id, const char *status)
{
	struct control_block *blk = arg;
	enum pay_status st = pay_status_parse(status);

	blk->seen_seq = seq;
	if (payment_id == NULL || !pay_status_is_outcome(st))
		return 0;
	for (struct control_req *rq = blk->reqs; rq != NULL; rq = rq->next)
		if (rq->busy == B_WAIT && !control_conn_dead(rq->conn) &&
		    strcmp(rq->wait_id, payment_id) == 0 &&
		    (!rq->wait_final || pay_status_is_final(st)))
			reply_wait(rq, false);
	return 0;
}

/* The writer committed new outcomes. */
static void
outcomes_committed(struct control_block *blk)
{
	int n;

	blk->unseen = false;
	if (blk->nwaiters == 0) {
		/* A wait asked later checks the database itself. */
		blk->seen_seq = store_last_seq(blk->store);
		return;
	}
	do {
		n = store_reader_transitions(blk->reader, blk->seen_seq, MATCH_BATCH,
		    match_waiters, blk);
	} while (n == MATCH_BATCH && blk->nwaiters > 0);
	if (n == -1)
		blk->unseen = true;	/* try again at the next turn */
}

void
control_block_turn(struct control_block *blk, int64_t now)
{
	if (blk->unseen)
		outcomes_committed(blk);
	for (struct control_req *rq = blk->reqs; rq != NULL; rq = rq->next)
		if (rq->busy == B_WAIT && !control_conn_dead(rq->conn) &&
		    now >= rq->wait_until)
			reply_wait(rq, true);
}

int
control_block_sleep(struct control_block *blk, int64_t now)
{
	int64_t t = -1;

	if (blk->unseen)
		t = 100;	/* the database failed us: not too hot a retry */
	if (blk->nwaiters > 0)
		for (struct control_req *rq = blk->reqs; rq != NULL; rq = rq->next)
			if (rq->busy == B_WAIT && (t == -1 || rq->wait_until - now < t))
				t = rq->wait_until - now;
	if (t > 1000000)
		t = 1000000;
	return t == -1 ? -1 : t < 0 ? 0 : (int)t;
}

/* ------------------------------------------------------------------ */
/* The op mailbox */

/* An op's answer, on the writer's or the reconciler's thread: hand the op
 * to the control thread. */
static void
op_done(struct control_block *blk, struct control_op *op)
{
	struct control_op **pp;

	pthread_mutex_lock(&blk->mu);
	for (pp = &blk->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	op->next = blk->done;
	blk->done = op;
	blk->ninflight--;
	pthread_cond_signal(&blk->cv);
	/* Under mu: once it is released, control_block_stop may close it. */
	(void)!write(blk->answer_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	pthread_mutex_unlock(&blk->mu);
}

void
control_block_store_done(void *arg, int rc)
{
	struct control_op *op = arg;

	op->rc = rc;
	op_done(op->blk, op);
}

/* req is the op: it stays on the inflight list, and alive, until this. */
void
control_reconcile_done(void *req, const char *error, const char *message,
    bool changed)
{
	struct control_op *op = req;

	snprintf(op->error, sizeof(op->error), "%s", error != NULL ? error : "");
	snprintf(op->message, sizeof(op->message), "%s",
	    message != NULL ? message : error != NULL ? error : "");
	op->changed = changed;
	op_done(op->blk, op);
}

/* req is the op, as for control_reconcile_done(). */
void
control_gateway_done(void *req, const struct gateway_answer *a)
{
	struct control_op *op = req;

	snprintf(op->error, sizeof(op->error), "%s", a->error != NULL ? a->error : "");
	snprintf(op->message, sizeof(op->message), "%s",
	    a->message != NULL ? a->message : "");
	op->status = a->status;
	snprintf(op->code, sizeof(op->code), "%s", a->code != NULL ? a->code : "");
	if (a->error == NULL) {
		free(op->id);
		if ((op->id = strdup(a->payment_id)) == NULL)
			snprintf(op->error, sizeof(op->error), "internal");
	}
	op_done(op->blk, op);
}

void
control_block_op_free(struct control_op *op)
{
	if (op == NULL)
		return;
	payment_release(&op->pay);
	free(op->id);
	free(op);
}

struct control_op *
control_block_op_new(struct control_req *rq, enum control_busy kind)
{
	struct control_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL) {
		control_block_error(rq, "internal", "out of memory");
		return NULL;
	}
	op->blk = rq->blk;
	op->token = rq->token;
	op->kind = kind;
	op->pay.livemode = -1;
	return op;
}

void
control_block_op_start(struct control_req *rq, struct control_op *op)
{
	struct control_block *blk = op->blk;

	pthread_mutex_lock(&blk->mu);
	op->next = blk->inflight;
	blk->inflight = op;
	blk->ninflight++;
	pthread_mutex_unlock(&blk->mu);
	block_on(rq, op->kind);
}

void
control_block_op_cancel(struct control_op *op)
{
	struct control_block *blk = op->blk;
	struct control_op **pp;

	pthread_mutex_lock(&blk->mu);
	for (pp = &blk->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			blk->ninflight--;
			break;
		}
	pthread_mutex_unlock(&blk->mu);
	control_block_op_free(op);
}

static struct control_req *
req_by_token(struct control_block *blk, uint64_t token)
{
	for (struct control_req *rq = blk->reqs; rq != NULL; rq = rq->next)
		if (rq->token == token && !control_conn_dead(rq->conn))
			return rq;
	return NULL;
}

/* Takes the answered ops; without a connection to answer, frees them. */
static void
answers_arrived(struct control_block *blk, bool answer_them)
{
	struct control_req *rq;
	struct control_op *list, *op;

	pthread_mutex_lock(&blk->mu);
	list = blk->done;
	blk->done = NULL;
	pthread_mutex_unlock(&blk->mu);
	while ((op = list) != NULL) {
		list = op->next;
		/* A client that hung up meanwhile misses it: the work is done. */
		if (answer_them && (rq = req_by_token(blk, op->token)) != NULL &&
		    rq->busy == op->kind)
			answer(rq, op);
		control_block_op_free(op);
	}
}

void
control_block_ready(struct control_block *blk, int fd)
{
	if (fd == blk->answer_fd)
		answers_arrived(blk, true);
	else if (fd == blk->outcome_fd)
		blk->unseen = true;
}

/* ------------------------------------------------------------------ */
/* Start and stop */

struct control_block *
control_block_new(struct store *store, struct store_reader *reader, char *err,
    size_t errlen)
{
	struct control_block *blk;

	if ((blk = calloc(1, sizeof(*blk))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	blk->store = store;
	blk->reader = reader;
	blk->outcome_fd = blk->answer_fd = -1;
	pthread_mutex_init(&blk->mu, NULL);
	pthread_cond_init(&blk->cv, NULL);
	blk->mu_init = true;
	if ((blk->outcome_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
	    (blk->answer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/* Registered before seen_seq is read: no commit can fall between. */
	if (store_add_listener(store, blk->outcome_fd) == -1) {
		snprintf(err, errlen, "control: too many store listeners");
		goto fail;
	}
	blk->listening = true;
	blk->seen_seq = store_last_seq(store);
	return blk;
fail:
	control_block_free(blk);
	return NULL;
}

int
control_block_fd(const struct control_block *blk, int i)
{
	return i == 0 ? blk->answer_fd : blk->outcome_fd;
}

void
control_block_stop(struct control_block *blk)
{
	if (blk == NULL || blk->stopped)
		return;
	blk->stopped = true;
	pthread_mutex_lock(&blk->mu);
	while (blk->ninflight > 0)
		pthread_cond_wait(&blk->cv, &blk->mu);
	pthread_mutex_unlock(&blk->mu);
	answers_arrived(blk, false);
	if (blk->listening)
		store_remove_listener(blk->store, blk->outcome_fd);
	blk->listening = false;
	if (blk->outcome_fd != -1)
		close(blk->outcome_fd);
	if (blk->answer_fd != -1)
		close(blk->answer_fd);
	blk->outcome_fd = blk->answer_fd = -1;
}

void
control_block_free(struct control_block *blk)
{
	if (blk == NULL)
		return;
	control_block_stop(blk);
	while (blk->reqs != NULL)
		control_block_close(blk->reqs);
	if (blk->mu_init) {
		pthread_mutex_destroy(&blk->mu);
		pthread_cond_destroy(&blk->cv);
	}
	free(blk);
}
