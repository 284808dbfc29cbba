/*
 * test_http_reply.c - unit tests of http_reply.c: the 200 body printed
 * without cJSON is, byte for byte, what cJSON_PrintUnformatted() printed
 * for the same object (SPEC §1.4; the e2e tests pin the plain case).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http_reply.h"

/* What the daemon answered before: the object printed by cJSON. */
static char *
by_cjson(const char *id, bool dup, bool ignored)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddTrueToObject(o, "received");
	cJSON_AddStringToObject(o, "eventId", id);
	cJSON_AddBoolToObject(o, "duplicate", dup);
	if (ignored)
		cJSON_AddTrueToObject(o, "ignored");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void
expect_same(const char *id)
{
	for (int k = 0; k < 3; k++) {
		bool dup = k == 1, ignored = k == 2;
		size_t cap = HTTP_REPLY_SIZE(strlen(id)), len;
		char *want = by_cjson(id, dup, ignored), *got = malloc(cap + 1);

		assert_non_null(want);
		assert_non_null(got);
		memset(got, 'X', cap + 1);
		len = http_reply_received(got, id, dup, ignored);
		assert_true(len < cap);
		assert_int_equal(got[cap], 'X');	/* nothing past the bound */
		assert_int_equal(len, strlen(got));
		assert_string_equal(got, want);
		free(want);
		free(got);
	}
}

static void
test_plain(void **state)
{
	(void)state;
	expect_same("evt_1");
	expect_same("");
	expect_same("evt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
}

static void
test_escapes(void **state)
{
	(void)state;
	expect_same("a\"b\\c/d");
	expect_same("\b\f\n\r\t");
	expect_same("\x01\x02\x1f\x7f x");
	expect_same("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb3");
}

/* Every byte value from 1 to 255, and the worst case: all \u00xx. */
static void
test_every_byte(void **state)
{
	char id[256], worst[200];

	(void)state;
	for (int i = 1; i < 256; i++)
		id[i - 1] = (char)i;
	id[255] = '\0';
	expect_same(id);
	memset(worst, 1, sizeof(worst) - 1);
	worst[sizeof(worst) - 1] = '\0';
	expect_same(worst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_every_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
