/*
 * api_event.c - see api_event.h.  Used by the reconciler's thread and the
 * gateway's; no state of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_event.h"
#include "event.h"
#include "store.h"
#include "util.h"

/* The envelope of SPEC §1.1 around VINR's object, as a new string. */
static char *
envelope(const cJSON *obj, const char *body, const char *evid, const char *status)
{
	char type[64], now[TS_LEN], *out;
	const cJSON *live = cJSON_GetObjectItemCaseSensitive(obj, "livemode");
	cJSON *env;

	snprintf(type, sizeof(type), "terminal_payment.%s", status);
	util_rfc3339(util_now_ms(), now);
	if ((env = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(env, "id", evid);
	cJSON_AddStringToObject(env, "object", "event");
	cJSON_AddStringToObject(env, "type", type);
	cJSON_AddStringToObject(env, "createdAt", now);
	if (cJSON_IsBool(live))
		cJSON_AddItemToObject(env, "livemode", cJSON_Duplicate(live, 0));
	/*
	 * VINR's object goes in as the bytes it sent, not re-printed from
	 * cJSON's doubles: an amount past 2^53 stays exact (event.c reads
	 * integers from the text).
	 */
	cJSON_AddRawToObject(cJSON_AddObjectToObject(env, "data"), "object", body);
	out = cJSON_PrintUnformatted(env);
	cJSON_Delete(env);
	return out;
}

int
api_event_apply(struct store *s, const char *body, size_t len, struct api_event *ae)
{
	const cJSON *st, *id;
	cJSON *obj;
	struct vinr_event ev;
	struct store_ingest in = { 0 };
	char evid[512], *env = NULL, *text = NULL;
	const char *end = NULL;
	int rc = -1;

	ae->changed = false;
	ae->seq = 0;
	ae->payment_id[0] = ae->status[0] = '\0';
	if ((obj = cJSON_ParseWithLengthOpts(body, len, &end, false)) == NULL ||
	    !cJSON_IsObject(obj) || end + strspn(end, " \t\r\n") != body + len)
		goto out;
	st = cJSON_GetObjectItemCaseSensitive(obj, "status");
	id = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (!cJSON_IsString(id) || id->valuestring[0] == '\0' ||
	    strlen(id->valuestring) >= sizeof(ae->payment_id) ||
	    (ae->expect_id != NULL && strcmp(id->valuestring, ae->expect_id) != 0) ||
	    !cJSON_IsString(st) || pay_status_parse(st->valuestring) == PAY_NONE)
		goto out;
	snprintf(ae->payment_id, sizeof(ae->payment_id), "%s", id->valuestring);
	snprintf(ae->status, sizeof(ae->status), "%s", st->valuestring);
	snprintf(evid, sizeof(evid), "%s_%s_%s", ae->prefix, ae->payment_id, ae->status);
	/* The raw text must be NUL-terminated for cJSON_AddRawToObject. */
	if ((text = strndup(body, len)) == NULL ||
	    (env = envelope(obj, text, evid, ae->status)) == NULL ||
	    event_parse(env, strlen(env), NULL, &ev) != EVENT_OK)
		goto out;
	in.ev = &ev;
	in.body = env;
	in.bodylen = strlen(env);
	in.source = ae->source;
	in.pay_key = ae->pay_key;
	store_ingest(s, &in);
	if (in.result == INGEST_UNAVAILABLE)
		rc = -2;
	else {
		ae->changed = in.result == INGEST_ACCEPTED && in.decision == PAY_TRANSITION;
		ae->seq = in.seq;
		rc = 0;
	}
	event_release(&ev);
out:
	free(text);
	free(env);
	cJSON_Delete(obj);
	return rc;
}
