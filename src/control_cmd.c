/*
 * control_cmd.c - the requests of the control socket (SPEC §4): parsing and
 * checking a line, running its command, and the answers.
 *
 * Runs on the control thread only (see control.c).  A command either
 * answers at once, reading through the loop's own read connection, or
 * leaves its client busy: wait until an outcome or its deadline (control.c
 * matches them), track and replay until the writer has committed them,
 * reconcile until the reconciler answers.  Those late answers come back
 * through control_answer().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "control_int.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_read.h"
#include "util.h"
#include "version.h"

/* ------------------------------------------------------------------ */
/* Answers */

/* A response to the client's current request: "ok", then its "id". */
static cJSON *
resp_new(struct client *cl, bool ok)
{
	cJSON *o;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddBoolToObject(o, "ok", ok);
	if (cl->req_id != NULL)
		cJSON_AddItemToObject(o, "id", cJSON_Duplicate(cl->req_id, true));
	return o;
}

/* Ends the current request: the next line may be read. */
static void
request_done(struct control *ctl, struct client *cl)
{
	if (cl->busy == B_WAIT)
		ctl->nwaiters--;
	cl->busy = B_NONE;
	free(cl->wait_id);
	cl->wait_id = NULL;
	cJSON_Delete(cl->req_id);
	cl->req_id = NULL;
}

static void
reply(struct control *ctl, struct client *cl, cJSON *o)
{
	control_send_json(cl, o);
	request_done(ctl, cl);
}

void
control_reply_error(struct control *ctl, struct client *cl, const char *code,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((o = resp_new(cl, false)) != NULL) {
		cJSON_AddStringToObject(o, "error", code);
		cJSON_AddStringToObject(o, "message", msg);
	}
	reply(ctl, cl, o);
}

/*
 * {"ok":true,"payment":PAYMENT} for id, or not_found / internal.  changed
 * -1: no "changed" key; else its value.
 */
static void
reply_payment(struct control *ctl, struct client *cl, const char *id, int changed)
{
	cJSON *p, *o;
	int r;

	if ((r = store_reader_payment(ctl->reader, id, &p)) == -1) {
		control_reply_error(ctl, cl, "internal", "cannot read the database");
		return;
	}
	if (r == 0) {
		control_reply_error(ctl, cl, "not_found", "no payment %s", id);
		return;
	}
	if ((o = resp_new(cl, true)) != NULL) {
		cJSON_AddItemToObject(o, "payment", p);
		if (changed != -1)
			cJSON_AddBoolToObject(o, "changed", changed);
	} else
		cJSON_Delete(p);
	reply(ctl, cl, o);
}

/* ------------------------------------------------------------------ */
/* Request fields */

/*
 * A string field.  Returns 1 with *v set, 0 when absent or null (when
 * optional), -1 (the client was answered bad_request) otherwise.
 */
static int
field_str(struct control *ctl, struct client *cl, const cJSON *req,
    const char *key, bool required, const char **v)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, key);

	*v = NULL;
	if (f == NULL || cJSON_IsNull(f)) {
		if (!required)
			return 0;
		control_reply_error(ctl, cl, "bad_request", "%s is required", key);
		return -1;
	}
	if (!cJSON_IsString(f) || f->valuestring[0] == '\0' ||
	    strlen(f->valuestring) > MAX_ID_LEN) {
		control_reply_error(ctl, cl, "bad_request", "%s must be a non-empty string "
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
field_num(struct control *ctl, struct client *cl, const cJSON *req,
    const char *key, bool integer, double min, double max, double *v)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, key);
	double d;

	if (f == NULL || cJSON_IsNull(f))
		return 0;
	if (!cJSON_IsNumber(f)) {
		control_reply_error(ctl, cl, "bad_request", "%s must be a number", key);
		return -1;
	}
	d = f->valuedouble;
	if (!(d >= min && d <= max) || (integer && d != (double)(int64_t)d)) {
		control_reply_error(ctl, cl, "bad_request", "%s must be %s from %.0f to %.0f",
		    key, integer ? "an integer" : "a number", min, max);
		return -1;
	}
	*v = d;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Commands */

static void
cmd_ping(struct control *ctl, struct client *cl, const cJSON *req)
{
	cJSON *o = resp_new(cl, true);

	(void)req;
	cJSON_AddStringToObject(o, "version", VINR_VERSION);
	reply(ctl, cl, o);
}

static void
cmd_get(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id;

	if (field_str(ctl, cl, req, "paymentId", true, &id) == 1)
		reply_payment(ctl, cl, id, -1);
}

static void
reply_list(struct control *ctl, struct client *cl, const char *key, cJSON *arr)
{
	cJSON *o;

	if (arr == NULL) {
		control_reply_error(ctl, cl, "internal", "cannot read the database");
		return;
	}
	if ((o = resp_new(cl, true)) != NULL)
		cJSON_AddItemToObject(o, key, arr);
	else
		cJSON_Delete(arr);
	reply(ctl, cl, o);
}

static void
cmd_find(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *ref;

	if (field_str(ctl, cl, req, "reference", true, &ref) == 1)
		reply_list(ctl, cl, "payments", store_reader_find(ctl->reader, ref));
}

static void
cmd_pending(struct control *ctl, struct client *cl, const cJSON *req)
{
	double s = 0;

	if (field_num(ctl, cl, req, "olderThan", false, 0, 1e9, &s) == -1)
		return;
	reply_list(ctl, cl, "payments", store_reader_pending(ctl->reader, (int64_t)s));
}

static void
cmd_dead(struct control *ctl, struct client *cl, const cJSON *req)
{
	(void)req;
	reply_list(ctl, cl, "dead", store_reader_dead(ctl->reader));
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
	struct op *op;
	double amount;
	int has_amount;

	if (field_str(ctl, cl, req, "paymentId", true, &id) != 1 ||
	    field_str(ctl, cl, req, "terminalId", false, &term) == -1 ||
	    field_str(ctl, cl, req, "reference", false, &ref) == -1 ||
	    field_str(ctl, cl, req, "currency", false, &cur) == -1 ||
	    (has_amount = field_num(ctl, cl, req, "amount", true, 0, MAX_NUMBER,
	    &amount)) == -1)
		return;
	if ((op = control_op_new(ctl, cl, B_TRACK)) == NULL)
		return;
	if (dup_field(id, &op->pay.id) == -1 || dup_field(term, &op->pay.terminal_id) == -1 ||
	    dup_field(ref, &op->pay.reference) == -1 ||
	    dup_field(cur, &op->pay.currency) == -1) {
		control_op_free(op);
		control_reply_error(ctl, cl, "internal", "out of memory");
		return;
	}
	op->pay.has_amount = has_amount == 1;
	op->pay.amount = has_amount == 1 ? (int64_t)amount : 0;
	control_op_register(ctl, op);
	if (store_track_async(ctl->store, &op->pay, control_store_done, op) == -1) {
		control_op_cancel(ctl, op);
		control_reply_error(ctl, cl, "internal", "the store is not accepting writes");
		return;
	}
	cl->busy = B_TRACK;
}

static void
cmd_replay(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *sink;
	struct op *op;
	double seq;

	if (field_str(ctl, cl, req, "sink", true, &sink) != 1)
		return;
	switch (field_num(ctl, cl, req, "seq", true, 1, MAX_NUMBER, &seq)) {
	case -1:
		return;
	case 0:
		control_reply_error(ctl, cl, "bad_request", "seq is required");
		return;
	}
	if ((op = control_op_new(ctl, cl, B_REPLAY)) == NULL)
		return;
	if ((op->id = strdup(sink)) == NULL) {
		control_op_free(op);
		control_reply_error(ctl, cl, "internal", "out of memory");
		return;
	}
	op->seq = (int64_t)seq;
	control_op_register(ctl, op);
	if (store_replay_async(ctl->store, op->id, op->seq, control_store_done, op) == -1) {
		control_op_cancel(ctl, op);
		control_reply_error(ctl, cl, "internal", "the store is not accepting writes");
		return;
	}
	cl->busy = B_REPLAY;
}

static void
cmd_reconcile(struct control *ctl, struct client *cl, const cJSON *req)
{
	const char *id;
	struct op *op;

	if (field_str(ctl, cl, req, "paymentId", true, &id) != 1)
		return;
	if (ctl->rc == NULL || ctl->rc->reconcile == NULL) {
		control_reply_error(ctl, cl, "reconciler_disabled",
		    "the reconciler is disabled: no API key is configured");
		return;
	}
	if ((op = control_op_new(ctl, cl, B_RECONCILE)) == NULL)
		return;
	if ((op->id = strdup(id)) == NULL) {
		control_op_free(op);
		control_reply_error(ctl, cl, "internal", "out of memory");
		return;
	}
	control_op_register(ctl, op);
	if (ctl->rc->reconcile(ctl->rc->arg, op->id, op) == -1) {
		control_op_cancel(ctl, op);
		control_reply_error(ctl, cl, "internal",
		    "the reconciler cannot take the request");
		return;
	}
	cl->busy = B_RECONCILE;
}

/* The answer of a wait: the payment, and timeout unless it has an outcome. */
void
control_reply_wait(struct control *ctl, struct client *cl, bool timed_out)
{
	cJSON *p = NULL, *o;

	if (store_reader_payment(ctl->reader, cl->wait_id, &p) == -1) {
		control_reply_error(ctl, cl, "internal", "cannot read the database");
		return;
	}
	if ((o = resp_new(cl, !timed_out)) == NULL) {
		cJSON_Delete(p);
		reply(ctl, cl, NULL);
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
	reply(ctl, cl, o);
}

static void
cmd_wait(struct control *ctl, struct client *cl, const cJSON *req)
{
	const cJSON *st;
	const char *id;
	cJSON *p;
	double timeout = WAIT_DEFAULT_S;
	int r;

	if (field_str(ctl, cl, req, "paymentId", true, &id) != 1 ||
	    field_num(ctl, cl, req, "timeout", false, 0, WAIT_MAX_S, &timeout) == -1)
		return;
	if ((r = store_reader_payment(ctl->reader, id, &p)) == -1) {
		control_reply_error(ctl, cl, "internal", "cannot read the database");
		return;
	}
	if (r == 1) {
		st = cJSON_GetObjectItemCaseSensitive(p, "status");
		if (cJSON_IsString(st) &&
		    pay_status_is_outcome(pay_status_parse(st->valuestring))) {
			cJSON *o = resp_new(cl, true);

			if (o != NULL)
				cJSON_AddItemToObject(o, "payment", p);
			else
				cJSON_Delete(p);
			reply(ctl, cl, o);
			return;
		}
		cJSON_Delete(p);
	}
	if ((cl->wait_id = strdup(id)) == NULL) {
		control_reply_error(ctl, cl, "internal", "out of memory");
		return;
	}
	cl->busy = B_WAIT;
	cl->wait_until = util_mono_ms() + (int64_t)(timeout * 1000);
	ctl->nwaiters++;
}

static void
cmd_subscribe(struct control *ctl, struct client *cl, const cJSON *req)
{
	int64_t last = store_last_seq(ctl->store);
	double since = 0;
	int has;
	cJSON *o;

	if (cl->subscribed) {
		control_reply_error(ctl, cl, "bad_request", "already subscribed");
		return;
	}
	if ((has = field_num(ctl, cl, req, "since", true, 0, MAX_NUMBER, &since)) == -1)
		return;
	cl->subscribed = true;
	cl->sub_seq = has ? (int64_t)since : last;
	cl->caught_up = cl->sub_seq >= last;
	o = resp_new(cl, true);
	cJSON_AddBoolToObject(o, "subscribed", true);
	cJSON_AddNumberToObject(o, "lastSeq", (double)last);
	reply(ctl, cl, o);
}

static void
cmd_stats(struct control *ctl, struct client *cl, const cJSON *req)
{
	cJSON *o, *st;

	(void)req;
	if (ctl->stats == NULL || (st = ctl->stats(ctl->stats_arg)) == NULL) {
		control_reply_error(ctl, cl, "internal", "no stats");
		return;
	}
	o = resp_new(cl, true);
	cJSON_AddItemToObject(o, "stats", st);
	reply(ctl, cl, o);
}

/* ------------------------------------------------------------------ */
/* Dispatch, and the late answers */

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
};

/* One request line (without its '\n'). */
void
control_handle_line(struct control *ctl, struct client *cl, const char *line, size_t len)
{
	const char *end = NULL;
	const cJSON *id, *cmd;
	cJSON *req;
	size_t i;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
	    line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return;		/* a blank line asks nothing */
	req = cJSON_ParseWithLengthOpts(line, len, &end, false);
	if (req != NULL)
		while (end < line + len && (*end == ' ' || *end == '\t' || *end == '\r'))
			end++;
	if (req == NULL || end != line + len || !cJSON_IsObject(req)) {
		cJSON_Delete(req);
		control_reply_error(ctl, cl, "bad_request",
		    "a request is one JSON object per line");
		return;
	}
	cJSON_Delete(cl->req_id);
	cl->req_id = NULL;
	if ((id = cJSON_GetObjectItemCaseSensitive(req, "id")) != NULL)
		cl->req_id = cJSON_Duplicate(id, true);
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsString(cmd)) {
		control_reply_error(ctl, cl, "bad_request", "cmd must be a string");
		cJSON_Delete(req);
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd->valuestring, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		char name[64];

		/* Quote at most a bit of it back: it is the client's text. */
		snprintf(name, sizeof(name), "%s", cmd->valuestring);
		control_reply_error(ctl, cl, "unknown_command",
		    "unknown command \"%s\"", name);
	} else
		commands[i].fn(ctl, cl, req);
	cJSON_Delete(req);
}

void
control_answer(struct control *ctl, struct client *cl, struct op *op)
{
	switch (op->kind) {
	case B_TRACK:
		if (op->rc != 0)
			control_reply_error(ctl, cl, "internal",
			    "storage unavailable: not tracked");
		else
			reply_payment(ctl, cl, op->pay.id, -1);
		break;
	case B_REPLAY:
		if (op->rc == 1)
			control_reply_error(ctl, cl, "not_found", "no dead letter %s %lld",
			    op->id, (long long)op->seq);
		else if (op->rc != 0)
			control_reply_error(ctl, cl, "internal",
			    "storage unavailable: not replayed");
		else
			reply(ctl, cl, resp_new(cl, true));
		break;
	case B_RECONCILE:
		if (op->error[0] != '\0')
			control_reply_error(ctl, cl, op->error, "%s", op->message);
		else
			reply_payment(ctl, cl, op->id, op->changed);
		break;
	default:
		break;
	}
}
