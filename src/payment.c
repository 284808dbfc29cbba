/*
 * payment.c - the payment's field table, the state machine of SPEC §2 and
 * the outcome line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jsonnum.h"
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

#define OFF(f)		offsetof(struct payment, f)

/* The hook's variables are SPEC §3's; createdAt is not in the outcome line. */
const struct pay_field pay_fields[PAY_NFIELDS] = {
	/* key, vinr_key, column, type, off, has_off, env, outcome */
	[PF_ID] = { "paymentId", "id", "id", PAY_FT_TEXT, OFF(id), 0,
	    "VINR_PAYMENT_ID", true },
	[PF_TERMINAL_ID] = { "terminalId", "terminalId", "terminal_id", PAY_FT_TEXT,
	    OFF(terminal_id), 0, "VINR_TERMINAL_ID", true },
	[PF_REFERENCE] = { "reference", "reference", "reference", PAY_FT_TEXT,
	    OFF(reference), 0, "VINR_REFERENCE", true },
	[PF_STATUS] = { "status", "status", "status", PAY_FT_STATUS, OFF(status), 0,
	    "VINR_STATUS", true },
	[PF_AMOUNT] = { "amount", "amount", "amount", PAY_FT_INT64, OFF(amount),
	    OFF(has_amount), "VINR_AMOUNT", true },
	[PF_AMOUNT_CAPTURED] = { "amountCaptured", "amountCaptured", "amount_captured",
	    PAY_FT_INT64, OFF(amount_captured), OFF(has_amount_captured), NULL, true },
	[PF_CURRENCY] = { "currency", "currency", "currency", PAY_FT_TEXT,
	    OFF(currency), 0, "VINR_CURRENCY", true },
	[PF_CAPTURE_METHOD] = { "captureMethod", "captureMethod", "capture_method",
	    PAY_FT_TEXT, OFF(capture_method), 0, NULL, true },
	[PF_ENTRY_METHOD] = { "entryMethod", "entryMethod", "entry_method",
	    PAY_FT_TEXT, OFF(entry_method), 0, NULL, true },
	[PF_BRAND] = { "brand", "brand", "brand", PAY_FT_TEXT, OFF(brand), 0, NULL,
	    true },
	[PF_LAST4] = { "last4", "last4", "last4", PAY_FT_TEXT, OFF(last4), 0, NULL,
	    true },
	[PF_AUTH_CODE] = { "authCode", "authCode", "auth_code", PAY_FT_TEXT,
	    OFF(auth_code), 0, NULL, true },
	[PF_DECLINE_CODE] = { "declineCode", "declineCode", "decline_code",
	    PAY_FT_TEXT, OFF(decline_code), 0, "VINR_DECLINE_CODE", true },
	/* The event's envelope carries livemode, not its payment object. */
	[PF_LIVEMODE] = { "livemode", NULL, "livemode", PAY_FT_BOOL, OFF(livemode), 0,
	    NULL, true },
	[PF_CREATED_AT] = { "createdAt", "createdAt", "created_at", PAY_FT_TEXT,
	    OFF(created_at), 0, NULL, false },
};

/* The members a field's offsets name, by type. */
static char **
text_at(struct payment *p, enum pay_field_id i)
{
	return (char **)(void *)((char *)p + pay_fields[i].off);
}

static char *const *
ctext_at(const struct payment *p, enum pay_field_id i)
{
	return (char *const *)(const void *)((const char *)p + pay_fields[i].off);
}

bool
pay_field_is_text(enum pay_field_id i)
{
	return pay_fields[i].type == PAY_FT_TEXT || pay_fields[i].type == PAY_FT_STATUS;
}

const char *
pay_field_text(const struct payment *p, enum pay_field_id i)
{
	switch (pay_fields[i].type) {
	case PAY_FT_TEXT:
		return *ctext_at(p, i);
	case PAY_FT_STATUS:
		return pay_status_name(p->status);
	default:
		return NULL;
	}
}

bool
pay_field_int(const struct payment *p, enum pay_field_id i, int64_t *v)
{
	const char *base = (const char *)p;

	*v = 0;
	switch (pay_fields[i].type) {
	case PAY_FT_INT64:
		if (!*(const bool *)(const void *)(base + pay_fields[i].has_off))
			return false;
		*v = *(const int64_t *)(const void *)(base + pay_fields[i].off);
		return true;
	case PAY_FT_BOOL:
		if (*(const int *)(const void *)(base + pay_fields[i].off) == -1)
			return false;
		*v = *(const int *)(const void *)(base + pay_fields[i].off) != 0;
		return true;
	default:
		return false;
	}
}

int
pay_field_set_text(struct payment *p, enum pay_field_id i, const char *v)
{
	char *c = NULL;

	switch (pay_fields[i].type) {
	case PAY_FT_TEXT:
		if (v != NULL && (c = strdup(v)) == NULL)
			return -1;
		free(*text_at(p, i));
		*text_at(p, i) = c;
		return 0;
	case PAY_FT_STATUS:
		p->status = pay_status_parse(v);
		return 0;
	default:
		return 0;
	}
}

void
pay_field_take_text(struct payment *p, enum pay_field_id i, char *v)
{
	free(*text_at(p, i));
	*text_at(p, i) = v;
}

void
pay_field_set_int(struct payment *p, enum pay_field_id i, bool has, int64_t v)
{
	char *base = (char *)p;

	switch (pay_fields[i].type) {
	case PAY_FT_INT64:
		*(bool *)(void *)(base + pay_fields[i].has_off) = has;
		*(int64_t *)(void *)(base + pay_fields[i].off) = has ? v : 0;
		break;
	case PAY_FT_BOOL:
		*(int *)(void *)(base + pay_fields[i].off) = has ? v != 0 : -1;
		break;
	default:
		break;
	}
}

/* Whether field i of p is known. */
static bool
field_known(const struct payment *p, enum pay_field_id i)
{
	int64_t v;

	return pay_field_is_text(i) ? pay_field_text(p, i) != NULL : pay_field_int(p, i, &v);
}

/* Sets field i of dst to src's (known) value; 0 or -1. */
static int
field_copy(struct payment *dst, const struct payment *src, enum pay_field_id i)
{
	int64_t v;
	bool has;

	if (pay_field_is_text(i))
		return pay_field_set_text(dst, i, pay_field_text(src, i));
	has = pay_field_int(src, i, &v);
	pay_field_set_int(dst, i, has, v);
	return 0;
}

/*
 * Builds the merged payment in a scratch struct first, so that an
 * allocation failure half-way leaves cur as it was.  Known fields of in
 * replace the stored ones.  The scratch shares cur's strings: only a text
 * that differs is copied (fresh[] holds those copies until the end), since
 * most events repeat most of their payment's fields and this runs on the
 * writer thread for every transition.
 */
static int
merge(struct payment *cur, const struct payment *in)
{
	char *fresh[PAY_NFIELDS + 1], *v;
	struct payment m = *cur;
	int nfresh = 0;

	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (!field_known(in, i))
			continue;
		if (pay_fields[i].type != PAY_FT_TEXT) {
			field_copy(&m, in, i);	/* no allocation */
			continue;
		}
		if (*ctext_at(cur, i) != NULL &&
		    strcmp(*ctext_at(cur, i), *ctext_at(in, i)) == 0)
			continue;
		if ((v = strdup(*ctext_at(in, i))) == NULL)
			goto fail;
		*text_at(&m, i) = fresh[nfresh++] = v;
	}
	if (in->status_at != NULL) {
		if ((v = strdup(in->status_at)) == NULL)
			goto fail;
		m.status_at = fresh[nfresh++] = v;
	}
	/* amountCaptured: the object's value, else the stored one, else the
	 * amount once completed (SPEC §2). */
	if (!m.has_amount_captured && m.status == PAY_COMPLETED && m.has_amount) {
		m.has_amount_captured = true;
		m.amount_captured = m.amount;
	}
	/* Done: cur's strings that m no longer shares go. */
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (pay_fields[i].type == PAY_FT_TEXT && *text_at(cur, i) != *text_at(&m, i))
			free(*text_at(cur, i));
	if (cur->status_at != m.status_at)
		free(cur->status_at);
	*cur = m;
	return 0;
fail:
	while (nfresh > 0)
		free(fresh[--nfresh]);
	return -1;
}

const char *
pay_decision_name(enum pay_decision d)
{
	static const char *const names[] = {
		[PAY_TRANSITION] = "transition",
		[PAY_STALE] = "stale",
		[PAY_CONFLICT] = "conflict",
	};

	return names[d];
}

struct payment
payment_match_view(const struct payment *stored, const struct payment *obj)
{
	struct payment m = *stored;

	m.id = obj->id;
	if (obj->terminal_id != NULL)
		m.terminal_id = obj->terminal_id;
	if (obj->reference != NULL)
		m.reference = obj->reference;
	if (obj->has_amount) {
		m.has_amount = true;
		m.amount = obj->amount;
	}
	if (obj->created_at != NULL)
		m.created_at = obj->created_at;
	return m;
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
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (!field_known(dst, i) && field_copy(dst, src, i) == -1)
			return -1;
	return 0;
}

void
payment_init(struct payment *p)
{
	memset(p, 0, sizeof(*p));
	p->livemode = -1;
}

int
payment_copy(struct payment *dst, const struct payment *src)
{
	*dst = *src;
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (pay_fields[i].type == PAY_FT_TEXT)
			*text_at(dst, i) = NULL;
	dst->status_at = NULL;
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (pay_fields[i].type == PAY_FT_TEXT &&
		    pay_field_set_text(dst, i, *ctext_at(src, i)) == -1)
			goto fail;
	if (src->status_at != NULL && (dst->status_at = strdup(src->status_at)) == NULL)
		goto fail;
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
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (pay_fields[i].type == PAY_FT_TEXT) {
			free(*text_at(p, i));
			*text_at(p, i) = NULL;
		}
	free(p->status_at);
	p->status_at = NULL;
}

static bool
add_str(cJSON *o, const char *k, const char *v)
{
	return (v != NULL ? cJSON_AddStringToObject(o, k, v) :
	    cJSON_AddNullToObject(o, k)) != NULL;
}

/*
 * Integers are printed by us (jsonnum_add): cJSON keeps numbers as doubles
 * and prints large ones in exponent form (9.00719925474099e+15), which
 * integer decoders refuse and which can change the value.
 */
static bool
add_field(cJSON *o, const struct payment *p, enum pay_field_id i)
{
	const char *k = pay_fields[i].key;
	int64_t v;
	bool has;

	if (pay_field_is_text(i))
		return add_str(o, k, pay_field_text(p, i));
	has = pay_field_int(p, i, &v);
	if (pay_fields[i].type == PAY_FT_BOOL)
		return (has ? cJSON_AddBoolToObject(o, k, v != 0) :
		    cJSON_AddNullToObject(o, k)) != NULL;
	return jsonnum_add_opt(o, k, has, v) != NULL;
}

int
payment_add_json(cJSON *o, const struct payment *p, enum pay_field_id from,
    enum pay_field_id to)
{
	for (int i = from; i < (int)to; i++)
		if (!add_field(o, p, i))
			return -1;
	return 0;
}

/*
 * The outcome line is written straight into one buffer, the way
 * cJSON_PrintUnformatted() would print the same object (same key order,
 * same escapes, integers as written by jsonnum_add), without building a
 * tree of ~20 nodes and freeing it again: the writer thread makes one line
 * per transition inside the transaction the whole batch waits on.
 */
struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	bool	 oom;
};

/* Room for n more bytes and the NUL: where they go, or NULL (then oom). */
static char *
ob_room(struct obuf *b, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return NULL;
	if (b->len + n + 1 > b->cap) {
		for (cap = b->cap; b->len + n + 1 > cap; cap *= 2)
			;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return NULL;
		}
		b->p = np;
		b->cap = cap;
	}
	return b->p + b->len;
}

static void
ob_put(struct obuf *b, const char *s, size_t n)
{
	char *d;

	if ((d = ob_room(b, n)) == NULL)
		return;
	memcpy(d, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* A JSON string with cJSON's escapes (UTF-8 passes as it is), or null. */
static void
ob_str(struct obuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run;
	char esc[7];
	unsigned char ch;

	if (s == NULL) {
		ob_put(b, "null", 4);
		return;
	}
	ob_put(b, "\"", 1);
	for (run = s; *s != '\0'; s++) {
		ch = (unsigned char)*s;
		if (ch >= 32 && ch != '"' && ch != '\\')
			continue;
		ob_put(b, run, (size_t)(s - run));
		run = s + 1;
		esc[0] = '\\';
		switch (ch) {
		case '"': case '\\': esc[1] = (char)ch; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			ob_put(b, esc, 6);
			continue;
		}
		ob_put(b, esc, 2);
	}
	ob_put(b, run, (size_t)(s - run));
	ob_put(b, "\"", 1);
}

/*
 * "key": after a comma unless it is the first.  The keys are our own
 * (pay_fields[], outcome_own): plain ASCII with nothing to escape, so they
 * are copied in one piece.
 */
static void
ob_key(struct obuf *b, const char *key)
{
	size_t n = strlen(key);
	char *d;

	if ((d = ob_room(b, n + 4)) == NULL)
		return;
	if (b->len > 1)
		*d++ = ',';
	*d++ = '"';
	memcpy(d, key, n);
	d += n;
	*d++ = '"';
	*d++ = ':';
	b->len = (size_t)(d - b->p);
	*d = '\0';
}

/* An integer as "%lld" prints it, without stdio's cost. */
static void
ob_int(struct obuf *b, bool has, int64_t v)
{
	char num[24], *d = num + sizeof(num);	/* -9223372036854775808 */
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	if (!has) {
		ob_put(b, "null", 4);
		return;
	}
	do
		*--d = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--d = '-';
	ob_put(b, d, (size_t)(num + sizeof(num) - d));
}

static void
ob_field(struct obuf *b, const struct payment *p, enum pay_field_id i)
{
	int64_t v;
	bool has;

	ob_key(b, pay_fields[i].key);
	if (pay_field_is_text(i)) {
		ob_str(b, pay_field_text(p, i));
		return;
	}
	has = pay_field_int(p, i, &v);
	if (pay_fields[i].type == PAY_FT_BOOL)
		ob_put(b, !has ? "null" : v != 0 ? "true" : "false", !has ? 4 : v != 0 ? 4 : 5);
	else
		ob_int(b, has, v);
}

/* One of the outcome line's own keys (not a payment field): a string or an integer. */
struct outcome_own {
	enum pay_field_id	 before;	/* it precedes this field (SPEC §2's order) */
	const char		*key;
	const char		*str;
	bool			 is_int;
	int64_t			 num;
};

char *
payment_outcome_json(const struct payment *p, enum pay_status prev, int64_t seq,
    const char *event_id, const char *source, const char *occurred_at,
    const char *recorded_at)
{
	char type[32];
	const struct outcome_own own[] = {
		{ PF_ID, "seq", NULL, true, seq },
		{ PF_ID, "type", type, false, 0 },
		{ PF_AMOUNT, "previousStatus", pay_status_name(prev), false, 0 },
		{ PF_LIVEMODE, "eventId", event_id, false, 0 },
		{ PF_LIVEMODE, "source", source, false, 0 },
		{ PAY_NFIELDS, "occurredAt", occurred_at, false, 0 },
		{ PAY_NFIELDS, "recordedAt", recorded_at, false, 0 },
	};
	struct obuf b = { .cap = 768 };
	const char *name;
	size_t j = 0, n;

	if ((b.p = malloc(b.cap)) == NULL)
		return NULL;
	/* "payment.<status>" ("(null)" as printf wrote it for no status): the
	 * names are short constants, no stdio needed. */
	name = pay_status_name(p->status) != NULL ? pay_status_name(p->status) : "(null)";
	n = strlen(name) < sizeof(type) - 9 ? strlen(name) : sizeof(type) - 9;
	memcpy(type, "payment.", 8);
	memcpy(type + 8, name, n);
	type[8 + n] = '\0';
	ob_put(&b, "{", 1);
	for (int i = 0; i <= PAY_NFIELDS; i++) {
		for (; j < sizeof(own) / sizeof(own[0]) && (int)own[j].before == i; j++) {
			ob_key(&b, own[j].key);
			if (own[j].is_int)
				ob_int(&b, true, own[j].num);
			else
				ob_str(&b, own[j].str);
		}
		if (i < PAY_NFIELDS && pay_fields[i].outcome)
			ob_field(&b, p, i);
	}
	ob_put(&b, "}", 1);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
