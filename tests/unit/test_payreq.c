/*
 * test_payreq.c - the pay requests of SPEC §4.1: the pure rules (payreq.c:
 * mismatch, may-create, the link window, states) and the store's jobs that
 * keep them (store_pay_begin/_set/_move, the link made by an ingest, and
 * store_reader_pay_request/_oldest), on a fresh database each.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_event.h"
#include "payreq.h"
#include "store.h"
#include "store_read.h"
#include "util.h"

static struct pay_request
req(const char *key, const char *term, int64_t amount, const char *cur, const char *cm)
{
	struct pay_request r;

	payreq_init(&r);
	r.key = (char *)(uintptr_t)key;
	r.terminal_id = (char *)(uintptr_t)term;
	r.reference = (char *)(uintptr_t)"order_1";
	r.amount = amount;
	r.currency = (char *)(uintptr_t)cur;
	r.capture_method = (char *)(uintptr_t)cm;
	return r;
}

/* ------------------------------------------------------------------ */
/* Pure */

static void
test_states(void **state)
{
	(void)state;
	for (int s = PR_SENDING; s <= PR_NOT_CREATED; s++)
		assert_int_equal(payreq_state_parse(payreq_state_name(s)), s);
	assert_null(payreq_state_name(PR_NONE));
	assert_int_equal(payreq_state_parse("created "), PR_NONE);
	assert_int_equal(payreq_state_parse(NULL), PR_NONE);
	assert_true(payreq_may_create(PR_NONE));
	assert_true(payreq_may_create(PR_NOT_CREATED));
	assert_false(payreq_may_create(PR_SENDING));
	assert_false(payreq_may_create(PR_UNKNOWN));
	assert_false(payreq_may_create(PR_CREATED));
}

static void
test_mismatch(void **state)
{
	struct pay_request a = req("k", "term_1", 2500, "USD", "automatic"), b = a;

	(void)state;
	assert_null(payreq_mismatch(&a, &b));
	b.currency = (char *)(uintptr_t)"usd";
	assert_null(payreq_mismatch(&a, &b));		/* a code, any case */
	b.reference = (char *)(uintptr_t)"another_ref";
	assert_null(payreq_mismatch(&a, &b));		/* not compared */
	b = a;
	b.terminal_id = (char *)(uintptr_t)"term_2";
	assert_string_equal(payreq_mismatch(&a, &b), "terminalId");
	b = a;
	b.amount = 2501;
	assert_string_equal(payreq_mismatch(&a, &b), "amount");
	b = a;
	b.currency = (char *)(uintptr_t)"EUR";
	assert_string_equal(payreq_mismatch(&a, &b), "currency");
	b = a;
	b.capture_method = (char *)(uintptr_t)"manual";
	assert_string_equal(payreq_mismatch(&a, &b), "captureMethod");
}

static void
test_time(void **state)
{
	(void)state;
	assert_int_equal(payreq_time_s("1970-01-01T00:01:00Z"), 60);
	assert_int_equal(payreq_time_s("1970-01-01T00:01:00.999Z"), 60);
	assert_int_equal(payreq_time_s("1970-01-01T01:01:00+01:00"), 60);
	assert_int_equal(payreq_time_s("1970-01-01T00:00:00-00:01"), 60);
	assert_int_equal(payreq_time_s("1970-01-01T00:01:00"), -1);
	assert_int_equal(payreq_time_s("yesterday"), -1);
	assert_int_equal(payreq_time_s(NULL), -1);
}

static void
test_link_window(void **state)
{
	const char *req_at = "2026-06-11T09:00:00.345Z";

	(void)state;
	/* VINR's whole seconds: a payment made just after may read earlier. */
	assert_true(payreq_link_ok(req_at, "2026-06-11T09:00:00Z", false));
	assert_true(payreq_link_ok(req_at, "2026-06-11T08:59:55Z", false));
	assert_false(payreq_link_ok(req_at, "2026-06-11T08:59:54Z", false));
	assert_true(payreq_link_ok(req_at, "2026-06-11T09:30:00Z", false));
	/* No createdAt: only a payment the daemon had never heard of. */
	assert_true(payreq_link_ok(req_at, NULL, true));
	assert_false(payreq_link_ok(req_at, NULL, false));
	assert_false(payreq_link_ok(req_at, "garbage", false));
	assert_false(payreq_link_ok("garbage", "2026-06-11T09:00:00Z", true));
}

static void
test_copy(void **state)
{
	struct pay_request a = req("k", "term_1", 7, "USD", "manual"), b;

	(void)state;
	a.payment_id = (char *)(uintptr_t)"tpay_1";
	a.state = PR_CREATED;
	snprintf(a.created_at, sizeof(a.created_at), "2026-06-11T09:00:00.000Z");
	assert_int_equal(payreq_copy(&b, &a), 0);
	assert_string_equal(b.key, "k");
	assert_string_equal(b.payment_id, "tpay_1");
	assert_string_equal(b.created_at, a.created_at);
	assert_int_equal(b.amount, 7);
	assert_int_equal(b.state, PR_CREATED);
	assert_ptr_not_equal(b.key, a.key);
	payreq_release(&b);
	assert_null(b.key);
	payreq_release(NULL);
}

/* ------------------------------------------------------------------ */
/* Through the store */

#include "store_fixture.h"

/* A payment object of terminal term_1, order_1, through api_event_apply. */
static int
apply(struct fixture *f, const char *id, int64_t amount, const char *created,
    const char *pay_key)
{
	struct api_event ae = { .source = "api", .prefix = "api", .pay_key = pay_key };
	char body[512];

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"status\":\"pending\",\"terminalId\":"
	    "\"term_1\",\"reference\":\"order_1\",\"amount\":%lld%s%s%s}", id,
	    (long long)amount, created != NULL ? ",\"createdAt\":\"" : "",
	    created != NULL ? created : "", created != NULL ? "\"" : "");
	return api_event_apply(f->store, body, strlen(body), &ae);
}

static enum payreq_state
state_of(struct fixture *f, const char *key, char *pid, size_t pidlen)
{
	struct pay_request r;
	enum payreq_state s;

	assert_int_equal(store_reader_pay_request(f->reader, key, &r), 1);
	s = r.state;
	if (pid != NULL)
		snprintf(pid, pidlen, "%s", r.payment_id != NULL ? r.payment_id : "");
	payreq_release(&r);
	return s;
}

static void
test_begin(void **state)
{
	struct fixture *f = *state;
	struct pay_request in = req("k1", "term_1", 2500, "USD", "automatic"), out, other;

	assert_int_equal(store_pay_begin(f->store, &in, &out), STORE_PAY_NEW);
	assert_int_equal(out.state, PR_SENDING);
	assert_string_equal(out.key, "k1");
	assert_true(out.created_at[0] != '\0');
	payreq_release(&out);
	/* Again: it exists, and is not created twice. */
	assert_int_equal(store_pay_begin(f->store, &in, &out), STORE_PAY_EXISTS);
	assert_int_equal(out.state, PR_SENDING);
	payreq_release(&out);
	other = in;
	other.amount = 99;
	assert_int_equal(store_pay_begin(f->store, &other, &out), STORE_PAY_MISMATCH);
	assert_int_equal(out.amount, 2500);
	assert_string_equal(payreq_mismatch(&out, &other), "amount");
	payreq_release(&out);
	/* not_created: the key may create again, with new parameters. */
	assert_int_equal(store_pay_set(f->store, "k1", PR_NOT_CREATED), 0);
	assert_int_equal(store_pay_begin(f->store, &other, &out), STORE_PAY_NEW);
	payreq_release(&out);
	assert_int_equal(store_reader_pay_request(f->reader, "nope", &out), 0);
}

static void
test_linked_by_its_answer(void **state)
{
	struct fixture *f = *state;
	struct pay_request in = req("k2", "term_1", 2500, "USD", "automatic"), out;
	char pid[64];

	assert_int_equal(store_pay_begin(f->store, &in, &out), STORE_PAY_NEW);
	payreq_release(&out);
	assert_int_equal(apply(f, "tpay_a", 2500, NULL, "k2"), 0);
	assert_int_equal(state_of(f, "k2", pid, sizeof(pid)), PR_CREATED);
	assert_string_equal(pid, "tpay_a");
}

static void
test_unknown_resolved_by_a_matching_payment(void **state)
{
	struct fixture *f = *state;
	struct pay_request a = req("ka", "term_1", 2500, "USD", "automatic"), out;
	struct pay_request b = req("kb", "term_1", 2500, "USD", "automatic");
	char pid[64], now[TS_LEN];

	assert_int_equal(store_pay_begin(f->store, &a, &out), STORE_PAY_NEW);
	payreq_release(&out);
	assert_int_equal(store_pay_begin(f->store, &b, &out), STORE_PAY_NEW);
	payreq_release(&out);
	/* A crash: both were sending. */
	assert_int_equal(store_pay_move(f->store, PR_SENDING, PR_UNKNOWN, "9999"), 2);
	/* Too old, another amount: no link. */
	assert_int_equal(apply(f, "tpay_old", 2500, "2020-01-01T00:00:00Z", NULL), 0);
	assert_int_equal(apply(f, "tpay_amt", 2501, NULL, NULL), 0);
	assert_int_equal(state_of(f, "ka", NULL, 0), PR_UNKNOWN);
	/* The first match takes the oldest request, the next the other one. */
	util_rfc3339(util_now_ms(), now);
	now[19] = 'Z';
	now[20] = '\0';
	assert_int_equal(apply(f, "tpay_1", 2500, now, NULL), 0);
	assert_int_equal(state_of(f, "ka", pid, sizeof(pid)), PR_CREATED);
	assert_string_equal(pid, "tpay_1");
	assert_int_equal(state_of(f, "kb", NULL, 0), PR_UNKNOWN);
	/* The same payment again (a later status) does not take kb too. */
	assert_int_equal(apply(f, "tpay_1", 2500, now, NULL), 0);
	assert_int_equal(state_of(f, "kb", NULL, 0), PR_UNKNOWN);
	assert_int_equal(apply(f, "tpay_2", 2500, NULL, NULL), 0);
	assert_int_equal(state_of(f, "kb", pid, sizeof(pid)), PR_CREATED);
	assert_string_equal(pid, "tpay_2");
}

static void
test_expiry(void **state)
{
	struct fixture *f = *state;
	struct pay_request a = req("kx", "term_1", 1, "USD", "automatic"), out;
	char at[TS_LEN], later[TS_LEN];

	assert_int_equal(store_reader_pay_oldest(f->reader, PR_UNKNOWN, at), 0);
	assert_int_equal(store_pay_begin(f->store, &a, &out), STORE_PAY_NEW);
	payreq_release(&out);
	assert_int_equal(store_pay_set(f->store, "kx", PR_UNKNOWN), 0);
	assert_int_equal(store_reader_pay_oldest(f->reader, PR_UNKNOWN, at), 1);
	/* Not yet older than the cutoff: stays. */
	assert_int_equal(store_pay_move(f->store, PR_UNKNOWN, PR_NOT_CREATED, at), 0);
	util_rfc3339(util_now_ms() + 1000, later);
	assert_int_equal(store_pay_move(f->store, PR_UNKNOWN, PR_NOT_CREATED, later), 1);
	assert_int_equal(state_of(f, "kx", NULL, 0), PR_NOT_CREATED);
	assert_int_equal(store_reader_pay_oldest(f->reader, PR_UNKNOWN, at), 0);
}

/* A stored row's columns, as both engines hand them over. */
static void
test_from_columns(void **state)
{
	const char *full[PAYREQ_NCOLS] = { "k1", "term_1", "order_9", "EUR", "manual",
	    "ignored", "created", "tpay_1", "2026-06-11T09:00:00.000Z" };
	const char *bare[PAYREQ_NCOLS] = { "k2", NULL, NULL, NULL, NULL, NULL, "bogus",
	    NULL, NULL };
	struct pay_request r;

	(void)state;
	assert_int_equal(payreq_from_columns(&r, full, 1250), 0);
	assert_string_equal(r.key, "k1");
	assert_string_equal(r.terminal_id, "term_1");
	assert_string_equal(r.reference, "order_9");
	assert_string_equal(r.currency, "EUR");
	assert_string_equal(r.capture_method, "manual");
	assert_int_equal(r.amount, 1250);
	assert_int_equal(r.state, PR_CREATED);
	assert_string_equal(r.payment_id, "tpay_1");
	assert_string_equal(r.created_at, "2026-06-11T09:00:00.000Z");
	assert_true(r.key != full[0]);		/* copies, not the row's own */
	payreq_release(&r);
	assert_int_equal(payreq_from_columns(&r, bare, 0), 0);
	assert_string_equal(r.key, "k2");
	assert_null(r.terminal_id);
	assert_null(r.payment_id);
	assert_int_equal(r.state, PR_NONE);
	assert_string_equal(r.created_at, "");
	payreq_release(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_link_window),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_from_columns),
		cmocka_unit_test_setup_teardown(test_begin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linked_by_its_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_resolved_by_a_matching_payment,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
