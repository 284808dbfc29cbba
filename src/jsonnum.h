/*
 * jsonnum.h - exact integers in JSON, both ways.
 *
 * cJSON keeps a number only as a double, which holds every integer up to
 * 2^53 and no further: 9007199254740993 reads as 9007199254740992, and
 * cJSON prints 2000000000000000 as 2e+15.  Reading, cJSON stays the parser
 * (it validates and builds the tree) and the exact value of a number node is
 * recovered from the text it was parsed from.  Writing, integers go into the
 * tree as raw JSON printed with "%lld".
 *
 * Pure: no I/O, no globals.
 */
#ifndef VINR_JSONNUM_H
#define VINR_JSONNUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum jsonnum_rc {
	JSONNUM_OK = 0,		/* *out holds the exact value */
	JSONNUM_ABSENT,		/* no such member, or null */
	JSONNUM_NOT_NUMBER,	/* present, but not a number */
	JSONNUM_NOT_INTEGER,	/* a number with a non-zero fractional part */
	JSONNUM_RANGE,		/* an integer outside int64_t */
	JSONNUM_NO_SOURCE	/* the text does not hold the node: wrong text */
};

/*
 * The value of the number literal s[0..len), all of it, as cJSON reads
 * numbers: '-'? digits ('.' digits)? ([eE] [+-]? digits)?, leading zeros
 * and an empty side of the '.' allowed.  Integral is judged on the exact
 * decimal, never on a rounded double: 2.5e3 is 2500, 1e18 is 10^18, 12.5 and
 * 1.0000000000000000001 are JSONNUM_NOT_INTEGER, -0 is 0.  Anything else
 * (empty, a stray character) is JSONNUM_NOT_NUMBER.  *out is set only on
 * JSONNUM_OK.
 */
enum jsonnum_rc	 jsonnum_parse(const char *s, size_t len, int64_t *out);

/*
 * The exact value of item, a node of the tree root that cJSON parsed from
 * text[0..len) (root included; trailing bytes after the root's value do not
 * matter).  cJSON builds children in document order, so the k-th number node
 * met depth-first is the k-th number token of the text once strings are
 * skipped.  JSONNUM_ABSENT for a NULL item or null, JSONNUM_NOT_NUMBER for
 * any other non-number, JSONNUM_NO_SOURCE when item is not in root's tree or
 * text disagrees with it.
 */
enum jsonnum_rc	 jsonnum_value(const char *text, size_t len, const cJSON *root,
		    const cJSON *item, int64_t *out);

/*
 * jsonnum_value() of the member key (case-sensitive, the first if repeated)
 * of obj, a node of root's tree (root itself for a request's top level).
 * For a control request: cJSON_ParseWithLengthOpts(line, len, &end, false)
 * gives root; jsonnum_get(line, len, root, root, "amount", &v).
 */
enum jsonnum_rc	 jsonnum_get(const char *text, size_t len, const cJSON *root,
		    const cJSON *obj, const char *key, int64_t *out);

/*
 * Adds key: v to object o as a raw JSON integer ("%lld": exact, never an
 * exponent).  jsonnum_add_opt adds null when has is false.  Both return the
 * new item, or NULL on allocation failure.
 */
cJSON		*jsonnum_add(cJSON *o, const char *key, int64_t v);
cJSON		*jsonnum_add_opt(cJSON *o, const char *key, bool has, int64_t v);

#endif
