/*
 * secrets.c - see secrets.h.
 *
 * Secrets are read with read(2) into buffers that are zeroed before they are
 * freed; stdio would leave copies in its own buffers, and realloc() a copy
 * in the block it leaves behind.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secrets.h"
#include "util.h"

#define SECRETS_MAX_SIZE	(1024 * 1024)


/* Drops surrounding whitespace (CR included) from the span s, *len. */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

static int
secrets_add(struct secrets *s, const char *v, size_t len)
{
	char	**nv, *copy;

	if ((copy = malloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, v, len);
	copy[len] = '\0';
	if ((nv = reallocarray(s->v, s->n + 1, sizeof(*nv))) == NULL) {
		explicit_bzero(copy, len);
		free(copy);
		return -1;
	}
	s->v = nv;
	s->v[s->n++] = copy;
	return 0;
}

/*
 * Reads the secrets of one file into s.  Returns 0, 1 when missing_ok and the
 * file does not exist, or -1 with a message (never any of its content).
 */
static int
secrets_read(struct secrets *s, const char *path, int missing_ok, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL, *nbuf;
	size_t		 cap, len = 0, linelen;
	ssize_t		 r;
	const char	*line, *nl, *end, *v;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (missing_ok && (errno == ENOENT || errno == ENOTDIR))
			return 1;
		util_seterr(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		util_seterr(err, errlen, "%s", strerror(errno));
		goto done;
	}
	if (S_ISDIR(st.st_mode)) {
		util_seterr(err, errlen, "%s", strerror(EISDIR));
		goto done;
	}
	cap = S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size < SECRETS_MAX_SIZE ? (size_t)st.st_size + 1 : 4096;
	if ((buf = malloc(cap)) == NULL)
		goto oom;
	for (;;) {
		if (len == cap) {
			/* Grow by hand: realloc would leave a copy behind. */
			if (cap >= SECRETS_MAX_SIZE) {
				util_seterr(err, errlen, "larger than %d bytes",
				    SECRETS_MAX_SIZE);
				goto done;
			}
			if ((nbuf = malloc(cap * 2)) == NULL)
				goto oom;
			memcpy(nbuf, buf, len);
			explicit_bzero(buf, cap);
			free(buf);
			buf = nbuf;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			util_seterr(err, errlen, "%s", strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (memchr(buf, '\0', len) != NULL) {
		util_seterr(err, errlen, "contains a NUL byte");
		goto done;
	}

	end = buf + len;
	for (line = buf; line < end; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL)
			nl = end;
		v = line;
		linelen = (size_t)(nl - line);
		trim(&v, &linelen);
		if (linelen == 0 || *v == '#')
			continue;
		if (secrets_add(s, v, linelen) == -1)
			goto oom;
	}
	rc = 0;
	goto done;
oom:
	util_seterr(err, errlen, "out of memory");
done:
	if (buf != NULL) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	close(fd);
	return rc;
}

int
secrets_load(struct secrets *out, const char *file, const char *credname,
    const char *envname, const char **source, char *err, size_t errlen)
{
	struct secrets	 s = { NULL, 0 };
	const char	*src = "none", *dir, *env;
	char		*path, why[256];
	size_t		 len;
	int		 r;

	out->v = NULL;
	out->n = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (file != NULL) {
		src = "file";
		if (secrets_read(&s, file, 0, err, errlen) == -1)
			goto fail;
		goto done;
	}
	if (credname != NULL && (dir = getenv("CREDENTIALS_DIRECTORY")) != NULL &&
	    *dir != '\0') {
		if (asprintf(&path, "%s/%s", dir, credname) == -1) {
			util_seterr(err, errlen, "out of memory");
			goto fail;
		}
		r = secrets_read(&s, path, 1, why, sizeof(why));
		free(path);
		if (r == -1) {
			util_seterr(err, errlen, "credential %s: %s", credname, why);
			src = "credential";
			goto fail;
		}
		if (r == 0) {
			src = "credential";
			goto done;
		}
	}
	if (envname != NULL && (env = getenv(envname)) != NULL) {
		len = strlen(env);
		trim(&env, &len);
		if (len > 0) {
			src = "environment";
			if (secrets_add(&s, env, len) == -1) {
				util_seterr(err, errlen, "$%s: out of memory",
				    envname);
				goto fail;
			}
		}
	}
done:
	if (source != NULL)
		*source = src;
	*out = s;
	return 0;
fail:
	if (source != NULL)
		*source = src;
	secrets_release(&s);
	return -1;
}

void
secrets_release(struct secrets *s)
{
	size_t	i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++) {
		if (s->v[i] != NULL) {
			explicit_bzero(s->v[i], strlen(s->v[i]));
			free(s->v[i]);
		}
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/*
 * Loads one source of [webhook] (secrets or public keys) for the error
 * messages' sake: a named file that fails is reported with its key and the
 * line that named it.  Returns 0 or -1 like secrets_load().
 */
static int
webhook_load(struct secrets *out, const struct config *c, const char *key,
    const char *file, int line, const char *cred, const char *env,
    const char **src, char *err, size_t errlen)
{
	char	why[512];

	if (secrets_load(out, file, cred, env, src, why, sizeof(why)) == 0)
		return 0;
	if (file != NULL && line > 0)
		util_seterr(err, errlen, "%s:%d: [webhook] %s: %s",
		    c->file != NULL ? c->file : "(config)", line, key, why);
	else if (file != NULL)
		util_seterr(err, errlen, "[webhook] %s: %s", key, why);
	else
		util_seterr(err, errlen, "%s", why);
	return -1;
}

/*
 * Appends n keys made from sec to *k (which holds *nk).  Public keys when
 * pub, else HMAC keys of scheme.  Returns 0, or -1 with a message naming the
 * position and source of the first bad one, never its value.
 */
static int
webhook_add(struct sig_key **k, size_t *nk, const struct secrets *sec,
    enum sig_scheme scheme, int pub, const char *src, char *err, size_t errlen)
{
	struct sig_key	*nkeys;
	size_t		 i;
	int		 r;

	if (sec->n == 0)
		return 0;
	if ((nkeys = reallocarray(*k, *nk + sec->n, sizeof(**k))) == NULL) {
		util_seterr(err, errlen, "out of memory");
		return -1;
	}
	*k = nkeys;
	for (i = 0; i < sec->n; i++) {
		r = pub ? sig_key_from_public(sec->v[i], &nkeys[*nk]) :
		    sig_key_from_secret(scheme, sec->v[i], &nkeys[*nk]);
		if (r == -2) {
			util_seterr(err, errlen, "webhook public key %zu (from %s) is a "
			    "private key (whsk_): trust the sender's public key "
			    "(whpk_) and keep the private key with the sender",
			    i + 1, src);
			return -1;
		}
		if (r != 0 && pub) {
			util_seterr(err, errlen, "webhook public key %zu (from %s) is not "
			    "valid: expected whpk_ + base64 of a 32-byte Ed25519 key",
			    i + 1, src);
			return -1;
		}
		if (r != 0) {
			util_seterr(err, errlen, "webhook secret %zu (from %s) is not valid "
			    "for scheme standard: expected whsec_ + base64", i + 1, src);
			return -1;
		}
		(*nk)++;
	}
	return 0;
}

int
secrets_webhook_keys(const struct config *c, struct sig_key **keys,
    size_t *nkeys, char *err, size_t errlen)
{
	struct secrets sec = { 0 }, pub = { 0 };
	struct sig_key *k = NULL;
	const char *src, *psrc = "none";
	size_t n = 0;
	int std = c->scheme == SIG_SCHEME_STANDARD;

	*keys = NULL;
	*nkeys = 0;
	if (!std && c->public_key_file != NULL) {
		util_seterr(err, errlen, "%s:%d: [webhook] public_key_file: only with "
		    "scheme = standard (v1a signatures)", c->file != NULL ? c->file :
		    "(config)", c->public_key_file_line);
		return -1;
	}
	if (webhook_load(&sec, c, "secret_file", c->secret_file,
	    c->secret_file_line, "webhook-secret", "VINR_WEBHOOK_SECRET", &src,
	    err, errlen) == -1 ||
	    (std && webhook_load(&pub, c, "public_key_file", c->public_key_file,
	    c->public_key_file_line, "webhook-public-key",
	    "VINR_WEBHOOK_PUBLIC_KEY", &psrc, err, errlen) == -1))
		goto fail;
	if (sec.n == 0 && pub.n == 0) {
		util_seterr(err, errlen, std ? "no webhook secret nor public key: set "
		    "[webhook] secret_file or public_key_file, the webhook-secret or "
		    "webhook-public-key credential, or VINR_WEBHOOK_SECRET or "
		    "VINR_WEBHOOK_PUBLIC_KEY" : "no webhook secret: set [webhook] "
		    "secret_file, the webhook-secret credential, or VINR_WEBHOOK_SECRET");
		goto fail;
	}
	if (webhook_add(&k, &n, &sec, c->scheme, 0, src, err, errlen) == -1 ||
	    webhook_add(&k, &n, &pub, c->scheme, 1, psrc, err, errlen) == -1)
		goto fail;
	secrets_release(&sec);
	secrets_release(&pub);
	*keys = k;
	*nkeys = n;
	return 0;
fail:
	secrets_keys_free(k, n);
	secrets_release(&sec);
	secrets_release(&pub);
	return -1;
}

void
secrets_keys_free(struct sig_key *keys, size_t nkeys)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < nkeys; i++)
		sig_key_release(&keys[i]);
	free(keys);
}

/* The first secret of file, else the credential, else the env variable. */
static int
secrets_api_key_from(const char *file, const char *credname, const char *envname,
    char **key, const char **source, char *err, size_t errlen)
{
	struct secrets sec = { 0 };

	*key = NULL;
	if (secrets_load(&sec, file, credname, envname, source, err, errlen) == -1)
		return -1;
	if (sec.n > 0) {
		*key = sec.v[0];
		sec.v[0] = NULL;
	}
	secrets_release(&sec);
	return 0;
}

int
secrets_api_key(const char *file, char **key, const char **source, char *err,
    size_t errlen)
{
	return secrets_api_key_from(file, "api-key", "VINR_API_KEY", key, source, err,
	    errlen);
}

int
secrets_pg_password(char **password, const char **source, char *err,
    size_t errlen)
{
	return secrets_api_key_from(NULL, "pg-password", "VINR_PG_PASSWORD", password,
	    source, err, errlen);
}

void
secrets_key_free(char *key)
{
	if (key != NULL) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
}
