/*
 * signature.h - webhook signature verification (SPEC.md §1.2, §1.3).
 *
 * Pure: no I/O, no globals, no allocation on the verify path.  The caller
 * passes "now" so that tests can pin the clock.
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

/* An HMAC key: raw bytes. */
struct sig_key {
	unsigned char	*data;
	size_t		 len;
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
 * SPEC §1.2.  header is the Vinr-Signature value or NULL when absent.
 * Valid when at least one v1 equals HMAC-SHA256(key, t "." body) for at least
 * one of the nkeys keys (constant-time compare) and |now - t| <= tolerance.
 */
enum sig_result sig_verify_vinr(const char *header, const void *body, size_t bodylen,
	    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance);

/*
 * SPEC §1.3 (Standard Webhooks).  Any of msg_id, timestamp, signature may be
 * NULL (absent header) which gives SIG_MISSING.  Signed bytes are
 * "<msg_id>.<timestamp>.<body>", signatures are space-separated "v1,<base64>".
 */
enum sig_result sig_verify_standard(const char *msg_id, const char *timestamp,
	    const char *signature, const void *body, size_t bodylen,
	    const struct sig_key *keys, size_t nkeys, time_t now, long tolerance);

/* For tests and tools (vinr-sim, bench): the header value for a body.
 * vinr: writes "t=<t>,v1=<hex>" into out.  standard: writes "v1,<base64>".
 * Returns the length written, or -1 if outlen is too small. */
int	sig_sign_vinr(const struct sig_key *, long long t, const void *body, size_t bodylen,
	    char *out, size_t outlen);
int	sig_sign_standard(const struct sig_key *, const char *msg_id, long long t,
	    const void *body, size_t bodylen, char *out, size_t outlen);

#endif
