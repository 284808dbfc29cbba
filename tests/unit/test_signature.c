/*
 * test_signature.c - unit tests of signature.c (SPEC.md §1.2, §1.3).
 *
 * Expected MACs never come from signature.c itself: they are either fixed
 * vectors (the Standard Webhooks published one, and one made with
 * `openssl dgst -sha256 -hmac`) or computed here with OpenSSL's one-shot
 * HMAC() over a concatenated buffer, a different path from the streaming
 * EVP_MAC code under test.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "signature.h"

#define TOL		300L

/*
 * printf '%s' '1718096412.{"id":"evt_01J0Q8ZK3M","type":"terminal_payment.completed"}' |
 *     openssl dgst -sha256 -hmac whsec_test		(and -hmac test)
 */
#define V_T		"1718096412"
#define V_TNUM		1718096412
#define V_BODY		"{\"id\":\"evt_01J0Q8ZK3M\",\"type\":\"terminal_payment.completed\"}"
#define V_MAC_WHSEC	"7eb8fffe4e06c970ca9887fc5cbc43021e3f8442bc02203d053d789e35b4d146"
#define V_MAC_BARE	"d803dda82ecbfe33eba0a354ea361a7aa3a6fddb5e7809a871989825cd1b6752"

/* Standard Webhooks' published vector (SPEC §1.3). */
#define S_SECRET	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define S_ID		"msg_p5jXN8AQM9LWM0D4loKWxJek"
#define S_T		"1614265330"
#define S_TNUM		1614265330
#define S_BODY		"{\"test\": 2432232314}"
#define S_B64		"g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define S_SIG		"v1," S_B64

/* A well-formed v1 that is nobody's MAC. */
#define BOGUS_HEX	"0000000000000000000000000000000000000000000000000000000000000000"
#define BOGUS_HEX2	"5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
#define BOGUS_B64	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static void
key_make(enum sig_scheme scheme, const char *secret, struct sig_key *key)
{
	assert_int_equal(sig_key_from_secret(scheme, secret, key), 0);
	assert_non_null(key->data);
	assert_true(key->len > 0);
}

/* HMAC-SHA256 of a "." b (b may hold NUL bytes) as lowercase hex. */
static void
ref_hex(const void *key, size_t keylen, const char *a, const void *b,
    size_t blen, char out[65])
{
	unsigned char	*msg, mac[32];
	unsigned int	 maclen = 0;
	size_t		 alen = strlen(a), i;

	msg = malloc(alen + 1 + blen + 1);
	assert_non_null(msg);
	memcpy(msg, a, alen);
	msg[alen] = '.';
	if (blen > 0)
		memcpy(msg + alen + 1, b, blen);
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, msg,
	    alen + 1 + blen, mac, &maclen));
	assert_int_equal(maclen, 32);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	free(msg);
}

/* HMAC-SHA256 of id "." t "." body, base64. */
static void
ref_b64(const void *key, size_t keylen, const char *id, const char *t,
    const void *body, size_t blen, char out[45])
{
	unsigned char	*msg, mac[32];
	unsigned int	 maclen = 0;
	size_t		 idlen = strlen(id), tlen = strlen(t), n;

	n = idlen + 1 + tlen + 1 + blen;
	msg = malloc(n + 1);
	assert_non_null(msg);
	memcpy(msg, id, idlen);
	msg[idlen] = '.';
	memcpy(msg + idlen + 1, t, tlen);
	msg[idlen + 1 + tlen] = '.';
	if (blen > 0)
		memcpy(msg + idlen + 1 + tlen + 1, body, blen);
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, msg, n, mac,
	    &maclen));
	assert_int_equal(maclen, 32);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)out, mac, 32), 44);
	free(msg);
}

static enum sig_result
vv(const char *header, const struct sig_key *keys, size_t nkeys, time_t now)
{
	return sig_verify_vinr(header, V_BODY, strlen(V_BODY), keys, nkeys,
	    now, TOL);
}

static enum sig_result
sv(const char *id, const char *ts, const char *sig, const struct sig_key *keys,
    size_t nkeys, time_t now)
{
	return sig_verify_standard(id, ts, sig, S_BODY, strlen(S_BODY), keys,
	    nkeys, now, TOL);
}

/* ---------------------------------------------------------------- keys */

static void
test_key_vinr_bytes_as_written(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(k.len, 10);
	assert_memory_equal(k.data, "whsec_test", 10);
	sig_key_release(&k);

	/* Bytes that base64 would choke on are fine: nothing is decoded. */
	key_make(SIG_SCHEME_VINR, " a=b*c ", &k);
	assert_int_equal(k.len, 7);
	assert_memory_equal(k.data, " a=b*c ", 7);
	sig_key_release(&k);
}

static void
test_key_empty_or_null(void **state)
{
	struct sig_key	k = { (unsigned char *)&k, 99, SIG_KEY_ED25519_PUBLIC };

	(void)state;
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, "", &k), -1);
	assert_null(k.data);
	assert_int_equal(k.len, 0);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, NULL, &k), -1);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_STANDARD, "", &k), -1);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_STANDARD, NULL, &k), -1);
	/* Nothing left once the prefix is gone. */
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_STANDARD, "whsec_", &k),
	    -1);
	assert_null(k.data);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, "x", NULL), -1);
}

static void
test_key_standard_decode(void **state)
{
	/* python3 -c 'import base64; print(list(base64.b64decode(...)))' */
	static const unsigned char want[] = {
		0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a,
		0xab, 0x4f, 0x08, 0xd4, 0x3c, 0x3f, 0x08, 0x2c,
		0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0
	};
	struct sig_key	k, k2;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	assert_int_equal(k.len, 24);
	assert_memory_equal(k.data, want, 24);
	/* The prefix is optional. */
	key_make(SIG_SCHEME_STANDARD, S_SECRET + 6, &k2);
	assert_int_equal(k2.len, 24);
	assert_memory_equal(k2.data, want, 24);
	sig_key_release(&k);
	sig_key_release(&k2);

	/* The padding is not counted in the key length. */
	key_make(SIG_SCHEME_STANDARD, "whsec_AAAA", &k);
	assert_int_equal(k.len, 3);
	sig_key_release(&k);
	key_make(SIG_SCHEME_STANDARD, "whsec_QUJD", &k);
	assert_int_equal(k.len, 3);
	assert_memory_equal(k.data, "ABC", 3);
	sig_key_release(&k);
	key_make(SIG_SCHEME_STANDARD, "QUI=", &k);
	assert_int_equal(k.len, 2);
	assert_memory_equal(k.data, "AB", 2);
	sig_key_release(&k);
	key_make(SIG_SCHEME_STANDARD, "whsec_QQ==", &k);
	assert_int_equal(k.len, 1);
	assert_memory_equal(k.data, "A", 1);
	sig_key_release(&k);
	key_make(SIG_SCHEME_STANDARD, "whsec_QUJDRA==", &k);
	assert_int_equal(k.len, 4);
	assert_memory_equal(k.data, "ABCD", 4);
	sig_key_release(&k);
}

static void
test_key_standard_invalid(void **state)
{
	static const char *bad[] = {
		"whsec_abc",			/* not a multiple of 4 */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=",
		"whsec_ab*d",			/* bad character */
		"whsec_ab d",
		"whsec_ab-_",			/* URL-safe alphabet */
		"whsec_A=AA",			/* '=' in the middle */
		"whsec_AA=A",
		"whsec_QQ==QUJD",
		"whsec_A===",			/* too much padding */
		"whsec_====",
		"whsec_whsec_QUJD",		/* only one prefix is stripped */
		"xwhsec_QUJD",			/* only a leading one */
		"WHSEC_QUJD",
		" QUJD",
		"QUJD ",
		"QUJD\n",
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k.data = (unsigned char *)&k;
		k.len = 7;
		if (sig_key_from_secret(SIG_SCHEME_STANDARD, bad[i], &k) != -1)
			fail_msg("accepted secret \"%s\"", bad[i]);
		assert_null(k.data);
		assert_int_equal(k.len, 0);
	}
}

static void
test_key_release(void **state)
{
	struct sig_key	k;

	(void)state;
	sig_key_release(NULL);
	key_make(SIG_SCHEME_VINR, "secret", &k);
	sig_key_release(&k);
	assert_null(k.data);
	assert_int_equal(k.len, 0);
	/* Already released: a no-op. */
	sig_key_release(&k);
	assert_null(k.data);
}

/* ---------------------------------------------------------------- vinr */

static void
test_vinr_fixed_vector(void **state)
{
	struct sig_key	k, bare;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	key_make(SIG_SCHEME_VINR, "test", &bare);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM), SIG_OK);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_BARE, &bare, 1, V_TNUM),
	    SIG_OK);
	/* whsec_ is part of the key in this scheme: never stripped. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_BARE, &k, 1, V_TNUM),
	    SIG_INVALID);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &bare, 1, V_TNUM),
	    SIG_INVALID);
	sig_key_release(&k);
	sig_key_release(&bare);
}

static void
test_vinr_independent_hmac(void **state)
{
	static const char	*secrets[] = { "s", "whsec_abc", "a much longer "
	    "secret that exceeds the sixty-four byte block size of SHA-256 "
	    "so that HMAC hashes it first" };
	struct sig_key		 k;
	char			 hex[65], hdr[128];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		key_make(SIG_SCHEME_VINR, secrets[i], &k);
		ref_hex(secrets[i], strlen(secrets[i]), "1700000000", V_BODY,
		    strlen(V_BODY), hex);
		snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s", hex);
		assert_int_equal(vv(hdr, &k, 1, 1700000000), SIG_OK);
		assert_int_equal(vv(hdr, &k, 1, 1700000000 + TOL), SIG_OK);
		sig_key_release(&k);
	}
}

static void
test_vinr_body_tampered(void **state)
{
	struct sig_key	k;
	char		body[] = V_BODY;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	body[10] ^= 1;
	assert_int_equal(sig_verify_vinr("t=" V_T ",v1=" V_MAC_WHSEC, body,
	    strlen(body), &k, 1, V_TNUM, TOL), SIG_INVALID);
	/* One byte short, one byte long. */
	assert_int_equal(sig_verify_vinr("t=" V_T ",v1=" V_MAC_WHSEC, V_BODY,
	    strlen(V_BODY) - 1, &k, 1, V_TNUM, TOL), SIG_INVALID);
	assert_int_equal(sig_verify_vinr("t=" V_T ",v1=" V_MAC_WHSEC, V_BODY,
	    strlen(V_BODY) + 1, &k, 1, V_TNUM, TOL), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_vinr_several_v1(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	/* The valid one first, in the middle, last. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC ",v1=" BOGUS_HEX
	    ",v1=" BOGUS_HEX2, &k, 1, V_TNUM), SIG_OK);
	assert_int_equal(vv("t=" V_T ",v1=" BOGUS_HEX ",v1=" V_MAC_WHSEC
	    ",v1=" BOGUS_HEX2, &k, 1, V_TNUM), SIG_OK);
	assert_int_equal(vv("t=" V_T ",v1=" BOGUS_HEX ",v1=" BOGUS_HEX2
	    ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM), SIG_OK);
	/* Several, none valid. */
	assert_int_equal(vv("t=" V_T ",v1=" BOGUS_HEX ",v1=" BOGUS_HEX2, &k, 1,
	    V_TNUM), SIG_INVALID);
	/* The same valid one twice. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC ",v1=" V_MAC_WHSEC,
	    &k, 1, V_TNUM), SIG_OK);
	sig_key_release(&k);
}

static void
test_vinr_item_order_and_spaces(void **state)
{
	static const char *ok[] = {
		"v1=" V_MAC_WHSEC ",t=" V_T,
		"v1=" BOGUS_HEX ",t=" V_T ",v1=" V_MAC_WHSEC,
		"t=" V_T ", v1=" V_MAC_WHSEC,
		" t=" V_T " , v1=" V_MAC_WHSEC " ",
		"t=" V_T ",\tv1=" V_MAC_WHSEC "\t",
		"t=" V_T ",,v1=" V_MAC_WHSEC ",",	/* empty items */
		",t=" V_T ",v1=" V_MAC_WHSEC,
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (vv(ok[i], &k, 1, V_TNUM) != SIG_OK)
			fail_msg("rejected \"%s\"", ok[i]);
	sig_key_release(&k);
}

static void
test_vinr_other_keys_ignored(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv("t=" V_T ",v0=" BOGUS_HEX ",v1=" V_MAC_WHSEC, &k, 1,
	    V_TNUM), SIG_OK);
	assert_int_equal(vv("foo=bar,t=" V_T ",v2=zz,v1=" V_MAC_WHSEC ",x=",
	    &k, 1, V_TNUM), SIG_OK);
	/* An item without '=' that is neither t nor v1 is just another key. */
	assert_int_equal(vv("junk,t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_OK);
	/* The right MAC under another key name counts for nothing. */
	assert_int_equal(vv("t=" V_T ",v0=" V_MAC_WHSEC ",v1=" BOGUS_HEX, &k, 1,
	    V_TNUM), SIG_INVALID);
	assert_int_equal(vv("t=" V_T ",v2=" V_MAC_WHSEC ",v1=" BOGUS_HEX, &k, 1,
	    V_TNUM), SIG_INVALID);
	assert_int_equal(vv("t=" V_T ",v10=" V_MAC_WHSEC ",v1=" BOGUS_HEX, &k,
	    1, V_TNUM), SIG_INVALID);
	/* Key names are case-sensitive: V1 is not v1, T is not t. */
	assert_int_equal(vv("t=" V_T ",V1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("T=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	/* Blanks inside an item are not trimmed: "t =" is another key. */
	assert_int_equal(vv("t =" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	sig_key_release(&k);
}

static void
test_vinr_rotation(void **state)
{
	struct sig_key	keys[3];
	char		hex[65], hdr[256];

	(void)state;
	key_make(SIG_SCHEME_VINR, "old-secret", &keys[0]);
	key_make(SIG_SCHEME_VINR, "whsec_test", &keys[1]);
	key_make(SIG_SCHEME_VINR, "unrelated", &keys[2]);
	/* Signed by the second key. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, keys, 2, V_TNUM),
	    SIG_OK);
	assert_int_equal(vv("t=" V_T ",v1=" BOGUS_HEX ",v1=" V_MAC_WHSEC, keys,
	    3, V_TNUM), SIG_OK);
	/* Signed by the first key. */
	ref_hex("old-secret", 10, V_T, V_BODY, strlen(V_BODY), hex);
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, hex);
	assert_int_equal(vv(hdr, keys, 2, V_TNUM), SIG_OK);
	/* The sender signs with both during rotation. */
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s,v1=%s", V_T, hex, V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &keys[1], 1, V_TNUM), SIG_OK);
	assert_int_equal(vv(hdr, &keys[0], 1, V_TNUM), SIG_OK);
	assert_int_equal(vv(hdr, &keys[2], 1, V_TNUM), SIG_INVALID);
	/* The signing key is not among those configured. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &keys[2], 1, V_TNUM),
	    SIG_INVALID);
	/* No keys at all. */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, keys, 0, V_TNUM),
	    SIG_INVALID);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, NULL, 0, V_TNUM),
	    SIG_INVALID);
	sig_key_release(&keys[0]);
	sig_key_release(&keys[1]);
	sig_key_release(&keys[2]);
}

static void
test_vinr_unusable_key_skipped(void **state)
{
	struct sig_key	keys[2];

	(void)state;
	/* A released key in the list matches nothing but stops nothing. */
	key_make(SIG_SCHEME_VINR, "whsec_test", &keys[0]);
	sig_key_release(&keys[0]);
	key_make(SIG_SCHEME_VINR, "whsec_test", &keys[1]);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, keys, 2, V_TNUM),
	    SIG_OK);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, keys, 1, V_TNUM),
	    SIG_INVALID);
	sig_key_release(&keys[1]);
}

static void
test_vinr_wrong_secret(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_tesT", &k);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_INVALID);
	sig_key_release(&k);
	key_make(SIG_SCHEME_VINR, "whsec_test ", &k);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_INVALID);
	sig_key_release(&k);
}

static void
test_vinr_bad_hex(void **state)
{
	struct sig_key	k;
	char		upper[65], nonhex[65], hdr[256];
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	for (i = 0; i < 64; i++)
		upper[i] = (char)(V_MAC_WHSEC[i] >= 'a' ? V_MAC_WHSEC[i] - 32 :
		    V_MAC_WHSEC[i]);
	upper[64] = '\0';
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, upper);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	/* 63 and 65 digits. */
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%.63s", V_T, V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s0", V_T, V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	/* 128: the MAC twice. */
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s%s", V_T, V_MAC_WHSEC,
	    V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	/* A non-hex digit, first and last position. */
	memcpy(nonhex, V_MAC_WHSEC, 65);
	nonhex[0] = 'g';
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, nonhex);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	memcpy(nonhex, V_MAC_WHSEC, 65);
	nonhex[63] = 'x';
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, nonhex);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	/* Blanks inside the value. */
	snprintf(hdr, sizeof(hdr), "t=%s,v1= %s", V_T, V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_INVALID);
	/* An empty v1, or a bare "v1", is a v1 that matches nothing. */
	assert_int_equal(vv("t=" V_T ",v1=", &k, 1, V_TNUM), SIG_INVALID);
	assert_int_equal(vv("t=" V_T ",v1", &k, 1, V_TNUM), SIG_INVALID);
	/* A malformed v1 next to a good one does no harm. */
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s,v1=%s,v1=zz", V_T, upper,
	    V_MAC_WHSEC);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_OK);
	sig_key_release(&k);
}

static void
test_vinr_tolerance(void **state)
{
	struct sig_key	k;
	const char	*h = "t=" V_T ",v1=" V_MAC_WHSEC;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv(h, &k, 1, V_TNUM + TOL), SIG_OK);
	assert_int_equal(vv(h, &k, 1, V_TNUM + TOL + 1), SIG_TOLERANCE);
	assert_int_equal(vv(h, &k, 1, V_TNUM - TOL), SIG_OK);
	assert_int_equal(vv(h, &k, 1, V_TNUM - TOL - 1), SIG_TOLERANCE);
	assert_int_equal(vv(h, &k, 1, 0), SIG_TOLERANCE);
	/* Other tolerances, zero included. */
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM, 0), SIG_OK);
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM + 1, 0), SIG_TOLERANCE);
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM - 1, 0), SIG_TOLERANCE);
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM + 5, 5), SIG_OK);
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM + 6, 5), SIG_TOLERANCE);
	/* A negative tolerance accepts nothing. */
	assert_int_equal(sig_verify_vinr(h, V_BODY, strlen(V_BODY), &k, 1,
	    V_TNUM, -1), SIG_TOLERANCE);
	sig_key_release(&k);
}

static void
test_vinr_tolerance_extremes(void **state)
{
	struct sig_key	k;
	time_t		big = (time_t)INT64_MAX, small = (time_t)INT64_MIN;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	/* No overflow whatever the clock says (UBSan watches). */
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, big),
	    SIG_TOLERANCE);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &k, 1, small),
	    SIG_TOLERANCE);
	assert_int_equal(vv("t=999999999999999999,v1=" BOGUS_HEX, &k, 1, small),
	    SIG_TOLERANCE);
	assert_int_equal(vv("t=999999999999999999,v1=" BOGUS_HEX, &k, 1, big),
	    SIG_TOLERANCE);
	assert_int_equal(sig_verify_vinr("t=999999999999999999,v1=" BOGUS_HEX,
	    "", 0, &k, 1, small, LONG_MAX), SIG_TOLERANCE);
	/* The widest tolerance: the timestamp is fine, the MAC is not. */
	assert_int_equal(sig_verify_vinr("t=0,v1=" BOGUS_HEX, "", 0, &k, 1, big,
	    LONG_MAX), SIG_INVALID);
	assert_int_equal(vv("t=0,v1=" BOGUS_HEX, &k, 1, 0), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_vinr_tolerance_before_signature(void **state)
{
	struct sig_key	k, other;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	key_make(SIG_SCHEME_VINR, "other", &other);
	/* A stale header is reported stale whatever its v1 is worth. */
	assert_int_equal(vv("t=" V_T ",v1=" BOGUS_HEX, &k, 1,
	    V_TNUM + TOL + 1), SIG_TOLERANCE);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, &other, 1,
	    V_TNUM - TOL - 1), SIG_TOLERANCE);
	assert_int_equal(vv("t=" V_T ",v1=nothex", &k, 1, V_TNUM + 10000),
	    SIG_TOLERANCE);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC, NULL, 0,
	    V_TNUM + 10000), SIG_TOLERANCE);
	/* And parse errors come before tolerance. */
	assert_int_equal(vv("t=" V_T, &k, 1, V_TNUM + 10000), SIG_MISSING);
	assert_int_equal(vv("t=x" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM + 10000),
	    SIG_MISSING);
	sig_key_release(&k);
	sig_key_release(&other);
}

static void
test_vinr_missing_t(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv("v1=" V_MAC_WHSEC, &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("ts=" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("v1=" V_MAC_WHSEC ",v0=" V_T, &k, 1, V_TNUM),
	    SIG_MISSING);
	sig_key_release(&k);
}

static void
test_vinr_bad_t(void **state)
{
	static const char *bad[] = {
		"t=,v1=" V_MAC_WHSEC,
		"t,v1=" V_MAC_WHSEC,
		"t=abc,v1=" V_MAC_WHSEC,
		"t=1718096412a,v1=" V_MAC_WHSEC,
		"t=a1718096412,v1=" V_MAC_WHSEC,
		"t=1718096412.0,v1=" V_MAC_WHSEC,
		"t=1.718096412e9,v1=" V_MAC_WHSEC,
		"t=0x6668a81c,v1=" V_MAC_WHSEC,
		"t=1718 096412,v1=" V_MAC_WHSEC,
		"t= 1718096412,v1=" V_MAC_WHSEC,
		"t=1718096412=,v1=" V_MAC_WHSEC,
		"t=+1718096412,v1=" V_MAC_WHSEC,
		"t=-1718096412,v1=" V_MAC_WHSEC,
		"t=-0,v1=" V_MAC_WHSEC,
		"t=++1,v1=" V_MAC_WHSEC,
		/* 19 and 20 digits: more than a long long can promise. */
		"t=1000000000000000000,v1=" V_MAC_WHSEC,
		"t=00000000001718096412,v1=" V_MAC_WHSEC,
		"t=99999999999999999999,v1=" V_MAC_WHSEC,
		"t=\xef\xbc\x91,v1=" V_MAC_WHSEC,		/* fullwidth 1 */
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vv(bad[i], &k, 1, V_TNUM) != SIG_MISSING)
			fail_msg("parsed \"%s\"", bad[i]);
	/* 18 digits parse: the header then fails on tolerance. */
	assert_int_equal(vv("t=999999999999999999,v1=" V_MAC_WHSEC, &k, 1,
	    V_TNUM), SIG_TOLERANCE);
	sig_key_release(&k);
}

static void
test_vinr_t_twice(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv("t=" V_T ",t=" V_T ",v1=" V_MAC_WHSEC, &k, 1,
	    V_TNUM), SIG_MISSING);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC ",t=1", &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("t=1,v1=" V_MAC_WHSEC ",t=" V_T, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("t=" V_T ",v1=" V_MAC_WHSEC ",t=", &k, 1, V_TNUM),
	    SIG_MISSING);
	sig_key_release(&k);
}

static void
test_vinr_t_as_sent(void **state)
{
	struct sig_key	k;
	char		hex[65], hdr[256];

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	/* Leading zeros are digits: signed as sent, read as the number. */
	ref_hex("whsec_test", 10, "0" V_T, V_BODY, strlen(V_BODY), hex);
	snprintf(hdr, sizeof(hdr), "t=0%s,v1=%s", V_T, hex);
	assert_int_equal(vv(hdr, &k, 1, V_TNUM), SIG_OK);
	/* The MAC of the canonical t does not cover "0" t. */
	assert_int_equal(vv("t=0" V_T ",v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_INVALID);
	/* Nor does a MAC of another t within tolerance. */
	assert_int_equal(vv("t=1718096413,v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_INVALID);
	/* Blanks around the item are not part of t. */
	assert_int_equal(vv("  t=" V_T "  ,v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_OK);
	sig_key_release(&k);
}

static void
test_vinr_no_v1(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv("t=" V_T, &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("t=" V_T ",", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("t=" V_T ",v0=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("t=" V_T ",v2=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("t=" V_T ";v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	assert_int_equal(vv("t=" V_T " v1=" V_MAC_WHSEC, &k, 1, V_TNUM),
	    SIG_MISSING);
	/* Missing wins over stale. */
	assert_int_equal(vv("t=" V_T, &k, 1, 0), SIG_MISSING);
	sig_key_release(&k);
}

static void
test_vinr_empty_and_null_header(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	assert_int_equal(vv(NULL, &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv(" ", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv(",,,", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("=", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv("garbage", &k, 1, V_TNUM), SIG_MISSING);
	assert_int_equal(vv(NULL, NULL, 0, V_TNUM), SIG_MISSING);
	sig_key_release(&k);
}

/* A header of n bogus v1 items, then tail.  The caller frees it. */
static char *
huge_header(size_t n, const char *head, const char *tail)
{
	size_t	 item = strlen(",v1=" BOGUS_HEX2), len, i;
	char	*h, *p;

	len = strlen(head) + n * item + strlen(tail) + 1;
	h = malloc(len);
	assert_non_null(h);
	p = h;
	memcpy(p, head, strlen(head));
	p += strlen(head);
	for (i = 0; i < n; i++) {
		memcpy(p, ",v1=" BOGUS_HEX2, item);
		p += item;
	}
	memcpy(p, tail, strlen(tail) + 1);
	return h;
}

static void
test_vinr_huge_header(void **state)
{
	struct sig_key	 keys[3];
	char		*h;

	(void)state;
	key_make(SIG_SCHEME_VINR, "a", &keys[0]);
	key_make(SIG_SCHEME_VINR, "b", &keys[1]);
	key_make(SIG_SCHEME_VINR, "whsec_test", &keys[2]);

	/* About 200 KB of v1 items, the valid one last. */
	h = huge_header(3000, "t=" V_T, ",v1=" V_MAC_WHSEC);
	assert_true(strlen(h) > 200000);
	assert_int_equal(vv(h, &keys[2], 1, V_TNUM), SIG_OK);
	assert_int_equal(vv(h, keys, 3, V_TNUM), SIG_OK);
	assert_int_equal(vv(h, keys, 2, V_TNUM), SIG_INVALID);
	free(h);

	h = huge_header(3000, "t=" V_T, "");
	assert_int_equal(vv(h, keys, 3, V_TNUM), SIG_INVALID);
	assert_int_equal(vv(h, keys, 3, V_TNUM + TOL + 1), SIG_TOLERANCE);
	free(h);

	/* t at the very end of about 1 MB, the valid v1 first. */
	h = huge_header(15000, "v1=" V_MAC_WHSEC, ",t=" V_T);
	assert_true(strlen(h) > 1000000);
	assert_int_equal(vv(h, keys, 3, V_TNUM), SIG_OK);
	free(h);

	/* 1 MB without any t: missing, not slow. */
	h = huge_header(15000, "x=1", "");
	assert_int_equal(vv(h, keys, 3, V_TNUM), SIG_MISSING);
	free(h);

	/* 1 MB with a second t at the end: unparseable. */
	h = huge_header(15000, "t=" V_T ",v1=" V_MAC_WHSEC, ",t=" V_T);
	assert_int_equal(vv(h, keys, 3, V_TNUM), SIG_MISSING);
	free(h);

	sig_key_release(&keys[0]);
	sig_key_release(&keys[1]);
	sig_key_release(&keys[2]);
}

static void
test_vinr_huge_single_item(void **state)
{
	struct sig_key	 k;
	char		*h;
	size_t		 n = 1 << 20;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	/* One 1 MB v1 value, and one 1 MB t value. */
	h = malloc(n + 128);
	assert_non_null(h);
	strcpy(h, "t=" V_T ",v1=");
	memset(h + strlen(h), 'a', n);
	h[strlen("t=" V_T ",v1=") + n] = '\0';
	assert_int_equal(vv(h, &k, 1, V_TNUM), SIG_INVALID);
	strcpy(h, "v1=" V_MAC_WHSEC ",t=");
	memset(h + strlen(h), '1', n);
	h[strlen("v1=" V_MAC_WHSEC ",t=") + n] = '\0';
	assert_int_equal(vv(h, &k, 1, V_TNUM), SIG_MISSING);
	free(h);
	sig_key_release(&k);
}

static void
test_vinr_body_with_nul(void **state)
{
	static const unsigned char body[] = "{\"a\":\"x\0y\"}\0\0tail";
	struct sig_key	k;
	char		hex[65], hdr[256];

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	ref_hex("whsec_test", 10, V_T, body, sizeof(body), hex);
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, hex);
	assert_int_equal(sig_verify_vinr(hdr, body, sizeof(body), &k, 1,
	    V_TNUM, TOL), SIG_OK);
	/* Stopping at the first NUL would sign something else. */
	assert_int_equal(sig_verify_vinr(hdr, body, strlen((const char *)body),
	    &k, 1, V_TNUM, TOL), SIG_INVALID);
	assert_int_equal(sig_verify_vinr(hdr, body, sizeof(body) - 1, &k, 1,
	    V_TNUM, TOL), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_vinr_empty_body(void **state)
{
	struct sig_key	k;
	char		hex[65], hdr[256];

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	ref_hex("whsec_test", 10, V_T, "", 0, hex);
	snprintf(hdr, sizeof(hdr), "t=%s,v1=%s", V_T, hex);
	assert_int_equal(sig_verify_vinr(hdr, NULL, 0, &k, 1, V_TNUM, TOL),
	    SIG_OK);
	assert_int_equal(sig_verify_vinr(hdr, "", 0, &k, 1, V_TNUM, TOL),
	    SIG_OK);
	assert_int_equal(sig_verify_vinr(hdr, " ", 1, &k, 1, V_TNUM, TOL),
	    SIG_INVALID);
	sig_key_release(&k);
}

static void
test_vinr_sign_roundtrip(void **state)
{
	static const unsigned char body[] = "bin\0ary\xff";
	struct sig_key	k, other;
	char		out[128], hex[65], want[128];
	int		n;

	(void)state;
	key_make(SIG_SCHEME_VINR, "whsec_test", &k);
	key_make(SIG_SCHEME_VINR, "other", &other);

	n = sig_sign_vinr(&k, V_TNUM, V_BODY, strlen(V_BODY), out, sizeof(out));
	assert_int_equal(n, (int)strlen("t=" V_T ",v1=" V_MAC_WHSEC));
	assert_string_equal(out, "t=" V_T ",v1=" V_MAC_WHSEC);
	assert_int_equal(vv(out, &k, 1, V_TNUM), SIG_OK);
	assert_int_equal(vv(out, &other, 1, V_TNUM), SIG_INVALID);

	n = sig_sign_vinr(&k, 1700000123, body, sizeof(body), out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	ref_hex("whsec_test", 10, "1700000123", body, sizeof(body), hex);
	snprintf(want, sizeof(want), "t=1700000123,v1=%s", hex);
	assert_string_equal(out, want);
	assert_int_equal(sig_verify_vinr(out, body, sizeof(body), &k, 1,
	    1700000123, TOL), SIG_OK);

	/* Empty body. */
	n = sig_sign_vinr(&k, 5, NULL, 0, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(sig_verify_vinr(out, "", 0, &k, 1, 5, 0), SIG_OK);

	/* The buffer: exactly enough (with the NUL), then one byte short. */
	n = (int)strlen("t=" V_T ",v1=" V_MAC_WHSEC);
	memset(out, 'X', sizeof(out));
	assert_int_equal(sig_sign_vinr(&k, V_TNUM, V_BODY, strlen(V_BODY), out,
	    (size_t)n + 1), n);
	assert_string_equal(out, "t=" V_T ",v1=" V_MAC_WHSEC);
	assert_int_equal(sig_sign_vinr(&k, V_TNUM, V_BODY, strlen(V_BODY), out,
	    (size_t)n), -1);
	assert_int_equal(sig_sign_vinr(&k, V_TNUM, V_BODY, strlen(V_BODY), out,
	    0), -1);
	assert_int_equal(sig_sign_vinr(&k, V_TNUM, V_BODY, strlen(V_BODY), NULL,
	    128), -1);
	assert_int_equal(sig_sign_vinr(NULL, V_TNUM, V_BODY, strlen(V_BODY),
	    out, sizeof(out)), -1);
	sig_key_release(&other);
	assert_int_equal(sig_sign_vinr(&other, V_TNUM, V_BODY, strlen(V_BODY),
	    out, sizeof(out)), -1);
	sig_key_release(&k);
}

/* ------------------------------------------------------------ standard */

static void
test_standard_published_vector(void **state)
{
	struct sig_key	k;
	char		out[64];

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &k, 1, S_TNUM), SIG_OK);
	assert_int_equal(sig_sign_standard(&k, S_ID, S_TNUM, S_BODY,
	    strlen(S_BODY), out, sizeof(out)), (int)strlen(S_SIG));
	assert_string_equal(out, S_SIG);
	sig_key_release(&k);
}

static void
test_standard_independent_hmac(void **state)
{
	struct sig_key	k;
	char		b64[45], sig[64];

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	ref_b64(k.data, k.len, "msg_other", "1700000000", V_BODY,
	    strlen(V_BODY), b64);
	snprintf(sig, sizeof(sig), "v1,%s", b64);
	assert_int_equal(sig_verify_standard("msg_other", "1700000000", sig,
	    V_BODY, strlen(V_BODY), &k, 1, 1700000000, TOL), SIG_OK);
	sig_key_release(&k);
}

static void
test_standard_whsec_stripped(void **state)
{
	struct sig_key	bare, vinrkey;

	(void)state;
	/* Without the prefix: the same key. */
	key_make(SIG_SCHEME_STANDARD, S_SECRET + 6, &bare);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &bare, 1, S_TNUM), SIG_OK);
	/* The secret's text as the key (the vinr rule) is another key. */
	key_make(SIG_SCHEME_VINR, S_SECRET, &vinrkey);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &vinrkey, 1, S_TNUM),
	    SIG_INVALID);
	sig_key_release(&bare);
	sig_key_release(&vinrkey);
}

static void
test_standard_tampered(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	/* Each of the three signed parts matters. */
	assert_int_equal(sv("msg_p5jXN8AQM9LWM0D4loKWxJeK", S_T, S_SIG, &k, 1,
	    S_TNUM), SIG_INVALID);
	assert_int_equal(sv(S_ID, "1614265331", S_SIG, &k, 1, S_TNUM),
	    SIG_INVALID);
	assert_int_equal(sig_verify_standard(S_ID, S_T, S_SIG,
	    "{\"test\": 2432232315}", strlen(S_BODY), &k, 1, S_TNUM, TOL),
	    SIG_INVALID);
	assert_int_equal(sig_verify_standard(S_ID, S_T, S_SIG, S_BODY,
	    strlen(S_BODY) - 1, &k, 1, S_TNUM, TOL), SIG_INVALID);
	/* Leading zeros are signed as sent. */
	assert_int_equal(sv(S_ID, "0" S_T, S_SIG, &k, 1, S_TNUM), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_standard_several_signatures(void **state)
{
	static const char *ok[] = {
		S_SIG,
		"v1," BOGUS_B64 " " S_SIG,
		S_SIG " v1," BOGUS_B64,
		"v1," BOGUS_B64 " " S_SIG " v1," BOGUS_B64,
		"v2,whatever " S_SIG,
		"v1a," BOGUS_B64 " " S_SIG " v2," S_B64,
		"  " S_SIG "  ",
		"v2,x   " S_SIG,
		"v2,x\t" S_SIG,
		"v1,*** " S_SIG,
		"v1 " S_SIG,			/* a bare "v1": matches nothing */
		"v1, " S_SIG,
	};
	static const char *invalid[] = {
		"v1," BOGUS_B64,
		"v1," BOGUS_B64 " v2," S_B64,	/* the MAC under v2 */
		"v1," BOGUS_B64 " v1a," S_B64,
		"v1," BOGUS_B64 " V1," S_B64,
		"v1," BOGUS_B64 " v0," S_B64,
		"v1",
		"v1,",
		"v1," S_B64 S_B64,
		"v1," S_B64 "," S_B64,
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (sv(S_ID, S_T, ok[i], &k, 1, S_TNUM) != SIG_OK)
			fail_msg("rejected \"%s\"", ok[i]);
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		if (sv(S_ID, S_T, invalid[i], &k, 1, S_TNUM) != SIG_INVALID)
			fail_msg("not invalid: \"%s\"", invalid[i]);
	sig_key_release(&k);
}

static void
test_standard_no_v1(void **state)
{
	static const char *missing[] = {
		"v2," S_B64,
		"V1," S_B64,
		"v1b,x v2,y v0," S_B64,
		" ",
		"   \t  ",
		"," S_B64,
		S_B64,
		"v1=" S_B64,
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	for (i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		if (sv(S_ID, S_T, missing[i], &k, 1, S_TNUM) != SIG_MISSING)
			fail_msg("not missing: \"%s\"", missing[i]);
	/* A v1a is a signature item since v1a is verified (SPEC §1.3). */
	assert_int_equal(sv(S_ID, S_T, "v1a," S_B64, &k, 1, S_TNUM), SIG_INVALID);
	assert_int_equal(sv(S_ID, S_T, "v1a,x v2,y", &k, 1, S_TNUM), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_standard_bad_base64(void **state)
{
	char		 urlsafe[sizeof(S_B64)], sig[128];
	struct sig_key	 k;
	size_t		 i;
	const char	*bad[] = {
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",	/* no pad */
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE==",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O=E",
		"v1,g0hM9SsE+OTPJTGt=tmIKtSyZlE3uFJELVlNIOLJ1OE=",	/* = inside */
		"v1,=0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,g0hM9SsE+OTPJTGt*tmIKtSyZlE3uFJELVlNIOLJ1OE=",	/* bad char */
		"v1,g0hM9SsE+OTPJTGt.tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=AAAA",	/* 35 bytes */
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ",		/* 30 bytes */
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O==",	/* 31 bytes */
		"v1,====",
		"v1,AAAA",
	};

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sv(S_ID, S_T, bad[i], &k, 1, S_TNUM) != SIG_INVALID)
			fail_msg("not invalid: \"%s\"", bad[i]);
		/* And it does no harm next to the good one. */
		snprintf(sig, sizeof(sig), "%s %s", bad[i], S_SIG);
		if (sv(S_ID, S_T, sig, &k, 1, S_TNUM) != SIG_OK)
			fail_msg("rejected \"%s\"", sig);
	}
	/* The URL-safe alphabet is not the one Standard Webhooks uses. */
	memcpy(urlsafe, S_B64, sizeof(urlsafe));
	for (i = 0; urlsafe[i] != '\0'; i++) {
		if (urlsafe[i] == '+')
			urlsafe[i] = '-';
		else if (urlsafe[i] == '/')
			urlsafe[i] = '_';
	}
	assert_string_not_equal(urlsafe, S_B64);
	snprintf(sig, sizeof(sig), "v1,%s", urlsafe);
	assert_int_equal(sv(S_ID, S_T, sig, &k, 1, S_TNUM), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_standard_missing_headers(void **state)
{
	struct sig_key	k;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	assert_int_equal(sv(NULL, S_T, S_SIG, &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv(S_ID, NULL, S_SIG, &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv(S_ID, S_T, NULL, &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv("", S_T, S_SIG, &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv(S_ID, "", S_SIG, &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv(S_ID, S_T, "", &k, 1, S_TNUM), SIG_MISSING);
	assert_int_equal(sv(NULL, NULL, NULL, &k, 1, S_TNUM), SIG_MISSING);
	/* Missing comes before tolerance. */
	assert_int_equal(sv(NULL, S_T, S_SIG, &k, 1, 0), SIG_MISSING);
	sig_key_release(&k);
}

static void
test_standard_bad_timestamp(void **state)
{
	static const char *bad[] = {
		"abc", "1614265330a", "a1614265330", "+1614265330",
		"-1614265330", " 1614265330", "1614265330 ", "1614265330.0",
		"1.61e9", "0x6037b1f2", "1000000000000000000",
		"0001614265330000000",
	};
	struct sig_key	k;
	size_t		i;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sv(S_ID, bad[i], S_SIG, &k, 1, S_TNUM) != SIG_MISSING)
			fail_msg("parsed \"%s\"", bad[i]);
	assert_int_equal(sv(S_ID, "999999999999999999", S_SIG, &k, 1, S_TNUM),
	    SIG_TOLERANCE);
	sig_key_release(&k);
}

static void
test_standard_tolerance(void **state)
{
	struct sig_key	k, other;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	key_make(SIG_SCHEME_STANDARD, "whsec_QUJD", &other);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &k, 1, S_TNUM + TOL), SIG_OK);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &k, 1, S_TNUM + TOL + 1),
	    SIG_TOLERANCE);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &k, 1, S_TNUM - TOL), SIG_OK);
	assert_int_equal(sv(S_ID, S_T, S_SIG, &k, 1, S_TNUM - TOL - 1),
	    SIG_TOLERANCE);
	/* Before the signature. */
	assert_int_equal(sv(S_ID, S_T, S_SIG, &other, 1, S_TNUM + TOL + 1),
	    SIG_TOLERANCE);
	assert_int_equal(sv(S_ID, S_T, "v1,***", &k, 1, S_TNUM - TOL - 1),
	    SIG_TOLERANCE);
	assert_int_equal(sv(S_ID, S_T, S_SIG, NULL, 0, S_TNUM + TOL + 1),
	    SIG_TOLERANCE);
	/* After the parse. */
	assert_int_equal(sv(S_ID, S_T, "v2," S_B64, &k, 1, S_TNUM + TOL + 1),
	    SIG_MISSING);
	sig_key_release(&k);
	sig_key_release(&other);
}

static void
test_standard_rotation(void **state)
{
	struct sig_key	keys[2], wrong;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, "whsec_QUJDRA==", &keys[0]);
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &keys[1]);
	key_make(SIG_SCHEME_STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx",
	    &wrong);
	assert_int_equal(sv(S_ID, S_T, S_SIG, keys, 2, S_TNUM), SIG_OK);
	assert_int_equal(sv(S_ID, S_T, S_SIG, keys, 1, S_TNUM), SIG_INVALID);
	/* Wrong secret: one bit off in the last character. */
	assert_int_equal(sv(S_ID, S_T, S_SIG, &wrong, 1, S_TNUM), SIG_INVALID);
	assert_int_equal(sv(S_ID, S_T, S_SIG, keys, 0, S_TNUM), SIG_INVALID);
	sig_key_release(&keys[0]);
	sig_key_release(&keys[1]);
	sig_key_release(&wrong);
}

static void
test_standard_body_with_nul(void **state)
{
	static const unsigned char body[] = "{\"x\":1}\0\0after";
	struct sig_key	k;
	char		b64[45], sig[64];

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	ref_b64(k.data, k.len, S_ID, S_T, body, sizeof(body), b64);
	snprintf(sig, sizeof(sig), "v1,%s", b64);
	assert_int_equal(sig_verify_standard(S_ID, S_T, sig, body,
	    sizeof(body), &k, 1, S_TNUM, TOL), SIG_OK);
	assert_int_equal(sig_verify_standard(S_ID, S_T, sig, body,
	    strlen((const char *)body), &k, 1, S_TNUM, TOL), SIG_INVALID);
	sig_key_release(&k);
}

static void
test_standard_huge_header(void **state)
{
	struct sig_key	 k;
	size_t		 n = 5000, item = strlen(" v1," BOGUS_B64), i;
	char		*h, *p;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, S_SECRET, &k);
	h = malloc(n * item + sizeof(S_SIG) + 1);
	assert_non_null(h);
	for (p = h, i = 0; i < n; i++, p += item)
		memcpy(p, " v1," BOGUS_B64, item);
	*p = '\0';
	assert_int_equal(sv(S_ID, S_T, h, &k, 1, S_TNUM), SIG_INVALID);
	memcpy(p, " " S_SIG, sizeof(S_SIG) + 1);
	assert_int_equal(sv(S_ID, S_T, h, &k, 1, S_TNUM), SIG_OK);
	free(h);
	sig_key_release(&k);
}

static void
test_standard_sign_roundtrip(void **state)
{
	static const unsigned char body[] = "\0\x01\x02 binary";
	struct sig_key	k;
	char		out[64], b64[45], want[64];
	int		n;

	(void)state;
	key_make(SIG_SCHEME_STANDARD, "whsec_QUJDRA==", &k);
	n = sig_sign_standard(&k, "msg_1", 1700000000, body, sizeof(body), out,
	    sizeof(out));
	assert_int_equal(n, 47);
	assert_int_equal(strlen(out), 47);
	ref_b64("ABCD", 4, "msg_1", "1700000000", body, sizeof(body), b64);
	snprintf(want, sizeof(want), "v1,%s", b64);
	assert_string_equal(out, want);
	assert_int_equal(sig_verify_standard("msg_1", "1700000000", out, body,
	    sizeof(body), &k, 1, 1700000000, TOL), SIG_OK);
	assert_int_equal(sig_verify_standard("msg_2", "1700000000", out, body,
	    sizeof(body), &k, 1, 1700000000, TOL), SIG_INVALID);

	/* Empty body. */
	assert_int_equal(sig_sign_standard(&k, "m", 7, NULL, 0, out,
	    sizeof(out)), 47);
	assert_int_equal(sig_verify_standard("m", "7", out, "", 0, &k, 1, 7, 0),
	    SIG_OK);

	/* The buffer: 48 bytes are enough, 47 are not. */
	assert_int_equal(sig_sign_standard(&k, "m", 7, NULL, 0, out, 48), 47);
	assert_int_equal(sig_sign_standard(&k, "m", 7, NULL, 0, out, 47), -1);
	assert_int_equal(sig_sign_standard(&k, "m", 7, NULL, 0, out, 0), -1);
	assert_int_equal(sig_sign_standard(&k, NULL, 7, NULL, 0, out,
	    sizeof(out)), -1);
	assert_int_equal(sig_sign_standard(&k, "m", 7, NULL, 0, NULL, 64), -1);
	assert_int_equal(sig_sign_standard(NULL, "m", 7, NULL, 0, out,
	    sizeof(out)), -1);
	sig_key_release(&k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_vinr_bytes_as_written),
		cmocka_unit_test(test_key_empty_or_null),
		cmocka_unit_test(test_key_standard_decode),
		cmocka_unit_test(test_key_standard_invalid),
		cmocka_unit_test(test_key_release),
		cmocka_unit_test(test_vinr_fixed_vector),
		cmocka_unit_test(test_vinr_independent_hmac),
		cmocka_unit_test(test_vinr_body_tampered),
		cmocka_unit_test(test_vinr_several_v1),
		cmocka_unit_test(test_vinr_item_order_and_spaces),
		cmocka_unit_test(test_vinr_other_keys_ignored),
		cmocka_unit_test(test_vinr_rotation),
		cmocka_unit_test(test_vinr_unusable_key_skipped),
		cmocka_unit_test(test_vinr_wrong_secret),
		cmocka_unit_test(test_vinr_bad_hex),
		cmocka_unit_test(test_vinr_tolerance),
		cmocka_unit_test(test_vinr_tolerance_extremes),
		cmocka_unit_test(test_vinr_tolerance_before_signature),
		cmocka_unit_test(test_vinr_missing_t),
		cmocka_unit_test(test_vinr_bad_t),
		cmocka_unit_test(test_vinr_t_twice),
		cmocka_unit_test(test_vinr_t_as_sent),
		cmocka_unit_test(test_vinr_no_v1),
		cmocka_unit_test(test_vinr_empty_and_null_header),
		cmocka_unit_test(test_vinr_huge_header),
		cmocka_unit_test(test_vinr_huge_single_item),
		cmocka_unit_test(test_vinr_body_with_nul),
		cmocka_unit_test(test_vinr_empty_body),
		cmocka_unit_test(test_vinr_sign_roundtrip),
		cmocka_unit_test(test_standard_published_vector),
		cmocka_unit_test(test_standard_independent_hmac),
		cmocka_unit_test(test_standard_whsec_stripped),
		cmocka_unit_test(test_standard_tampered),
		cmocka_unit_test(test_standard_several_signatures),
		cmocka_unit_test(test_standard_no_v1),
		cmocka_unit_test(test_standard_bad_base64),
		cmocka_unit_test(test_standard_missing_headers),
		cmocka_unit_test(test_standard_bad_timestamp),
		cmocka_unit_test(test_standard_tolerance),
		cmocka_unit_test(test_standard_rotation),
		cmocka_unit_test(test_standard_body_with_nul),
		cmocka_unit_test(test_standard_huge_header),
		cmocka_unit_test(test_standard_sign_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
