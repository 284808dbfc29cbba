/*
 * test_signature_cache.c - signature.c's per-thread HMAC context: the same
 * answers as a fresh computation whatever key the context held before, in
 * any order of keys, after a key's bytes change in place (a reload that
 * reuses the allocation), for keys too long to be remembered, and across
 * threads.
 *
 * Expected MACs come from OpenSSL's one-shot HMAC(), not from signature.c.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "signature.h"

#define TOL		300L
#define T		"1718096412"
#define TNUM		1718096412
#define BODY		"{\"id\":\"evt_01J0Q8ZK3M\",\"type\":\"terminal_payment.completed\"}"
#define NTHREADS	4
#define ROUNDS		300

/* "t=" T ",v1=" and the HMAC-SHA256 of T "." BODY under key, in hex. */
static void
ref_header(const void *key, size_t keylen, char out[128])
{
	unsigned char	 mac[32];
	unsigned int	 maclen = 0;
	char		 msg[256];
	int		 n, i;

	n = snprintf(msg, sizeof(msg), "%s.%s", T, BODY);
	assert_true(n > 0 && (size_t)n < sizeof(msg));
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen,
	    (unsigned char *)msg, (size_t)n, mac, &maclen));
	assert_int_equal(maclen, 32);
	n = snprintf(out, 128, "t=%s,v1=", T);
	for (i = 0; i < 32; i++)
		snprintf(out + n + 2 * i, 3, "%02x", mac[i]);
}

static enum sig_result
vv(const char *hdr, const struct sig_key *keys, size_t nkeys)
{
	return sig_verify_vinr(hdr, BODY, strlen(BODY), keys, nkeys, TNUM, TOL);
}

static void
key_make(const char *secret, struct sig_key *key)
{
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, secret, key), 0);
}

/* Every order of valid, invalid, old and rotated keys, over and over. */
static void
test_cache_key_order(void **state)
{
	struct sig_key	k[3];
	char		ha[128], hb[128];
	int		i;

	(void)state;
	key_make("whsec_key_a", &k[0]);
	key_make("whsec_key_b", &k[1]);
	key_make("whsec_key_c", &k[2]);
	ref_header("whsec_key_a", 11, ha);
	ref_header("whsec_key_b", 11, hb);
	for (i = 0; i < 50; i++) {
		assert_int_equal(vv(ha, &k[0], 1), SIG_OK);
		assert_int_equal(vv(ha, &k[0], 1), SIG_OK);
		/* The context holds a's schedule: b must not inherit it. */
		assert_int_equal(vv(ha, &k[1], 1), SIG_INVALID);
		assert_int_equal(vv(hb, &k[1], 1), SIG_OK);
		assert_int_equal(vv(hb, &k[0], 1), SIG_INVALID);
		/* Rotation: the sender's key second, third. */
		assert_int_equal(vv(hb, k, 2), SIG_OK);
		assert_int_equal(vv(ha, &k[1], 2), SIG_INVALID);
		assert_int_equal(vv(hb, &k[1], 2), SIG_OK);
		assert_int_equal(vv(ha, k, 3), SIG_OK);
		assert_int_equal(vv(hb, &k[2], 1), SIG_INVALID);
		assert_int_equal(vv(ha, &k[2], 1), SIG_INVALID);
	}
	for (i = 0; i < 3; i++)
		sig_key_release(&k[i]);
}

/*
 * A key whose bytes change where they lie, same pointer and length (as a
 * reload may allocate the new key where the old one was): the old key's
 * signatures stop verifying at once.
 */
static void
test_cache_key_changed_in_place(void **state)
{
	struct sig_key	k;
	char		h1[128], h2[128];

	(void)state;
	key_make("whsec_key_1", &k);
	ref_header("whsec_key_1", 11, h1);
	ref_header("whsec_key_2", 11, h2);
	assert_int_equal(vv(h1, &k, 1), SIG_OK);
	assert_int_equal(vv(h2, &k, 1), SIG_INVALID);
	k.data[10] = '2';
	assert_int_equal(vv(h1, &k, 1), SIG_INVALID);
	assert_int_equal(vv(h2, &k, 1), SIG_OK);
	k.data[10] = '1';
	assert_int_equal(vv(h1, &k, 1), SIG_OK);
	/* A shorter key that is a prefix of the last one. */
	k.len = 10;
	ref_header("whsec_key_", 10, h2);
	assert_int_equal(vv(h1, &k, 1), SIG_INVALID);
	assert_int_equal(vv(h2, &k, 1), SIG_OK);
	k.len = 11;
	sig_key_release(&k);
}

/* Keys longer than the remembered copy, differing only past it. */
static void
test_cache_long_keys(void **state)
{
	struct sig_key	k[2];
	char		s1[301], s2[301], h1[128], h2[128];
	int		i;

	(void)state;
	memset(s1, 'x', 300);
	s1[300] = '\0';
	memcpy(s2, s1, sizeof(s2));
	s2[299] = 'y';
	key_make(s1, &k[0]);
	key_make(s2, &k[1]);
	ref_header(s1, 300, h1);
	ref_header(s2, 300, h2);
	for (i = 0; i < 3; i++) {
		assert_int_equal(vv(h1, &k[0], 1), SIG_OK);
		assert_int_equal(vv(h1, &k[1], 1), SIG_INVALID);
		assert_int_equal(vv(h2, &k[1], 1), SIG_OK);
		assert_int_equal(vv(h2, &k[0], 1), SIG_INVALID);
	}
	sig_key_release(&k[0]);
	sig_key_release(&k[1]);
}

/* Signing shares the context with verifying: each sees the right key. */
static void
test_cache_sign_between_verifies(void **state)
{
	struct sig_key	k[2];
	char		ha[128], out[128];

	(void)state;
	key_make("whsec_key_a", &k[0]);
	key_make("whsec_key_b", &k[1]);
	ref_header("whsec_key_a", 11, ha);
	assert_int_equal(vv(ha, &k[0], 1), SIG_OK);
	assert_true(sig_sign_vinr(&k[1], TNUM, BODY, strlen(BODY), out,
	    sizeof(out)) > 0);
	assert_int_equal(vv(out, &k[1], 1), SIG_OK);
	assert_int_equal(vv(out, &k[0], 1), SIG_INVALID);
	assert_int_equal(vv(ha, &k[0], 1), SIG_OK);
	assert_true(sig_sign_vinr(&k[0], TNUM, BODY, strlen(BODY), out,
	    sizeof(out)) > 0);
	assert_string_equal(out, ha);
	sig_key_release(&k[0]);
	sig_key_release(&k[1]);
}

/* Released, twice, then used again: a new context, the same answers. */
static void
test_cache_release(void **state)
{
	struct sig_key	k;
	char		h[128];

	(void)state;
	key_make("whsec_key_a", &k);
	ref_header("whsec_key_a", 11, h);
	assert_int_equal(vv(h, &k, 1), SIG_OK);
	sig_thread_release();
	sig_thread_release();
	assert_int_equal(vv(h, &k, 1), SIG_OK);
	sig_thread_release();
	sig_key_release(&k);
}

struct worker {
	const struct sig_key	*keys;
	const char		*ha, *hb;
	int			 id, errors;
};

static void *
worker(void *arg)
{
	struct worker	*w = arg;
	int		 i;

	for (i = 0; i < ROUNDS; i++) {
		/* Each thread walks the keys in its own order. */
		if ((i + w->id) % 2 == 0) {
			w->errors += vv(w->ha, &w->keys[0], 1) != SIG_OK;
			w->errors += vv(w->hb, &w->keys[0], 1) != SIG_INVALID;
		}
		w->errors += vv(w->hb, &w->keys[1], 1) != SIG_OK;
		w->errors += vv(w->ha, &w->keys[1], 1) != SIG_INVALID;
		w->errors += vv(w->hb, w->keys, 2) != SIG_OK;
	}
	/* The thread's context goes with it (the key's destructor). */
	return NULL;
}

static void
test_cache_threads(void **state)
{
	struct sig_key	k[2];
	struct worker	w[NTHREADS];
	pthread_t	t[NTHREADS];
	char		ha[128], hb[128];
	int		i;

	(void)state;
	key_make("whsec_key_a", &k[0]);
	key_make("whsec_key_b", &k[1]);
	ref_header("whsec_key_a", 11, ha);
	ref_header("whsec_key_b", 11, hb);
	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ k, ha, hb, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
	}
	sig_key_release(&k[0]);
	sig_key_release(&k[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_key_order),
		cmocka_unit_test(test_cache_key_changed_in_place),
		cmocka_unit_test(test_cache_long_keys),
		cmocka_unit_test(test_cache_sign_between_verifies),
		cmocka_unit_test(test_cache_release),
		cmocka_unit_test(test_cache_threads),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	sig_thread_release();
	return rc;
}
