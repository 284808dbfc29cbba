/*
 * jsonnum.c - exact integers in JSON (see jsonnum.h).
 */
#include <stdio.h>
#include <string.h>

#include "jsonnum.h"

/*
 * A bound on a parsed exponent: far beyond any int64 (19 digits) and any
 * literal's length, and small enough that exp * 10 + 9 cannot overflow.
 */
#define EXP_CAP		(1LL << 50)
#define INT64_DIGITS	19

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The characters cJSON copies into a number before it calls strtod. */
static bool
is_num_char(char c)
{
	return is_digit(c) || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

/* The k-th mantissa digit: the integer part's ni digits, then the fraction's. */
static int
digit_at(const char *s, size_t i0, size_t ni, size_t f0, size_t k)
{
	return (k < ni ? s[i0 + k] : s[f0 + k - ni]) - '0';
}

/* Parses [eE] [+-]? digits at s[*i], saturating at EXP_CAP; false if malformed. */
static bool
parse_exp(const char *s, size_t len, size_t *i, long long *exp)
{
	bool neg = false;
	size_t e0;

	*exp = 0;
	if (*i >= len || (s[*i] != 'e' && s[*i] != 'E'))
		return true;
	(*i)++;
	if (*i < len && (s[*i] == '+' || s[*i] == '-'))
		neg = s[(*i)++] == '-';
	for (e0 = *i; *i < len && is_digit(s[*i]); (*i)++)
		if (*exp < EXP_CAP)
			*exp = *exp * 10 + (s[*i] - '0');
	if (*i == e0)
		return false;
	if (neg)
		*exp = -*exp;
	return true;
}

/*
 * The value is the mantissa's digits times 10^(exp - nf).  Leading and
 * trailing zeros are dropped first, so that the judgement is on the
 * significant digits alone: an integer when the last non-zero digit lands
 * at or left of the units, in range when it has at most 19 digits and fits.
 */
enum jsonnum_rc
jsonnum_parse(const char *s, size_t len, int64_t *out)
{
	size_t i = 0, i0, ni, f0, nf = 0, n, first, last;
	long long exp, scale;
	uint64_t u = 0;
	bool neg = false;

	if (len > 0 && s[0] == '-') {
		neg = true;
		i++;
	}
	for (i0 = i; i < len && is_digit(s[i]); i++)
		;
	ni = i - i0;
	f0 = i;
	if (i < len && s[i] == '.') {
		for (f0 = ++i; i < len && is_digit(s[i]); i++)
			;
		nf = i - f0;
	}
	if (ni + nf == 0 || !parse_exp(s, len, &i, &exp) || i != len)
		return JSONNUM_NOT_NUMBER;
	n = ni + nf;
	for (first = 0; first < n && digit_at(s, i0, ni, f0, first) == 0; first++)
		;
	if (first == n) {
		*out = 0;	/* 0, -0, 0.000e9 */
		return JSONNUM_OK;
	}
	for (last = n; digit_at(s, i0, ni, f0, last - 1) == 0; last--)
		;
	scale = exp - (long long)nf + (long long)(n - last);
	if (scale < 0)
		return JSONNUM_NOT_INTEGER;
	if ((long long)(last - first) + scale > INT64_DIGITS)
		return JSONNUM_RANGE;
	/* At most 19 digits: below 10^19 < 2^64, no overflow. */
	for (size_t k = first; k < last; k++)
		u = u * 10 + (uint64_t)digit_at(s, i0, ni, f0, k);
	for (; scale > 0; scale--)
		u *= 10;
	if (u > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return JSONNUM_RANGE;
	if (!neg)
		*out = (int64_t)u;
	else
		*out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
	return JSONNUM_OK;
}

/*
 * Counts the number nodes that come before item in document order (node's
 * subtree, depth first: a node, then its children).  True once item is met.
 */
static bool
count_before(const cJSON *node, const cJSON *item, size_t *k)
{
	if (node == item)
		return true;
	if (cJSON_IsNumber(node))
		(*k)++;
	for (const cJSON *c = node->child; c != NULL; c = c->next)
		if (count_before(c, item, k))
			return true;
	return false;
}

/*
 * The index just past the closing quote of the string whose text starts at
 * text[i] (len if it is not closed).  A quote closes it unless an odd run of
 * backslashes escapes it; memchr finds the candidates, which is what makes
 * a body of long strings cheap to skip.
 */
static size_t
string_end(const char *text, size_t len, size_t i)
{
	const char *q;
	size_t b;

	while (i < len && (q = memchr(text + i, '"', len - i)) != NULL) {
		i = (size_t)(q - text);
		for (b = 0; b < i && text[i - 1 - b] == '\\'; b++)
			;
		if (b % 2 == 0)
			return i + 1;
		i++;
	}
	return len + 1;
}

/*
 * The k-th (from 0) number token of text: outside strings, a run of the
 * characters cJSON reads as a number, starting with '-' or a digit.  No
 * other JSON token holds a digit or a '-' outside a string.  NULL if there
 * are fewer.
 */
static const char *
nth_number(const char *text, size_t len, size_t k, size_t *tlen)
{
	size_t i = 0, start;

	while (i < len) {
		if (text[i] == '"') {
			i = string_end(text, len, i + 1);
		} else if (text[i] == '-' || is_digit(text[i])) {
			for (start = i; i < len && is_num_char(text[i]); i++)
				;
			if (k-- == 0) {
				*tlen = i - start;
				return text + start;
			}
		} else
			i++;
	}
	return NULL;
}

enum jsonnum_rc
jsonnum_value(const char *text, size_t len, const cJSON *root, const cJSON *item,
    int64_t *out)
{
	const char *tok;
	size_t k = 0, tlen;
	enum jsonnum_rc rc;
	int64_t v;

	if (item == NULL || cJSON_IsNull(item))
		return JSONNUM_ABSENT;
	if (!cJSON_IsNumber(item))
		return JSONNUM_NOT_NUMBER;
	if (root == NULL || text == NULL || !count_before(root, item, &k) ||
	    (tok = nth_number(text, len, k, &tlen)) == NULL)
		return JSONNUM_NO_SOURCE;
	/*
	 * The token must be what cJSON read: a whole literal, and the same
	 * value once rounded (strtod and the int64 conversion both round to
	 * nearest, so an exact match rounds to the same double).
	 */
	rc = jsonnum_parse(tok, tlen, &v);
	if (rc == JSONNUM_NOT_NUMBER || (rc == JSONNUM_OK && (double)v != item->valuedouble))
		return JSONNUM_NO_SOURCE;
	if (rc == JSONNUM_OK)
		*out = v;
	return rc;
}

enum jsonnum_rc
jsonnum_get(const char *text, size_t len, const cJSON *root, const cJSON *obj,
    const char *key, int64_t *out)
{
	if (!cJSON_IsObject(obj))
		return JSONNUM_ABSENT;
	return jsonnum_value(text, len, root, cJSON_GetObjectItemCaseSensitive(obj, key), out);
}

cJSON *
jsonnum_add(cJSON *o, const char *key, int64_t v)
{
	char num[24];	/* -9223372036854775808 */

	snprintf(num, sizeof(num), "%lld", (long long)v);
	return cJSON_AddRawToObject(o, key, num);
}

cJSON *
jsonnum_add_opt(cJSON *o, const char *key, bool has, int64_t v)
{
	return has ? jsonnum_add(o, key, v) : cJSON_AddNullToObject(o, key);
}
