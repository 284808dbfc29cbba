/*
 * test_event.c - unit tests of event.c: event_parse() (SPEC §1.1, §1.3,
 * §1.4).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

static enum event_err
parse(const char *body, const char *fallback, struct vinr_event *ev)
{
	return event_parse(body, strlen(body), fallback, ev);
}

/* Parses body, which must be EVENT_OK; the caller releases ev. */
static void
parse_ok(const char *body, const char *fallback, struct vinr_event *ev)
{
	enum event_err e = parse(body, fallback, ev);

	if (e != EVENT_OK)
		fail_msg("event_parse(%s) = %d, want EVENT_OK", body, e);
}

static void
expect_err(const char *body, const char *fallback, enum event_err want)
{
	struct vinr_event ev;
	enum event_err e = parse(body, fallback, &ev);

	if (e != want)
		fail_msg("event_parse(%s) = %d, want %d", body, e, want);
	/* Nothing to free on error. */
	assert_null(ev.id);
	assert_null(ev.type);
	assert_null(ev.created_at);
	assert_null(ev.pay.id);
}

/* A complete event around a payment object (JSON text). */
static char *
envelope(const char *type, const char *object)
{
	char *s;

	assert_true(asprintf(&s, "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"%s\","
	    "\"createdAt\":\"2026-06-11T09:00:12Z\",\"livemode\":false,"
	    "\"data\":{\"object\":%s}}", type, object) > 0);
	return s;
}

/* ---------------------------------------------------------- rejected */

static void
test_invalid_json(void **state)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "nope", "{\"id\":\"e\",}", "{'id':'e'}",
		"{\"id\":\"e\" \"type\":\"t\"}", "[1,2", "\"unterminated",
		"{\"id\":\"e\",\"type\":\"t\"", "NaN", "{\"a\":-}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_err(bad[i], NULL, EVENT_INVALID_JSON);
		expect_err(bad[i], "msg_fallback", EVENT_INVALID_JSON);
	}
}

/* len is honoured: a valid prefix with the rest cut off is not JSON. */
static void
test_invalid_json_length(void **state)
{
	static const char body[] = "{\"id\":\"evt_1\",\"type\":\"t\"}";
	struct vinr_event ev;

	(void)state;
	assert_int_equal(event_parse(body, strlen(body) - 1, NULL, &ev),
	    EVENT_INVALID_JSON);
	assert_int_equal(event_parse(body, 0, NULL, &ev), EVENT_INVALID_JSON);
	/* A raw NUL, in a string or after the value, is not JSON either. */
	static const char nul_in[] = "{\"id\":\"evt\0_1\",\"type\":\"t\"}";
	assert_int_equal(event_parse(nul_in, sizeof(nul_in) - 1, NULL, &ev),
	    EVENT_INVALID_JSON);
	assert_int_equal(event_parse(body, sizeof(body), NULL, &ev), EVENT_INVALID_JSON);
	/* Not NUL-terminated at len: no read past it. */
	char buf[64];
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, body, strlen(body));
	assert_int_equal(event_parse(buf, strlen(body), NULL, &ev), EVENT_OK);
	assert_string_equal(ev.id, "evt_1");
	event_release(&ev);
}

/*
 * A JSON value followed by more bytes is not valid JSON (SPEC §1.4: 400
 * invalid_json).  event_parse() passes require_null_terminated = 0 to
 * cJSON_ParseWithLengthOpts, which then ignores whatever follows the value.
 */
static void
test_trailing_garbage_is_invalid_json(void **state)
{
	static const char *const bodies[] = {
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\"}garbage",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\"} {}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\"}}",
	};
	struct vinr_event ev;
	int right = 0;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		enum event_err e = parse(bodies[i], NULL, &ev);

		if (e == EVENT_INVALID_JSON)
			right++;
		else if (e == EVENT_OK)
			event_release(&ev);
	}
	/* Surrounding whitespace is fine, though. */
	parse_ok(" \r\n\t{\"id\":\"evt_1\",\"type\":\"x.y\"} \r\n\t", NULL, &ev);
	event_release(&ev);
	assert_int_equal(right, 3);
}

static void
test_not_an_object(void **state)
{
	static const char *const bad[] = {
		"[]", "[{\"id\":\"evt_1\",\"type\":\"t\"}]", "\"evt_1\"", "42",
		"null", "true", "false", "{}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_err(bad[i], NULL, EVENT_INVALID_EVENT);
		expect_err(bad[i], "msg_1", EVENT_INVALID_EVENT);
	}
}

static void
test_bad_id(void **state)
{
	static const char *const bad[] = {
		"{\"type\":\"terminal_payment.completed\"}",
		"{\"id\":42,\"type\":\"terminal_payment.completed\"}",
		"{\"id\":null,\"type\":\"terminal_payment.completed\"}",
		"{\"id\":\"\",\"type\":\"terminal_payment.completed\"}",
		"{\"id\":true,\"type\":\"terminal_payment.completed\"}",
		"{\"id\":[\"evt\"],\"type\":\"terminal_payment.completed\"}",
		"{\"id\":{\"v\":\"evt\"},\"type\":\"terminal_payment.completed\"}",
		"{\"ID\":\"evt_1\",\"type\":\"terminal_payment.completed\"}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(bad[i], NULL, EVENT_INVALID_EVENT);
}

static void
test_bad_type(void **state)
{
	static const char *const bad[] = {
		"{\"id\":\"evt_1\"}",
		"{\"id\":\"evt_1\",\"type\":7}",
		"{\"id\":\"evt_1\",\"type\":null}",
		"{\"id\":\"evt_1\",\"type\":\"\"}",
		"{\"id\":\"evt_1\",\"type\":[\"terminal_payment.completed\"]}",
		"{\"id\":\"evt_1\",\"Type\":\"terminal_payment.completed\"}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_err(bad[i], NULL, EVENT_INVALID_EVENT);
		/* The fallback id does not excuse a missing type. */
		expect_err(bad[i], "msg_1", EVENT_INVALID_EVENT);
	}
	expect_err("{\"type\":\"\"}", "msg_1", EVENT_INVALID_EVENT);
	expect_err("{}", "msg_1", EVENT_INVALID_EVENT);
}

/* ------------------------------------------------------- fallback id */

static void
test_fallback_id(void **state)
{
	struct vinr_event ev;
	char *b;

	(void)state;
	/* No id in the body: webhook-id is the dedupe key. */
	parse_ok("{\"type\":\"terminal_payment.completed\",\"data\":{\"object\":"
	    "{\"id\":\"tpay_1\",\"status\":\"completed\"}}}", "msg_p5jXN8AQ", &ev);
	assert_string_equal(ev.id, "msg_p5jXN8AQ");
	assert_string_equal(ev.type, "terminal_payment.completed");
	assert_null(ev.ignore_reason);
	assert_int_equal(ev.pay.status, PAY_COMPLETED);
	event_release(&ev);

	/* The body's id wins when present. */
	b = envelope("terminal_payment.completed",
	    "{\"id\":\"tpay_1\",\"status\":\"completed\"}");
	parse_ok(b, "msg_other", &ev);
	assert_string_equal(ev.id, "evt_1");
	event_release(&ev);
	free(b);

	/* Without a fallback (vinr scheme) a body without id is refused;
	 * an empty fallback is no fallback. */
	expect_err("{\"type\":\"terminal_payment.completed\"}", NULL,
	    EVENT_INVALID_EVENT);
	expect_err("{\"type\":\"terminal_payment.completed\"}", "",
	    EVENT_INVALID_EVENT);
	/* An ignorable body with only a type still gets stored under it. */
	parse_ok("{\"type\":\"ping\"}", "msg_2", &ev);
	assert_string_equal(ev.id, "msg_2");
	assert_non_null(ev.ignore_reason);
	event_release(&ev);
}

/* ----------------------------------------------------------- ignored */

static void
expect_ignored(const char *body)
{
	struct vinr_event ev;

	parse_ok(body, NULL, &ev);
	if (ev.ignore_reason == NULL)
		fail_msg("not ignored: %s", body);
	assert_string_equal(ev.id, "evt_1");
	event_release(&ev);
}

static void
expect_applies(const char *body, enum pay_status st)
{
	struct vinr_event ev;

	parse_ok(body, NULL, &ev);
	if (ev.ignore_reason != NULL)
		fail_msg("ignored (%s): %s", ev.ignore_reason, body);
	assert_int_equal(ev.pay.status, st);
	assert_string_equal(ev.pay.id, "tpay_1");
	event_release(&ev);
}

static void
test_ignored_type(void **state)
{
	static const char *const types[] = {
		"payment.completed", "terminal_payments.completed",
		"Terminal_payment.completed", "terminal_payment", "refund.created",
		"terminal_payment_completed", "x",
	};
	static const char obj[] = "{\"id\":\"tpay_1\",\"status\":\"completed\"}";

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char *b = envelope(types[i], obj);

		expect_ignored(b);
		free(b);
	}
	/* Any terminal_payment.* applies, the status comes from the object. */
	static const char *const ok_types[] = {
		"terminal_payment.created", "terminal_payment.captured",
		"terminal_payment.refunded", "terminal_payment.failed",
	};
	for (size_t i = 0; i < sizeof(ok_types) / sizeof(ok_types[0]); i++) {
		char *b = envelope(ok_types[i], obj);

		expect_applies(b, PAY_COMPLETED);
		free(b);
	}
}

static void
test_ignored_no_object(void **state)
{
	static const char *const bodies[] = {
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\"}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":null}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":{}}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":[]}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":"
		    "\"tpay_1\"}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":"
		    "{\"object\":null}}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":"
		    "{\"object\":\"tpay_1\"}}",
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":"
		    "{\"object\":[{\"id\":\"tpay_1\",\"status\":\"completed\"}]}}",
		/* The object must be under data, not at the top. */
		"{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"object\":"
		    "{\"id\":\"tpay_1\",\"status\":\"completed\"}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_ignored(bodies[i]);
}

static void
test_ignored_no_payment_id(void **state)
{
	static const char *const objs[] = {
		"{\"status\":\"completed\"}",
		"{\"id\":\"\",\"status\":\"completed\"}",
		"{\"id\":42,\"status\":\"completed\"}",
		"{\"id\":null,\"status\":\"completed\"}",
		"{\"id\":{\"x\":1},\"status\":\"completed\"}",
		"{}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		char *b = envelope("terminal_payment.completed", objs[i]);

		expect_ignored(b);
		free(b);
	}
}

static void
test_ignored_bad_status(void **state)
{
	static const char *const objs[] = {
		"{\"id\":\"tpay_1\"}",
		"{\"id\":\"tpay_1\",\"status\":\"refunded\"}",
		"{\"id\":\"tpay_1\",\"status\":\"Completed\"}",
		"{\"id\":\"tpay_1\",\"status\":\"\"}",
		"{\"id\":\"tpay_1\",\"status\":4}",
		"{\"id\":\"tpay_1\",\"status\":null}",
		"{\"id\":\"tpay_1\",\"status\":true}",
		"{\"id\":\"tpay_1\",\"status\":[\"completed\"]}",
		"{\"id\":\"tpay_1\",\"status\":{\"completed\":true}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		char *b = envelope("terminal_payment.completed", objs[i]);

		expect_ignored(b);
		free(b);
	}
}

/* The state is read from data.object.status, never from the type. */
static void
test_status_from_object(void **state)
{
	static const char *const names[] = { "pending", "processing",
	    "authorized", "completed", "failed", "cancelled" };
	static const enum pay_status st[] = { PAY_PENDING, PAY_PROCESSING,
	    PAY_AUTHORIZED, PAY_COMPLETED, PAY_FAILED, PAY_CANCELLED };

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		char obj[128], *b;

		snprintf(obj, sizeof(obj), "{\"id\":\"tpay_1\",\"status\":\"%s\"}",
		    names[i]);
		b = envelope("terminal_payment.created", obj);
		expect_applies(b, st[i]);
		free(b);
	}
}

/* ------------------------------------------------------------ fields */

static void
test_all_fields(void **state)
{
	struct vinr_event ev;
	char *b;

	(void)state;
	b = envelope("terminal_payment.completed",
	    "{\"id\":\"tpay_01HZ5QA7BK\",\"status\":\"completed\","
	    "\"terminalId\":\"term_1\",\"amount\":2500,\"amountCaptured\":2400,"
	    "\"currency\":\"USD\",\"reference\":\"order_8821\","
	    "\"captureMethod\":\"automatic\",\"responseMode\":\"sync\","
	    "\"entryMethod\":\"contactless\",\"last4\":\"4242\",\"brand\":\"visa\","
	    "\"authCode\":\"A12345\",\"declineCode\":\"none\","
	    "\"createdAt\":\"2026-06-11T08:59:00Z\","
	    "\"completedAt\":\"2026-06-11T09:00:10Z\","
	    "\"unknownField\":{\"nested\":[1,2,3]}}");
	parse_ok(b, NULL, &ev);
	free(b);
	assert_string_equal(ev.id, "evt_1");
	assert_string_equal(ev.type, "terminal_payment.completed");
	assert_string_equal(ev.created_at, "2026-06-11T09:00:12Z");
	assert_null(ev.ignore_reason);
	assert_string_equal(ev.pay.id, "tpay_01HZ5QA7BK");
	assert_int_equal(ev.pay.status, PAY_COMPLETED);
	assert_string_equal(ev.pay.terminal_id, "term_1");
	assert_true(ev.pay.has_amount);
	assert_int_equal(ev.pay.amount, 2500);
	assert_true(ev.pay.has_amount_captured);
	assert_int_equal(ev.pay.amount_captured, 2400);
	assert_string_equal(ev.pay.currency, "USD");
	assert_string_equal(ev.pay.reference, "order_8821");
	assert_string_equal(ev.pay.capture_method, "automatic");
	assert_string_equal(ev.pay.entry_method, "contactless");
	assert_string_equal(ev.pay.last4, "4242");
	assert_string_equal(ev.pay.brand, "visa");
	assert_string_equal(ev.pay.auth_code, "A12345");
	assert_string_equal(ev.pay.decline_code, "none");
	/* The payment's own createdAt, not the envelope's. */
	assert_string_equal(ev.pay.created_at, "2026-06-11T08:59:00Z");
	assert_string_equal(ev.pay.status_at, "2026-06-11T09:00:10Z");
	assert_int_equal(ev.pay.livemode, 0);
	event_release(&ev);
	/* event_release leaves a clean struct and may be called twice. */
	assert_null(ev.id);
	assert_null(ev.pay.id);
	event_release(&ev);
	event_release(NULL);
}

static void
test_livemode(void **state)
{
	static const struct { const char *v; int want; } cases[] = {
		{ "true", 1 }, { "false", 0 }, { "null", -1 }, { "\"true\"", -1 },
		{ "1", -1 }, { "0", -1 }, { "{}", -1 },
	};
	struct vinr_event ev;
	char *b;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(asprintf(&b, "{\"id\":\"evt_1\",\"type\":"
		    "\"terminal_payment.pending\",\"livemode\":%s,\"data\":{\"object\":"
		    "{\"id\":\"tpay_1\",\"status\":\"pending\"}}}", cases[i].v) > 0);
		parse_ok(b, NULL, &ev);
		if (ev.pay.livemode != cases[i].want)
			fail_msg("livemode %s: got %d want %d", cases[i].v,
			    ev.pay.livemode, cases[i].want);
		event_release(&ev);
		free(b);
	}
	/* Absent. */
	parse_ok("{\"id\":\"evt_1\",\"type\":\"terminal_payment.pending\",\"data\":"
	    "{\"object\":{\"id\":\"tpay_1\",\"status\":\"pending\"}}}", NULL, &ev);
	assert_int_equal(ev.pay.livemode, -1);
	assert_null(ev.created_at);
	event_release(&ev);
}

/* An optional field of the wrong type is absent, the event still applies. */
static void
test_wrong_typed_fields_absent(void **state)
{
	static const char *const wrong[] = { "5", "true", "null", "{}",
	    "[\"x\"]", "1.5" };
	static const char *const keys[] = { "terminalId", "reference", "currency",
	    "captureMethod", "entryMethod", "brand", "last4", "authCode",
	    "declineCode", "createdAt", "completedAt" };
	struct vinr_event ev;
	char obj[512], *b;

	(void)state;
	for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
		size_t n = (size_t)snprintf(obj, sizeof(obj),
		    "{\"id\":\"tpay_1\",\"status\":\"completed\"");
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			n += (size_t)snprintf(obj + n, sizeof(obj) - n, ",\"%s\":%s",
			    keys[k], wrong[w]);
		snprintf(obj + n, sizeof(obj) - n, "}");
		assert_true(asprintf(&b, "{\"id\":\"evt_1\",\"type\":"
		    "\"terminal_payment.completed\",\"createdAt\":%s,\"data\":"
		    "{\"object\":%s}}", wrong[w], obj) > 0);
		parse_ok(b, NULL, &ev);
		if (ev.ignore_reason != NULL)
			fail_msg("ignored: %s", b);
		assert_int_equal(ev.pay.status, PAY_COMPLETED);
		assert_string_equal(ev.pay.id, "tpay_1");
		assert_null(ev.created_at);
		assert_null(ev.pay.terminal_id);
		assert_null(ev.pay.reference);
		assert_null(ev.pay.currency);
		assert_null(ev.pay.capture_method);
		assert_null(ev.pay.entry_method);
		assert_null(ev.pay.brand);
		assert_null(ev.pay.last4);
		assert_null(ev.pay.auth_code);
		assert_null(ev.pay.decline_code);
		assert_null(ev.pay.created_at);
		assert_null(ev.pay.status_at);
		event_release(&ev);
		free(b);
	}
}

static void
test_amounts(void **state)
{
	static const struct { const char *v; bool has; int64_t want; } cases[] = {
		{ "2500", true, 2500 }, { "0", true, 0 },
		{ "2500.0", true, 2500 },	/* the same number in JSON */
		{ "25e2", true, 2500 },
		{ "9007199254740992", true, 9007199254740992LL },
		/* Beyond 2^53 exactly, to the ends of int64 (read from the text,
		 * not through cJSON's double). */
		{ "9007199254740993", true, 9007199254740993LL },
		{ "2000000000000000", true, 2000000000000000LL },
		{ "9223372036854775807", true, INT64_MAX },
		{ "-9223372036854775808", true, INT64_MIN },
		{ "-150", true, -150 },
		{ "9007199254740993.0", true, 9007199254740993LL },
		{ "1e18", true, 1000000000000000000LL },
		{ "9223372036854775808", false, 0 }, { "-9223372036854775809", false, 0 },
		{ "99999999999999999999", false, 0 }, { "9007199254740993.5", false, 0 },
		{ "1.0000000000000000001", false, 0 },
		{ "12.5", false, 0 }, { "0.1", false, 0 }, { "\"2500\"", false, 0 },
		{ "1e300", false, 0 }, { "-1e300", false, 0 }, { "1e20", false, 0 },
		{ "true", false, 0 }, { "null", false, 0 }, { "[2500]", false, 0 },
		{ "{\"value\":2500}", false, 0 },
	};
	struct vinr_event ev;
	char *b;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(asprintf(&b, "{\"id\":\"evt_1\",\"type\":"
		    "\"terminal_payment.completed\",\"data\":{\"object\":"
		    "{\"id\":\"tpay_1\",\"status\":\"completed\",\"amount\":%s,"
		    "\"amountCaptured\":%s}}}", cases[i].v, cases[i].v) > 0);
		parse_ok(b, NULL, &ev);
		if (ev.ignore_reason != NULL)
			fail_msg("ignored: %s", b);
		if (ev.pay.has_amount != cases[i].has ||
		    ev.pay.has_amount_captured != cases[i].has)
			fail_msg("amount %s: has %d/%d want %d", cases[i].v,
			    ev.pay.has_amount, ev.pay.has_amount_captured,
			    cases[i].has);
		if (cases[i].has) {
			assert_int_equal(ev.pay.amount, cases[i].want);
			assert_int_equal(ev.pay.amount_captured, cases[i].want);
		}
		event_release(&ev);
		free(b);
	}
	/* Absent. */
	parse_ok("{\"id\":\"evt_1\",\"type\":\"terminal_payment.completed\",\"data\":"
	    "{\"object\":{\"id\":\"tpay_1\",\"status\":\"completed\"}}}", NULL, &ev);
	assert_false(ev.pay.has_amount);
	assert_false(ev.pay.has_amount_captured);
	event_release(&ev);
}

/* status_at is the *At field of the object's own status, nothing else. */
/*
 * The numbers before an amount in the body (in strings, keys, other
 * fields, nested arrays) do not shift which literal it is read from.
 */
static void
test_amounts_exact_among_other_numbers(void **state)
{
	static const char body[] =
	    "{\"id\":\"evt_9\",\"object\":\"event\",\"type\":\"terminal_payment.completed\","
	    "\"createdAt\":\"2026-06-11T09:00:12Z\",\"livemode\":true,\"n\":[1,-2,3.5e2],"
	    "\"note\":\"amount\\\":42, \\\"x\\\" 7 -8\",\"data\":{\"extra\":{\"1\":9007199254740999},"
	    "\"object\":{\"id\":\"tpay_9\",\"status\":\"completed\",\"metadata\":{\"amount\":5},"
	    "\"tip\":9007199254740995,\"amount\":9007199254740993,"
	    "\"amountCaptured\":9223372036854775807,\"reference\":\"r-1 2e3\"}}}";
	struct vinr_event ev;

	(void)state;
	parse_ok(body, NULL, &ev);
	assert_null(ev.ignore_reason);
	assert_true(ev.pay.has_amount);
	assert_true(ev.pay.amount == 9007199254740993LL);
	assert_true(ev.pay.has_amount_captured);
	assert_true(ev.pay.amount_captured == INT64_MAX);
	assert_string_equal(ev.pay.reference, "r-1 2e3");
	assert_int_equal(ev.pay.livemode, 1);
	event_release(&ev);
}

static void
test_status_at(void **state)
{
	static const struct { const char *status; const char *want; } cases[] = {
		{ "pending", NULL }, { "processing", NULL },
		{ "authorized", "A" }, { "completed", "C" }, { "failed", "F" },
		{ "cancelled", "X" },
	};
	struct vinr_event ev;
	char *b;

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		assert_true(asprintf(&b, "{\"id\":\"evt_1\",\"type\":"
		    "\"terminal_payment.x\",\"createdAt\":\"E\",\"data\":{\"object\":"
		    "{\"id\":\"tpay_1\",\"status\":\"%s\",\"createdAt\":\"P\","
		    "\"authorizedAt\":\"A\",\"completedAt\":\"C\",\"failedAt\":\"F\","
		    "\"cancelledAt\":\"X\",\"updatedAt\":\"U\"}}}",
		    cases[i].status) > 0);
		parse_ok(b, NULL, &ev);
		if (cases[i].want == NULL)
			assert_null(ev.pay.status_at);
		else {
			assert_non_null(ev.pay.status_at);
			assert_string_equal(ev.pay.status_at, cases[i].want);
		}
		assert_string_equal(ev.created_at, "E");
		assert_string_equal(ev.pay.created_at, "P");
		event_release(&ev);
		free(b);

		/* With only the other statuses' fields: none. */
		assert_true(asprintf(&b, "{\"id\":\"evt_1\",\"type\":"
		    "\"terminal_payment.x\",\"data\":{\"object\":{\"id\":\"tpay_1\","
		    "\"status\":\"%s\",\"%s\":\"Z\"}}}", cases[i].status,
		    strcmp(cases[i].status, "completed") == 0 ? "failedAt" :
		    "completedAt") > 0);
		parse_ok(b, NULL, &ev);
		assert_null(ev.pay.status_at);
		event_release(&ev);
		free(b);
	}
}

/* Non-ASCII and escapes in strings come through decoded. */
static void
test_string_escapes(void **state)
{
	struct vinr_event ev;

	(void)state;
	parse_ok("{\"id\":\"evt_\\u00e9\\\"q\",\"type\":\"terminal_payment.completed\","
	    "\"data\":{\"object\":{\"id\":\"tpay_\\n1\",\"status\":\"completed\","
	    "\"reference\":\"caf\xc3\xa9\"}}}", NULL, &ev);
	assert_string_equal(ev.id, "evt_\xc3\xa9\"q");
	assert_string_equal(ev.pay.id, "tpay_\n1");
	assert_string_equal(ev.pay.reference, "caf\xc3\xa9");
	event_release(&ev);
}

/*
 * A name given twice in the payment object: the first member counts, as
 * cJSON_GetObjectItemCaseSensitive() finds it (parse_payment() reads the
 * members in one pass), whatever its type; the texts outlive the tree.
 */
static void
test_repeated_members_first_wins(void **state)
{
	struct vinr_event ev;
	char *body;

	(void)state;
	body = envelope("terminal_payment.completed", "{\"id\":\"tpay_1\","
	    "\"status\":\"completed\",\"currency\":\"EUR\",\"currency\":\"USD\","
	    "\"brand\":7,\"brand\":\"visa\",\"amount\":100,\"amount\":200,"
	    "\"id\":\"tpay_2\",\"Last4\":\"1111\",\"last4\":\"4242\"}");
	parse_ok(body, NULL, &ev);
	free(body);
	assert_string_equal(ev.id, "evt_1");
	assert_string_equal(ev.type, "terminal_payment.completed");
	assert_string_equal(ev.pay.id, "tpay_1");
	assert_string_equal(ev.pay.currency, "EUR");
	assert_null(ev.pay.brand);		/* the first brand is no string */
	assert_string_equal(ev.pay.last4, "4242");	/* names are case-sensitive */
	assert_true(ev.pay.has_amount);
	assert_int_equal(ev.pay.amount, 100);
	assert_int_equal(ev.pay.status, PAY_COMPLETED);
	event_release(&ev);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_invalid_json_length),
		cmocka_unit_test(test_trailing_garbage_is_invalid_json),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_bad_id),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_fallback_id),
		cmocka_unit_test(test_ignored_type),
		cmocka_unit_test(test_ignored_no_object),
		cmocka_unit_test(test_ignored_no_payment_id),
		cmocka_unit_test(test_ignored_bad_status),
		cmocka_unit_test(test_status_from_object),
		cmocka_unit_test(test_all_fields),
		cmocka_unit_test(test_livemode),
		cmocka_unit_test(test_wrong_typed_fields_absent),
		cmocka_unit_test(test_amounts),
		cmocka_unit_test(test_amounts_exact_among_other_numbers),
		cmocka_unit_test(test_status_at),
		cmocka_unit_test(test_string_escapes),
		cmocka_unit_test(test_repeated_members_first_wins),
	};

	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
