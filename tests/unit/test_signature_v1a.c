/*
 * test_signature_v1a.c - unit tests of signature.c's asymmetric side
 * (SPEC.md §1.3): Standard Webhooks v1a (pure Ed25519) under trusted whpk_
 * keys, whsk_ signing keys, the Svix header choice.
 *
 * What is expected never comes from signature.c itself: the published
 * vector of SPEC §1.3 (Svix server's test), and keys made and signatures
 * checked here with OpenSSL's EVP directly.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "signature.h"

#define TOL		300L

/* SPEC §1.3's asymmetric vector. */
#define A_PUB		"whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
#define A_ID		"msg_p5jXN8AQM9LWM0D4loKWxJek"
#define A_T		"1614265330"
#define A_TNUM		1614265330
#define A_BODY		"{\"test\": 2432232314}"
#define A_SIG		"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
/* The symmetric vector of the same message. */
#define S_SECRET	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define S_SIG		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define BOGUS_V1A	"v1a,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

/* A fresh Ed25519 key pair, as "whsk_" + seed and "whpk_" + public key. */
struct pair {
	EVP_PKEY	*pk;
	char		 whsk[5 + 45];
	char		 whpk[5 + 45];
};

static void
pair_make(struct pair *p)
{
	EVP_PKEY_CTX	*ctx;
	unsigned char	 raw[32];
	size_t		 len;

	p->pk = NULL;
	ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &p->pk), 1);
	EVP_PKEY_CTX_free(ctx);

	len = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_private_key(p->pk, raw, &len), 1);
	assert_int_equal(len, 32);
	memcpy(p->whsk, "whsk_", 5);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)p->whsk + 5, raw, 32), 44);
	len = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_public_key(p->pk, raw, &len), 1);
	memcpy(p->whpk, "whpk_", 5);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)p->whpk + 5, raw, 32), 44);
}

/* OpenSSL's own verdict on "v1a,<b64>" over id.t.body under p. */
static int
ref_verify(const struct pair *p, const char *v1a, const char *id, const char *t,
    const char *body)
{
	unsigned char	 sig[66];
	char		 msg[512];
	EVP_MD_CTX	*ctx;
	int		 n, ok;

	assert_int_equal(strncmp(v1a, "v1a,", 4), 0);
	n = EVP_DecodeBlock(sig, (const unsigned char *)v1a + 4, (int)strlen(v1a + 4));
	assert_int_equal(n, 66);
	snprintf(msg, sizeof(msg), "%s.%s.%s", id, t, body);
	ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, p->pk), 1);
	ok = EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, strlen(msg));
	EVP_MD_CTX_free(ctx);
	return ok == 1;
}

static void
pub_make(const char *whpk, struct sig_key *k)
{
	assert_int_equal(sig_key_from_public(whpk, k), 0);
	assert_int_equal(k->kind, SIG_KEY_ED25519_PUBLIC);
	assert_int_equal(k->len, 32);
}

/* The published vector verifies at its own time, under its own key only. */
static void
test_v1a_published_vector(void **state)
{
	struct sig_key	k, other;
	struct pair	p;

	(void)state;
	pub_make(A_PUB, &k);
	assert_int_equal(sig_verify_standard(A_ID, A_T, A_SIG, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM, TOL), SIG_OK);
	/* Tampered body, id, or timestamp (still within tolerance). */
	assert_int_equal(sig_verify_standard(A_ID, A_T, A_SIG,
	    "{\"test\": 2432232315}", strlen(A_BODY), &k, 1, A_TNUM, TOL),
	    SIG_INVALID);
	assert_int_equal(sig_verify_standard("msg_other", A_T, A_SIG, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM, TOL), SIG_INVALID);
	assert_int_equal(sig_verify_standard(A_ID, "1614265331", A_SIG, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM, TOL), SIG_INVALID);
	/* Out of tolerance first, as for v1. */
	assert_int_equal(sig_verify_standard(A_ID, A_T, A_SIG, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM + TOL + 1, TOL), SIG_TOLERANCE);

	/* An untrusted key: a valid signature, but not by anyone we trust. */
	pair_make(&p);
	pub_make(p.whpk, &other);
	assert_int_equal(sig_verify_standard(A_ID, A_T, A_SIG, A_BODY,
	    strlen(A_BODY), &other, 1, A_TNUM, TOL), SIG_INVALID);
	sig_key_release(&other);
	EVP_PKEY_free(p.pk);
	sig_key_release(&k);
}

/* v1 OR v1a: each kind of key checks its own items, and only those. */
static void
test_v1a_mixed_keys(void **state)
{
	struct sig_key	keys[2];

	(void)state;
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_STANDARD, S_SECRET,
	    &keys[0]), 0);
	pub_make(A_PUB, &keys[1]);

	/* Both good, either good, each with its own key kind. */
	assert_int_equal(sig_verify_standard(A_ID, A_T, S_SIG " " A_SIG, A_BODY,
	    strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_OK);
	assert_int_equal(sig_verify_standard(A_ID, A_T,
	    "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " A_SIG, A_BODY,
	    strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_OK);
	assert_int_equal(sig_verify_standard(A_ID, A_T, BOGUS_V1A " " S_SIG,
	    A_BODY, strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_OK);
	/* A v1a under secrets only, a v1 under public keys only: no. */
	assert_int_equal(sig_verify_standard(A_ID, A_T, A_SIG, A_BODY,
	    strlen(A_BODY), &keys[0], 1, A_TNUM, TOL), SIG_INVALID);
	assert_int_equal(sig_verify_standard(A_ID, A_T, S_SIG, A_BODY,
	    strlen(A_BODY), &keys[1], 1, A_TNUM, TOL), SIG_INVALID);
	/* The signature bytes of a v1a are not a v1, nor the other way. */
	assert_int_equal(sig_verify_standard(A_ID, A_T,
	    "v1,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
	    A_BODY, strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_INVALID);
	/* v1a alone counts as a signature item: not missing, just invalid. */
	assert_int_equal(sig_verify_standard(A_ID, A_T, "v1a,xyz", A_BODY,
	    strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_INVALID);
	assert_int_equal(sig_verify_standard(A_ID, A_T, "v2a,xyz v1b,abc",
	    A_BODY, strlen(A_BODY), keys, 2, A_TNUM, TOL), SIG_MISSING);
	sig_key_release(&keys[0]);
	sig_key_release(&keys[1]);
}

/* Signing with a whsk_ key: OpenSSL agrees, and so does our verifier. */
static void
test_v1a_sign_roundtrip(void **state)
{
	struct pair	p;
	struct sig_key	priv, pub;
	char		out[128], whsk64[5 + 89];
	unsigned char	raw[64];
	size_t		len;
	int		n;

	(void)state;
	pair_make(&p);
	assert_int_equal(sig_key_from_private(p.whsk, &priv), 0);
	assert_int_equal(priv.kind, SIG_KEY_ED25519_PRIVATE);
	pub_make(p.whpk, &pub);
	n = sig_sign_standard(&priv, A_ID, 1700000000, A_BODY, strlen(A_BODY),
	    out, sizeof(out));
	assert_int_equal(n, SIG_V1A_LEN);
	assert_int_equal(strlen(out), SIG_V1A_LEN);
	assert_true(ref_verify(&p, out, A_ID, "1700000000", A_BODY));
	assert_int_equal(sig_verify_standard(A_ID, "1700000000", out, A_BODY,
	    strlen(A_BODY), &pub, 1, 1700000000, TOL), SIG_OK);
	/* The buffer: SIG_V1A_LEN + 1 is enough, one less is not. */
	assert_int_equal(sig_sign_standard(&priv, A_ID, 7, "", 0, out,
	    SIG_V1A_LEN + 1), SIG_V1A_LEN);
	assert_int_equal(sig_sign_standard(&priv, A_ID, 7, "", 0, out,
	    SIG_V1A_LEN), -1);
	/* A private key never verifies anything: it is not a trusted key. */
	assert_int_equal(sig_verify_standard(A_ID, "1700000000", out, A_BODY,
	    strlen(A_BODY), &priv, 1, 1700000000, TOL), SIG_INVALID);
	sig_key_release(&priv);

	/* libsodium's 64-byte layout, seed || public key, signs the same. */
	len = 32;
	assert_int_equal(EVP_PKEY_get_raw_private_key(p.pk, raw, &len), 1);
	len = 32;
	assert_int_equal(EVP_PKEY_get_raw_public_key(p.pk, raw + 32, &len), 1);
	memcpy(whsk64, "whsk_", 5);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)whsk64 + 5, raw, 64), 88);
	assert_int_equal(sig_key_from_private(whsk64, &priv), 0);
	assert_int_equal(sig_sign_standard(&priv, A_ID, 5, "x", 1, out,
	    sizeof(out)), SIG_V1A_LEN);
	assert_true(ref_verify(&p, out, A_ID, "5", "x"));
	sig_key_release(&priv);
	sig_key_release(&pub);
	EVP_PKEY_free(p.pk);
}

/* What is and is not a public or a private key. */
static void
test_v1a_key_parsing(void **state)
{
	struct sig_key	k, c;

	(void)state;
	/* A private key where a public one belongs: said so. */
	assert_int_equal(sig_key_from_public(
	    "whsk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=", &k), -2);
	assert_null(k.data);
	assert_int_equal(sig_key_from_public(
	    "1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=", &k), -1);
	assert_int_equal(sig_key_from_public("whpk_", &k), -1);
	assert_int_equal(sig_key_from_public("whpk_QUJDRA==", &k), -1);
	assert_int_equal(sig_key_from_public(
	    "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4", &k), -1);
	assert_int_equal(sig_key_from_public(
	    "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=x", &k), -1);
	assert_int_equal(sig_key_from_public(NULL, &k), -1);
	assert_int_equal(sig_key_from_public(A_PUB, NULL), -1);
	/* A public key is no signing key, nor a whsec_ secret. */
	assert_int_equal(sig_key_from_private(A_PUB, &k), -1);
	assert_int_equal(sig_key_from_private(S_SECRET, &k), -1);
	assert_int_equal(sig_key_from_private("whsk_QUJDRA==", &k), -1);
	assert_int_equal(sig_key_from_private(NULL, &k), -1);
	assert_null(k.data);

	/* A copy is deep and keeps the kind. */
	pub_make(A_PUB, &k);
	assert_int_equal(sig_key_copy(&c, &k), 0);
	assert_ptr_not_equal(c.data, k.data);
	assert_memory_equal(c.data, k.data, 32);
	assert_int_equal(c.kind, SIG_KEY_ED25519_PUBLIC);
	sig_key_release(&k);
	sig_key_release(&c);
	assert_int_equal(c.kind, SIG_KEY_HMAC);
	assert_int_equal(sig_key_copy(&c, NULL), -1);
	assert_null(c.data);
}

/*
 * At most 16 well-formed v1a items are tried per key: the 16th still
 * counts, the 17th does not.  Malformed items cost nothing and do not count.
 */
static void
test_v1a_tried_bound(void **state)
{
	struct sig_key	k;
	char		hdr[4096];
	size_t		off = 0;
	int		i;

	(void)state;
	pub_make(A_PUB, &k);
	for (i = 0; i < 15; i++)
		off += (size_t)snprintf(hdr + off, sizeof(hdr) - off, "%s v1a,x ",
		    BOGUS_V1A);
	snprintf(hdr + off, sizeof(hdr) - off, "%s", A_SIG);
	assert_int_equal(sig_verify_standard(A_ID, A_T, hdr, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM, TOL), SIG_OK);
	snprintf(hdr + off, sizeof(hdr) - off, "%s %s", BOGUS_V1A, A_SIG);
	assert_int_equal(sig_verify_standard(A_ID, A_T, hdr, A_BODY,
	    strlen(A_BODY), &k, 1, A_TNUM, TOL), SIG_INVALID);
	sig_key_release(&k);
}

/* Svix's names stand in only when no webhook-* header came at all. */
static void
test_svix_choice(void **state)
{
	const char *none[3] = { NULL, NULL, NULL };
	const char *all[3] = { "a", "1", "v1,x" };
	const char *one[3] = { NULL, "1", NULL };

	(void)state;
	assert_int_equal(sig_standard_use_svix(none), 1);
	assert_int_equal(sig_standard_use_svix(all), 0);
	assert_int_equal(sig_standard_use_svix(one), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1a_published_vector),
		cmocka_unit_test(test_v1a_mixed_keys),
		cmocka_unit_test(test_v1a_sign_roundtrip),
		cmocka_unit_test(test_v1a_key_parsing),
		cmocka_unit_test(test_v1a_tried_bound),
		cmocka_unit_test(test_svix_choice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
