/*
 * signature.c - webhook signature verification (SPEC.md §1.2, §1.3).
 *
 * Pure: no I/O, no logging, and no allocation of our own on the verify path
 * once a thread has verified its first signature.  The one global state is
 * the HMAC context cache below.  The signed bytes are never concatenated into a buffer: the
 * HMAC is fed its parts ("t", ".", body) one after the other, so a body of
 * any size costs no copy.  That is why this file uses OpenSSL 3's EVP_MAC
 * interface rather than the one-shot HMAC(), which wants the message in one
 * piece.
 *
 * Every header is scanned front to back without backtracking, once to parse
 * it and once per configured key to compare, so a megabyte of "v1=" items
 * costs time linear in its size and no memory at all.
 *
 * The one exception is v1a (Ed25519, SPEC §1.3): pure Ed25519 hashes its
 * message twice and so wants it in one piece, and an Ed25519 verification
 * costs far more than an HMAC.  The signed bytes are copied once per request
 * that carries a v1a item and trusted public keys are configured, and only
 * the first SIG_V1A_TRIED well-formed v1a items are tried: a sender signs
 * with one or two keys at a time, and a header stuffed with signatures must
 * not buy unbounded CPU before it is authenticated.
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

#include <pthread.h>

#include "signature.h"

#define MAC_LEN		32	/* HMAC-SHA256 */
#define MAC_HEX_LEN	64
#define MAC_B64_LEN	44	/* 32 bytes: ten full groups and one "xxx=" */
#define T_MAX_DIGITS	18	/* 10^18 - 1 still fits a long long */
#define WHSEC_PREFIX	"whsec_"
#define WHPK_PREFIX	"whpk_"
#define WHSK_PREFIX	"whsk_"
#define ED_KEY_LEN	32	/* an Ed25519 public key or seed */
#define ED_SIG_LEN	64
#define ED_SIG_B64_LEN	88	/* 64 bytes: 21 full groups and one "xx==" */
#define SIG_V1A_TRIED	16

/* A piece of a header: not NUL-terminated. */
struct span {
	const char	*p;
	size_t		 len;
};

#define MAC_KEY_CACHED	128	/* longer HMAC keys are set again on every use */

/*
 * This thread's HMAC-SHA256 context and a copy of the key it holds.
 * Fetching the HMAC implementation and creating a context cost more than
 * the HMAC of a webhook (and the fetch takes a lock every worker thread
 * shares), so the implementation is fetched once per process and every
 * thread keeps one context, freed by the thread key's destructor when the
 * thread exits (sig_thread_release() for a thread that never exits).
 *
 * Setting the key costs two SHA-256 blocks; EVP_MAC_init with a NULL key
 * instead restarts from the key schedule the context already holds (an
 * EVP_MAC_init after EVP_MAC_final is a legal transition, life_cycle-mac(7);
 * the HMAC provider then calls HMAC_Init_ex with a NULL key, which keeps
 * the key).  It is only done when this OpenSSL does keep it
 * (mac_reuse_works()) and the bytes of the key asked for equal the
 * copy kept here, never on pointer identity: a reloaded key may be
 * allocated where the old one was.  klen is 0 whenever the context's key is
 * unknown (new context, key too long to copy, a failed init).
 */
struct mac {
	EVP_MAC_CTX	*ctx;
	size_t		 klen;
	unsigned char	 key[MAC_KEY_CACHED];
};

static pthread_once_t	 mac_once = PTHREAD_ONCE_INIT;
static EVP_MAC		*mac_hmac;
static pthread_key_t	 mac_tkey;
static int		 mac_ready;
static int		 mac_reuse;	/* EVP_MAC_init(NULL key) keeps the key */

static void	 mac_destroy(void *);
static void	 mac_global_init(void);
static struct mac *mac_open(void);
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
static long	 b64_prefixed(const char *, const char *, unsigned char *, size_t);
static unsigned char *signed_bytes(const struct span *, size_t, size_t *);
static int	 ed_verify(const struct sig_key *, const unsigned char *,
		    const unsigned char *, size_t);
static int	 match_v1(const char *, const struct span *,
		    const struct sig_key *, size_t);
static int	 match_v1a(const char *, const struct span *,
		    const struct sig_key *, size_t);
static int	 sign_v1a(const struct sig_key *, const struct span *, char *,
		    size_t);

static void
mac_destroy(void *p)
{
	struct mac	*m = p;

	/* EVP_MAC_CTX_free cleanses the key schedule it held. */
	EVP_MAC_CTX_free(m->ctx);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

/*
 * Whether this OpenSSL restarts an HMAC from the key it holds when
 * EVP_MAC_init is given a NULL key: 3.0.0 to 3.0.2 answered success and
 * changed nothing, so the next MAC ran on a finished context (openssl#17811,
 * fixed in 3.0.3).  Tried once, on a known key and message: the same MAC
 * twice, or the key is set for every MAC.
 */
static int
mac_reuse_works(void)
{
	char		 digest[] = "SHA256";
	unsigned char	 key[] = "vinr-selftest", a[MAC_LEN], b[MAC_LEN];
	OSSL_PARAM	 params[2];
	EVP_MAC_CTX	*ctx;
	size_t		 alen = 0, blen = 0;
	int		 ok;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_MAC_CTX_new(mac_hmac)) == NULL)
		return 0;
	ok = EVP_MAC_CTX_set_params(ctx, params) &&
	    EVP_MAC_init(ctx, key, sizeof(key) - 1, NULL) &&
	    EVP_MAC_update(ctx, (const unsigned char *)"abc", 3) &&
	    EVP_MAC_final(ctx, a, &alen, sizeof(a)) &&
	    EVP_MAC_init(ctx, NULL, 0, NULL) &&
	    EVP_MAC_update(ctx, (const unsigned char *)"abc", 3) &&
	    EVP_MAC_final(ctx, b, &blen, sizeof(b)) &&
	    alen == MAC_LEN && blen == MAC_LEN && memcmp(a, b, MAC_LEN) == 0;
	EVP_MAC_CTX_free(ctx);
	return ok;
}

static void
mac_global_init(void)
{
	if ((mac_hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL)) == NULL)
		return;
	mac_reuse = mac_reuse_works();
	if (pthread_key_create(&mac_tkey, mac_destroy) != 0) {
		EVP_MAC_free(mac_hmac);
		mac_hmac = NULL;
		return;
	}
	mac_ready = 1;
}

/* This thread's HMAC-SHA256 context, made on first use, or NULL. */
static struct mac *
mac_open(void)
{
	char		 digest[] = "SHA256";
	OSSL_PARAM	 params[2];
	struct mac	*m;

	if (pthread_once(&mac_once, mac_global_init) != 0 || !mac_ready)
		return NULL;
	if ((m = pthread_getspecific(mac_tkey)) != NULL)
		return m;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((m->ctx = EVP_MAC_CTX_new(mac_hmac)) == NULL ||
	    !EVP_MAC_CTX_set_params(m->ctx, params) ||
	    pthread_setspecific(mac_tkey, m) != 0) {
		mac_destroy(m);
		return NULL;
	}
	return m;
}

void
sig_thread_release(void)
{
	struct mac	*m;

	if (pthread_once(&mac_once, mac_global_init) != 0 || !mac_ready ||
	    (m = pthread_getspecific(mac_tkey)) == NULL)
		return;
	(void)pthread_setspecific(mac_tkey, NULL);
	mac_destroy(m);
}

/* Sets up m->ctx for key: the key schedule it holds when the same bytes. */
static int
mac_init(struct mac *m, const struct sig_key *key)
{
	if (mac_reuse && m->klen == key->len &&
	    CRYPTO_memcmp(m->key, key->data, key->len) == 0)
		return EVP_MAC_init(m->ctx, NULL, 0, NULL) ? 0 : -1;
	/* Unknown until the new key is in: a failure leaves it unknown, and
	 * the old key's bytes do not stay behind. */
	m->klen = 0;
	OPENSSL_cleanse(m->key, sizeof(m->key));
	if (!EVP_MAC_init(m->ctx, key->data, key->len, NULL))
		return -1;
	if (mac_reuse && key->len <= sizeof(m->key)) {
		memcpy(m->key, key->data, key->len);
		m->klen = key->len;
	}
	return 0;
}

/*
 * HMAC-SHA256 under key of the parts joined by '.'.  Returns 0 and fills out
 * (MAC_LEN bytes), or -1.
 */
static int
mac_compute(struct mac *m, const struct sig_key *key, const struct span *parts,
    size_t nparts, unsigned char *out)
{
	size_t		 i, outlen = 0;

	/*
	 * EVP_MAC_init with a NULL key means "keep the previous key", so an
	 * unusable key must never get this far: it would silently verify
	 * under whatever key the context held before.
	 */
	if (!key_usable(key) || key->kind != SIG_KEY_HMAC)
		return -1;
	if (mac_init(m, key) == -1)
		return -1;
	for (i = 0; i < nparts; i++) {
		if (i > 0 && !EVP_MAC_update(m->ctx,
		    (const unsigned char *)".", 1))
			goto fail;
		/* A zero-length body may come as a NULL pointer. */
		if (parts[i].len > 0 && !EVP_MAC_update(m->ctx,
		    (const unsigned char *)parts[i].p, parts[i].len))
			goto fail;
	}
	if (!EVP_MAC_final(m->ctx, out, &outlen, MAC_LEN) || outlen != MAC_LEN)
		goto fail;
	return 0;
fail:
	/* Whatever state the context is in now, set the key again next time. */
	m->klen = 0;
	OPENSSL_cleanse(m->key, sizeof(m->key));
	return -1;
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
	key->kind = SIG_KEY_HMAC;
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
	key->kind = SIG_KEY_HMAC;
}

enum sig_result
sig_verify_vinr(const char *header, const void *body, size_t bodylen,
    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance)
{
	struct mac	*m;
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
	if ((m = mac_open()) == NULL)
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
		if (keys[i].kind != SIG_KEY_HMAC ||
		    mac_compute(m, &keys[i], parts, 2, want) == -1)
			continue;
		cur = header;
		while (list_next(&cur, ',', &k, &v)) {
			if (!span_eq(&k, "v1") || hex_decode_mac(&v, got) == -1)
				continue;
			match |= CRYPTO_memcmp(want, got, MAC_LEN) == 0;
		}
	}
	OPENSSL_cleanse(want, sizeof(want));
	return match ? SIG_OK : SIG_INVALID;
}

/*
 * Whether a v1 of the space-separated list sig equals the HMAC of parts
 * under one of the HMAC keys.  Same comparison discipline as
 * sig_verify_vinr.  Returns 1 or 0 (0 too when the MAC cannot be set up:
 * fail closed).
 */
static int
match_v1(const char *sig, const struct span *parts, const struct sig_key *keys,
    size_t nkeys)
{
	struct mac	*m;
	struct span	 k, v;
	const char	*cur;
	unsigned char	 want[MAC_LEN], got[MAC_B64_LEN / 4 * 3];
	size_t		 i;
	int		 match = 0;

	if ((m = mac_open()) == NULL)
		return 0;
	for (i = 0; i < nkeys && !match; i++) {
		if (keys[i].kind != SIG_KEY_HMAC ||
		    mac_compute(m, &keys[i], parts, 3, want) == -1)
			continue;
		cur = sig;
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
	OPENSSL_cleanse(want, sizeof(want));
	return match;
}

/* The parts joined by '.', in one allocation (*len set), or NULL. */
static unsigned char *
signed_bytes(const struct span *parts, size_t nparts, size_t *len)
{
	unsigned char	*buf, *p;
	size_t		 i, n = 0;

	for (i = 0; i < nparts; i++) {
		if (parts[i].len > SIZE_MAX - n - 1)
			return NULL;
		n += parts[i].len + (i > 0);
	}
	if ((buf = malloc(n > 0 ? n : 1)) == NULL)
		return NULL;
	p = buf;
	for (i = 0; i < nparts; i++) {
		if (i > 0)
			*p++ = '.';
		if (parts[i].len > 0)
			memcpy(p, parts[i].p, parts[i].len);
		p += parts[i].len;
	}
	*len = n;
	return buf;
}

/* Pure Ed25519 (RFC 8032) verification of sig over msg.  Returns 1 or 0. */
static int
ed_verify(const struct sig_key *pub, const unsigned char *sig,
    const unsigned char *msg, size_t msglen)
{
	EVP_PKEY	*pk;
	EVP_MD_CTX	*ctx = NULL;
	int		 ok = 0;

	if (pub->kind != SIG_KEY_ED25519_PUBLIC || pub->data == NULL ||
	    pub->len != ED_KEY_LEN)
		return 0;
	if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
	    pub->data, pub->len)) == NULL)
		return 0;
	/* No digest: Ed25519 in EVP is the pure variant, not Ed25519ph. */
	if ((ctx = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestVerify(ctx, sig, ED_SIG_LEN, msg, msglen) == 1)
		ok = 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}

/*
 * Whether a v1a of sig verifies over parts under one of the public keys.
 * Returns 1 or 0 (0 too when the signed bytes cannot be allocated).
 */
static int
match_v1a(const char *sig, const struct span *parts, const struct sig_key *keys,
    size_t nkeys)
{
	struct span	 k, v;
	const char	*cur;
	unsigned char	*msg, got[ED_SIG_B64_LEN / 4 * 3];
	size_t		 i, msglen, npub = 0, tried;
	int		 match = 0;

	for (i = 0; i < nkeys; i++)
		npub += keys[i].kind == SIG_KEY_ED25519_PUBLIC;
	if (npub == 0 || (msg = signed_bytes(parts, 3, &msglen)) == NULL)
		return 0;
	for (i = 0; i < nkeys && !match; i++) {
		if (keys[i].kind != SIG_KEY_ED25519_PUBLIC)
			continue;
		cur = sig;
		tried = 0;
		while (!match && tried < SIG_V1A_TRIED &&
		    list_next(&cur, ' ', &k, &v)) {
			if (!span_eq(&k, "v1a") || v.len != ED_SIG_B64_LEN ||
			    b64_decode(v.p, v.len, got) != ED_SIG_LEN)
				continue;
			tried++;
			match = ed_verify(&keys[i], got, msg, msglen);
		}
	}
	free(msg);
	return match;
}

enum sig_result
sig_verify_standard(const char *msg_id, const char *timestamp,
    const char *signature, const void *body, size_t bodylen,
    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance)
{
	struct span	 k, v, parts[3];
	const char	*cur;
	long long	 t;
	size_t		 nv1 = 0, nv1a = 0;

	if (msg_id == NULL || *msg_id == '\0' ||
	    timestamp == NULL || *timestamp == '\0' ||
	    signature == NULL || *signature == '\0')
		return SIG_MISSING;

	parts[1].p = timestamp;
	parts[1].len = strlen(timestamp);
	if (parse_t(&parts[1], &t) == -1)
		return SIG_MISSING;

	cur = signature;
	while (list_next(&cur, ' ', &k, &v)) {
		if (span_eq(&k, "v1"))
			nv1++;
		else if (span_eq(&k, "v1a"))
			nv1a++;
	}
	if (nv1 == 0 && nv1a == 0)
		return SIG_MISSING;

	if (!within_tolerance(t, now, tolerance))
		return SIG_TOLERANCE;

	if (keys == NULL || nkeys == 0)
		return SIG_INVALID;

	parts[0].p = msg_id;
	parts[0].len = strlen(msg_id);
	parts[2].p = body;
	parts[2].len = bodylen;

	/* The HMACs first: they cost less than one Ed25519 verification. */
	if (nv1 > 0 && match_v1(signature, parts, keys, nkeys))
		return SIG_OK;
	if (nv1a > 0 && match_v1a(signature, parts, keys, nkeys))
		return SIG_OK;
	return SIG_INVALID;
}

int
sig_sign_vinr(const struct sig_key *key, long long t, const void *body,
    size_t bodylen, char *out, size_t outlen)
{
	static const char hexdig[] = "0123456789abcdef";
	struct mac	*m;
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
	if ((m = mac_open()) == NULL)
		return -1;
	rc = mac_compute(m, key, parts, 2, mac);
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
	struct mac	*m;
	struct span	 parts[3];
	unsigned char	 mac[MAC_LEN];
	char		 tbuf[32];
	int		 tlen, n, rc;

	if (out == NULL || msg_id == NULL || !key_usable(key))
		return -1;
	tlen = snprintf(tbuf, sizeof(tbuf), "%lld", t);
	if (tlen < 0 || (size_t)tlen >= sizeof(tbuf))
		return -1;
	parts[0].p = msg_id;
	parts[0].len = strlen(msg_id);
	parts[1].p = tbuf;
	parts[1].len = (size_t)tlen;
	parts[2].p = body;
	parts[2].len = bodylen;
	if (key->kind == SIG_KEY_ED25519_PRIVATE)
		return sign_v1a(key, parts, out, outlen);
	/* "v1," 44 base64 and the NUL. */
	n = 3 + MAC_B64_LEN;
	if ((size_t)n + 1 > outlen)
		return -1;
	if ((m = mac_open()) == NULL)
		return -1;
	rc = mac_compute(m, key, parts, 3, mac);
	if (rc == -1)
		return -1;

	memcpy(out, "v1,", 3);
	/* EVP_EncodeBlock writes the 44 characters and a NUL. */
	if (EVP_EncodeBlock((unsigned char *)out + 3, mac, MAC_LEN) !=
	    MAC_B64_LEN)
		return -1;
	return n;
}

/* "v1a,<base64>" of the pure Ed25519 signature of parts under key's seed. */
static int
sign_v1a(const struct sig_key *key, const struct span *parts, char *out,
    size_t outlen)
{
	EVP_PKEY	*pk = NULL;
	EVP_MD_CTX	*ctx = NULL;
	unsigned char	*msg = NULL, sig[ED_SIG_LEN];
	size_t		 msglen, siglen = sizeof(sig);
	int		 rc = -1;

	if (key->len != ED_KEY_LEN || outlen < SIG_V1A_LEN + 1)
		return -1;
	if ((msg = signed_bytes(parts, 3, &msglen)) == NULL)
		goto fail;
	if ((pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    key->data, key->len)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, msglen) != 1 ||
	    siglen != ED_SIG_LEN)
		goto fail;
	memcpy(out, "v1a,", 4);
	/* EVP_EncodeBlock writes the 88 characters and a NUL. */
	if (EVP_EncodeBlock((unsigned char *)out + 4, sig, ED_SIG_LEN) !=
	    ED_SIG_B64_LEN)
		goto fail;
	rc = SIG_V1A_LEN;
fail:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	free(msg);
	return rc;
}

/*
 * Decodes prefix + strict base64 into buf (cap bytes, enough for the
 * longest key accepted: 88 characters).  Returns the decoded length, or -1
 * when s lacks the prefix or is not base64 that fits.
 */
static long
b64_prefixed(const char *s, const char *prefix, unsigned char *buf, size_t cap)
{
	size_t	plen = strlen(prefix), len;

	if (s == NULL || strncmp(s, prefix, plen) != 0)
		return -1;
	s += plen;
	len = strlen(s);
	if (len == 0 || len / 4 * 3 > cap)
		return -1;
	return b64_decode(s, len, buf);
}

int
sig_key_from_public(const char *s, struct sig_key *key)
{
	unsigned char	buf[ED_SIG_B64_LEN / 4 * 3];

	if (key == NULL)
		return -1;
	key->data = NULL;
	key->len = 0;
	key->kind = SIG_KEY_HMAC;
	if (s == NULL)
		return -1;
	if (strncmp(s, WHSK_PREFIX, sizeof(WHSK_PREFIX) - 1) == 0)
		return -2;
	if (b64_prefixed(s, WHPK_PREFIX, buf, sizeof(buf)) != ED_KEY_LEN)
		return -1;
	if ((key->data = malloc(ED_KEY_LEN)) == NULL)
		return -1;
	memcpy(key->data, buf, ED_KEY_LEN);
	key->len = ED_KEY_LEN;
	key->kind = SIG_KEY_ED25519_PUBLIC;
	return 0;
}

int
sig_key_from_private(const char *s, struct sig_key *key)
{
	unsigned char	buf[ED_SIG_B64_LEN / 4 * 3];
	long		n;
	int		rc = -1;

	if (key == NULL)
		return -1;
	key->data = NULL;
	key->len = 0;
	key->kind = SIG_KEY_HMAC;
	n = b64_prefixed(s, WHSK_PREFIX, buf, sizeof(buf));
	/* The seed alone, or seed || public key: the seed comes first. */
	if ((n == ED_KEY_LEN || n == 2 * ED_KEY_LEN) &&
	    (key->data = malloc(ED_KEY_LEN)) != NULL) {
		memcpy(key->data, buf, ED_KEY_LEN);
		key->len = ED_KEY_LEN;
		key->kind = SIG_KEY_ED25519_PRIVATE;
		rc = 0;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int
sig_key_copy(struct sig_key *dst, const struct sig_key *src)
{
	dst->data = NULL;
	dst->len = 0;
	dst->kind = SIG_KEY_HMAC;
	if (src == NULL || src->data == NULL ||
	    (dst->data = malloc(src->len > 0 ? src->len : 1)) == NULL)
		return -1;
	memcpy(dst->data, src->data, src->len);
	dst->len = src->len;
	dst->kind = src->kind;
	return 0;
}

int
sig_standard_use_svix(const char *const webhook[3])
{
	return webhook[0] == NULL && webhook[1] == NULL && webhook[2] == NULL;
}
