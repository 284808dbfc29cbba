/*
 * event.c - turns an authenticated body into a struct vinr_event.
 *
 * Every field's type is checked: an optional field of the wrong type is
 * treated as absent rather than refusing the event, because a 4xx only makes
 * VINR retry for days a delivery that will never get better.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"

static char *
dup_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return NULL;
	return strdup(v->valuestring);
}

/* Integers only: 12.5 or 1e300 is no amount in minor units. */
static bool
get_int(const cJSON *o, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
		return false;
	*out = (int64_t)d;
	return true;
}

static const char *
status_time_key(enum pay_status s)
{
	switch (s) {
	case PAY_AUTHORIZED:
		return "authorizedAt";
	case PAY_COMPLETED:
		return "completedAt";
	case PAY_FAILED:
		return "failedAt";
	case PAY_CANCELLED:
		return "cancelledAt";
	default:
		return NULL;
	}
}

/* Fills pay from a payment object; returns 0 or -1 (allocation). */
static int
parse_payment(const cJSON *obj, int livemode, struct payment *p)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
	const char *tk;

	memset(p, 0, sizeof(*p));
	p->livemode = livemode;
	p->status = cJSON_IsString(st) ? pay_status_parse(st->valuestring) : PAY_NONE;
#define S(field, key) \
	if (cJSON_HasObjectItem(obj, key) && (p->field = dup_string(obj, key)) == NULL && \
	    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, key))) goto fail;
	S(id, "id")
	S(terminal_id, "terminalId")
	S(reference, "reference")
	S(currency, "currency")
	S(capture_method, "captureMethod")
	S(entry_method, "entryMethod")
	S(brand, "brand")
	S(last4, "last4")
	S(auth_code, "authCode")
	S(decline_code, "declineCode")
	S(created_at, "createdAt")
#undef S
	if ((tk = status_time_key(p->status)) != NULL && cJSON_HasObjectItem(obj, tk) &&
	    (p->status_at = dup_string(obj, tk)) == NULL &&
	    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, tk)))
		goto fail;
	p->has_amount = get_int(obj, "amount", &p->amount);
	p->has_amount_captured = get_int(obj, "amountCaptured", &p->amount_captured);
	return 0;
fail:
	payment_release(p);
	return -1;
}

enum event_err
event_parse(const char *body, size_t len, const char *fallback_id, struct vinr_event *ev)
{
	cJSON *root;
	const cJSON *id, *type, *data, *obj, *lm;
	int livemode = -1;
	enum event_err err = EVENT_INVALID_EVENT;
	const char *end = NULL;

	memset(ev, 0, sizeof(*ev));
	if ((root = cJSON_ParseWithLengthOpts(body, len, &end, 0)) == NULL)
		return EVENT_INVALID_JSON;
	/* One JSON value and nothing after it but whitespace. */
	for (; end < body + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			cJSON_Delete(root);
			return EVENT_INVALID_JSON;
		}
	if (!cJSON_IsObject(root))
		goto fail;
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (id == NULL && fallback_id != NULL && *fallback_id != '\0')
		ev->id = strdup(fallback_id);
	else if (cJSON_IsString(id) && id->valuestring[0] != '\0')
		ev->id = strdup(id->valuestring);
	if (ev->id == NULL || !cJSON_IsString(type) || type->valuestring[0] == '\0')
		goto fail;
	if ((ev->type = strdup(type->valuestring)) == NULL)
		goto fail;
	ev->created_at = dup_string(root, "createdAt");
	lm = cJSON_GetObjectItemCaseSensitive(root, "livemode");
	if (cJSON_IsBool(lm))
		livemode = cJSON_IsTrue(lm);

	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	obj = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "object") : NULL;
	if (strncmp(ev->type, "terminal_payment.", 17) != 0 || ev->type[17] == '\0')
		ev->ignore_reason = "not a terminal_payment event";
	else if (!cJSON_IsObject(obj))
		ev->ignore_reason = "no data.object";
	else {
		if (parse_payment(obj, livemode, &ev->pay) == -1)
			goto fail;
		if (ev->pay.id == NULL || ev->pay.id[0] == '\0')
			ev->ignore_reason = "no data.object.id";
		else if (ev->pay.status == PAY_NONE)
			ev->ignore_reason = "unknown data.object.status";
	}
	cJSON_Delete(root);
	return EVENT_OK;
fail:
	cJSON_Delete(root);
	event_release(ev);
	return err;
}

void
event_release(struct vinr_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->id);
	free(ev->type);
	free(ev->created_at);
	payment_release(&ev->pay);
	memset(ev, 0, sizeof(*ev));
	ev->pay.livemode = -1;
}
