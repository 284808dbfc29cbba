/*
 * secrets.h - the daemon's secrets (SPEC §6): webhook secrets and the API
 * key, from a file, else a systemd credential, else the environment.
 *
 * DESIGN: one owner for every secret byte the daemon reads.  Secrets are read
 * with read(2) into buffers that are wiped (explicit_bzero) before they are
 * freed, and every release wipes.  No function here puts a secret in an error
 * message or a log line: they name the file and what is wrong with it.
 */
#ifndef VINR_SECRETS_H
#define VINR_SECRETS_H

#include <stddef.h>

#include "config.h"
#include "signature.h"

/* A list of secrets (webhook secrets or API keys). */
struct secrets {
	char	**v;
	size_t	  n;
};

/*
 * Loads secrets in the order of SPEC §6: file if non-NULL, else
 * $CREDENTIALS_DIRECTORY/credname if that file exists, else the environment
 * variable envname (one secret; empty = none).  A file holds one secret per
 * line; blank lines, lines starting with '#', and surrounding whitespace (CR
 * included) are ignored.  *source (NULL ok) is set to a static description of
 * where they came from ("file", "credential", "environment", "none").
 * Returns 0 (out->n may be 0: nothing configured), or -1 when a named file
 * cannot be read, with the reason in err: never a secret, and not the path
 * either (an operator may have pasted a secret where the path belongs): the
 * caller names the key.  Release out with secrets_release().
 */
int	secrets_load(struct secrets *out, const char *file, const char *credname,
	    const char *envname, const char **source, char *err, size_t errlen);
/* Wipes and frees every secret; out is left empty.  NULL ok, twice ok. */
void	secrets_release(struct secrets *);

/*
 * The trust material of [webhook] (SPEC §1.2, §1.3, §6) as keys for
 * signature.c, read from the config c (scheme, secret_file, public_key_file
 * and the lines that named them):
 *  - the webhook secrets (secret_file, the "webhook-secret" credential,
 *    $VINR_WEBHOOK_SECRET) as SIG_KEY_HMAC keys of c->scheme, first;
 *  - under scheme standard, the trusted public keys (public_key_file, the
 *    "webhook-public-key" credential, $VINR_WEBHOOK_PUBLIC_KEY) as
 *    SIG_KEY_ED25519_PUBLIC keys, after them.
 * Returns 0 with *keys (free with secrets_keys_free()) and *nkeys > 0, or -1
 * with a message in err that names the key (and its line in the config
 * file) and never a value: nothing configured, a file unreadable, a secret
 * unusable with the scheme, a public key that is not whpk_ + base64 of 32
 * bytes or that is a whsk_ private key, a public_key_file under scheme vinr.
 */
int	secrets_webhook_keys(const struct config *c, struct sig_key **keys,
	    size_t *nkeys, char *err, size_t errlen);
/* Wipes and frees keys from secrets_webhook_keys().  NULL ok. */
void	secrets_keys_free(struct sig_key *keys, size_t nkeys);

/*
 * The API key ([api] key_file, the "api-key" credential,
 * $VINR_API_KEY): the first one of its source.  Returns 0 with *key (free
 * with secrets_key_free()), or NULL when none is configured; -1 with a
 * message in err when a named file cannot be read.  *source as above.
 */
int	secrets_api_key(const char *file, char **key, const char **source, char *err,
	    size_t errlen);
/* Wipes and frees a key from secrets_api_key() or secrets_pg_password().
 * NULL ok. */
void	secrets_key_free(char *key);

/*
 * The PostgreSQL password (SPEC §8): the "pg-password" credential, else
 * $VINR_PG_PASSWORD; never a file of the configuration.  Returns 0 with
 * *password (free with secrets_key_free()), or NULL when neither is set:
 * then libpq's own sources (PGPASSFILE, ~/.pgpass) apply.  -1 with a
 * message in err when the credential cannot be read.  *source as above.
 */
int	secrets_pg_password(char **password, const char **source, char *err,
	    size_t errlen);

#endif
