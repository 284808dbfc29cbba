/*
 * test_payment.c - unit tests of payment.c: the state machine of SPEC §2,
 * the outcome line and the field table (checked against PAYMENT_COLS and
 * the SPEC's spellings, and against the struct's members named by hand).
 *
 * The expected decisions are computed here from the SPEC's rank table, not
 * from pay_status_rank(), and every one of the 36 ordered (stored, incoming)
 * pairs is its own test case, so a failure names the pair.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "payment.h"
#include "store_int.h"

static const enum pay_status all_status[] = {
	PAY_PENDING, PAY_PROCESSING, PAY_AUTHORIZED,
	PAY_COMPLETED, PAY_FAILED, PAY_CANCELLED
};
#define NSTATUS	6

static const char *const status_str[] = {
	[PAY_PENDING] = "pending", [PAY_PROCESSING] = "processing",
	[PAY_AUTHORIZED] = "authorized", [PAY_COMPLETED] = "completed",
	[PAY_FAILED] = "failed", [PAY_CANCELLED] = "cancelled",
};

/* SPEC §2, written out independently of pay_status_rank(). */
static int
spec_rank(enum pay_status s)
{
	switch (s) {
	case PAY_PENDING:	return 1;
	case PAY_PROCESSING:	return 2;
	case PAY_AUTHORIZED:	return 3;
	case PAY_COMPLETED:
	case PAY_FAILED:
	case PAY_CANCELLED:	return 4;
	default:		return 0;
	}
}

/* Every string field of struct payment, for generic checks. */
static const struct { const char *name; size_t off; } str_fields[] = {
#define F(f) { #f, offsetof(struct payment, f) }
	F(id), F(terminal_id), F(reference), F(currency), F(capture_method),
	F(entry_method), F(brand), F(last4), F(auth_code), F(decline_code),
	F(created_at), F(status_at),
#undef F
};
#define NSTR	(sizeof(str_fields) / sizeof(str_fields[0]))

#define STR(p, i)	(*(char **)(void *)((char *)(p) + str_fields[i].off))

static const char *
sget(const struct payment *p, size_t i)
{
	return *(char *const *)(const void *)((const char *)p + str_fields[i].off);
}

static char *
xdup(const char *s)
{
	char *c = strdup(s);

	assert_non_null(c);
	return c;
}

/* A payment with every field known, strings "<prefix>_<field>". */
static void
full_payment(struct payment *p, const char *prefix, enum pay_status st,
    int64_t amount)
{
	char buf[128];

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < NSTR; i++) {
		snprintf(buf, sizeof(buf), "%s_%s", prefix, str_fields[i].name);
		STR(p, i) = xdup(buf);
	}
	free(p->id);
	p->id = xdup("tpay_1");
	p->status = st;
	p->has_amount = true;
	p->amount = amount;
	p->has_amount_captured = false;
	p->livemode = 0;
}

/* A payment with only id and status known. */
static void
bare_payment(struct payment *p, enum pay_status st)
{
	memset(p, 0, sizeof(*p));
	p->id = xdup("tpay_1");
	p->status = st;
	p->livemode = -1;
}

/* The state of an unknown payment, as the store hands it over. */
static void
unknown_payment(struct payment *p)
{
	memset(p, 0, sizeof(*p));
	p->status = PAY_NONE;
	p->livemode = -1;
}

static void
assert_str_eq_or_null(const char *a, const char *b, const char *what)
{
	if (a == NULL || b == NULL) {
		if (a != b)
			fail_msg("%s: \"%s\" != \"%s\"", what, a ? a : "(null)",
			    b ? b : "(null)");
		return;
	}
	if (strcmp(a, b) != 0)
		fail_msg("%s: \"%s\" != \"%s\"", what, a, b);
}

static void
assert_payment_equal(const struct payment *a, const struct payment *b)
{
	for (size_t i = 0; i < NSTR; i++)
		assert_str_eq_or_null(sget(a, i), sget(b, i), str_fields[i].name);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->has_amount, b->has_amount);
	if (a->has_amount)
		assert_int_equal(a->amount, b->amount);
	assert_int_equal(a->has_amount_captured, b->has_amount_captured);
	if (a->has_amount_captured)
		assert_int_equal(a->amount_captured, b->amount_captured);
	assert_int_equal(a->livemode, b->livemode);
}

static void
copy(struct payment *dst, const struct payment *src)
{
	assert_int_equal(payment_copy(dst, src), 0);
}

/* ------------------------------------------------------ status helpers */

static void
test_status_names_and_ranks(void **state)
{
	(void)state;
	for (int i = 0; i < NSTATUS; i++) {
		enum pay_status s = all_status[i];

		assert_string_equal(pay_status_name(s), status_str[s]);
		assert_int_equal(pay_status_parse(status_str[s]), s);
		assert_int_equal(pay_status_rank(s), spec_rank(s));
		assert_int_equal(pay_status_is_final(s), spec_rank(s) == 4);
		/* Outcome statuses = authorized, completed, failed, cancelled. */
		assert_int_equal(pay_status_is_outcome(s), spec_rank(s) >= 3);
	}
	assert_null(pay_status_name(PAY_NONE));
	assert_int_equal(pay_status_rank(PAY_NONE), 0);
	assert_int_equal(pay_status_parse(NULL), PAY_NONE);
	assert_int_equal(pay_status_parse(""), PAY_NONE);
	assert_int_equal(pay_status_parse("Completed"), PAY_NONE);
	assert_int_equal(pay_status_parse("completed "), PAY_NONE);
	assert_int_equal(pay_status_parse("captured"), PAY_NONE);
	assert_int_equal(pay_status_parse("refunded"), PAY_NONE);
}

/* ------------------------------------------------- every ordered pair */

struct pair {
	enum pay_status	stored, incoming;
};
static struct pair pairs[NSTATUS * NSTATUS];
static char pair_names[NSTATUS * NSTATUS][64];

static void
test_pair(void **state)
{
	const struct pair *pr = *state;
	struct payment cur, before, in;
	enum pay_status prev = (enum pay_status)99;
	int want, got;
	int rs = spec_rank(pr->stored), ri = spec_rank(pr->incoming);

	if (ri > rs)
		want = PAY_TRANSITION;
	else if (rs == 4 && ri == 4 && pr->stored != pr->incoming)
		want = PAY_CONFLICT;
	else
		want = PAY_STALE;

	full_payment(&cur, "old", pr->stored, 1000);
	copy(&before, &cur);
	full_payment(&in, "new", pr->incoming, 2000);

	got = payment_apply(&cur, &in, &prev);
	assert_int_equal(got, want);
	if (want == PAY_TRANSITION) {
		assert_int_equal(prev, pr->stored);
		assert_int_equal(cur.status, pr->incoming);
		/* Every known incoming field replaced the stored one. */
		for (size_t i = 0; i < NSTR; i++)
			assert_str_eq_or_null(STR(&cur, i), STR(&in, i),
			    str_fields[i].name);
		assert_true(cur.has_amount);
		assert_int_equal(cur.amount, 2000);
	} else {
		/* Stale or conflict: nothing changes at all. */
		assert_payment_equal(&cur, &before);
	}
	payment_release(&cur);
	payment_release(&before);
	payment_release(&in);
}

/* Same pairs with bare objects: decision does not depend on the fields. */
static void
test_pair_bare(void **state)
{
	const struct pair *pr = *state;
	struct payment cur, in;
	enum pay_status prev = PAY_NONE;
	int rs = spec_rank(pr->stored), ri = spec_rank(pr->incoming);
	int want = ri > rs ? PAY_TRANSITION :
	    (rs == 4 && ri == 4 && pr->stored != pr->incoming) ? PAY_CONFLICT :
	    PAY_STALE;

	bare_payment(&cur, pr->stored);
	bare_payment(&in, pr->incoming);
	assert_int_equal(payment_apply(&cur, &in, &prev), want);
	assert_int_equal(cur.status, want == PAY_TRANSITION ? pr->incoming :
	    pr->stored);
	if (want == PAY_TRANSITION)
		assert_int_equal(prev, pr->stored);
	payment_release(&cur);
	payment_release(&in);
}

/* --------------------------------------------------- unknown payment */

static void
test_unknown_payment_created(void **state)
{
	(void)state;
	for (int i = 0; i < NSTATUS; i++) {
		struct payment cur, in;
		enum pay_status prev = (enum pay_status)99;

		unknown_payment(&cur);
		full_payment(&in, "new", all_status[i], 700);
		in.livemode = 1;
		assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
		/* previousStatus null. */
		assert_int_equal(prev, PAY_NONE);
		assert_int_equal(cur.status, all_status[i]);
		for (size_t f = 0; f < NSTR; f++)
			assert_str_eq_or_null(sget(&cur, f), sget(&in, f),
			    str_fields[f].name);
		assert_true(cur.has_amount);
		assert_int_equal(cur.amount, 700);
		assert_int_equal(cur.livemode, 1);
		/* amountCaptured = amount only once completed. */
		assert_int_equal(cur.has_amount_captured,
		    all_status[i] == PAY_COMPLETED);
		if (all_status[i] == PAY_COMPLETED)
			assert_int_equal(cur.amount_captured, 700);
		payment_release(&cur);
		payment_release(&in);
	}
}

static void
test_unknown_payment_bare(void **state)
{
	struct payment cur, in;
	enum pay_status prev = (enum pay_status)99;

	(void)state;
	unknown_payment(&cur);
	bare_payment(&in, PAY_PENDING);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_NONE);
	assert_string_equal(cur.id, "tpay_1");
	assert_int_equal(cur.status, PAY_PENDING);
	for (size_t f = 1; f < NSTR; f++)
		assert_null(STR(&cur, f));
	assert_false(cur.has_amount);
	assert_false(cur.has_amount_captured);
	assert_int_equal(cur.livemode, -1);
	payment_release(&cur);
	payment_release(&in);
}

/* ---------------------------------------------------------- field merge */

/* Incoming knows only the fields whose index has the given parity. */
static void
merge_parity(int parity)
{
	struct payment cur, in;
	enum pay_status prev;
	char buf[128];

	full_payment(&cur, "old", PAY_PENDING, 1000);
	bare_payment(&in, PAY_AUTHORIZED);
	free(in.id);
	in.id = NULL;
	for (size_t i = 0; i < NSTR; i++)
		if (i % 2 == (size_t)parity) {
			snprintf(buf, sizeof(buf), "new_%s", str_fields[i].name);
			STR(&in, i) = xdup(buf);
		}
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_PENDING);
	for (size_t i = 0; i < NSTR; i++) {
		snprintf(buf, sizeof(buf), "%s_%s",
		    i % 2 == (size_t)parity ? "new" : "old", str_fields[i].name);
		if (i == 0 && parity == 1)
			snprintf(buf, sizeof(buf), "tpay_1");
		assert_str_eq_or_null(STR(&cur, i), buf, str_fields[i].name);
	}
	/* Amount absent in the incoming object: kept. */
	assert_true(cur.has_amount);
	assert_int_equal(cur.amount, 1000);
	assert_int_equal(cur.livemode, 0);
	payment_release(&cur);
	payment_release(&in);
}

static void
test_merge_even_fields(void **state)
{
	(void)state;
	merge_parity(0);
}

static void
test_merge_odd_fields(void **state)
{
	(void)state;
	merge_parity(1);
}

static void
test_merge_nothing_known_keeps_all(void **state)
{
	struct payment cur, before, in;
	enum pay_status prev;

	(void)state;
	full_payment(&cur, "old", PAY_PROCESSING, 1000);
	cur.has_amount_captured = true;
	cur.amount_captured = 10;
	cur.livemode = 1;
	copy(&before, &cur);
	bare_payment(&in, PAY_FAILED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_PROCESSING);
	before.status = PAY_FAILED;
	assert_payment_equal(&cur, &before);
	payment_release(&cur);
	payment_release(&before);
	payment_release(&in);
}

static void
test_merge_amount_and_livemode(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	/* Known amount replaces the stored one; livemode 0 replaces 1. */
	full_payment(&cur, "old", PAY_PENDING, 1000);
	cur.livemode = 1;
	bare_payment(&in, PAY_PROCESSING);
	in.has_amount = true;
	in.amount = 0;
	in.livemode = 0;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_true(cur.has_amount);
	assert_int_equal(cur.amount, 0);
	assert_int_equal(cur.livemode, 0);
	payment_release(&in);

	/* livemode 1 replaces 0; unknown (-1) keeps it. */
	bare_payment(&in, PAY_AUTHORIZED);
	in.livemode = 1;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(cur.livemode, 1);
	payment_release(&in);
	bare_payment(&in, PAY_CANCELLED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_AUTHORIZED);
	assert_int_equal(cur.livemode, 1);
	assert_int_equal(cur.amount, 0);
	payment_release(&in);
	payment_release(&cur);
}

/* A stale event with fields must not leak any of them into the payment. */
static void
test_stale_does_not_merge(void **state)
{
	struct payment cur, before, in;
	enum pay_status prev = (enum pay_status)99;

	(void)state;
	bare_payment(&cur, PAY_COMPLETED);
	copy(&before, &cur);
	full_payment(&in, "new", PAY_PENDING, 5);
	in.livemode = 1;
	in.has_amount_captured = true;
	in.amount_captured = 5;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_STALE);
	assert_int_equal(prev, (enum pay_status)99);
	assert_payment_equal(&cur, &before);
	payment_release(&in);

	/* Same for a conflicting final. */
	full_payment(&in, "new", PAY_FAILED, 5);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_CONFLICT);
	assert_payment_equal(&cur, &before);
	payment_release(&in);
	payment_release(&cur);
	payment_release(&before);
}

/* A sequence through every rank, one status at a time. */
static void
test_walk_pending_to_completed(void **state)
{
	static const enum pay_status walk[] = {
		PAY_PENDING, PAY_PROCESSING, PAY_AUTHORIZED, PAY_COMPLETED
	};
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	unknown_payment(&cur);
	for (size_t i = 0; i < 4; i++) {
		bare_payment(&in, walk[i]);
		assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
		assert_int_equal(prev, i == 0 ? PAY_NONE : walk[i - 1]);
		payment_release(&in);
		/* Replaying any earlier status now is stale. */
		for (size_t j = 0; j <= i; j++) {
			bare_payment(&in, walk[j]);
			assert_int_equal(payment_apply(&cur, &in, &prev), PAY_STALE);
			payment_release(&in);
		}
	}
	assert_int_equal(cur.status, PAY_COMPLETED);
	payment_release(&cur);
}

/* ------------------------------------------------------------ capture */

static void
authorized(struct payment *p, bool has_amount, int64_t amount, bool has_cap,
    int64_t cap)
{
	bare_payment(p, PAY_AUTHORIZED);
	p->has_amount = has_amount;
	p->amount = amount;
	p->has_amount_captured = has_cap;
	p->amount_captured = cap;
}

static void
test_capture_object_value_wins(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	authorized(&cur, true, 1000, true, 900);
	bare_payment(&in, PAY_COMPLETED);
	in.has_amount_captured = true;
	in.amount_captured = 800;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_AUTHORIZED);
	assert_int_equal(cur.status, PAY_COMPLETED);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 800);
	assert_int_equal(cur.amount, 1000);
	payment_release(&cur);
	payment_release(&in);
}

static void
test_capture_zero_from_object(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	/* 0 is a value, not "absent". */
	authorized(&cur, true, 1000, false, 0);
	bare_payment(&in, PAY_COMPLETED);
	in.has_amount_captured = true;
	in.amount_captured = 0;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 0);
	payment_release(&cur);
	payment_release(&in);
}

static void
test_capture_stored_value(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	authorized(&cur, true, 1000, true, 700);
	bare_payment(&in, PAY_COMPLETED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 700);
	payment_release(&cur);
	payment_release(&in);
}

static void
test_capture_amount_once_completed(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	/* Neither the object nor the store: the stored amount. */
	authorized(&cur, true, 1000, false, 0);
	bare_payment(&in, PAY_COMPLETED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 1000);
	payment_release(&cur);
	payment_release(&in);

	/* The amount the completed object brings counts. */
	authorized(&cur, true, 1000, false, 0);
	bare_payment(&in, PAY_COMPLETED);
	in.has_amount = true;
	in.amount = 1200;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(cur.amount, 1200);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 1200);
	payment_release(&cur);
	payment_release(&in);

	/* No amount anywhere: stays unknown. */
	authorized(&cur, false, 0, false, 0);
	bare_payment(&in, PAY_COMPLETED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_false(cur.has_amount_captured);
	assert_false(cur.has_amount);
	payment_release(&cur);
	payment_release(&in);
}

static void
test_no_capture_amount_unless_completed(void **state)
{
	static const enum pay_status to[] = { PAY_AUTHORIZED, PAY_FAILED,
	    PAY_CANCELLED, PAY_PROCESSING };
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		bare_payment(&cur, PAY_PENDING);
		cur.has_amount = true;
		cur.amount = 1000;
		bare_payment(&in, to[i]);
		in.has_amount = true;
		in.amount = 1000;
		assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
		assert_false(cur.has_amount_captured);
		payment_release(&cur);
		payment_release(&in);
	}
	/* But a value the object carries is kept, whatever the status. */
	bare_payment(&cur, PAY_PENDING);
	bare_payment(&in, PAY_AUTHORIZED);
	in.has_amount_captured = true;
	in.amount_captured = 300;
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 300);
	payment_release(&cur);
	payment_release(&in);
}

/* pending -> completed directly also gets amountCaptured = amount. */
static void
test_capture_from_pending(void **state)
{
	struct payment cur, in;
	enum pay_status prev;

	(void)state;
	bare_payment(&cur, PAY_PENDING);
	cur.has_amount = true;
	cur.amount = 2500;
	bare_payment(&in, PAY_COMPLETED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	assert_int_equal(prev, PAY_PENDING);
	assert_true(cur.has_amount_captured);
	assert_int_equal(cur.amount_captured, 2500);
	payment_release(&cur);
	payment_release(&in);
}

/* ------------------------------------------------------- outcome JSON */

static const char *const outcome_keys[] = {
	"seq", "type", "paymentId", "terminalId", "reference", "status",
	"previousStatus", "amount", "amountCaptured", "currency",
	"captureMethod", "entryMethod", "brand", "last4", "authCode",
	"declineCode", "eventId", "source", "livemode", "occurredAt",
	"recordedAt",
};
#define NKEYS	(sizeof(outcome_keys) / sizeof(outcome_keys[0]))

/* Parses s and checks that it has exactly the keys of SPEC §2. */
static cJSON *
parse_outcome(const char *s)
{
	cJSON *o, *it;
	size_t n = 0;

	assert_non_null(s);
	assert_null(strchr(s, '\n'));
	o = cJSON_Parse(s);
	assert_non_null(o);
	assert_true(cJSON_IsObject(o));
	cJSON_ArrayForEach(it, o) {
		bool found = false;

		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(it->string, outcome_keys[i]) == 0)
				found = true;
		if (!found)
			fail_msg("unexpected key \"%s\" in %s", it->string, s);
		n++;
	}
	for (size_t i = 0; i < NKEYS; i++)
		if (!cJSON_HasObjectItem(o, outcome_keys[i]))
			fail_msg("key \"%s\" missing in %s", outcome_keys[i], s);
	assert_int_equal(n, NKEYS);
	return o;
}

static void
assert_key_str(const cJSON *o, const char *k, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_non_null(v);
	if (want == NULL) {
		if (!cJSON_IsNull(v))
			fail_msg("%s: want null", k);
		return;
	}
	if (!cJSON_IsString(v))
		fail_msg("%s: want string \"%s\"", k, want);
	assert_string_equal(v->valuestring, want);
}

static void
assert_key_int(const cJSON *o, const char *k, bool has, int64_t want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_non_null(v);
	if (!has) {
		if (!cJSON_IsNull(v))
			fail_msg("%s: want null", k);
		return;
	}
	assert_true(cJSON_IsNumber(v));
	assert_true(v->valuedouble == (double)want);
}

static void
test_outcome_all_known(void **state)
{
	struct payment p;
	cJSON *o;
	char *s;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.id = xdup("tpay_01HZ5QA7BK");
	p.terminal_id = xdup("term_01HZ5QXYZ");
	p.reference = xdup("order_8821");
	p.currency = xdup("USD");
	p.capture_method = xdup("automatic");
	p.entry_method = xdup("contactless");
	p.brand = xdup("visa");
	p.last4 = xdup("4242");
	p.auth_code = xdup("A12345");
	p.decline_code = xdup("do_not_honor");
	p.created_at = xdup("2026-06-11T08:59:00Z");
	p.status_at = xdup("2026-06-11T09:00:11Z");
	p.status = PAY_COMPLETED;
	p.has_amount = true;
	p.amount = 2500;
	p.has_amount_captured = true;
	p.amount_captured = 2400;
	p.livemode = 0;
	s = payment_outcome_json(&p, PAY_PENDING, 42, "evt_01J0Q8ZK3M", "webhook",
	    "2026-06-11T09:00:12Z", "2026-06-11T09:00:12.345Z");
	o = parse_outcome(s);
	assert_key_int(o, "seq", true, 42);
	assert_key_str(o, "type", "payment.completed");
	assert_key_str(o, "paymentId", "tpay_01HZ5QA7BK");
	assert_key_str(o, "terminalId", "term_01HZ5QXYZ");
	assert_key_str(o, "reference", "order_8821");
	assert_key_str(o, "status", "completed");
	assert_key_str(o, "previousStatus", "pending");
	assert_key_int(o, "amount", true, 2500);
	assert_key_int(o, "amountCaptured", true, 2400);
	assert_key_str(o, "currency", "USD");
	assert_key_str(o, "captureMethod", "automatic");
	assert_key_str(o, "entryMethod", "contactless");
	assert_key_str(o, "brand", "visa");
	assert_key_str(o, "last4", "4242");
	assert_key_str(o, "authCode", "A12345");
	assert_key_str(o, "declineCode", "do_not_honor");
	assert_key_str(o, "eventId", "evt_01J0Q8ZK3M");
	assert_key_str(o, "source", "webhook");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "livemode")));
	/* Passed through as given, not reformatted. */
	assert_key_str(o, "occurredAt", "2026-06-11T09:00:12Z");
	assert_key_str(o, "recordedAt", "2026-06-11T09:00:12.345Z");
	/* Integers printed as integers. */
	assert_non_null(strstr(s, "\"seq\":42"));
	assert_non_null(strstr(s, "\"amount\":2500"));
	assert_non_null(strstr(s, "\"amountCaptured\":2400"));
	cJSON_Delete(o);
	free(s);
	payment_release(&p);
}

static void
test_outcome_all_unknown_is_null(void **state)
{
	struct payment p;
	cJSON *o;
	char *s;

	(void)state;
	bare_payment(&p, PAY_AUTHORIZED);
	s = payment_outcome_json(&p, PAY_NONE, 1, NULL, "reconciler", NULL, NULL);
	o = parse_outcome(s);
	assert_key_int(o, "seq", true, 1);
	assert_key_str(o, "type", "payment.authorized");
	assert_key_str(o, "paymentId", "tpay_1");
	assert_key_str(o, "status", "authorized");
	assert_key_str(o, "source", "reconciler");
	assert_key_str(o, "previousStatus", NULL);
	static const char *const nulls[] = { "terminalId", "reference", "currency",
	    "captureMethod", "entryMethod", "brand", "last4", "authCode",
	    "declineCode", "eventId", "occurredAt", "recordedAt" };
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		assert_key_str(o, nulls[i], NULL);
	assert_key_int(o, "amount", false, 0);
	assert_key_int(o, "amountCaptured", false, 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "livemode")));
	cJSON_Delete(o);
	free(s);
	payment_release(&p);
}

static void
test_outcome_type_per_status(void **state)
{
	char want[64];

	(void)state;
	for (int i = 0; i < NSTATUS; i++) {
		for (int j = -1; j < NSTATUS; j++) {
			enum pay_status prev = j < 0 ? PAY_NONE : all_status[j];
			struct payment p;
			cJSON *o;
			char *s;

			bare_payment(&p, all_status[i]);
			s = payment_outcome_json(&p, prev, i + 1, "evt_x",
			    "webhook", "a", "b");
			o = parse_outcome(s);
			snprintf(want, sizeof(want), "payment.%s",
			    status_str[all_status[i]]);
			assert_key_str(o, "type", want);
			assert_key_str(o, "status", status_str[all_status[i]]);
			assert_key_str(o, "previousStatus",
			    j < 0 ? NULL : status_str[prev]);
			cJSON_Delete(o);
			free(s);
			payment_release(&p);
		}
	}
}

static void
test_outcome_livemode(void **state)
{
	static const int modes[] = { -1, 0, 1 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct payment p;
		const cJSON *v;
		cJSON *o;
		char *s;

		bare_payment(&p, PAY_FAILED);
		p.livemode = modes[i];
		s = payment_outcome_json(&p, PAY_PENDING, 7, "e", "webhook", "a", "b");
		o = parse_outcome(s);
		v = cJSON_GetObjectItemCaseSensitive(o, "livemode");
		if (modes[i] == -1)
			assert_true(cJSON_IsNull(v));
		else if (modes[i] == 0)
			assert_true(cJSON_IsFalse(v));
		else
			assert_true(cJSON_IsTrue(v));
		cJSON_Delete(o);
		free(s);
		payment_release(&p);
	}
}

/* Strings that need escaping come back byte for byte. */
static void
test_outcome_escaping(void **state)
{
	static const char nasty[] = "a\"b\\c\nd\te\x01 \xc3\xa9 </script>";
	struct payment p;
	cJSON *o;
	char *s;

	(void)state;
	bare_payment(&p, PAY_CANCELLED);
	p.reference = xdup(nasty);
	s = payment_outcome_json(&p, PAY_PROCESSING, 3, nasty, "webhook", nasty, "r");
	o = parse_outcome(s);
	assert_key_str(o, "reference", nasty);
	assert_key_str(o, "eventId", nasty);
	assert_key_str(o, "occurredAt", nasty);
	cJSON_Delete(o);
	free(s);
	payment_release(&p);
}

/*
 * The line is printed without cJSON: it must be what cJSON prints for the
 * same object, byte for byte (same escapes for every control byte, quotes,
 * backslashes, UTF-8 as it is; no spaces), so that lines stored before and
 * after the change look alike.  Reparsing and reprinting with cJSON is the
 * reference.
 */
static void
test_outcome_as_cjson_prints(void **state)
{
	char nasty[64];
	struct payment p;
	cJSON *o;
	char *s, *again;
	int k = 0;

	(void)state;
	for (int c = 1; c < 32; c++)
		nasty[k++] = (char)c;
	memcpy(nasty + k, "\"\\/\xc3\xa9\x7f z", 9);
	bare_payment(&p, PAY_AUTHORIZED);
	p.reference = xdup(nasty);
	p.brand = xdup("");
	p.livemode = 1;
	p.has_amount = true;
	p.amount = -12345;
	s = payment_outcome_json(&p, PAY_PENDING, 77, nasty, "webhook", "o", NULL);
	assert_non_null(s);
	o = parse_outcome(s);
	assert_key_str(o, "reference", nasty);
	again = cJSON_PrintUnformatted(o);
	assert_string_equal(s, again);
	cJSON_free(again);
	cJSON_Delete(o);
	free(s);
	payment_release(&p);
}

/* Outcome of a real apply: previousStatus from the decision. */
static void
test_outcome_after_capture(void **state)
{
	struct payment cur, in;
	enum pay_status prev;
	cJSON *o;
	char *s;

	(void)state;
	authorized(&cur, true, 1500, false, 0);
	cur.currency = xdup("EUR");
	bare_payment(&in, PAY_COMPLETED);
	assert_int_equal(payment_apply(&cur, &in, &prev), PAY_TRANSITION);
	s = payment_outcome_json(&cur, prev, 9, "evt_cap", "webhook", "t1", "t2");
	o = parse_outcome(s);
	assert_key_str(o, "type", "payment.completed");
	assert_key_str(o, "previousStatus", "authorized");
	assert_key_int(o, "amount", true, 1500);
	assert_key_int(o, "amountCaptured", true, 1500);
	assert_key_str(o, "currency", "EUR");
	cJSON_Delete(o);
	free(s);
	payment_release(&cur);
	payment_release(&in);
}

/*
 * Amounts are integers in minor units; event.c accepts any up to 2^53.
 * They must come out as the same integer.  payment_outcome_json() goes
 * through cJSON_AddNumberToObject (a double printed with %1.15g, kept when
 * cJSON's *relative* compare says it round-trips), so 9007199254740991
 * comes out as 9.00719925474099e+15 = 9007199254740990.
 */
static void
test_outcome_large_amount_exact(void **state)
{
	struct payment p;
	char *s;
	bool ok;

	(void)state;
	bare_payment(&p, PAY_COMPLETED);
	p.has_amount = true;
	p.amount = 9007199254740991LL;
	p.has_amount_captured = true;
	p.amount_captured = 1000000000000000LL;
	s = payment_outcome_json(&p, PAY_PENDING, 1, "e", "webhook", "a", "b");
	assert_non_null(s);
	ok = strstr(s, "\"amount\":9007199254740991,") != NULL &&
	    strstr(s, "\"amountCaptured\":1000000000000000,") != NULL;
	assert_true(ok);
	free(s);
	payment_release(&p);
}

/*
 * The outcome line prints its integers itself (no printf): zero, negative
 * numbers and both ends of int64 come out as "%lld" writes them.
 */
static void
test_outcome_integer_edges(void **state)
{
	static const int64_t v[] = { 0, 7, -1, -120, 1000000, INT64_MAX, INT64_MIN };
	char want[64], *s;
	struct payment p;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		bare_payment(&p, PAY_AUTHORIZED);
		p.has_amount = true;
		p.amount = v[i];
		s = payment_outcome_json(&p, PAY_PENDING, v[i], "e", "webhook", "a", "b");
		assert_non_null(s);
		snprintf(want, sizeof(want), "{\"seq\":%lld,", (long long)v[i]);
		assert_true(strncmp(s, want, strlen(want)) == 0);
		snprintf(want, sizeof(want), "\"amount\":%lld,", (long long)v[i]);
		assert_non_null(strstr(s, want));
		assert_non_null(strstr(s, "\"type\":\"payment.authorized\","));
		free(s);
		payment_release(&p);
	}
}

/* ------------------------------------------------------ the field table */

/* The members of struct payment, named here, not through the table. */
static void
known_members(const struct payment *p, bool k[PAY_NFIELDS])
{
	k[PF_ID] = p->id != NULL;
	k[PF_TERMINAL_ID] = p->terminal_id != NULL;
	k[PF_REFERENCE] = p->reference != NULL;
	k[PF_STATUS] = p->status != PAY_NONE;
	k[PF_AMOUNT] = p->has_amount;
	k[PF_AMOUNT_CAPTURED] = p->has_amount_captured;
	k[PF_CURRENCY] = p->currency != NULL;
	k[PF_CAPTURE_METHOD] = p->capture_method != NULL;
	k[PF_ENTRY_METHOD] = p->entry_method != NULL;
	k[PF_BRAND] = p->brand != NULL;
	k[PF_LAST4] = p->last4 != NULL;
	k[PF_AUTH_CODE] = p->auth_code != NULL;
	k[PF_DECLINE_CODE] = p->decline_code != NULL;
	k[PF_LIVEMODE] = p->livemode != -1;
	k[PF_CREATED_AT] = p->created_at != NULL;
}

/* SPEC §4's PAYMENT keys, today's PAYMENT_COLS, SPEC §3's variables. */
static void
test_table_spelling(void **state)
{
	static const char *const keys[PAY_NFIELDS] = {
		"paymentId", "terminalId", "reference", "status", "amount",
		"amountCaptured", "currency", "captureMethod", "entryMethod", "brand",
		"last4", "authCode", "declineCode", "livemode", "createdAt",
	};
	static const char *const env[PAY_NFIELDS] = {
		[PF_ID] = "VINR_PAYMENT_ID", [PF_TERMINAL_ID] = "VINR_TERMINAL_ID",
		[PF_REFERENCE] = "VINR_REFERENCE", [PF_STATUS] = "VINR_STATUS",
		[PF_AMOUNT] = "VINR_AMOUNT", [PF_CURRENCY] = "VINR_CURRENCY",
		[PF_DECLINE_CODE] = "VINR_DECLINE_CODE",
	};
	char cols[512] = "";

	(void)state;
	for (int i = 0; i < PAY_NFIELDS; i++) {
		assert_string_equal(pay_fields[i].key, keys[i]);
		assert_str_eq_or_null(pay_fields[i].env, env[i], keys[i]);
		/* VINR's object spells them as we do, but for its "id". */
		assert_str_eq_or_null(pay_fields[i].vinr_key, i == PF_ID ? "id" :
		    i == PF_LIVEMODE ? NULL : keys[i], keys[i]);
		/* Every field is in the outcome line but createdAt (SPEC §2). */
		assert_int_equal(pay_fields[i].outcome, i != PF_CREATED_AT);
		if (i > 0)
			strcat(cols, ", ");
		strcat(cols, pay_fields[i].column);
	}
	assert_string_equal(cols, PAYMENT_COLS);
	assert_int_equal(PAYMENT_NCOLS, PAY_NFIELDS);
	assert_int_equal(pay_fields[PF_AMOUNT].type, PAY_FT_INT64);
	assert_int_equal(pay_fields[PF_AMOUNT_CAPTURED].type, PAY_FT_INT64);
	assert_int_equal(pay_fields[PF_LIVEMODE].type, PAY_FT_BOOL);
	assert_int_equal(pay_fields[PF_STATUS].type, PAY_FT_STATUS);
}

/* Each field's offsets reach its own member and no other. */
static void
test_table_offsets(void **state)
{
	bool k[PAY_NFIELDS];
	struct payment p;
	int64_t v;

	(void)state;
	for (int i = 0; i < PAY_NFIELDS; i++) {
		payment_init(&p);
		known_members(&p, k);
		for (int j = 0; j < PAY_NFIELDS; j++)
			assert_false(k[j]);
		if (pay_field_is_text(i))
			assert_int_equal(pay_field_set_text(&p, i, "completed"), 0);
		else
			pay_field_set_int(&p, i, true, INT64_C(9007199254740993));
		known_members(&p, k);
		for (int j = 0; j < PAY_NFIELDS; j++)
			if (k[j] != (j == i))
				fail_msg("setting %s made %s %s", pay_fields[i].key,
				    pay_fields[j].key, k[j] ? "known" : "unknown");
		if (pay_field_is_text(i)) {
			assert_string_equal(pay_field_text(&p, i), "completed");
			assert_false(pay_field_int(&p, i, &v));
		} else {
			assert_true(pay_field_int(&p, i, &v));
			assert_true(v == (i == PF_LIVEMODE ? 1 : INT64_C(9007199254740993)));
			assert_null(pay_field_text(&p, i));
		}
		/* Back to unknown. */
		if (pay_field_is_text(i))
			assert_int_equal(pay_field_set_text(&p, i, NULL), 0);
		else
			pay_field_set_int(&p, i, false, 5);
		known_members(&p, k);
		assert_false(k[i]);
		payment_release(&p);
	}
	/* Through the members: what the accessors read. */
	payment_init(&p);
	p.amount_captured = INT64_MAX;
	p.has_amount_captured = true;
	p.livemode = 0;
	p.status = PAY_AUTHORIZED;
	assert_true(pay_field_int(&p, PF_AMOUNT_CAPTURED, &v) && v == INT64_MAX);
	assert_true(pay_field_int(&p, PF_LIVEMODE, &v) && v == 0);
	assert_false(pay_field_int(&p, PF_AMOUNT, &v));
	assert_string_equal(pay_field_text(&p, PF_STATUS), "authorized");
	assert_int_equal(pay_field_set_text(&p, PF_STATUS, "nonsense"), 0);
	assert_int_equal(p.status, PAY_NONE);
}

/* The PAYMENT object's fields: keys in order, integers exact. */
static void
test_add_json_exact(void **state)
{
	struct payment p;
	cJSON *o;
	char *s;

	(void)state;
	full_payment(&p, "x", PAY_COMPLETED, INT64_C(9007199254740993));
	p.has_amount_captured = true;
	p.amount_captured = INT64_MAX;
	p.livemode = 1;
	o = cJSON_CreateObject();
	assert_non_null(o);
	assert_int_equal(payment_add_json(o, &p, 0, PAY_NFIELDS), 0);
	s = cJSON_PrintUnformatted(o);
	assert_string_equal(s, "{\"paymentId\":\"tpay_1\",\"terminalId\":\"x_terminal_id\","
	    "\"reference\":\"x_reference\",\"status\":\"completed\","
	    "\"amount\":9007199254740993,\"amountCaptured\":9223372036854775807,"
	    "\"currency\":\"x_currency\",\"captureMethod\":\"x_capture_method\","
	    "\"entryMethod\":\"x_entry_method\",\"brand\":\"x_brand\",\"last4\":\"x_last4\","
	    "\"authCode\":\"x_auth_code\",\"declineCode\":\"x_decline_code\","
	    "\"livemode\":true,\"createdAt\":\"x_created_at\"}");
	free(s);
	cJSON_Delete(o);
	payment_release(&p);

	/* Unknown: null; a range of the table only. */
	payment_init(&p);
	o = cJSON_CreateObject();
	assert_int_equal(payment_add_json(o, &p, PF_STATUS, PF_CURRENCY), 0);
	s = cJSON_PrintUnformatted(o);
	assert_string_equal(s, "{\"status\":null,\"amount\":null,\"amountCaptured\":null}");
	free(s);
	cJSON_Delete(o);
}

/* The whole outcome line, byte for byte: SPEC §2's key order, exact integers. */
static void
test_outcome_line_exact(void **state)
{
	struct payment p;
	char *s;

	(void)state;
	full_payment(&p, "x", PAY_COMPLETED, INT64_C(2000000000000000));
	p.has_amount_captured = true;
	p.amount_captured = INT64_C(9007199254740993);
	s = payment_outcome_json(&p, PAY_AUTHORIZED, INT64_MAX, "evt_1", "webhook",
	    "2026-06-11T09:00:12Z", "2026-06-11T09:00:12.345Z");
	assert_string_equal(s, "{\"seq\":9223372036854775807,\"type\":\"payment.completed\","
	    "\"paymentId\":\"tpay_1\",\"terminalId\":\"x_terminal_id\","
	    "\"reference\":\"x_reference\",\"status\":\"completed\","
	    "\"previousStatus\":\"authorized\",\"amount\":2000000000000000,"
	    "\"amountCaptured\":9007199254740993,\"currency\":\"x_currency\","
	    "\"captureMethod\":\"x_capture_method\",\"entryMethod\":\"x_entry_method\","
	    "\"brand\":\"x_brand\",\"last4\":\"x_last4\",\"authCode\":\"x_auth_code\","
	    "\"declineCode\":\"x_decline_code\",\"eventId\":\"evt_1\",\"source\":\"webhook\","
	    "\"livemode\":false,\"occurredAt\":\"2026-06-11T09:00:12Z\","
	    "\"recordedAt\":\"2026-06-11T09:00:12.345Z\"}");
	free(s);
	payment_release(&p);

	unknown_payment(&p);
	p.status = PAY_FAILED;
	p.has_amount = true;
	p.amount = INT64_MIN;
	s = payment_outcome_json(&p, PAY_NONE, 1, NULL, "reconciler", NULL, "r");
	assert_string_equal(s, "{\"seq\":1,\"type\":\"payment.failed\",\"paymentId\":null,"
	    "\"terminalId\":null,\"reference\":null,\"status\":\"failed\","
	    "\"previousStatus\":null,\"amount\":-9223372036854775808,"
	    "\"amountCaptured\":null,\"currency\":null,\"captureMethod\":null,"
	    "\"entryMethod\":null,\"brand\":null,\"last4\":null,\"authCode\":null,"
	    "\"declineCode\":null,\"eventId\":null,\"source\":\"reconciler\","
	    "\"livemode\":null,\"occurredAt\":null,\"recordedAt\":\"r\"}");
	free(s);
	payment_release(&p);
}

static void
test_fill_missing(void **state)
{
	struct payment dst, src;
	bool k[PAY_NFIELDS];

	(void)state;
	bare_payment(&dst, PAY_PENDING);
	dst.reference = xdup("mine");
	full_payment(&src, "src", PAY_COMPLETED, INT64_C(9007199254740993));
	src.has_amount_captured = true;
	src.amount_captured = 7;
	src.livemode = 1;
	assert_int_equal(payment_fill_missing(&dst, &src), 0);
	known_members(&dst, k);
	for (int i = 0; i < PAY_NFIELDS; i++)
		if (!k[i])
			fail_msg("%s still unknown", pay_fields[i].key);
	/* Known ones stay. */
	assert_string_equal(dst.id, "tpay_1");
	assert_string_equal(dst.reference, "mine");
	assert_int_equal(dst.status, PAY_PENDING);
	/* Unknown ones are copies. */
	assert_string_equal(dst.brand, "src_brand");
	assert_ptr_not_equal(dst.brand, src.brand);
	assert_true(dst.amount == INT64_C(9007199254740993));
	assert_true(dst.amount_captured == 7);
	assert_int_equal(dst.livemode, 1);
	/* status_at is no table field: transient, left alone. */
	assert_null(dst.status_at);
	payment_release(&dst);
	payment_release(&src);
}

static void
test_copy_and_release(void **state)
{
	struct payment a, b;

	(void)state;
	full_payment(&a, "a", PAY_AUTHORIZED, INT64_MAX);
	a.has_amount_captured = true;
	a.amount_captured = INT64_MIN;
	copy(&b, &a);
	assert_payment_equal(&a, &b);
	for (size_t i = 0; i < NSTR; i++)
		assert_ptr_not_equal(sget(&a, i), sget(&b, i));
	payment_release(&a);
	for (size_t i = 0; i < NSTR; i++)
		assert_null(sget(&a, i));
	assert_string_equal(b.status_at, "a_status_at");
	payment_release(&b);
	payment_release(&b);	/* twice: harmless */
	payment_release(NULL);
}

/* What a pay request is matched against: the object's fields over the stored. */
static void
test_match_view(void **state)
{
	struct payment stored = { .id = "tpay_1", .terminal_id = "term_old",
	    .reference = "order_old", .has_amount = true, .amount = 100,
	    .created_at = "2026-06-11T09:00:00Z", .status = PAY_PENDING };
	struct payment obj = { .id = "tpay_1", .reference = "order_new",
	    .status = PAY_COMPLETED };
	struct payment m;

	(void)state;
	m = payment_match_view(&stored, &obj);
	assert_string_equal(m.terminal_id, "term_old");
	assert_string_equal(m.reference, "order_new");
	assert_true(m.has_amount);
	assert_int_equal(m.amount, 100);
	assert_string_equal(m.created_at, "2026-06-11T09:00:00Z");
	assert_int_equal(m.status, PAY_PENDING);
	obj.has_amount = true;
	obj.amount = 250;
	obj.terminal_id = "term_new";
	obj.created_at = "2026-06-11T09:01:00Z";
	m = payment_match_view(&stored, &obj);
	assert_string_equal(m.terminal_id, "term_new");
	assert_int_equal(m.amount, 250);
	assert_string_equal(m.created_at, "2026-06-11T09:01:00Z");
	assert_string_equal(pay_decision_name(PAY_TRANSITION), "transition");
	assert_string_equal(pay_decision_name(PAY_STALE), "stale");
	assert_string_equal(pay_decision_name(PAY_CONFLICT), "conflict");
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_status_names_and_ranks),
		cmocka_unit_test(test_unknown_payment_created),
		cmocka_unit_test(test_unknown_payment_bare),
		cmocka_unit_test(test_merge_even_fields),
		cmocka_unit_test(test_merge_odd_fields),
		cmocka_unit_test(test_merge_nothing_known_keeps_all),
		cmocka_unit_test(test_merge_amount_and_livemode),
		cmocka_unit_test(test_stale_does_not_merge),
		cmocka_unit_test(test_walk_pending_to_completed),
		cmocka_unit_test(test_capture_object_value_wins),
		cmocka_unit_test(test_capture_zero_from_object),
		cmocka_unit_test(test_capture_stored_value),
		cmocka_unit_test(test_capture_amount_once_completed),
		cmocka_unit_test(test_no_capture_amount_unless_completed),
		cmocka_unit_test(test_capture_from_pending),
		cmocka_unit_test(test_outcome_all_known),
		cmocka_unit_test(test_outcome_all_unknown_is_null),
		cmocka_unit_test(test_outcome_type_per_status),
		cmocka_unit_test(test_outcome_livemode),
		cmocka_unit_test(test_outcome_escaping),
		cmocka_unit_test(test_outcome_as_cjson_prints),
		cmocka_unit_test(test_outcome_after_capture),
		cmocka_unit_test(test_outcome_large_amount_exact),
		cmocka_unit_test(test_outcome_integer_edges),
		cmocka_unit_test(test_table_spelling),
		cmocka_unit_test(test_table_offsets),
		cmocka_unit_test(test_add_json_exact),
		cmocka_unit_test(test_outcome_line_exact),
		cmocka_unit_test(test_fill_missing),
		cmocka_unit_test(test_copy_and_release),
		cmocka_unit_test(test_match_view),
	};
	enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]), NPAIR = NSTATUS * NSTATUS };
	struct CMUnitTest tests[NFIXED + 2 * NPAIR];
	static char bare_names[NPAIR][64];
	size_t n = 0;

	for (size_t i = 0; i < NFIXED; i++)
		tests[n++] = fixed[i];
	for (int a = 0; a < NSTATUS; a++)
		for (int b = 0; b < NSTATUS; b++) {
			int k = a * NSTATUS + b;

			pairs[k].stored = all_status[a];
			pairs[k].incoming = all_status[b];
			snprintf(pair_names[k], sizeof(pair_names[k]),
			    "pair %s -> %s", status_str[all_status[a]],
			    status_str[all_status[b]]);
			snprintf(bare_names[k], sizeof(bare_names[k]),
			    "pair (bare) %s -> %s", status_str[all_status[a]],
			    status_str[all_status[b]]);
			tests[n++] = (struct CMUnitTest){ .name = pair_names[k],
			    .test_func = test_pair, .initial_state = &pairs[k] };
			tests[n++] = (struct CMUnitTest){ .name = bare_names[k],
			    .test_func = test_pair_bare, .initial_state = &pairs[k] };
		}
	return _cmocka_run_group_tests("payment", tests, n, NULL, NULL);
}
