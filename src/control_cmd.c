/*
 * control_cmd.c - the control socket's commands (SPEC §4): parsing and
 * checking a request line, the command table, subscribe, and the public
 * control_start() / _stop() / _free() that wire the three parts together
 * (see control.h).
 *
 * DESIGN.  Thread: the control thread only (control.c's loop), except the
 * lifecycle functions, called by the daemon's main thread.  The loop calls
 * up through exactly one function, control_event(); from there everything
 * is called down: the blocking state and every answer through
 * control_block.c, bytes through control.c.  A command either answers at
 * once, reading through the control thread's own read connection, or blocks
 * its request through control_block.c: wait until an outcome or its
 * deadline, track and replay until the writer has committed them,
 * reconcile until the reconciler answers; control_block.c sends those late
 * answers.  This file owns what a subscriber has been sent (its cursor) and
 * the read connection.
 *
 * subscribe: each subscriber has its own cursor (sub_seq, the last seq put
 * in its buffer) and pulls the outcomes after it from the database whenever
 * its buffer is below SUB_LOW.  Backlog and live lines come from the same
 * pull, so there is no seam: no gap and no duplicate.  Memory is bounded by
 * the buffer, not by how far behind a subscriber is; a backlog of any size
 * is served at the reader's pace.  One that has caught up once and then
 * falls more than LAG_MAX outcomes behind while not reading, or any one
 * (a backlog reader too) that takes not a byte for LAG_STALL_MS while at
 * least SUB_LOW waits for it, is sent lagging and closed.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "control_block.h"
#include "control_int.h"
#include "control_line.h"
#include "jsonnum.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_read.h"
#include "util.h"
#include "version.h"

#define MAX_ID_LEN	255		/* payment ids, references, sink names */
#define LAG_MAX		1000		/* outcomes a live subscriber may fall behind */
#define LAG_STALL_MS	10000		/* a subscriber not reading at all */
/*
 * A subscriber is fed while less than this waits in its buffer: the kernel's
 * socket buffer holds far more, so a reader never waits on it, and hundreds
 * of subscribers that do not read hold little memory.
 */
#define SUB_LOW		(16 * 1024)
#define FEED_ROUNDS	8		/* pulls per subscriber per loop turn */
#define PULL_BATCH	256
#define WAIT_DEFAULT_S	150
#define WAIT_MAX_S	3600

struct control {
	struct store	*store;
	struct store_reader *reader;	/* the control thread's */
	cJSON		*(*stats)(void *);
	void		*stats_arg;
	const struct control_reconciler *rc;
	struct gateway	*gw;		/* NULL: no API key */
	char		*instance;	/* control_params: NULL with sqlite */
	struct control_block *blk;
	struct control_io *io;
	bool		 stopped;
	bool		 again;		/* control thread: a subscriber has more */
	struct client	*subs;		/* the subscribers, through next_sub */
};

/* One connection: the data of its control_conn. */
struct client {
	struct control_conn *conn;
	struct control_req *rq;		/* its request (control_block.c's) */
	bool		 subscribed;
	bool		 caught_up;	/* has been live once: may now lag */
	int64_t		 sub_seq;	/* the last seq put in its output */
	/*
	 * Behind, and its last feed stopped at SUB_LOW buffered: once the
	 * buffer is written below that, it must be fed again at once, not
	 * after poll's whole second (control_event's CTL_SLEEP).
	 */
	bool		 more;
	struct client	*next_sub;
	/* The request line being handled (valid during its command only):
	 * cJSON keeps numbers as doubles, integers are read from the text. */
	const char	*line;
	size_t		 linelen;
};

/* ------------------------------------------------------------------ */
/* Request fields */

/*
 * A string field.  Returns 1 with *v set, 0 when absent or null (when
 * optional), -1 (the client was answered bad_request) otherwise.
 */
static int
field_str(struct control_req *rq, const cJSON *req, const char *key, bool required,
    const char **v)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, key);

	*v = NULL;
	if (f == NULL || cJSON_IsNull(f)) {
		if (!required)
			return 0;
		control_block_error(rq, "bad_request", "%s is required", key);
		return -1;
	}
	if (!cJSON_IsString(f) || f->valuestring[0] == '\0' ||
	    strlen(f->valuestring) > MAX_ID_LEN) {
		control_block_error(rq, "bad_request", "%s must be a non-empty string "
		    "of at most %d bytes", key, MAX_ID_LEN);
		return -1;
	}
	*v = f->valuestring;
	return 1;
}

/*
 * A number field in [min, max], an integer when integer is set.  Returns 1
 * with *v set, 0 when absent or null, -1 (answered bad_request) otherwise.
 */
static int
field_num(struct control_req *rq, const cJSON *req, const char *key, bool integer,
    double min, double max, double *v)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, key);
	double d;

	if (f == NULL || cJSON_IsNull(f))
		return 0;
	if (!cJSON_IsNumber(f)) {
		control_block_error(rq, "bad_request", "%s must be a number", key);
		return -1;
	}
	d = f->valuedouble;
	if (!(d >= min && d <= max) || (integer && d != (double)(int64_t)d)) {
		control_block_error(rq, "bad_request", "%s must be %s from %.0f to %.0f",
		    key, integer ? "an integer" : "a number", min, max);
		return -1;
	}
	*v = d;
	return 1;
}

/*
 * An integer field in [min, max], read exactly from the request's text (a
 * double would skip integers past 2^53).  Returns 1 with *v set, 0 when
 * absent or null, -1 (answered bad_request) otherwise.
 */
static int
field_int(struct client *cl, const cJSON *req, const char *key, int64_t min,
    int64_t max, int64_t *v)
{
	switch (jsonnum_get(cl->line, cl->linelen, req, req, key, v)) {
	case JSONNUM_OK:
		if (*v >= min && *v <= max)
			return 1;
		break;
	case JSONNUM_ABSENT:
		return 0;
	case JSONNUM_NOT_NUMBER:
		control_block_error(cl->rq, "bad_request", "%s must be a number", key);
		return -1;
	default:
		break;
	}
	control_block_error(cl->rq, "bad_request", "%s must be an integer from %lld to %lld",
	    key, (long long)min, (long long)max);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Commands */

static void
cmd_ping(struct control *ctl, struct client *cl, const cJSON *req)
{
	cJSON *o = control_block_resp(cl->rq, true);

	(void)ctl;
	(void)req;
	cJSON_AddStringToObject(o, "version", VINR_VERSION);
	control_block_reply(cl->rq, o);
}

static void
cmd_get(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id;

	(void)ctl;
	if (field_str(cl->rq, req, "paymentId", true, &id) == 1)
		control_block_payment(cl->rq, id, -1);
}

static void
reply_list(struct control_req *rq, const char *key, cJSON *arr)
{
	cJSON *o;

	if (arr == NULL) {
		control_block_error(rq, "internal", "cannot read the database");
		return;
	}
	if ((o = control_block_resp(rq, true)) != NULL)
		cJSON_AddItemToObject(o, key, arr);
	else
		cJSON_Delete(arr);
	control_block_reply(rq, o);
}

static void
cmd_find(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *ref;

	if (field_str(cl->rq, req, "reference", true, &ref) == 1)
		reply_list(cl->rq, "payments", store_reader_find(ctl->reader, ref));
}

static void
cmd_pending(struct control *ctl, struct client *cl, const cJSON *req)
{
	double s = 0;

	if (field_num(cl->rq, req, "olderThan", false, 0, 1e9, &s) == -1)
		return;
	reply_list(cl->rq, "payments", store_reader_pending(ctl->reader, (int64_t)s));
}

/* A dead letter's sink as users know it, or NULL when another instance's. */
static const char *
sink_shown(const struct control *ctl, const char *key, char *buf, size_t len)
{
	const char *at = strchr(key, '@');

	if (ctl->instance == NULL || at == NULL)
		return key;
	if (strcmp(at + 1, ctl->instance) != 0 || (size_t)(at - key) >= len)
		return NULL;
	memcpy(buf, key, (size_t)(at - key));
	buf[at - key] = '\0';
	return buf;
}

static void
cmd_dead(struct control *ctl, struct client *cl, const cJSON *req)
{
	cJSON *arr = store_reader_dead(ctl->reader), *d, *next, *s;
	const char *name;
	char buf[64];

	(void)req;
	for (d = arr != NULL ? arr->child : NULL; d != NULL; d = next) {
		next = d->next;
		s = cJSON_GetObjectItemCaseSensitive(d, "sink");
		if (!cJSON_IsString(s) || (name = sink_shown(ctl, s->valuestring, buf,
		    sizeof(buf))) == s->valuestring)
			continue;
		if (name == NULL)
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, d));
		else
			cJSON_SetValuestring(s, name);
	}
	reply_list(cl->rq, "dead", arr);
}

static int
dup_field(const char *v, char **dst)
{
	return v == NULL || (*dst = strdup(v)) != NULL ? 0 : -1;
}

static void
cmd_track(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id, *term, *ref, *cur;
	struct control_op *op;
	int64_t amount;
	int has_amount;

	if (field_str(cl->rq, req, "paymentId", true, &id) != 1 ||
	    field_str(cl->rq, req, "terminalId", false, &term) == -1 ||
	    field_str(cl->rq, req, "reference", false, &ref) == -1 ||
	    field_str(cl->rq, req, "currency", false, &cur) == -1 ||
	    (has_amount = field_int(cl, req, "amount", 0, INT64_MAX, &amount)) == -1)
		return;
	if ((op = control_block_op_new(cl->rq, B_TRACK)) == NULL)
		return;
	if (dup_field(id, &op->pay.id) == -1 || dup_field(term, &op->pay.terminal_id) == -1 ||
	    dup_field(ref, &op->pay.reference) == -1 ||
	    dup_field(cur, &op->pay.currency) == -1) {
		control_block_op_free(op);
		control_block_error(cl->rq, "internal", "out of memory");
		return;
	}
	op->pay.has_amount = has_amount == 1;
	op->pay.amount = has_amount == 1 ? amount : 0;
	control_block_op_start(cl->rq, op);
	if (store_track_async(ctl->store, &op->pay, control_block_store_done, op) == -1) {
		control_block_op_cancel(op);
		control_block_error(cl->rq, "internal", "the store is not accepting writes");
	}
}

static void
cmd_replay(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *sink;
	struct control_op *op;
	int64_t seq;

	if (field_str(cl->rq, req, "sink", true, &sink) != 1)
		return;
	switch (field_int(cl, req, "seq", 1, INT64_MAX, &seq)) {
	case -1:
		return;
	case 0:
		control_block_error(cl->rq, "bad_request", "seq is required");
		return;
	}
	if ((op = control_block_op_new(cl->rq, B_REPLAY)) == NULL)
		return;
	/* The per-instance sinks' key (see control_params). */
	if (ctl->instance != NULL && (strcmp(sink, "eventlog") == 0 ||
	    strcmp(sink, "socket") == 0)) {
		if (asprintf(&op->id, "%s@%s", sink, ctl->instance) == -1)
			op->id = NULL;
	} else
		op->id = strdup(sink);
	if (op->id == NULL) {
		control_block_op_free(op);
		control_block_error(cl->rq, "internal", "out of memory");
		return;
	}
	op->seq = seq;
	control_block_op_start(cl->rq, op);
	if (store_replay_async(ctl->store, op->id, op->seq, control_block_store_done,
	    op) == -1) {
		control_block_op_cancel(op);
		control_block_error(cl->rq, "internal", "the store is not accepting writes");
	}
}

static void
cmd_reconcile(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id;
	struct control_op *op;

	if (field_str(cl->rq, req, "paymentId", true, &id) != 1)
		return;
	if (ctl->rc == NULL || ctl->rc->reconcile == NULL) {
		control_block_error(cl->rq, "reconciler_disabled",
		    "the reconciler is disabled: no API key is configured");
		return;
	}
	if ((op = control_block_op_new(cl->rq, B_RECONCILE)) == NULL)
		return;
	if ((op->id = strdup(id)) == NULL) {
		control_block_op_free(op);
		control_block_error(cl->rq, "internal", "out of memory");
		return;
	}
	control_block_op_start(cl->rq, op);
	if (ctl->rc->reconcile(ctl->rc->arg, op->id, op) == -1) {
		control_block_op_cancel(op);
		control_block_error(cl->rq, "internal",
		    "the reconciler cannot take the request");
	}
}

static void
cmd_wait(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id, *until;
	cJSON *p;
	double timeout = WAIT_DEFAULT_S;
	bool final;
	int r;

	if (field_str(cl->rq, req, "paymentId", true, &id) != 1 ||
	    field_num(cl->rq, req, "timeout", false, 0, WAIT_MAX_S, &timeout) == -1 ||
	    field_str(cl->rq, req, "until", false, &until) == -1)
		return;
	if (until != NULL && strcmp(until, "final") != 0 && strcmp(until, "outcome") != 0) {
		control_block_error(cl->rq, "bad_request",
		    "until must be \"outcome\" or \"final\"");
		return;
	}
	final = until != NULL && strcmp(until, "final") == 0;
	if ((r = store_reader_payment(ctl->reader, id, &p)) == -1) {
		control_block_error(cl->rq, "internal", "cannot read the database");
		return;
	}
	if (r == 1) {
		if (control_block_wait_over(p, final)) {
			cJSON *o = control_block_resp(cl->rq, true);

			if (o != NULL)
				cJSON_AddItemToObject(o, "payment", p);
			else
				cJSON_Delete(p);
			control_block_reply(cl->rq, o);
			return;
		}
		cJSON_Delete(p);
	}
	control_block_wait(cl->rq, id, util_mono_ms() + (int64_t)(timeout * 1000), final);
}

/* ------------------------------------------------------------------ */
/* pay, cancel, capture (SPEC §4.1): through the gateway */

/* Hands the op's call to the gateway; answered by control_block.c. */
static void
gateway_start_op(struct control *ctl, struct client *cl, struct control_op *op,
    const struct gateway_call *call)
{
	control_block_op_start(cl->rq, op);
	if (gateway_call(ctl->gw, call, control_gateway_done, op) == -1) {
		control_block_op_cancel(op);
		control_block_error(cl->rq, "internal", "the gateway cannot take the request");
	}
}

static bool
api_enabled(struct control *ctl, struct client *cl)
{
	if (ctl->gw != NULL)
		return true;
	control_block_error(cl->rq, "api_disabled",
	    "no API key is configured ([api] key_file, the api-key credential or "
	    "VINR_API_KEY)");
	return false;
}

/* A borrowed string in a struct whose strings are owned elsewhere: the
 * gateway copies the call before this request line is freed. */
#define BORROW(s)	((char *)(uintptr_t)(s))

/*
 * pay's fields into call (borrowing the request's strings).  Returns 0, or
 * -1 (answered bad_request).
 */
static int
pay_request_fields(struct client *cl, const cJSON *req, struct gateway_call *call,
    double *wait, char *delay, size_t delaylen)
{
	struct pay_request *r = &call->req;
	const char *term, *cur, *ref, *key, *cm;
	double d = -1;

	if (field_str(cl->rq, req, "terminalId", true, &term) != 1 ||
	    field_str(cl->rq, req, "currency", true, &cur) != 1 ||
	    field_str(cl->rq, req, "reference", true, &ref) != 1 ||
	    field_str(cl->rq, req, "key", false, &key) == -1 ||
	    field_str(cl->rq, req, "captureMethod", false, &cm) == -1 ||
	    field_str(cl->rq, req, "testCard", false, &call->test_card) == -1 ||
	    field_num(cl->rq, req, "simulateDelay", false, 0, WAIT_MAX_S, &d) == -1 ||
	    field_num(cl->rq, req, "wait", false, 0, WAIT_MAX_S, wait) == -1)
		return -1;
	switch (field_int(cl, req, "amount", 1, INT64_MAX, &r->amount)) {
	case -1:
		return -1;
	case 0:
		control_block_error(cl->rq, "bad_request", "amount is required");
		return -1;
	}
	if (cm != NULL && strcmp(cm, "automatic") != 0 && strcmp(cm, "manual") != 0) {
		control_block_error(cl->rq, "bad_request",
		    "captureMethod must be \"automatic\" or \"manual\"");
		return -1;
	}
	r->terminal_id = BORROW(term);
	r->currency = BORROW(cur);
	r->reference = BORROW(ref);
	r->key = BORROW(key != NULL ? key : ref);
	r->capture_method = BORROW(cm != NULL ? cm : "automatic");
	if (d >= 0) {
		snprintf(delay, delaylen, "%g", d);
		call->simulate_delay = delay;
	}
	return 0;
}

static void
cmd_pay(struct control *ctl, struct client *cl, const cJSON *req)
{
	struct gateway_call call = { .kind = GW_PAY };
	struct control_op *op;
	double wait = WAIT_DEFAULT_S;
	char delay[32];

	if (!api_enabled(ctl, cl) ||
	    pay_request_fields(cl, req, &call, &wait, delay, sizeof(delay)) == -1 ||
	    (op = control_block_op_new(cl->rq, B_PAY)) == NULL)
		return;
	/* The wait counts from the request, VINR's time included. */
	op->wait = wait > 0;
	op->wait_until = util_mono_ms() + (int64_t)(wait * 1000);
	gateway_start_op(ctl, cl, op, &call);
}

/* cancel and capture. */
static void
change(struct control *ctl, struct client *cl, const cJSON *req, enum control_busy kind)
{
	struct gateway_call call = { .kind = kind == B_CANCEL ? GW_CANCEL : GW_CAPTURE };
	struct control_op *op;
	int has = 0;

	if (!api_enabled(ctl, cl) ||
	    field_str(cl->rq, req, "paymentId", true, &call.payment_id) != 1 ||
	    (kind == B_CAPTURE &&
	    (has = field_int(cl, req, "amount", 1, INT64_MAX, &call.amount)) == -1) ||
	    (op = control_block_op_new(cl->rq, kind)) == NULL)
		return;
	call.has_amount = has == 1;
	if ((op->id = strdup(call.payment_id)) == NULL) {
		control_block_op_free(op);
		control_block_error(cl->rq, "internal", "out of memory");
		return;
	}
	gateway_start_op(ctl, cl, op, &call);
}

static void
cmd_cancel(struct control *ctl, struct client *cl, const cJSON *req)
{
	change(ctl, cl, req, B_CANCEL);
}

static void
cmd_capture(struct control *ctl, struct client *cl, const cJSON *req)
{
	change(ctl, cl, req, B_CAPTURE);
}

static void
cmd_stats(struct control *ctl, struct client *cl, const cJSON *req)
{
	cJSON *st, *o;

	(void)req;
	if (ctl->stats == NULL || (st = ctl->stats(ctl->stats_arg)) == NULL) {
		control_block_error(cl->rq, "internal", "no statistics");
		return;
	}
	if ((o = control_block_resp(cl->rq, true)) != NULL)
		cJSON_AddItemToObject(o, "stats", st);
	else
		cJSON_Delete(st);
	control_block_reply(cl->rq, o);
}

/* ------------------------------------------------------------------ */
/* subscribe */

static void
cmd_subscribe(struct control *ctl, struct client *cl, const cJSON *req)
{
	int64_t last = store_last_seq(ctl->store), since = 0;
	int has;
	cJSON *o;

	if (cl->subscribed) {
		control_block_error(cl->rq, "bad_request", "already subscribed");
		return;
	}
	if ((has = field_int(cl, req, "since", 0, INT64_MAX, &since)) == -1)
		return;
	cl->subscribed = true;
	cl->next_sub = ctl->subs;
	ctl->subs = cl;
	cl->sub_seq = has ? since : last;
	cl->caught_up = cl->sub_seq >= last;
	control_conn_stream(cl->conn);
	o = control_block_resp(cl->rq, true);
	cJSON_AddBoolToObject(o, "subscribed", true);
	jsonnum_add(o, "lastSeq", last);
	control_block_reply(cl->rq, o);
}

static int
feed_line(void *arg, int64_t seq, const char *status, const char *json, int jsonlen)
{
	struct client *cl = arg;

	(void)status;
	if (control_conn_append(cl->conn, json, (size_t)jsonlen) == -1 ||
	    control_conn_append(cl->conn, "\n", 1) == -1)
		return -1;
	cl->sub_seq = seq;
	/* Stop a pull just past SUB_LOW. */
	return control_conn_unsent(cl->conn) >= SUB_LOW;
}

/*
 * Drops the lines not yet begun (a line partly sent is finished: never a
 * torn line), says lagging instead, and closes.  Not an answer to a request:
 * no "id", and a request in flight on the connection simply dies with it.
 */
static void
send_lagging(struct client *cl)
{
	char msg[128];
	cJSON *o;

	control_conn_drop_unbegun(cl->conn);
	log_info("control: a subscriber fell more than %d outcomes behind: dropped",
	    LAG_MAX);
	if ((o = cJSON_CreateObject()) != NULL) {
		cJSON_AddBoolToObject(o, "ok", false);
		cJSON_AddStringToObject(o, "error", "lagging");
		snprintf(msg, sizeof(msg), "fell more than %d outcomes behind; subscribe "
		    "again with since = the last seq received", LAG_MAX);
		cJSON_AddStringToObject(o, "message", msg);
	}
	control_conn_send_json(cl->conn, o);
	control_conn_close_after(cl->conn);
}

static bool
feeding(const struct client *cl)
{
	return cl->subscribed && !control_conn_closing(cl->conn) &&
	    !control_conn_dead(cl->conn);
}

/* A subscriber's turn: what it has not been sent yet, while it reads. */
static void
feed(struct control *ctl, struct client *cl)
{
	int64_t last = store_last_seq(ctl->store);
	int n;

	/*
	 * Too far behind: live and LAG_MAX outcomes back, or (caught up or
	 * not: a backlog reader too) not reading a byte for LAG_STALL_MS.
	 */
	if (control_conn_unsent(cl->conn) >= SUB_LOW &&
	    ((cl->caught_up && last - cl->sub_seq > LAG_MAX) ||
	    control_conn_stalled_ms(cl->conn, util_mono_ms()) >= LAG_STALL_MS)) {
		send_lagging(cl);
		return;
	}
	cl->more = false;
	for (int round = 0; round < FEED_ROUNDS; round++) {
		if (!feeding(cl) || cl->sub_seq >= last)
			return;
		if (control_conn_unsent(cl->conn) >= SUB_LOW) {
			cl->more = true;
			return;
		}
		n = store_reader_outcomes(ctl->reader, cl->sub_seq, PULL_BATCH,
		    feed_line, cl);
		if (n <= 0) {
			if (n == -1)
				ctl->again = true;
			return;
		}
		if (cl->sub_seq >= last)
			cl->caught_up = true;
		control_conn_flush(cl->conn);
	}
	/*
	 * Rounds used up with more to send: another turn at once, or (its
	 * buffer full) as soon as the write below empties it, even if that
	 * write takes all of it and no POLLOUT is asked for.
	 */
	if (!control_conn_dead(cl->conn) && cl->sub_seq < last) {
		if (control_conn_unsent(cl->conn) < SUB_LOW)
			ctl->again = true;
		else
			cl->more = true;
	}
}

/*
 * After every connection's turn and its write: a subscriber left behind
 * whose buffer went below SUB_LOW needs another turn now.  One whose buffer
 * is still fuller waits for POLLOUT (the transport asks for it).
 */
static bool
subs_hungry(const struct control *ctl)
{
	for (const struct client *cl = ctl->subs; cl != NULL; cl = cl->next_sub)
		if (cl->more && feeding(cl) && control_conn_unsent(cl->conn) < SUB_LOW)
			return true;
	return false;
}

static void
subs_remove(struct control *ctl, struct client *cl)
{
	for (struct client **p = &ctl->subs; *p != NULL; p = &(*p)->next_sub)
		if (*p == cl) {
			*p = cl->next_sub;
			return;
		}
}

/* ------------------------------------------------------------------ */
/* Dispatch */

static const struct {
	const char	*name;
	void		(*fn)(struct control *, struct client *, const cJSON *);
} commands[] = {
	{ "ping", cmd_ping },
	{ "get", cmd_get },
	{ "find", cmd_find },
	{ "track", cmd_track },
	{ "wait", cmd_wait },
	{ "pending", cmd_pending },
	{ "subscribe", cmd_subscribe },
	{ "reconcile", cmd_reconcile },
	{ "stats", cmd_stats },
	{ "dead", cmd_dead },
	{ "replay", cmd_replay },
	{ "pay", cmd_pay },
	{ "cancel", cmd_cancel },
	{ "capture", cmd_capture },
};

/*
 * Starts the request: its "id" is echoed in the answer, an integer id as
 * the very literal that was sent (not through a double).
 */
static void
begin_request(struct client *cl, const cJSON *req, const char *line, size_t len)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	char num[32];
	cJSON *raw = NULL;
	int64_t v;

	cl->line = line;
	cl->linelen = len;
	if (cJSON_IsNumber(id) && jsonnum_value(line, len, req, id, &v) == JSONNUM_OK) {
		snprintf(num, sizeof(num), "%lld", (long long)v);
		raw = cJSON_CreateRaw(num);
	}
	control_block_begin(cl->rq, raw != NULL ? raw : id);
	cJSON_Delete(raw);
}

/* One request line (without its '\n'). */
static void
handle_line(struct control *ctl, struct client *cl, const char *line, size_t len)
{
	const char *why;
	const cJSON *cmd;
	cJSON *req;
	size_t i;

	switch (control_line_parse(line, len, &req, &why)) {
	case CONTROL_LINE_BLANK:
		return;		/* a blank line asks nothing */
	case CONTROL_LINE_BAD:
		control_block_error(cl->rq, "bad_request", "%s", why);
		return;
	case CONTROL_LINE_OK:
		break;
	}
	begin_request(cl, req, line, len);
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsString(cmd)) {
		control_block_error(cl->rq, "bad_request", "cmd must be a string");
		cJSON_Delete(req);
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd->valuestring, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		char name[64];
		size_t n;

		/* Quote at most a bit of it back: it is the client's text, cut
		 * on a character boundary to stay UTF-8. */
		snprintf(name, sizeof(name), "%s", cmd->valuestring);
		n = strlen(name);
		while (n > 0 && !util_utf8_valid(name, n))
			name[--n] = '\0';
		control_block_error(cl->rq, "unknown_command",
		    "unknown command \"%s\"", name);
	} else
		commands[i].fn(ctl, cl, req);
	cl->line = NULL;
	cl->linelen = 0;
	cJSON_Delete(req);
}

static int
client_open(struct control *ctl, struct control_conn *conn)
{
	struct client *cl;

	if ((cl = calloc(1, sizeof(*cl))) == NULL ||
	    (cl->rq = control_block_open(ctl->blk, conn)) == NULL) {
		log_warn("control: accept");
		free(cl);
		return -1;
	}
	cl->conn = conn;
	control_conn_set_data(conn, cl);
	return 0;
}

/* The loop's one way up (control_upcall_fn). */
static int
control_event(void *arg, const struct control_ev *ev)
{
	struct control *ctl = arg;
	struct client *cl = ev->conn != NULL ? control_conn_data(ev->conn) : NULL;
	int t;

	switch (ev->why) {
	case CTL_OPEN:
		return client_open(ctl, ev->conn);
	case CTL_LINE:
		handle_line(ctl, cl, ev->line, ev->len);
		break;
	case CTL_CONN:
		if (feeding(cl))
			feed(ctl, cl);
		break;
	case CTL_CLOSE:
		if (cl->subscribed)
			subs_remove(ctl, cl);
		control_block_close(cl->rq);
		free(cl);
		break;
	case CTL_READY:
		control_block_ready(ctl->blk, ev->fd);
		break;
	case CTL_TURN:
		control_block_turn(ctl->blk, ev->now);
		break;
	case CTL_SLEEP:
		t = ctl->again || subs_hungry(ctl) ? 0 :
		    control_block_sleep(ctl->blk, ev->now);
		ctl->again = false;
		return t;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Start and stop */

struct control *
control_start(const struct control_params *p, char *err, size_t errlen)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->store = p->store;
	ctl->stats = p->stats;
	ctl->stats_arg = p->stats_arg;
	ctl->rc = p->reconciler;
	ctl->gw = p->gateway;
	if (p->instance != NULL && (ctl->instance = strdup(p->instance)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((ctl->io = control_io_open(p->path, p->mode, control_event, ctl, err,
	    errlen)) == NULL ||
	    (ctl->reader = store_reader_open(p->store, err, errlen)) == NULL ||
	    (ctl->blk = control_block_new(p->store, ctl->reader, err, errlen)) == NULL)
		goto fail;
	control_io_set_idle(ctl->io, 1000LL * p->idle_timeout);
	if (control_io_watch(ctl->io, control_block_fd(ctl->blk, 0)) == -1 ||
	    control_io_watch(ctl->io, control_block_fd(ctl->blk, 1)) == -1) {
		snprintf(err, errlen, "control: too many fds to watch");
		goto fail;
	}
	if (control_io_start(ctl->io, err, errlen) == -1)
		goto fail;
	log_info("control socket %s (mode %04o)", p->path, (unsigned)p->mode);
	return ctl;
fail:
	control_free(ctl);
	return NULL;
}

bool
control_alive(struct control *ctl)
{
	return control_io_alive(ctl->io);
}

int
control_clients(struct control *ctl)
{
	return control_io_clients(ctl->io);
}

void
control_stop(struct control *ctl)
{
	if (ctl == NULL || ctl->stopped)
		return;
	ctl->stopped = true;
	/* The loop first: nothing is blocked on the state it drops. */
	control_io_stop(ctl->io);
	control_block_stop(ctl->blk);
}

void
control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	control_stop(ctl);
	control_io_free(ctl->io);
	control_block_free(ctl->blk);
	store_reader_free(ctl->reader);
	free(ctl->instance);
	free(ctl);
}
