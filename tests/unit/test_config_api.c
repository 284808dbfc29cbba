/*
 * test_config_api.c - the [api] section (SPEC §6) and its deprecated
 * aliases [reconciler] api_base and api_key_file.
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

#include "config.h"

static int
load(struct config *c, const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/vinr-test-config-api-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	config_release(c);
	config_defaults(c);
	rc = config_load(c, path, err, errlen);
	unlink(path);
	return rc;
}

static void
test_defaults(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_string_equal(c.api_base, "https://api.vinr.com");
	assert_null(c.api_key_file);
	assert_int_equal(c.api_timeout, 30);
	assert_int_equal(c.unknown_after, 300);
	assert_false(c.api_deprecated);
	config_release(&c);
}

static void
test_api_section(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "[api]\nbase = http://127.0.0.1:8788/\nkey_file = /k\n"
	    "timeout = 5\nunknown_after = 60\n", err, sizeof(err)), 0);
	assert_string_equal(c.api_base, "http://127.0.0.1:8788");
	assert_string_equal(c.api_key_file, "/k");
	assert_int_equal(c.api_timeout, 5);
	assert_int_equal(c.unknown_after, 60);
	assert_false(c.api_deprecated);
	assert_int_equal(load(&c, "[api]\ntimeout = 0\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[api] timeout"));
	assert_int_equal(load(&c, "[api]\ntimeout = 601\n", err, sizeof(err)), -1);
	assert_int_equal(load(&c, "[api]\nunknown_after = x\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown_after"));
	assert_int_equal(load(&c, "[api]\nbase = ftp://x\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[api] base"));
	config_release(&c);
}

static void
test_aliases(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "[reconciler]\napi_base = http://127.0.0.1:1\n"
	    "api_key_file = /old\n", err, sizeof(err)), 0);
	assert_string_equal(c.api_base, "http://127.0.0.1:1");
	assert_string_equal(c.api_key_file, "/old");
	assert_true(c.api_deprecated);
	/* One setting in both places is an error, in either order. */
	assert_int_equal(load(&c, "[api]\nbase = http://127.0.0.1:1\n[reconciler]\n"
	    "api_base = http://127.0.0.1:2\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":4: [reconciler] api_base: already set as [api] base "
	    "on line 2"));
	assert_int_equal(load(&c, "[reconciler]\napi_key_file = /a\n[api]\n"
	    "key_file = /b\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[api] key_file: already set as [reconciler] "
	    "api_key_file on line 2"));
	/* Different settings in both places are fine. */
	assert_int_equal(load(&c, "[api]\nbase = http://127.0.0.1:1\n[reconciler]\n"
	    "api_key_file = /a\n", err, sizeof(err)), 0);
	assert_true(c.api_deprecated);
	config_release(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_api_section),
		cmocka_unit_test(test_aliases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
