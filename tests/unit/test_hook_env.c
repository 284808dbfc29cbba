/*
 * test_hook_env.c - unit tests of hook_env() (src/sink_hook.h): the
 * environment a shell hook is given for one outcome line (SPEC §3).
 *
 * The environment must be exactly the twelve VINR_* variables, in the SPEC's
 * order, each empty when the outcome's value is null (or absent), numbers
 * written as plain integers exactly as the line has them (to the ends of
 * int64; empty when not an int64 integer), then
 * PATH=/usr/local/bin:/usr/bin:/bin last, and the array NULL-terminated.  A line that is not a JSON object gives NULL.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_hook.h"

#define HOOK_PATH	"PATH=/usr/local/bin:/usr/bin:/bin"

static const char *const names[] = {
	"VINR_SEQ", "VINR_TYPE", "VINR_PAYMENT_ID", "VINR_TERMINAL_ID",
	"VINR_REFERENCE", "VINR_STATUS", "VINR_PREVIOUS_STATUS", "VINR_AMOUNT",
	"VINR_CURRENCY", "VINR_DECLINE_CODE", "VINR_SOURCE", "VINR_EVENT_ID",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* A complete outcome as the daemon writes it (SPEC §2). */
static const char full[] =
	"{\"seq\":42,\"type\":\"payment.completed\",\"paymentId\":\"tpay_01HZ5QA7BK\","
	"\"terminalId\":\"term_01HZ5QXYZ\",\"reference\":\"order_8821\","
	"\"status\":\"completed\",\"previousStatus\":\"pending\",\"amount\":2500,"
	"\"amountCaptured\":2500,\"currency\":\"USD\",\"captureMethod\":\"automatic\","
	"\"entryMethod\":\"contactless\",\"brand\":\"visa\",\"last4\":\"4242\","
	"\"authCode\":\"A12345\",\"declineCode\":null,\"eventId\":\"evt_01J0Q8ZK3M\","
	"\"source\":\"webhook\",\"livemode\":false,"
	"\"occurredAt\":\"2026-06-11T09:00:12Z\","
	"\"recordedAt\":\"2026-06-11T09:00:12.345Z\"}\n";

static size_t
env_count(char **env)
{
	size_t n = 0;

	while (env[n] != NULL)
		n++;
	return n;
}

/*
 * Checks env against the twelve expected values (in the SPEC's order), then
 * PATH, then the terminating NULL.
 */
static void
expect_env(char **env, const char *const want[NNAMES])
{
	char buf[512];

	assert_non_null(env);
	if (env_count(env) != NNAMES + 1) {
		for (size_t i = 0; env[i] != NULL; i++)
			print_message("  env[%zu] = %s\n", i, env[i]);
		fail_msg("hook_env: %zu variables, want %zu", env_count(env), NNAMES + 1);
	}
	for (size_t i = 0; i < NNAMES; i++) {
		snprintf(buf, sizeof(buf), "%s=%s", names[i], want[i]);
		assert_string_equal(env[i], buf);
	}
	assert_string_equal(env[NNAMES], HOOK_PATH);
	assert_null(env[NNAMES + 1]);
}

static char **
env_of(const char *line)
{
	return hook_env(line, strlen(line));
}

static void
test_full_outcome(void **state)
{
	static const char *const want[NNAMES] = {
		"42", "payment.completed", "tpay_01HZ5QA7BK", "term_01HZ5QXYZ",
		"order_8821", "completed", "pending", "2500", "USD", "",
		"webhook", "evt_01J0Q8ZK3M",
	};
	char **env;

	(void)state;
	env = env_of(full);
	expect_env(env, want);
	hook_env_free(env);
}

/*
 * The daemon's own environment is not passed on: the PostgreSQL password
 * (SPEC §8) and the other secrets' variables stay out even when set.
 */
static void
test_daemon_env_not_passed(void **state)
{
	char **env;

	(void)state;
	setenv("VINR_PG_PASSWORD", "pg-Secret-77", 1);
	setenv("VINR_API_KEY", "sk_live_Secret-77", 1);
	setenv("PGPASSWORD", "pg-Secret-77", 1);
	env = env_of(full);
	assert_non_null(env);
	assert_int_equal(env_count(env), NNAMES + 1);
	for (size_t i = 0; env[i] != NULL; i++) {
		assert_null(strstr(env[i], "Secret-77"));
		assert_null(strstr(env[i], "PASSWORD"));
	}
	hook_env_free(env);
	unsetenv("VINR_PG_PASSWORD");
	unsetenv("VINR_API_KEY");
	unsetenv("PGPASSWORD");
}

/* Nothing else of the outcome (last4, brand, authCode ...) is passed. */
static void
test_only_promised_names(void **state)
{
	char **env;

	(void)state;
	env = env_of(full);
	assert_non_null(env);
	for (size_t i = 0; env[i] != NULL; i++) {
		assert_null(strstr(env[i], "4242"));
		assert_null(strstr(env[i], "visa"));
		assert_null(strstr(env[i], "A12345"));
		assert_null(strstr(env[i], "contactless"));
	}
	hook_env_free(env);
}

static void
test_nulls_are_empty(void **state)
{
	static const char line[] =
	    "{\"seq\":7,\"type\":\"payment.failed\",\"paymentId\":\"tpay_x\","
	    "\"terminalId\":null,\"reference\":null,\"status\":\"failed\","
	    "\"previousStatus\":null,\"amount\":null,\"amountCaptured\":null,"
	    "\"currency\":null,\"declineCode\":\"insufficient_funds\","
	    "\"eventId\":null,\"source\":\"reconciler\",\"livemode\":null}";
	static const char *const want[NNAMES] = {
		"7", "payment.failed", "tpay_x", "", "", "failed", "", "", "",
		"insufficient_funds", "reconciler", "",
	};
	char **env;

	(void)state;
	env = env_of(line);
	expect_env(env, want);
	hook_env_free(env);
}

/* A key that is missing altogether is empty too, never skipped. */
static void
test_missing_keys_are_empty(void **state)
{
	static const char *const want[NNAMES] = {
		"", "", "", "", "", "", "", "", "", "", "", "",
	};
	static const char *const want_seq[NNAMES] = {
		"3", "", "", "", "", "", "", "", "", "", "", "",
	};
	char **env;

	(void)state;
	env = env_of("{}");
	expect_env(env, want);
	hook_env_free(env);
	env = env_of("{\"seq\":3}");
	expect_env(env, want_seq);
	hook_env_free(env);
}

/* Numbers are written as integers: no exponent, no decimals. */
static void
test_numbers_as_integers(void **state)
{
	static const struct {
		const char	*json;
		const char	*want;
	} cases[] = {
		{ "0", "0" },
		{ "1", "1" },
		{ "2500", "2500" },
		{ "2500.0", "2500" },
		{ "2.5e3", "2500" },
		{ "100000000", "100000000" },
		{ "123456789012", "123456789012" },
		{ "9007199254740991", "9007199254740991" },	/* 2^53 - 1 */
		{ "-150", "-150" },
		/* Beyond 2^53: exactly as the line writes them, never via a double. */
		{ "9007199254740993", "9007199254740993" },
		{ "2000000000000000", "2000000000000000" },
		{ "9223372036854775807", "9223372036854775807" },
		{ "-9223372036854775808", "-9223372036854775808" },
		{ "9007199254740993.0", "9007199254740993" },
		{ "1e18", "1000000000000000000" },
	};
	char line[256], buf[128];
	char **env;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "{\"seq\":%s,\"amount\":%s}",
		    cases[i].json, cases[i].json);
		env = env_of(line);
		assert_non_null(env);
		snprintf(buf, sizeof(buf), "VINR_SEQ=%s", cases[i].want);
		assert_string_equal(env[0], buf);
		snprintf(buf, sizeof(buf), "VINR_AMOUNT=%s", cases[i].want);
		assert_string_equal(env[7], buf);
		assert_null(strchr(env[7], '.'));
		assert_null(strchr(env[7], 'e'));
		hook_env_free(env);
	}
}

/* A number that is no int64 integer is empty, never a rounded guess. */
static void
test_numbers_not_integers_are_empty(void **state)
{
	static const char *const nums[] = {
		"12.5", "0.1", "1e300", "9223372036854775808", "-9223372036854775809",
		"99999999999999999999",
	};
	char line[256];
	char **env;

	(void)state;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		snprintf(line, sizeof(line), "{\"seq\":%s,\"amount\":%s}", nums[i], nums[i]);
		env = env_of(line);
		assert_non_null(env);
		assert_string_equal(env[0], "VINR_SEQ=");
		assert_string_equal(env[7], "VINR_AMOUNT=");
		hook_env_free(env);
	}
}

/* Strings full of digits before the numbers do not shift them. */
static void
test_numbers_after_tricky_strings(void **state)
{
	static const char line[] =
	    "{\"seq\":9007199254740995,\"type\":\"payment.completed\","
	    "\"paymentId\":\"tpay_\\\"1\\\"\",\"reference\":\"-5 6e7 \\\\\","
	    "\"amount\":9007199254740993,\"amountCaptured\":9223372036854775807,"
	    "\"currency\":\"USD\"}";
	char **env;

	(void)state;
	env = env_of(line);
	assert_non_null(env);
	assert_string_equal(env[0], "VINR_SEQ=9007199254740995");
	assert_string_equal(env[2], "VINR_PAYMENT_ID=tpay_\"1\"");
	assert_string_equal(env[4], "VINR_REFERENCE=-5 6e7 \\");
	assert_string_equal(env[7], "VINR_AMOUNT=9007199254740993");
	hook_env_free(env);
}

/* Strings pass through byte for byte: '=', spaces, UTF-8, escapes. */
static void
test_strings_verbatim(void **state)
{
	static const char line[] =
	    "{\"seq\":1,\"reference\":\"a=b c;$(x)\",\"terminalId\":\"caf\\u00e9\","
	    "\"currency\":\"EUR\"}";
	char **env;

	(void)state;
	env = env_of(line);
	assert_non_null(env);
	assert_string_equal(env[4], "VINR_REFERENCE=a=b c;$(x)");
	assert_string_equal(env[3], "VINR_TERMINAL_ID=caf\xc3\xa9");
	assert_string_equal(env[8], "VINR_CURRENCY=EUR");
	hook_env_free(env);
}

/*
 * A 200 KiB reference made execve fail with E2BIG: a value is cut to 4 KiB,
 * on a character boundary (the 2-byte "\u00e9" straddles the cut).
 */
static void
test_huge_value_cut(void **state)
{
	size_t big = 200 * 1024, len;
	char *line = malloc(big + 8192), **env;

	(void)state;
	assert_non_null(line);
	len = (size_t)sprintf(line, "{\"seq\":1,\"reference\":\"");
	memset(line + len, 'r', 4095);
	len += 4095;
	len += (size_t)sprintf(line + len, "\\u00e9");
	memset(line + len, 'r', big);
	len += big;
	len += (size_t)sprintf(line + len, "\"}");
	env = hook_env(line, len);
	assert_non_null(env);
	assert_int_equal(strlen(env[4]), strlen("VINR_REFERENCE=") + 4095);
	assert_memory_equal(env[4], "VINR_REFERENCE=rrr", 18);
	hook_env_free(env);
	free(line);
}

/* Only len bytes are read: the buffer need not be NUL-terminated. */
static void
test_length_respected(void **state)
{
	size_t len = strlen(full);
	char *buf = malloc(len);
	char **env;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, full, len);		/* no terminating NUL */
	env = hook_env(buf, len);
	assert_non_null(env);
	assert_string_equal(env[0], "VINR_SEQ=42");
	hook_env_free(env);
	/* Cut in the middle of the object: not JSON. */
	assert_null(hook_env(buf, len / 2));
	free(buf);
}

static void
test_not_an_object(void **state)
{
	static const char *const lines[] = {
		"[]", "[{\"seq\":1}]", "42", "\"seq\"", "null", "true",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (env_of(lines[i]) != NULL)
			fail_msg("hook_env(%s) is not NULL", lines[i]);
}

static void
test_invalid_json(void **state)
{
	static const char *const lines[] = {
		"", "\n", "{", "{\"seq\":}", "{\"seq\":1,}", "seq=1", "{'seq':1}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (env_of(lines[i]) != NULL)
			fail_msg("hook_env(\"%s\") is not NULL", lines[i]);
}

static void
test_free_null(void **state)
{
	(void)state;
	hook_env_free(NULL);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_outcome),
		cmocka_unit_test(test_only_promised_names),
		cmocka_unit_test(test_daemon_env_not_passed),
		cmocka_unit_test(test_nulls_are_empty),
		cmocka_unit_test(test_missing_keys_are_empty),
		cmocka_unit_test(test_numbers_as_integers),
		cmocka_unit_test(test_numbers_not_integers_are_empty),
		cmocka_unit_test(test_numbers_after_tricky_strings),
		cmocka_unit_test(test_strings_verbatim),
		cmocka_unit_test(test_length_respected),
		cmocka_unit_test(test_huge_value_cut),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests_name("hook_env", tests, NULL, NULL);
}
