/*
 * payreq.c - see payreq.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "payreq.h"

static const char *const state_names[] = {
	[PR_NONE] = NULL,
	[PR_SENDING] = "sending",
	[PR_CREATED] = "created",
	[PR_UNKNOWN] = "unknown",
	[PR_NOT_CREATED] = "not_created",
};

const char *
payreq_state_name(enum payreq_state s)
{
	if (s < PR_NONE || s > PR_NOT_CREATED)
		return NULL;
	return state_names[s];
}

enum payreq_state
payreq_state_parse(const char *s)
{
	if (s == NULL)
		return PR_NONE;
	for (int i = PR_SENDING; i <= PR_NOT_CREATED; i++)
		if (strcmp(s, state_names[i]) == 0)
			return (enum payreq_state)i;
	return PR_NONE;
}

static bool
str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

const char *
payreq_mismatch(const struct pay_request *stored, const struct pay_request *asked)
{
	if (str_differs(stored->terminal_id, asked->terminal_id))
		return "terminalId";
	if (stored->amount != asked->amount)
		return "amount";
	/* Currencies are codes: USD and usd are one currency. */
	if ((stored->currency == NULL) != (asked->currency == NULL) ||
	    (stored->currency != NULL &&
	    strcasecmp(stored->currency, asked->currency) != 0))
		return "currency";
	if (str_differs(stored->capture_method, asked->capture_method))
		return "captureMethod";
	return NULL;
}

bool
payreq_may_create(enum payreq_state s)
{
	return s == PR_NONE || s == PR_NOT_CREATED;
}

int64_t
payreq_time_s(const char *ts)
{
	struct tm tm = { 0 };
	const char *p;
	int64_t t;
	int oh, om;

	if (ts == NULL || (p = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	t = (int64_t)timegm(&tm);
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return t;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 &&
	    strlen(p) == 6)
		return *p == '+' ? t - (oh * 3600 + om * 60) : t + (oh * 3600 + om * 60);
	return -1;
}

bool
payreq_link_ok(const char *req_created_at, const char *pay_created_at, bool pay_new)
{
	int64_t req = payreq_time_s(req_created_at), pay = payreq_time_s(pay_created_at);

	if (req == -1)
		return false;
	if (pay == -1)
		return pay_new;
	return pay >= req - PAYREQ_LINK_SLACK_S;
}

void
payreq_init(struct pay_request *r)
{
	memset(r, 0, sizeof(*r));
}

static int
dup_opt(const char *s, char **dst)
{
	*dst = NULL;
	return s == NULL || (*dst = strdup(s)) != NULL ? 0 : -1;
}

int
payreq_copy(struct pay_request *dst, const struct pay_request *src)
{
	payreq_init(dst);
	dst->amount = src->amount;
	dst->state = src->state;
	memcpy(dst->created_at, src->created_at, sizeof(dst->created_at));
	if (dup_opt(src->key, &dst->key) == -1 ||
	    dup_opt(src->terminal_id, &dst->terminal_id) == -1 ||
	    dup_opt(src->reference, &dst->reference) == -1 ||
	    dup_opt(src->currency, &dst->currency) == -1 ||
	    dup_opt(src->capture_method, &dst->capture_method) == -1 ||
	    dup_opt(src->payment_id, &dst->payment_id) == -1) {
		payreq_release(dst);
		return -1;
	}
	return 0;
}

int
payreq_from_columns(struct pay_request *r, const char *const col[PAYREQ_NCOLS],
    int64_t amount)
{
	char **dst[] = { &r->key, &r->terminal_id, &r->reference, &r->currency,
	    &r->capture_method };

	payreq_init(r);
	for (int i = 0; i < 5; i++)
		if (dup_opt(col[i], dst[i]) == -1)
			goto fail;
	r->amount = amount;
	r->state = payreq_state_parse(col[6]);
	if (dup_opt(col[7], &r->payment_id) == -1)
		goto fail;
	if (col[8] != NULL)
		snprintf(r->created_at, sizeof(r->created_at), "%s", col[8]);
	return 0;
fail:
	payreq_release(r);
	return -1;
}

void
payreq_release(struct pay_request *r)
{
	if (r == NULL)
		return;
	free(r->key);
	free(r->terminal_id);
	free(r->reference);
	free(r->currency);
	free(r->capture_method);
	free(r->payment_id);
	r->key = r->terminal_id = r->reference = r->currency = NULL;
	r->capture_method = r->payment_id = NULL;
}
