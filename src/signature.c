/*
 * signature.c - webhook signature verification (SPEC.md §1.2, §1.3).
 *
 * Pure: no I/O, no globals, no logging, and no allocation of our own on the
 * verify path.  The signed bytes are never concatenated into a buffer: the
 * HMAC is fed its parts ("t", ".", body) one after the other, so a body of
 * any size costs no copy.  That is why this file uses OpenSSL 3's EVP_MAC
 * interface rather than the one-shot HMAC(), which wants the message in one
 * piece.
 *
 * Every header is scanned front to back without backtracking, once to parse
 * it and once per configured key to compare, so a megabyte of "v1=" items
 * costs time linear in its size and no memory at all.
 */

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "signature.h"

#define MAC_LEN		32	/* HMAC-SHA256 */
#define MAC_HEX_LEN	64
#define MAC_B64_LEN	44	/* 32 bytes: ten full groups and one "xxx=" */
#define T_MAX_DIGITS	18	/* 10^18 - 1 still fits a long long */
#define WHSEC_PREFIX	"whsec_"

/* A piece of a header: not NUL-terminated. */
struct span {
	const char	*p;
	size_t		 len;
};

/* One HMAC context, reused for every key of one call. */
struct mac {
	EVP_MAC		*mac;
	EVP_MAC_CTX	*ctx;
};

static int	 mac_open(struct mac *);
static void	 mac_close(struct mac *);
static int	 mac_compute(struct mac *, const struct sig_key *,
		    const struct span *, size_t, unsigned char *);
static int	 span_eq(const struct span *, const char *);
static int	 list_next(const char **, char, struct span *, struct span *);
static int	 parse_t(const struct span *, long long *);
static int	 within_tolerance(long long, time_t, long);
static int	 hex_decode_mac(const struct span *, unsigned char *);
static int	 b64_check(const char *, size_t);
static long	 b64_decode(const char *, size_t, unsigned char *);
static int	 key_usable(const struct sig_key *);

static int
mac_open(struct mac *m)
{
	m->ctx = NULL;
	if ((m->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL)) == NULL)
		return -1;
	if ((m->ctx = EVP_MAC_CTX_new(m->mac)) == NULL) {
		EVP_MAC_free(m->mac);
		m->mac = NULL;
		return -1;
	}
	return 0;
}

static void
mac_close(struct mac *m)
{
	/* EVP_MAC_CTX_free cleanses the key schedule it held. */
	EVP_MAC_CTX_free(m->ctx);
	EVP_MAC_free(m->mac);
	m->ctx = NULL;
	m->mac = NULL;
}

/*
 * HMAC-SHA256 under key of the parts joined by '.'.  Returns 0 and fills out
 * (MAC_LEN bytes), or -1.
 */
static int
mac_compute(struct mac *m, const struct sig_key *key, const struct span *parts,
    size_t nparts, unsigned char *out)
{
	char		 digest[] = "SHA256";
	OSSL_PARAM	 params[2];
	size_t		 i, outlen = 0;

	/*
	 * EVP_MAC_init with a NULL key means "keep the previous key", so an
	 * unusable key must never get this far: it would silently verify
	 * under whatever key the context held before.
	 */
	if (!key_usable(key))
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(m->ctx, key->data, key->len, params))
		return -1;
	for (i = 0; i < nparts; i++) {
		if (i > 0 && !EVP_MAC_update(m->ctx,
		    (const unsigned char *)".", 1))
			return -1;
		/* A zero-length body may come as a NULL pointer. */
		if (parts[i].len > 0 && !EVP_MAC_update(m->ctx,
		    (const unsigned char *)parts[i].p, parts[i].len))
			return -1;
	}
	if (!EVP_MAC_final(m->ctx, out, &outlen, MAC_LEN) || outlen != MAC_LEN)
		return -1;
	return 0;
}

static int
key_usable(const struct sig_key *key)
{
	return key != NULL && key->data != NULL && key->len > 0 &&
	    key->len <= INT_MAX;
}

static int
span_eq(const struct span *s, const char *lit)
{
	size_t	len = strlen(lit);

	return s->len == len && memcmp(s->p, lit, len) == 0;
}

/*
 * Takes the next item of a list from *cursor.  Items are separated by sep
 * (for a space-separated list, tabs separate too); blanks around an item are
 * dropped and empty items skipped, so ", t=1 ,, v1=..." reads as two items.
 * An item is split at its first '=' (vinr) or ',' (standard), the "kv" byte:
 * key is what comes before, value what comes after (empty when there is no
 * such byte).  Returns 1, or 0 at the end of the list.
 */
static int
list_next(const char **cursor, char sep, struct span *key, struct span *value)
{
	const char	*p = *cursor, *start, *end, *kv;
	char		 kvsep = sep == ',' ? '=' : ',';

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0') {
			*cursor = p;
			return 0;
		}
		if (*p != sep)
			break;
		p++;
	}
	start = p;
	kv = NULL;
	while (*p != '\0' && *p != sep && !(sep == ' ' && *p == '\t')) {
		if (kv == NULL && *p == kvsep)
			kv = p;
		p++;
	}
	end = p;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (*p != '\0')
		p++;
	*cursor = p;

	key->p = start;
	if (kv == NULL || kv >= end) {
		key->len = (size_t)(end - start);
		value->p = end;
		value->len = 0;
	} else {
		key->len = (size_t)(kv - start);
		value->p = kv + 1;
		value->len = (size_t)(end - (kv + 1));
	}
	return 1;
}

/*
 * A timestamp is 1 to 18 decimal digits, nothing else: no sign, no blanks,
 * no exponent.  18 digits keep the value inside a long long, so there is no
 * overflow to think about.  Returns 0, or -1 when unparseable.
 */
static int
parse_t(const struct span *s, long long *t)
{
	long long	v = 0;
	size_t		i;

	if (s->len == 0 || s->len > T_MAX_DIGITS)
		return -1;
	for (i = 0; i < s->len; i++) {
		if (s->p[i] < '0' || s->p[i] > '9')
			return -1;
		v = v * 10 + (s->p[i] - '0');
	}
	*t = v;
	return 0;
}

/*
 * |now - t| <= tolerance, computed without signed overflow whatever now is:
 * the difference of two int64 values in the right order always fits a
 * uint64.  A negative tolerance accepts nothing.
 */
static int
within_tolerance(long long t, time_t now, long tolerance)
{
	int64_t		n = (int64_t)now, tt = (int64_t)t;
	uint64_t	d;

	if (tolerance < 0)
		return 0;
	if (n >= tt)
		d = (uint64_t)n - (uint64_t)tt;
	else
		d = (uint64_t)tt - (uint64_t)n;
	return d <= (uint64_t)tolerance;
}

/*
 * A vinr v1 is exactly 64 lowercase hex digits.  Anything else (uppercase
 * included: SPEC §1.2 says lowercase) is not an error of the header, it just
 * matches nothing.  Returns 0 and fills out (MAC_LEN bytes), or -1.
 */
static int
hex_decode_mac(const struct span *s, unsigned char *out)
{
	size_t	i;
	int	hi, lo;

	if (s->len != MAC_HEX_LEN)
		return -1;
	for (i = 0; i < MAC_LEN; i++) {
		hi = s->p[2 * i];
		lo = s->p[2 * i + 1];
		if (hi >= '0' && hi <= '9')
			hi -= '0';
		else if (hi >= 'a' && hi <= 'f')
			hi -= 'a' - 10;
		else
			return -1;
		if (lo >= '0' && lo <= '9')
			lo -= '0';
		else if (lo >= 'a' && lo <= 'f')
			lo -= 'a' - 10;
		else
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/*
 * Strict RFC 4648 base64 with padding: a non-zero multiple of 4 characters
 * of the standard alphabet, with at most two '=' and only at the very end.
 * EVP_DecodeBlock is more lenient than that (it skips surrounding blanks and
 * does not say how much padding it saw), so the input is vetted here first.
 * Returns the number of padding characters (0, 1 or 2), or -1.
 */
static int
b64_check(const char *s, size_t len)
{
	size_t	i, pad = 0;

	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return -1;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '+' || s[i] == '/'))
			return -1;
	}
	return (int)pad;
}

/*
 * Decodes len characters of strict base64 into out, which must hold
 * len / 4 * 3 bytes.  Returns the real decoded length (EVP_DecodeBlock counts
 * the zero bytes that stand for padding, we do not), or -1.
 */
static long
b64_decode(const char *s, size_t len, unsigned char *out)
{
	int	pad, n;

	if ((pad = b64_check(s, len)) == -1)
		return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n != len / 4 * 3)
		return -1;
	return (long)n - pad;
}

int
sig_key_from_secret(enum sig_scheme scheme, const char *secret,
    struct sig_key *key)
{
	const char	*s;
	unsigned char	*buf;
	size_t		 len;
	long		 n;

	if (key == NULL)
		return -1;
	key->data = NULL;
	key->len = 0;
	if (secret == NULL || *secret == '\0')
		return -1;

	if (scheme == SIG_SCHEME_VINR) {
		len = strlen(secret);
		if (len > INT_MAX || (buf = malloc(len)) == NULL)
			return -1;
		memcpy(buf, secret, len);
		key->data = buf;
		key->len = len;
		return 0;
	}
	if (scheme != SIG_SCHEME_STANDARD)
		return -1;

	s = secret;
	if (strncmp(s, WHSEC_PREFIX, sizeof(WHSEC_PREFIX) - 1) == 0)
		s += sizeof(WHSEC_PREFIX) - 1;
	len = strlen(s);
	if (b64_check(s, len) == -1)
		return -1;
	if ((buf = malloc(len / 4 * 3)) == NULL)
		return -1;
	if ((n = b64_decode(s, len, buf)) <= 0) {
		/* "====" style input decodes to nothing: not a usable key. */
		OPENSSL_cleanse(buf, len / 4 * 3);
		free(buf);
		return -1;
	}
	/* The padding bytes past n still hold decoder output: wipe them. */
	OPENSSL_cleanse(buf + n, len / 4 * 3 - (size_t)n);
	key->data = buf;
	key->len = (size_t)n;
	return 0;
}

void
sig_key_release(struct sig_key *key)
{
	if (key == NULL)
		return;
	if (key->data != NULL) {
		OPENSSL_cleanse(key->data, key->len);
		free(key->data);
	}
	key->data = NULL;
	key->len = 0;
}

enum sig_result
sig_verify_vinr(const char *header, const void *body, size_t bodylen,
    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance)
{
	struct mac	 m;
	struct span	 k, v, tspan, parts[2];
	const char	*cur;
	unsigned char	 want[MAC_LEN], got[MAC_LEN];
	long long	 t;
	size_t		 i, nt = 0, nv1 = 0;
	int		 match;

	if (header == NULL || *header == '\0')
		return SIG_MISSING;

	/* Pass 1: exactly one well-formed t and at least one v1. */
	tspan.p = NULL;
	tspan.len = 0;
	cur = header;
	while (list_next(&cur, ',', &k, &v)) {
		if (span_eq(&k, "t")) {
			nt++;
			tspan = v;
		} else if (span_eq(&k, "v1"))
			nv1++;
	}
	/* Two t's could each claim a different time: refuse to choose. */
	if (nt != 1 || nv1 == 0 || parse_t(&tspan, &t) == -1)
		return SIG_MISSING;

	/* The cheap check first: no HMAC work for a stale or replayed header. */
	if (!within_tolerance(t, now, tolerance))
		return SIG_TOLERANCE;

	if (keys == NULL || nkeys == 0)
		return SIG_INVALID;
	/*
	 * Failing to set up the MAC fails closed: the request is refused as
	 * unsigned rather than let through.
	 */
	if (mac_open(&m) == -1)
		return SIG_INVALID;

	/* The signed bytes: t as sent, '.', the body. */
	parts[0] = tspan;
	parts[1].p = body;
	parts[1].len = bodylen;

	/*
	 * Pass 2, once per key: every v1 is compared, none skipped after a
	 * mismatch, so the time taken says nothing about which v1 came close.
	 * Stopping after a match is fine: by then the sender has proven it
	 * holds the key.
	 */
	match = 0;
	for (i = 0; i < nkeys && !match; i++) {
		if (mac_compute(&m, &keys[i], parts, 2, want) == -1)
			continue;
		cur = header;
		while (list_next(&cur, ',', &k, &v)) {
			if (!span_eq(&k, "v1") || hex_decode_mac(&v, got) == -1)
				continue;
			match |= CRYPTO_memcmp(want, got, MAC_LEN) == 0;
		}
	}
	mac_close(&m);
	OPENSSL_cleanse(want, sizeof(want));
	return match ? SIG_OK : SIG_INVALID;
}

enum sig_result
sig_verify_standard(const char *msg_id, const char *timestamp,
    const char *signature, const void *body, size_t bodylen,
    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance)
{
	struct mac	 m;
	struct span	 k, v, tspan, parts[3];
	const char	*cur;
	unsigned char	 want[MAC_LEN], got[MAC_B64_LEN / 4 * 3];
	long long	 t;
	size_t		 i, nv1 = 0;
	int		 match;

	if (msg_id == NULL || *msg_id == '\0' ||
	    timestamp == NULL || *timestamp == '\0' ||
	    signature == NULL || *signature == '\0')
		return SIG_MISSING;

	tspan.p = timestamp;
	tspan.len = strlen(timestamp);
	if (parse_t(&tspan, &t) == -1)
		return SIG_MISSING;

	cur = signature;
	while (list_next(&cur, ' ', &k, &v))
		if (span_eq(&k, "v1"))
			nv1++;
	if (nv1 == 0)
		return SIG_MISSING;

	if (!within_tolerance(t, now, tolerance))
		return SIG_TOLERANCE;

	if (keys == NULL || nkeys == 0)
		return SIG_INVALID;
	if (mac_open(&m) == -1)
		return SIG_INVALID;

	parts[0].p = msg_id;
	parts[0].len = strlen(msg_id);
	parts[1] = tspan;
	parts[2].p = body;
	parts[2].len = bodylen;

	/* Same comparison discipline as sig_verify_vinr. */
	match = 0;
	for (i = 0; i < nkeys && !match; i++) {
		if (mac_compute(&m, &keys[i], parts, 3, want) == -1)
			continue;
		cur = signature;
		while (list_next(&cur, ' ', &k, &v)) {
			/*
			 * Only 44 characters can be 32 bytes of padded base64:
			 * the length test keeps got[] large enough for
			 * whatever a v1 holds.
			 */
			if (!span_eq(&k, "v1") || v.len != MAC_B64_LEN ||
			    b64_decode(v.p, v.len, got) != MAC_LEN)
				continue;
			match |= CRYPTO_memcmp(want, got, MAC_LEN) == 0;
		}
	}
	mac_close(&m);
	OPENSSL_cleanse(want, sizeof(want));
	return match ? SIG_OK : SIG_INVALID;
}

int
sig_sign_vinr(const struct sig_key *key, long long t, const void *body,
    size_t bodylen, char *out, size_t outlen)
{
	static const char hexdig[] = "0123456789abcdef";
	struct mac	 m;
	struct span	 parts[2];
	unsigned char	 mac[MAC_LEN];
	char		 tbuf[32];
	int		 tlen, n, i, rc;

	if (out == NULL || !key_usable(key))
		return -1;
	tlen = snprintf(tbuf, sizeof(tbuf), "%lld", t);
	if (tlen < 0 || (size_t)tlen >= sizeof(tbuf))
		return -1;
	/* "t=" T ",v1=" 64 hex and the NUL. */
	n = 2 + tlen + 4 + MAC_HEX_LEN;
	if ((size_t)n + 1 > outlen)
		return -1;

	parts[0].p = tbuf;
	parts[0].len = (size_t)tlen;
	parts[1].p = body;
	parts[1].len = bodylen;
	if (mac_open(&m) == -1)
		return -1;
	rc = mac_compute(&m, key, parts, 2, mac);
	mac_close(&m);
	if (rc == -1)
		return -1;

	memcpy(out, "t=", 2);
	memcpy(out + 2, tbuf, (size_t)tlen);
	memcpy(out + 2 + tlen, ",v1=", 4);
	for (i = 0; i < MAC_LEN; i++) {
		out[6 + tlen + 2 * i] = hexdig[mac[i] >> 4];
		out[6 + tlen + 2 * i + 1] = hexdig[mac[i] & 0xf];
	}
	out[n] = '\0';
	return n;
}

int
sig_sign_standard(const struct sig_key *key, const char *msg_id, long long t,
    const void *body, size_t bodylen, char *out, size_t outlen)
{
	struct mac	 m;
	struct span	 parts[3];
	unsigned char	 mac[MAC_LEN];
	char		 tbuf[32];
	int		 tlen, n, rc;

	if (out == NULL || msg_id == NULL || !key_usable(key))
		return -1;
	tlen = snprintf(tbuf, sizeof(tbuf), "%lld", t);
	if (tlen < 0 || (size_t)tlen >= sizeof(tbuf))
		return -1;
	/* "v1," 44 base64 and the NUL. */
	n = 3 + MAC_B64_LEN;
	if ((size_t)n + 1 > outlen)
		return -1;

	parts[0].p = msg_id;
	parts[0].len = strlen(msg_id);
	parts[1].p = tbuf;
	parts[1].len = (size_t)tlen;
	parts[2].p = body;
	parts[2].len = bodylen;
	if (mac_open(&m) == -1)
		return -1;
	rc = mac_compute(&m, key, parts, 3, mac);
	mac_close(&m);
	if (rc == -1)
		return -1;

	memcpy(out, "v1,", 3);
	/* EVP_EncodeBlock writes the 44 characters and a NUL. */
	if (EVP_EncodeBlock((unsigned char *)out + 3, mac, MAC_LEN) !=
	    MAC_B64_LEN)
		return -1;
	return n;
}
