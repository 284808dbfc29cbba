/*
 * test_util_utf8.c - util_utf8_valid(), whose ASCII fast path reads 8 bytes
 * at a time: every sequence at every offset of buffers of 0 to 17 bytes
 * (so across and astride the 8-byte blocks and in the byte-wise tail), and
 * random mostly-ASCII buffers against a byte-wise reference (the function
 * as it was before the fast path).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAXLEN	17

/* The byte-wise check of RFC 3629, as util.c had it. */
static bool
ref_valid(const unsigned char *s, size_t len)
{
	size_t		i = 0, n, k;
	uint32_t	cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 1, cp = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 2, cp = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 3, cp = s[i] & 0x07;
		else
			return false;
		if (len - i - 1 < n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

struct seq {
	const char	*bytes;
	bool		 valid;
};

/* Valid and invalid sequences, each placed at every offset below. */
static const struct seq seqs[] = {
	{ "\xc3\xa9", true },			/* U+00E9 */
	{ "\xe2\x82\xac", true },		/* U+20AC */
	{ "\xf0\x9f\x98\x80", true },		/* U+1F600 */
	{ "\xf4\x8f\xbf\xbf", true },		/* U+10FFFF */
	{ "\xed\x9f\xbf", true },		/* U+D7FF */
	{ "\xee\x80\x80", true },		/* U+E000 */
	{ "\x7f", true },
	{ "\x80", false },			/* a lone continuation */
	{ "\xbf", false },
	{ "\xc0\xaf", false },			/* overlong '/' */
	{ "\xc1\xbf", false },
	{ "\xe0\x9f\xbf", false },		/* overlong U+07FF */
	{ "\xf0\x8f\xbf\xbf", false },		/* overlong U+FFFF */
	{ "\xed\xa0\x80", false },		/* U+D800 */
	{ "\xed\xbf\xbf", false },		/* U+DFFF */
	{ "\xf4\x90\x80\x80", false },		/* U+110000 */
	{ "\xf5\x80\x80\x80", false },
	{ "\xfe", false },
	{ "\xff", false },
	{ "\xc3", false },			/* truncated, or cut by 'a' */
	{ "\xe2\x82", false },
	{ "\xf0\x9f\x98", false },
	{ "\xc3\x28", false },			/* a non-continuation */
	{ "\xe2\x28\xa1", false },
};

static void
test_utf8_every_offset(void **state)
{
	unsigned char	buf[MAXLEN + 1];
	size_t		len, off, i, n;

	(void)state;
	for (len = 0; len <= MAXLEN; len++) {
		memset(buf, 'a', sizeof(buf));
		assert_true(util_utf8_valid((char *)buf, len));
		for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
			n = strlen(seqs[i].bytes);
			for (off = 0; off + n <= len; off++) {
				memset(buf, 'a', sizeof(buf));
				memcpy(buf + off, seqs[i].bytes, n);
				if (util_utf8_valid((char *)buf, len) !=
				    seqs[i].valid)
					fail_msg("seq %zu at %zu of %zu", i,
					    off, len);
			}
		}
	}
}

/* A sequence cut by the end of the buffer, wherever the end falls. */
static void
test_utf8_cut_at_end(void **state)
{
	static const char four[] = "\xf0\x9f\x98\x80";
	unsigned char	buf[MAXLEN + 4];
	size_t		len, k;

	(void)state;
	for (len = 1; len <= MAXLEN; len++) {
		for (k = 1; k <= 4 && k <= len; k++) {
			memset(buf, 'a', sizeof(buf));
			memcpy(buf + len - k, four, 4);
			/* Only the first k bytes of the character are in. */
			assert_int_equal(util_utf8_valid((char *)buf, len),
			    k == 4);
		}
	}
}

/* Bytes past len are never read as part of the answer. */
static void
test_utf8_bytes_past_len(void **state)
{
	unsigned char	buf[MAXLEN + 8];
	size_t		len;

	(void)state;
	for (len = 0; len <= MAXLEN; len++) {
		memset(buf, 'a', sizeof(buf));
		memset(buf + len, 0xff, sizeof(buf) - len);
		assert_true(util_utf8_valid((char *)buf, len));
		if (len < sizeof(buf))
			assert_false(util_utf8_valid((char *)buf, len + 1));
	}
}

/* Random, mostly ASCII buffers (as bodies are) against the reference. */
static void
test_utf8_random_against_reference(void **state)
{
	static const unsigned char pick[] = {
		0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0,
		0xf4, 0xf5, 0xff, 0x00, 0x7f, 0xa0, 0x9f, 0x90, 0x8f
	};
	unsigned char	buf[64];
	size_t		len, i;
	int		r, valid = 0;

	(void)state;
	srand(11);
	for (r = 0; r < 200000; r++) {
		len = (size_t)rand() % sizeof(buf);
		for (i = 0; i < len; i++)
			buf[i] = rand() % 8 == 0 ?
			    pick[rand() % sizeof(pick)] : 'a' + rand() % 26;
		if (util_utf8_valid((char *)buf, len) != ref_valid(buf, len))
			fail_msg("round %d differs", r);
		valid += ref_valid(buf, len);
	}
	/* Both answers come up often enough to mean something. */
	assert_true(valid > 10000 && valid < 190000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_every_offset),
		cmocka_unit_test(test_utf8_cut_at_end),
		cmocka_unit_test(test_utf8_bytes_past_len),
		cmocka_unit_test(test_utf8_random_against_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
