/*
 * test_jsonnum.c - unit tests of jsonnum.c: exact integers read from the
 * text cJSON parsed, and written as raw JSON.
 *
 * The literal parser is checked against a table written from the JSON
 * grammar and int64's limits; the lookup against hand-made documents whose
 * strings hold digits, '-' and escaped quotes (the scan's traps), and
 * against generated documents whose every number is known beforehand.
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

#include "jsonnum.h"

#define I64_MAX	INT64_C(9223372036854775807)
#define I64_MIN	(-I64_MAX - 1)

static const char *
rc_name(enum jsonnum_rc rc)
{
	static const char *const names[] = {
		"OK", "ABSENT", "NOT_NUMBER", "NOT_INTEGER", "RANGE", "NO_SOURCE"
	};

	return rc <= JSONNUM_NO_SOURCE ? names[rc] : "?";
}

static void
expect_parse(const char *lit, enum jsonnum_rc want, int64_t wantv)
{
	int64_t v = 12345;
	enum jsonnum_rc rc = jsonnum_parse(lit, strlen(lit), &v);

	if (rc != want)
		fail_msg("jsonnum_parse(\"%s\") = %s, want %s", lit, rc_name(rc),
		    rc_name(want));
	if (rc == JSONNUM_OK && v != wantv)
		fail_msg("jsonnum_parse(\"%s\") = %lld, want %lld", lit, (long long)v,
		    (long long)wantv);
	if (rc != JSONNUM_OK && v != 12345)
		fail_msg("jsonnum_parse(\"%s\") set *out on %s", lit, rc_name(rc));
}

static void
test_parse_integers(void **state)
{
	static const struct { const char *lit; int64_t v; } ok[] = {
		{ "0", 0 }, { "-0", 0 }, { "1", 1 }, { "-1", -1 }, { "2500", 2500 },
		{ "9007199254740992", INT64_C(9007199254740992) },
		{ "9007199254740993", INT64_C(9007199254740993) },
		{ "-9007199254740993", -INT64_C(9007199254740993) },
		{ "2000000000000000", INT64_C(2000000000000000) },
		{ "9223372036854775807", I64_MAX },
		{ "-9223372036854775808", I64_MIN },
		{ "9223372036854775806", I64_MAX - 1 },
		{ "007", 7 },			/* cJSON takes leading zeros */
		{ "0000000000000000000000000000042", 42 },
		{ "-0000000000000000000000009223372036854775808", I64_MIN },
	};
	static const char *const range[] = {
		"9223372036854775808", "-9223372036854775809",
		"18446744073709551615", "18446744073709551616",
		"99999999999999999999", "-99999999999999999999",
		"100000000000000000000000000000000000000000000000000000000000",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect_parse(ok[i].lit, JSONNUM_OK, ok[i].v);
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
		expect_parse(range[i], JSONNUM_RANGE, 0);
}

/* Fractions and exponents: integral on the exact decimal, never on a double. */
static void
test_parse_fraction_exponent(void **state)
{
	static const struct { const char *lit; int64_t v; } ok[] = {
		{ "2500.0", 2500 }, { "2500.000000", 2500 }, { "2.5e3", 2500 },
		{ "25e2", 2500 }, { "25E2", 2500 }, { "25e+2", 2500 },
		{ "250000e-2", 2500 }, { "10e-1", 1 }, { "-2.5e3", -2500 },
		{ "1e18", INT64_C(1000000000000000000) },
		{ "9.223372036854775807e18", I64_MAX },
		{ "-9.223372036854775808e18", I64_MIN },
		{ "922337203685477580.7e1", I64_MAX },
		{ "9007199254740993.0", INT64_C(9007199254740993) },
		{ "100000000000000000000e-2", INT64_C(1000000000000000000) },
		{ "0.0", 0 }, { "-0.0e-5", 0 }, { "0e999999999999999999999", 0 },
		{ "1.", 1 }, { "-.5e1", -5 },	/* cJSON's strtod takes both */
		{ "2e15", INT64_C(2000000000000000) },
	};
	static const char *const frac[] = {
		"12.5", "0.1", "-0.1", "1e-1", "1.0000000000000000001",
		"9007199254740993.5", "4503599627370497.5", "1e-99999999999999999999",
		"1.5e-99999999999", ".5",
	};
	static const char *const range[] = {
		"1e19", "1e300", "-1e300", "9.223372036854775808e18",
		"-9.223372036854775809e18", "1e99999999999999999999999",
		"1.5e99999999999",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect_parse(ok[i].lit, JSONNUM_OK, ok[i].v);
	for (size_t i = 0; i < sizeof(frac) / sizeof(frac[0]); i++)
		expect_parse(frac[i], JSONNUM_NOT_INTEGER, 0);
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
		expect_parse(range[i], JSONNUM_RANGE, 0);
}

static void
test_parse_not_numbers(void **state)
{
	static const char *const bad[] = {
		"", "-", "+1", "1e", "1e+", "1e-", "--1", "1-", "0x10", "1 ", " 1",
		"1.2.3", "e5", "1e5.5", "inf", "-inf", "nan", "1,0", ".", "-.", "-e1",
		"1ee5", "1e5e5", "\"1\"", "true", "null",
	};
	int64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_parse(bad[i], JSONNUM_NOT_NUMBER, 0);
	/* Only len bytes are read. */
	assert_int_equal(jsonnum_parse("12345", 3, &v), JSONNUM_OK);
	assert_int_equal(v, 123);
	assert_int_equal(jsonnum_parse("12x", 2, &v), JSONNUM_OK);
	assert_int_equal(v, 12);
	assert_int_equal(jsonnum_parse("9", 0, &v), JSONNUM_NOT_NUMBER);
}

/* jsonnum_get on a document parsed from text. */
static enum jsonnum_rc
get_in(const char *text, const char *key, int64_t *v)
{
	cJSON *root = cJSON_Parse(text);
	enum jsonnum_rc rc;

	if (root == NULL)
		fail_msg("not JSON: %s", text);
	rc = jsonnum_get(text, strlen(text), root, root, key, v);
	cJSON_Delete(root);
	return rc;
}

static void
expect_get(const char *text, const char *key, enum jsonnum_rc want, int64_t wantv)
{
	int64_t v = 0;
	enum jsonnum_rc rc = get_in(text, key, &v);

	if (rc != want)
		fail_msg("%s in %s: %s, want %s", key, text, rc_name(rc), rc_name(want));
	if (rc == JSONNUM_OK && v != wantv)
		fail_msg("%s in %s: %lld, want %lld", key, text, (long long)v,
		    (long long)wantv);
}

static void
test_get_plain(void **state)
{
	(void)state;
	expect_get("{\"a\":9007199254740993}", "a", JSONNUM_OK, INT64_C(9007199254740993));
	expect_get("{\"a\":1,\"b\":9223372036854775807}", "b", JSONNUM_OK, I64_MAX);
	expect_get("{\"a\":-9223372036854775808}", "a", JSONNUM_OK, I64_MIN);
	expect_get("{\"a\":9223372036854775808}", "a", JSONNUM_RANGE, 0);
	expect_get("{\"a\":1e300}", "a", JSONNUM_RANGE, 0);
	expect_get("{\"a\":12.5}", "a", JSONNUM_NOT_INTEGER, 0);
	expect_get("{\"a\":2.5e3}", "a", JSONNUM_OK, 2500);
	expect_get("{\"a\":2e15}", "a", JSONNUM_OK, INT64_C(2000000000000000));
	expect_get("{\"a\":-0}", "a", JSONNUM_OK, 0);
	expect_get("{ \"a\" :\n\t -42 }", "a", JSONNUM_OK, -42);
	expect_get("{\"a\":null}", "a", JSONNUM_ABSENT, 0);
	expect_get("{\"b\":1}", "a", JSONNUM_ABSENT, 0);
	expect_get("{\"A\":1}", "a", JSONNUM_ABSENT, 0);	/* case-sensitive */
	expect_get("{\"a\":\"1\"}", "a", JSONNUM_NOT_NUMBER, 0);
	expect_get("{\"a\":true}", "a", JSONNUM_NOT_NUMBER, 0);
	expect_get("{\"a\":[1]}", "a", JSONNUM_NOT_NUMBER, 0);
	expect_get("{\"a\":{\"a\":1}}", "a", JSONNUM_NOT_NUMBER, 0);
	expect_get("[1,2]", "a", JSONNUM_ABSENT, 0);
	/* A repeated key: the first, as cJSON_GetObjectItemCaseSensitive. */
	expect_get("{\"a\":9007199254740993,\"a\":2}", "a", JSONNUM_OK,
	    INT64_C(9007199254740993));
	expect_get("{\"a\":1,\"a\":9007199254740993}", "a", JSONNUM_OK, 1);
}

/* Digits, '-', 'e' and quotes inside strings and keys are not numbers. */
static void
test_get_strings_in_the_way(void **state)
{
	(void)state;
	expect_get("{\"s\":\"12 -34 5e6 7.5\",\"n\":9007199254740993}", "n", JSONNUM_OK,
	    INT64_C(9007199254740993));
	expect_get("{\"s\":\"a\\\"1\\\"b\",\"n\":9007199254740995}", "n", JSONNUM_OK,
	    INT64_C(9007199254740995));
	expect_get("{\"s\":\"\\\\\",\"t\":\"2\",\"n\":9007199254740997}", "n", JSONNUM_OK,
	    INT64_C(9007199254740997));
	expect_get("{\"s\":\"\\\\\\\"3\\\\\",\"n\":-9007199254740993}", "n", JSONNUM_OK,
	    -INT64_C(9007199254740993));
	expect_get("{\"s\":\"\\u0031\\u0032\",\"n\":5}", "n", JSONNUM_OK, 5);
	expect_get("{\"123\":456,\"7\":9007199254740993}", "7", JSONNUM_OK,
	    INT64_C(9007199254740993));
	expect_get("{\"-1\":\"-2\",\"e5\":true,\"x\":false,\"y\":null,\"n\":3}", "n",
	    JSONNUM_OK, 3);
	expect_get("{\"s\":\"caf\xc3\xa9 4\",\"n\":9223372036854775807}", "n", JSONNUM_OK,
	    I64_MAX);
}

/* Nesting: the depth-first order of the tree is the text's order. */
static void
test_value_nested(void **state)
{
	static const char text[] =
	    "[[-1,[2,[{\"x\":-9223372036854775808,\"y\":[9007199254740993,"
	    "{\"z\":12.5}],\"w\":\"9\"}]]],3,{\"a\":{\"b\":{\"c\":1e2}}},"
	    "9223372036854775807]";
	cJSON *root = cJSON_Parse(text), *it;
	int64_t v;

	(void)state;
	assert_non_null(root);
	it = cJSON_GetArrayItem(cJSON_GetArrayItem(root, 0), 0);
	assert_int_equal(jsonnum_value(text, strlen(text), root, it, &v), JSONNUM_OK);
	assert_int_equal(v, -1);
	it = cJSON_GetArrayItem(cJSON_GetArrayItem(root, 0), 1);	/* [2,[...]] */
	assert_int_equal(jsonnum_value(text, strlen(text), root, it, &v),
	    JSONNUM_NOT_NUMBER);
	it = cJSON_GetArrayItem(cJSON_GetArrayItem(it, 1), 0);		/* {"x":..} */
	assert_int_equal(jsonnum_get(text, strlen(text), root, it, "x", &v), JSONNUM_OK);
	assert_true(v == I64_MIN);
	assert_int_equal(jsonnum_value(text, strlen(text), root,
	    cJSON_GetArrayItem(cJSON_GetObjectItem(it, "y"), 0), &v), JSONNUM_OK);
	assert_true(v == INT64_C(9007199254740993));
	assert_int_equal(jsonnum_get(text, strlen(text), root,
	    cJSON_GetArrayItem(cJSON_GetObjectItem(it, "y"), 1), "z", &v),
	    JSONNUM_NOT_INTEGER);
	assert_int_equal(jsonnum_get(text, strlen(text), root, it, "w", &v),
	    JSONNUM_NOT_NUMBER);
	assert_int_equal(jsonnum_value(text, strlen(text), root,
	    cJSON_GetArrayItem(root, 1), &v), JSONNUM_OK);
	assert_int_equal(v, 3);
	it = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(root, 2), "a"), "b");
	assert_int_equal(jsonnum_get(text, strlen(text), root, it, "c", &v), JSONNUM_OK);
	assert_int_equal(v, 100);
	assert_int_equal(jsonnum_value(text, strlen(text), root,
	    cJSON_GetArrayItem(root, 3), &v), JSONNUM_OK);
	assert_true(v == I64_MAX);
	cJSON_Delete(root);
}

/* The root itself a number; bytes after the root's value; no NUL. */
static void
test_value_root_and_length(void **state)
{
	static const char two[] = "{\"a\":9007199254740993} 77";
	const char *end = NULL;
	cJSON *root;
	char *buf;
	int64_t v;

	(void)state;
	root = cJSON_Parse("-9007199254740993");
	assert_non_null(root);
	assert_int_equal(jsonnum_value("-9007199254740993", 17, root, root, &v),
	    JSONNUM_OK);
	assert_true(v == -INT64_C(9007199254740993));
	cJSON_Delete(root);

	root = cJSON_ParseWithLengthOpts(two, sizeof(two) - 1, &end, 0);
	assert_non_null(root);
	assert_int_equal(jsonnum_get(two, sizeof(two) - 1, root, root, "a", &v),
	    JSONNUM_OK);
	assert_true(v == INT64_C(9007199254740993));
	cJSON_Delete(root);

	/* A buffer without a NUL, cut right after the number. */
	buf = malloc(22);
	assert_non_null(buf);
	memcpy(buf, "{\"a\":9007199254740993}", 22);
	root = cJSON_ParseWithLength(buf, 22);
	assert_non_null(root);
	assert_int_equal(jsonnum_get(buf, 22, root, root, "a", &v), JSONNUM_OK);
	assert_true(v == INT64_C(9007199254740993));
	cJSON_Delete(root);
	free(buf);
}

/* A tree and a text that do not belong together are refused, not guessed. */
static void
test_value_wrong_source(void **state)
{
	cJSON *root = cJSON_Parse("{\"a\":1,\"b\":2}"), *other = cJSON_Parse("[5]");
	int64_t v;

	(void)state;
	assert_non_null(root);
	assert_non_null(other);
	assert_int_equal(jsonnum_get("{\"a\":7,\"b\":2}", 13, root, root, "a", &v),
	    JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_get("{\"a\":1}", 7, root, root, "b", &v),
	    JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_get("{}", 2, root, root, "a", &v), JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_get("{\"a\":1e}", 8, root, root, "a", &v),
	    JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_get(NULL, 0, root, root, "a", &v), JSONNUM_NO_SOURCE);
	/* An item of another tree. */
	assert_int_equal(jsonnum_value("{\"a\":1,\"b\":2}", 13, root,
	    cJSON_GetArrayItem(other, 0), &v), JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_value("{\"a\":1,\"b\":2}", 13, NULL,
	    cJSON_GetObjectItem(root, "a"), &v), JSONNUM_NO_SOURCE);
	assert_int_equal(jsonnum_value("", 0, root, NULL, &v), JSONNUM_ABSENT);
	cJSON_Delete(root);
	cJSON_Delete(other);
}

/* ------------------------------------------------- generated documents */

#define GEN_MAX_NUMS	256

struct gen {
	char		 buf[16384];
	size_t		 len;
	uint64_t	 rng;
	int64_t		 nums[GEN_MAX_NUMS];
	size_t		 nnums;
};

static uint64_t
gen_rand(struct gen *g)
{
	/* xorshift64: reproducible, no libc state. */
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng;
}

static void
gen_put(struct gen *g, const char *s)
{
	size_t n = strlen(s);

	assert_true(g->len + n < sizeof(g->buf));
	memcpy(g->buf + g->len, s, n);
	g->len += n;
}

/* A string full of traps: digits, '-', 'e', escaped quotes and backslashes. */
static void
gen_string(struct gen *g)
{
	static const char *const parts[] = {
		"12", "-3", "e5", "\\\"", "\\\\", "\\\"4\\\"", " ", "x", "\\u0035", "{[",
		"]}", ",", ":", "9007199254740993", "\\/", "\\n",
	};
	size_t n = gen_rand(g) % 6;

	gen_put(g, "\"");
	for (size_t i = 0; i < n; i++)
		gen_put(g, parts[gen_rand(g) % (sizeof(parts) / sizeof(parts[0]))]);
	gen_put(g, "\"");
}

/* An integer of any size, written one of the ways JSON allows. */
static void
gen_number(struct gen *g)
{
	char lit[64];
	uint64_t r = gen_rand(g);
	int64_t v;

	switch (r % 5) {
	case 0:
		v = (int64_t)(gen_rand(g) % 1000) - 500;
		break;
	case 1:
		v = (int64_t)gen_rand(g);	/* the whole range */
		break;
	case 2:
		v = (r & 8) ? I64_MAX - (int64_t)(gen_rand(g) % 4) :
		    I64_MIN + (int64_t)(gen_rand(g) % 4);
		break;
	default:
		v = INT64_C(9007199254740992) + (int64_t)(gen_rand(g) % 64) - 32;
		if (r & 16)
			v = -v;
		break;
	}
	if (g->nnums < GEN_MAX_NUMS)
		g->nums[g->nnums] = v;
	g->nnums++;
	if ((r >> 8) % 4 == 0 && v > -1000000 && v < 1000000)
		snprintf(lit, sizeof(lit), "%lld00e-2", (long long)v);
	else if ((r >> 8) % 4 == 1)
		snprintf(lit, sizeof(lit), "%lld.000", (long long)v);
	else
		snprintf(lit, sizeof(lit), "%lld", (long long)v);
	gen_put(g, lit);
}

static void
gen_value(struct gen *g, int depth)
{
	uint64_t r = gen_rand(g) % (depth > 4 ? 4 : 7);
	size_t n;

	if (g->nnums >= GEN_MAX_NUMS || g->len > sizeof(g->buf) - 512)
		r = 0;
	switch (r) {
	case 0:
	case 1:
		gen_number(g);
		break;
	case 2:
		gen_string(g);
		break;
	case 3:
		gen_put(g, (gen_rand(g) & 1) ? "true" : "null");
		break;
	case 4:
	case 5:
		gen_put(g, "[");
		n = gen_rand(g) % 5;
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				gen_put(g, (gen_rand(g) & 1) ? "," : " ,\n");
			gen_value(g, depth + 1);
		}
		gen_put(g, "]");
		break;
	default:
		gen_put(g, "{");
		n = gen_rand(g) % 5;
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				gen_put(g, ",");
			gen_string(g);
			gen_put(g, (gen_rand(g) & 1) ? ":" : " : ");
			gen_value(g, depth + 1);
		}
		gen_put(g, "}");
		break;
	}
}

/* Checks every number node of node's subtree, depth first, against g. */
static void
check_tree(const struct gen *g, const cJSON *root, const cJSON *node, size_t *k)
{
	int64_t v;
	enum jsonnum_rc rc;

	if (cJSON_IsNumber(node)) {
		rc = jsonnum_value(g->buf, g->len, root, node, &v);
		if (rc != JSONNUM_OK || v != g->nums[*k])
			fail_msg("number %zu of %.*s: %s %lld, want %lld", *k, (int)g->len,
			    g->buf, rc_name(rc), (long long)v, (long long)g->nums[*k]);
		(*k)++;
	}
	for (const cJSON *c = node->child; c != NULL; c = c->next)
		check_tree(g, root, c, k);
}

static void
test_generated_documents(void **state)
{
	static struct gen g;
	cJSON *root;
	size_t k, total = 0;

	(void)state;
	g.rng = 0x9e3779b97f4a7c15ULL;
	for (int doc = 0; doc < 2000; doc++) {
		g.len = 0;
		g.nnums = 0;
		gen_value(&g, 0);
		if (g.nnums > GEN_MAX_NUMS)
			continue;
		root = cJSON_ParseWithLength(g.buf, g.len);
		if (root == NULL)
			fail_msg("generated text is not JSON: %.*s", (int)g.len, g.buf);
		k = 0;
		check_tree(&g, root, root, &k);
		assert_int_equal(k, g.nnums);
		total += k;
		cJSON_Delete(root);
	}
	/* The generator did make numbers to check. */
	assert_true(total > 2000);
}

/* ------------------------------------------------------------- writing */

static void
test_add(void **state)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	int64_t v;

	(void)state;
	assert_non_null(o);
	assert_non_null(jsonnum_add(o, "a", INT64_C(9007199254740993)));
	assert_non_null(jsonnum_add(o, "b", INT64_C(2000000000000000)));
	assert_non_null(jsonnum_add(o, "c", I64_MAX));
	assert_non_null(jsonnum_add(o, "d", I64_MIN));
	assert_non_null(jsonnum_add(o, "e", 0));
	assert_non_null(jsonnum_add_opt(o, "f", false, 5));
	assert_non_null(jsonnum_add_opt(o, "g", true, -7));
	s = cJSON_PrintUnformatted(o);
	assert_non_null(s);
	assert_string_equal(s, "{\"a\":9007199254740993,\"b\":2000000000000000,"
	    "\"c\":9223372036854775807,\"d\":-9223372036854775808,\"e\":0,"
	    "\"f\":null,\"g\":-7}");
	cJSON_Delete(o);
	/* And it reads back exactly. */
	o = cJSON_Parse(s);
	assert_non_null(o);
	assert_int_equal(jsonnum_get(s, strlen(s), o, o, "c", &v), JSONNUM_OK);
	assert_true(v == I64_MAX);
	assert_int_equal(jsonnum_get(s, strlen(s), o, o, "d", &v), JSONNUM_OK);
	assert_true(v == I64_MIN);
	cJSON_Delete(o);
	free(s);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_integers),
		cmocka_unit_test(test_parse_fraction_exponent),
		cmocka_unit_test(test_parse_not_numbers),
		cmocka_unit_test(test_get_plain),
		cmocka_unit_test(test_get_strings_in_the_way),
		cmocka_unit_test(test_value_nested),
		cmocka_unit_test(test_value_root_and_length),
		cmocka_unit_test(test_value_wrong_source),
		cmocka_unit_test(test_generated_documents),
		cmocka_unit_test(test_add),
	};

	return cmocka_run_group_tests_name("jsonnum", tests, NULL, NULL);
}
