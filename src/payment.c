/*
 * payment.c - the state machine of SPEC §2 and the outcome line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "payment.h"

static const char *const status_names[] = {
	[PAY_NONE] = NULL,
	[PAY_PENDING] = "pending",
	[PAY_PROCESSING] = "processing",
	[PAY_AUTHORIZED] = "authorized",
	[PAY_COMPLETED] = "completed",
	[PAY_FAILED] = "failed",
	[PAY_CANCELLED] = "cancelled",
};

enum pay_status
pay_status_parse(const char *s)
{
	if (s == NULL)
		return PAY_NONE;
	for (int i = PAY_PENDING; i <= PAY_CANCELLED; i++)
		if (strcmp(s, status_names[i]) == 0)
			return (enum pay_status)i;
	return PAY_NONE;
}

const char *
pay_status_name(enum pay_status s)
{
	if (s < PAY_NONE || s > PAY_CANCELLED)
		return NULL;
	return status_names[s];
}

int
pay_status_rank(enum pay_status s)
{
	switch (s) {
	case PAY_PENDING:
		return 1;
	case PAY_PROCESSING:
		return 2;
	case PAY_AUTHORIZED:
		return 3;
	case PAY_COMPLETED:
	case PAY_FAILED:
	case PAY_CANCELLED:
		return 4;
	default:
		return 0;
	}
}

bool
pay_status_is_final(enum pay_status s)
{
	return pay_status_rank(s) == 4;
}

bool
pay_status_is_outcome(enum pay_status s)
{
	return pay_status_rank(s) >= 3;
}

/* Replaces *dst by a copy of src when src is known; keeps *dst otherwise. */
static int
merge_str(char **dst, const char *src)
{
	char *c;

	if (src == NULL)
		return 0;
	if ((c = strdup(src)) == NULL)
		return -1;
	free(*dst);
	*dst = c;
	return 0;
}

#define STR_FIELDS(X) X(id) X(terminal_id) X(reference) X(currency) \
	X(capture_method) X(entry_method) X(brand) X(last4) X(auth_code) \
	X(decline_code) X(created_at) X(status_at)

/*
 * Builds the merged payment in a scratch copy first, so that an allocation
 * failure half-way leaves cur as it was.
 */
static int
merge(struct payment *cur, const struct payment *in)
{
	struct payment m;

	if (payment_copy(&m, cur) == -1)
		return -1;
#define MERGE(f) if (merge_str(&m.f, in->f) == -1) goto fail;
	STR_FIELDS(MERGE)
#undef MERGE
	if (in->has_amount) {
		m.has_amount = true;
		m.amount = in->amount;
	}
	if (in->livemode != -1)
		m.livemode = in->livemode;
	m.status = in->status;
	/* amountCaptured: the object's value, else the stored one, else the
	 * amount once completed (SPEC §2). */
	if (in->has_amount_captured) {
		m.has_amount_captured = true;
		m.amount_captured = in->amount_captured;
	} else if (!m.has_amount_captured && m.status == PAY_COMPLETED &&
	    m.has_amount) {
		m.has_amount_captured = true;
		m.amount_captured = m.amount;
	}
	payment_release(cur);
	*cur = m;
	return 0;
fail:
	payment_release(&m);
	return -1;
}

int
payment_apply(struct payment *cur, const struct payment *in, enum pay_status *prev)
{
	int rc = pay_status_rank(cur->status), ri = pay_status_rank(in->status);

	if (cur->status != PAY_NONE && ri <= rc) {
		if (rc == 4 && ri == 4 && cur->status != in->status)
			return PAY_CONFLICT;
		return PAY_STALE;
	}
	*prev = cur->status;
	if (merge(cur, in) == -1)
		return -1;
	return PAY_TRANSITION;
}

int
payment_fill_missing(struct payment *dst, const struct payment *src)
{
#define FILL(f) if (dst->f == NULL && merge_str(&dst->f, src->f) == -1) return -1;
	STR_FIELDS(FILL)
#undef FILL
	if (!dst->has_amount && src->has_amount) {
		dst->has_amount = true;
		dst->amount = src->amount;
	}
	if (dst->livemode == -1)
		dst->livemode = src->livemode;
	return 0;
}

int
payment_copy(struct payment *dst, const struct payment *src)
{
	*dst = *src;
#define NUL(f) dst->f = NULL;
	STR_FIELDS(NUL)
#undef NUL
#define DUP(f) if (src->f != NULL && (dst->f = strdup(src->f)) == NULL) goto fail;
	STR_FIELDS(DUP)
#undef DUP
	return 0;
fail:
	payment_release(dst);
	return -1;
}

void
payment_release(struct payment *p)
{
	if (p == NULL)
		return;
#define FREE(f) free(p->f); p->f = NULL;
	STR_FIELDS(FREE)
#undef FREE
}

static void
add_str(cJSON *o, const char *k, const char *v)
{
	if (v != NULL)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

/*
 * Integers are printed by us: cJSON keeps numbers as doubles and prints
 * large ones in exponent form (9.00719925474099e+15), which integer
 * decoders refuse and which can change the value.
 */
static void
add_int(cJSON *o, const char *k, bool has, int64_t v)
{
	char num[32];

	if (has) {
		snprintf(num, sizeof(num), "%lld", (long long)v);
		cJSON_AddRawToObject(o, k, num);
	} else
		cJSON_AddNullToObject(o, k);
}

char *
payment_outcome_json(const struct payment *p, enum pay_status prev, int64_t seq,
    const char *event_id, const char *source, const char *occurred_at,
    const char *recorded_at)
{
	cJSON *o;
	char type[32], *s;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	snprintf(type, sizeof(type), "payment.%s", pay_status_name(p->status));
	add_int(o, "seq", true, seq);
	add_str(o, "type", type);
	add_str(o, "paymentId", p->id);
	add_str(o, "terminalId", p->terminal_id);
	add_str(o, "reference", p->reference);
	add_str(o, "status", pay_status_name(p->status));
	add_str(o, "previousStatus", pay_status_name(prev));
	add_int(o, "amount", p->has_amount, p->amount);
	add_int(o, "amountCaptured", p->has_amount_captured, p->amount_captured);
	add_str(o, "currency", p->currency);
	add_str(o, "captureMethod", p->capture_method);
	add_str(o, "entryMethod", p->entry_method);
	add_str(o, "brand", p->brand);
	add_str(o, "last4", p->last4);
	add_str(o, "authCode", p->auth_code);
	add_str(o, "declineCode", p->decline_code);
	add_str(o, "eventId", event_id);
	add_str(o, "source", source);
	if (p->livemode == -1)
		cJSON_AddNullToObject(o, "livemode");
	else
		cJSON_AddBoolToObject(o, "livemode", p->livemode);
	add_str(o, "occurredAt", occurred_at);
	add_str(o, "recordedAt", recorded_at);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}
