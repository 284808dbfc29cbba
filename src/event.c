/*
 * event.c - turns an authenticated body into a struct vinr_event.
 *
 * Every field's type is checked: an optional field of the wrong type is
 * treated as absent rather than refusing the event, because a 4xx only makes
 * VINR retry for days a delivery that will never get better.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "jsonnum.h"

static char *
dup_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return NULL;
	return strdup(v->valuestring);
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

/* The field whose vinr_key is key, or PAY_NFIELDS. */
static int
vinr_field(const char *key)
{
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (pay_fields[i].vinr_key != NULL && pay_fields[i].vinr_key[0] == key[0] &&
		    strcmp(pay_fields[i].vinr_key, key) == 0)
			return i;
	return PAY_NFIELDS;
}

/* Takes a string node's text (cJSON's malloc'ed copy) instead of copying it. */
static char *
take_string(cJSON *v)
{
	char *s = v->valuestring;

	v->valuestring = NULL;
	return s;
}

/*
 * Fills p from a payment object, the fields the table reads from VINR's
 * object (pay_fields[].vinr_key), in one pass over its members: the first
 * member of each name counts, as with cJSON_GetObjectItemCaseSensitive().
 * Text is taken from the tree, not copied.  Integers are read exactly from
 * the body (jsonnum.h): an amount must be an integer within int64, so 12.5
 * or 1e300 is no amount in minor units and counts as absent.  Returns 0 or
 * -1 (allocation).
 */
static int
parse_payment(const char *body, size_t len, const cJSON *root, const cJSON *obj,
    int livemode, struct payment *p)
{
	cJSON *vals[PAY_NFIELDS + 1] = { NULL }, *v;
	const char *tk;
	int64_t n;
	int i;

	payment_init(p);
	p->livemode = livemode;
	for (v = obj->child; v != NULL; v = v->next)
		if (v->string != NULL && vals[i = vinr_field(v->string)] == NULL)
			vals[i] = v;
	for (i = 0; i < PAY_NFIELDS; i++) {
		if ((v = vals[i]) == NULL)
			continue;
		if (pay_fields[i].type == PAY_FT_TEXT) {
			if (cJSON_IsString(v) && v->valuestring != NULL)
				pay_field_take_text(p, i, take_string(v));
		} else if (pay_field_is_text(i)) {
			if (cJSON_IsString(v))
				pay_field_set_text(p, i, v->valuestring);
		} else if (pay_fields[i].type == PAY_FT_BOOL) {
			if (cJSON_IsBool(v))
				pay_field_set_int(p, i, true, cJSON_IsTrue(v));
		} else if (jsonnum_value(body, len, root, v, &n) == JSONNUM_OK)
			pay_field_set_int(p, i, true, n);
	}
	if ((tk = status_time_key(p->status)) != NULL && cJSON_HasObjectItem(obj, tk) &&
	    (p->status_at = dup_string(obj, tk)) == NULL &&
	    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, tk)))
		goto fail;
	return 0;
fail:
	payment_release(p);
	return -1;
}

enum event_err
event_parse(const char *body, size_t len, const char *fallback_id, struct vinr_event *ev)
{
	cJSON *root;
	cJSON *id, *type;
	const cJSON *data, *obj, *lm;
	int livemode = -1;
	enum event_err err = EVENT_INVALID_EVENT;
	const char *end = NULL;

	memset(ev, 0, sizeof(*ev));
	payment_init(&ev->pay);
	/*
	 * JSON has no raw control characters, NUL least of all (cJSON would
	 * cut a string at it, and PostgreSQL refuses it in text): invalid.
	 */
	if (memchr(body, '\0', len) != NULL)
		return EVENT_INVALID_JSON;
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
		ev->id = take_string(id);
	if (ev->id == NULL || !cJSON_IsString(type) || type->valuestring[0] == '\0')
		goto fail;
	ev->type = take_string(type);
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
		if (parse_payment(body, len, root, obj, livemode, &ev->pay) == -1)
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
	payment_init(&ev->pay);
}
