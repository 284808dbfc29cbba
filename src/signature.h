/*
 * signature.h - webhook signature verification (SPEC.md §1.2, §1.3).
 *
 * Pure but for one cache: every thread that verifies or signs with HMAC
 * keeps one HMAC context (see sig_thread_release()); no I/O, and no
 * allocation on the verify path after a thread's first.  The caller passes
 * "now" so that tests can pin the clock.
 */
#ifndef VINR_SIGNATURE_H
#define VINR_SIGNATURE_H

#include <stddef.h>
#include <time.h>

enum sig_scheme {
	SIG_SCHEME_VINR = 0,	/* Vinr-Signature: t=...,v1=... */
	SIG_SCHEME_STANDARD	/* webhook-id / webhook-timestamp / webhook-signature */
};

/* Results in the order SPEC §1.4 checks them. */
enum sig_result {
	SIG_OK = 0,
	SIG_MISSING,		/* header(s) absent or unparseable -> missing_signature */
	SIG_TOLERANCE,		/* |now - t| > tolerance -> timestamp_out_of_tolerance */
	SIG_INVALID		/* no v1 matched any key -> invalid_signature */
};

#define SIG_V1A_LEN	92	/* "v1a," and 88 characters of base64 */

/* What a key's bytes are. */
enum sig_key_kind {
	SIG_KEY_HMAC = 0,	/* a shared secret: v1 (both schemes) */
	SIG_KEY_ED25519_PUBLIC,	/* a trusted whpk_ key: verifies v1a (standard) */
	SIG_KEY_ED25519_PRIVATE	/* a whsk_ key: signs v1a (vinr-sim, tests) */
};

/* A key: raw bytes (HMAC key, or the 32-byte Ed25519 public key or seed). */
struct sig_key {
	unsigned char		*data;
	size_t			 len;
	enum sig_key_kind	 kind;
};

/*
 * Turns a configured secret string into the HMAC key of the scheme:
 * vinr: the secret's bytes exactly as written (a "whsec_" prefix included);
 * standard: base64 decode of the secret after stripping a leading "whsec_".
 * Returns 0, or -1 when the secret is empty or (standard) not valid base64.
 * On success the caller owns key->data; free it with sig_key_release().
 */
int	sig_key_from_secret(enum sig_scheme, const char *secret, struct sig_key *key);
void	sig_key_release(struct sig_key *);

/*
 * SPEC §1.3: a trusted public key, "whpk_" + base64 of the 32-byte raw
 * Ed25519 key.  Returns 0 (the caller owns key->data, kind
 * SIG_KEY_ED25519_PUBLIC), -1 when it is not such a key, or -2 when it is a
 * "whsk_" key, a private key that has no place among the trusted ones.
 */
int	sig_key_from_public(const char *s, struct sig_key *key);
/*
 * A signing key for v1a: "whsk_" + base64 of the 32-byte Ed25519 seed, or of
 * the 64 bytes seed || public key (libsodium's layout).  Returns 0 (kind
 * SIG_KEY_ED25519_PRIVATE, key->data the seed), or -1.
 */
int	sig_key_from_private(const char *s, struct sig_key *key);
/* A deep copy of src into dst.  Returns 0, or -1 (dst left empty). */
int	sig_key_copy(struct sig_key *dst, const struct sig_key *src);

/*
 * SPEC §1.3: the Svix header names (svix-id, svix-timestamp, svix-signature)
 * stand in for webhook-* only when none of the webhook-* headers came.
 * webhook holds the three webhook-* values (NULL when absent).  Returns 1
 * when the svix-* set is to be read instead, 0 otherwise.
 */
int	sig_standard_use_svix(const char *const webhook[3]);

/*
 * SPEC §1.2.  header is the Vinr-Signature value or NULL when absent.
 * Valid when at least one v1 equals HMAC-SHA256(key, t "." body) for at least
 * one of the nkeys keys (constant-time compare) and |now - t| <= tolerance.
 */
enum sig_result sig_verify_vinr(const char *header, const void *body, size_t bodylen,
	    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance);

/*
 * SPEC §1.3 (Standard Webhooks).  Any of msg_id, timestamp, signature may be
 * NULL (absent header) which gives SIG_MISSING.  Signed bytes are
 * "<msg_id>.<timestamp>.<body>", signatures are space-separated "v1,<base64>"
 * (HMAC-SHA256 under an SIG_KEY_HMAC key) and "v1a,<base64>" (pure Ed25519
 * under an SIG_KEY_ED25519_PUBLIC key); neither item at all is SIG_MISSING.
 * Authentic when any v1 matches any HMAC key OR any v1a verifies under any
 * public key; other kinds of keys are skipped.  Verifying a v1a allocates a
 * copy of the signed bytes (pure Ed25519 reads its message in one piece);
 * when that fails the delivery is refused (SIG_INVALID), never let through.
 */
enum sig_result sig_verify_standard(const char *msg_id, const char *timestamp,
	    const char *signature, const void *body, size_t bodylen,
	    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance);

/* For tests and tools (vinr-sim, bench): the header value for a body.
 * vinr: writes "t=<t>,v1=<hex>" into out.  standard: writes "v1,<base64>"
 * for an HMAC key, "v1a,<base64>" (SIG_V1A_LEN characters) for a private
 * Ed25519 key.  Returns the length written, or -1 if outlen is too small. */
int	sig_sign_vinr(const struct sig_key *, long long t, const void *body, size_t bodylen,
	    char *out, size_t outlen);
int	sig_sign_standard(const struct sig_key *, const char *msg_id, long long t,
	    const void *body, size_t bodylen, char *out, size_t outlen);

/*
 * Frees the calling thread's cached HMAC context, if it has one.  A thread
 * that exits needs none of this (its context goes with it); a thread that
 * never does (main) may call it before exit so that nothing is left.  The
 * next HMAC in this thread makes a new context.
 */
void	sig_thread_release(void);

#endif
