/*
 * test_secrets.c - secrets.c: the file format, the order of the sources of
 * SPEC §6 (file, then $CREDENTIALS_DIRECTORY, then the environment), errors
 * that never quote a secret, release, and the daemon's two helpers (webhook
 * keys, the API key).
 *
 * Every file is written with mkstemp(3) under /tmp and removed again.
 */
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "secrets.h"

static char *
write_tmp(const char *content, size_t len)
{
	char	*path;
	int	 fd;

	path = strdup("/tmp/vinr-test-secrets-XXXXXX");
	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static char *
write_str(const char *content)
{
	return write_tmp(content, strlen(content));
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static char	*cred_dir;

/* secrets_webhook_keys() on a config that names only what the test needs. */
static int
webhook_keys(const char *secret_file, const char *public_key_file,
    enum sig_scheme scheme, struct sig_key **keys, size_t *n, char *err,
    size_t errlen)
{
	struct config	c;

	memset(&c, 0, sizeof(c));
	c.file = (char *)(uintptr_t)"test.conf";
	c.scheme = scheme;
	c.secret_file = (char *)(uintptr_t)secret_file;
	c.secret_file_line = secret_file != NULL ? 7 : 0;
	c.public_key_file = (char *)(uintptr_t)public_key_file;
	c.public_key_file_line = public_key_file != NULL ? 8 : 0;
	return secrets_webhook_keys(&c, keys, n, err, errlen);
}

static int
secrets_setup(void **state)
{
	(void)state;
	cred_dir = strdup("/tmp/vinr-test-creds-XXXXXX");
	if (cred_dir == NULL || mkdtemp(cred_dir) == NULL)
		return -1;
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("VINR_TEST_SECRET");
	return 0;
}

static int
secrets_teardown(void **state)
{
	char	path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/webhook-secret", cred_dir);
	/* A file, or the directory test_secrets_unreadable made. */
	if (unlink(path) == -1)
		rmdir(path);
	rmdir(cred_dir);
	free(cred_dir);
	cred_dir = NULL;
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("VINR_TEST_SECRET");
	return 0;
}

static void
write_cred(const char *content)
{
	char	path[256];
	FILE	*fp;

	snprintf(path, sizeof(path), "%s/webhook-secret", cred_dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(content, fp);
	assert_int_equal(fclose(fp), 0);
}

static void
test_secrets_file_format(void **state)
{
	struct secrets	 s;
	const char	*src = NULL;
	char		 err[256], *path;
	static const char content[] =
	    "# webhook secrets, newest first\n"
	    "\n"
	    "  whsec_one  \r\n"
	    "\t\r\n"
	    "   # an indented comment\n"
	    "whsec_two\r\n"
	    "whsec_#three\n"
	    "last no newline";

	(void)state;
	path = write_tmp(content, sizeof(content) - 1);
	assert_int_equal(secrets_load(&s, path, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "file");
	assert_int_equal(s.n, 4);
	assert_string_equal(s.v[0], "whsec_one");
	assert_string_equal(s.v[1], "whsec_two");
	assert_string_equal(s.v[2], "whsec_#three");
	assert_string_equal(s.v[3], "last no newline");
	secrets_release(&s);
	assert_null(s.v);
	assert_int_equal(s.n, 0);
	secrets_release(&s);

	/* Only comments: nothing, but not an error. */
	unlink(path);
	free(path);
	path = write_tmp("# none yet\n\n", 12);
	assert_int_equal(secrets_load(&s, path, NULL, NULL, &src, err,
	    sizeof(err)), 0);
	assert_string_equal(src, "file");
	assert_int_equal(s.n, 0);
	secrets_release(&s);
	unlink(path);
	free(path);
}

static void
test_secrets_order(void **state)
{
	struct secrets	 s;
	const char	*src = NULL;
	char		 err[256], *path;

	(void)state;
	path = write_tmp("from-file\n", 10);
	write_cred("from-cred\n");
	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	setenv("VINR_TEST_SECRET", "  from-env \n", 1);

	/* 1. The named file. */
	assert_int_equal(secrets_load(&s, path, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "file");
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0], "from-file");
	secrets_release(&s);

	/* 2. The credential. */
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "credential");
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0], "from-cred");
	secrets_release(&s);

	/* 3. No such credential: the environment, trimmed. */
	assert_int_equal(secrets_load(&s, NULL, "api-key", "VINR_TEST_SECRET",
	    &src, err, sizeof(err)), 0);
	assert_string_equal(src, "environment");
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0], "from-env");
	secrets_release(&s);

	/* No credentials directory at all: the environment. */
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "environment");
	assert_string_equal(s.v[0], "from-env");
	secrets_release(&s);

	/* An empty credentials directory variable counts as unset. */
	setenv("CREDENTIALS_DIRECTORY", "", 1);
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "environment");
	secrets_release(&s);

	/* 4. Nothing: an empty (whitespace) variable, or none. */
	setenv("VINR_TEST_SECRET", " \t ", 1);
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "none");
	assert_int_equal(s.n, 0);
	assert_null(s.v);
	unsetenv("VINR_TEST_SECRET");
	src = NULL;
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), 0);
	assert_string_equal(src, "none");
	assert_int_equal(s.n, 0);
	assert_int_equal(secrets_load(&s, NULL, NULL, NULL, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(s.n, 0);
	secrets_release(&s);

	unlink(path);
	free(path);
}

static void
test_secrets_unreadable(void **state)
{
	struct secrets	 s;
	const char	*src = NULL;
	char		 err[512], want[512], path[128], *nul;
	static const char withnul[] = "topsecret-value\0\n";

	(void)state;
	setenv("VINR_TEST_SECRET", "from-env", 1);

	/* A named file that is missing is an error, not a fall-through. */
	assert_int_equal(secrets_load(&s, "/nonexistent/webhook-secret",
	    "webhook-secret", "VINR_TEST_SECRET", &src, err, sizeof(err)), -1);
	/* Never the path: it may be a secret pasted into the wrong key. */
	assert_string_equal(err, "No such file or directory");
	assert_string_equal(src, "file");
	assert_int_equal(s.n, 0);
	assert_null(s.v);

	assert_int_equal(secrets_load(&s, "/tmp", NULL, NULL, &src, err,
	    sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s", strerror(EISDIR));
	assert_string_equal(err, want);

	/* A credential that exists but cannot be read is an error too. */
	snprintf(path, sizeof(path), "%s/webhook-secret", cred_dir);
	assert_int_equal(mkdir(path, 0700), 0);
	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
	    "VINR_TEST_SECRET", &src, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "credential webhook-secret: %s", strerror(EISDIR));
	assert_string_equal(err, want);
	assert_string_equal(src, "credential");
	assert_int_equal(rmdir(path), 0);

	/* Without permission (root reads anything, so only as a user). */
	if (geteuid() != 0) {
		write_cred("x\n");
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(secrets_load(&s, NULL, "webhook-secret",
		    "VINR_TEST_SECRET", &src, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s: %s", path, strerror(EACCES));
		assert_string_equal(err, want);
		unlink(path);
	}

	/* Nor does a file too large to be a list of secrets. */
	{
		size_t	 biglen = 1100 * 1024;
		char	*big = malloc(biglen), *bigpath;

		assert_non_null(big);
		memset(big, 's', biglen);
		memcpy(big, "topsecret\n", 10);
		bigpath = write_tmp(big, biglen);
		assert_int_equal(secrets_load(&s, bigpath, NULL, NULL, &src,
		    err, sizeof(err)), -1);
		assert_null(strstr(err, bigpath));
		assert_contains(err, "larger than 1048576 bytes");
		assert_null(strstr(err, "topsecret"));
		assert_int_equal(s.n, 0);
		unlink(bigpath);
		free(bigpath);
		free(big);
	}

	/* A refused file's content never reaches the message. */
	nul = write_tmp(withnul, sizeof(withnul) - 1);
	assert_int_equal(secrets_load(&s, nul, NULL, NULL, &src, err,
	    sizeof(err)), -1);
	assert_null(strstr(err, nul));
	assert_contains(err, "NUL byte");
	assert_null(strstr(err, "topsecret"));
	unlink(nul);
	free(nul);
}

static void
test_secrets_release_zeroed(void **state)
{
	struct secrets	s;

	(void)state;
	memset(&s, 0, sizeof(s));
	secrets_release(&s);
	secrets_release(&s);
	secrets_release(NULL);
	assert_null(s.v);
	assert_int_equal(s.n, 0);
}

/* The webhook keys: every secret of the first source, in order. */
static void
test_webhook_keys(void **state)
{
	struct sig_key	*keys = NULL, want;
	size_t		 n = 99;
	char		 err[256], *path;

	(void)state;
	unsetenv("VINR_WEBHOOK_SECRET");
	path = write_tmp("# two\nwhsec_one\nwhsec_two\n", 25);
	assert_int_equal(webhook_keys(path, NULL, SIG_SCHEME_VINR, &keys, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, "whsec_two", &want), 0);
	assert_int_equal(keys[1].len, want.len);
	assert_memory_equal(keys[1].data, want.data, want.len);
	sig_key_release(&want);
	secrets_keys_free(keys, n);
	secrets_keys_free(NULL, 0);

	/* The credential wins over the environment. */
	write_cred("whsec_cred\n");
	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	setenv("VINR_WEBHOOK_SECRET", "whsec_env", 1);
	assert_int_equal(webhook_keys(NULL, NULL, SIG_SCHEME_VINR, &keys, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sig_key_from_secret(SIG_SCHEME_VINR, "whsec_cred", &want), 0);
	assert_memory_equal(keys[0].data, want.data, want.len);
	sig_key_release(&want);
	secrets_keys_free(keys, n);

	/* Under standard, a secret that is not whsec_ + base64 is named by its
	 * position, never quoted. */
	assert_int_equal(webhook_keys(path, NULL, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), -1);
	assert_null(keys);
	assert_int_equal(n, 0);
	assert_contains(err, "webhook secret 1 (from file)");
	assert_null(strstr(err, "whsec_one"));

	/* Nothing anywhere: an error that says where to put one. */
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("VINR_WEBHOOK_SECRET");
	assert_int_equal(webhook_keys(NULL, NULL, SIG_SCHEME_VINR, &keys, &n, err,
	    sizeof(err)), -1);
	assert_contains(err, "no webhook secret");
	unlink(path);
	free(path);
}

#define PUB_SVIX	"whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
#define SEC_STD		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* Public keys (SPEC §1.3): alone, with secrets, refused when private. */
static void
test_webhook_public_keys(void **state)
{
	struct sig_key	*keys = NULL;
	size_t		 n = 0;
	char		 err[512], *sec, *pub, *priv, *bad;

	(void)state;
	unsetenv("VINR_WEBHOOK_SECRET");
	unsetenv("VINR_WEBHOOK_PUBLIC_KEY");
	sec = write_str(SEC_STD "\n");
	pub = write_str("# trusted\n " PUB_SVIX " \r\n");
	priv = write_str("whsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
	bad = write_str("whpk_AAAA\n");

	/* Public keys alone are enough under standard. */
	assert_int_equal(webhook_keys(NULL, pub, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(keys[0].kind, SIG_KEY_ED25519_PUBLIC);
	assert_int_equal(keys[0].len, 32);
	secrets_keys_free(keys, n);

	/* Both: the secrets first, then the public keys. */
	assert_int_equal(webhook_keys(sec, pub, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(keys[0].kind, SIG_KEY_HMAC);
	assert_int_equal(keys[1].kind, SIG_KEY_ED25519_PUBLIC);
	secrets_keys_free(keys, n);

	/* From the environment, when no file is named. */
	setenv("VINR_WEBHOOK_PUBLIC_KEY", PUB_SVIX, 1);
	assert_int_equal(webhook_keys(NULL, NULL, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(keys[0].kind, SIG_KEY_ED25519_PUBLIC);
	secrets_keys_free(keys, n);
	/* Under vinr the public keys play no part: no secret is an error. */
	assert_int_equal(webhook_keys(NULL, NULL, SIG_SCHEME_VINR, &keys, &n,
	    err, sizeof(err)), -1);
	assert_contains(err, "no webhook secret");
	unsetenv("VINR_WEBHOOK_PUBLIC_KEY");

	/* A private key is refused, and said to be one, never quoted. */
	assert_int_equal(webhook_keys(sec, priv, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), -1);
	assert_null(keys);
	assert_contains(err, "webhook public key 1 (from file) is a private key");
	assert_null(strstr(err, "AAAA"));
	assert_int_equal(webhook_keys(sec, bad, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), -1);
	assert_contains(err, "webhook public key 1 (from file) is not valid");
	assert_null(strstr(err, "AAAA"));

	/* Under vinr a public_key_file is a mistake worth saying. */
	assert_int_equal(webhook_keys(sec, pub, SIG_SCHEME_VINR, &keys, &n,
	    err, sizeof(err)), -1);
	assert_contains(err, "test.conf:8: [webhook] public_key_file: only with "
	    "scheme = standard");

	/* Nothing at all under standard: both ways are named. */
	assert_int_equal(webhook_keys(NULL, NULL, SIG_SCHEME_STANDARD, &keys, &n,
	    err, sizeof(err)), -1);
	assert_contains(err, "public_key_file");
	assert_contains(err, "VINR_WEBHOOK_PUBLIC_KEY");

	unlink(sec);
	unlink(pub);
	unlink(priv);
	unlink(bad);
	free(sec);
	free(pub);
	free(priv);
	free(bad);
}

/* A named file that is missing: the key and its line, like config errors. */
static void
test_webhook_missing_file(void **state)
{
	struct sig_key	*keys = NULL;
	size_t		 n = 0;
	char		 err[512];

	(void)state;
	assert_int_equal(webhook_keys("/nonexistent/webhook-secret", NULL,
	    SIG_SCHEME_VINR, &keys, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "test.conf:7: [webhook] secret_file: "
	    "No such file or directory");
	assert_int_equal(webhook_keys(NULL, "/nonexistent/keys",
	    SIG_SCHEME_STANDARD, &keys, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "test.conf:8: [webhook] public_key_file: "
	    "No such file or directory");
}

/* The API key: the first of its source; none is not an error. */
static void
test_api_key(void **state)
{
	const char	*src = NULL;
	char		 err[256], *key = NULL, *path;

	(void)state;
	unsetenv("VINR_API_KEY");
	path = write_tmp("sk_test_first\nsk_test_second\n", 29);
	assert_int_equal(secrets_api_key(path, &key, &src, err, sizeof(err)), 0);
	assert_string_equal(key, "sk_test_first");
	assert_string_equal(src, "file");
	secrets_key_free(key);
	secrets_key_free(NULL);

	setenv("VINR_API_KEY", " sk_test_env ", 1);
	assert_int_equal(secrets_api_key(NULL, &key, &src, err, sizeof(err)), 0);
	assert_string_equal(key, "sk_test_env");
	assert_string_equal(src, "environment");
	secrets_key_free(key);

	unsetenv("VINR_API_KEY");
	key = path;	/* must be reset */
	assert_int_equal(secrets_api_key(NULL, &key, &src, err, sizeof(err)), 0);
	assert_null(key);
	assert_string_equal(src, "none");

	assert_int_equal(secrets_api_key("/nonexistent/api-key", &key, &src, err,
	    sizeof(err)), -1);
	assert_null(key);
	assert_string_equal(err, "No such file or directory");
	unlink(path);
	free(path);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_secrets_file_format,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test_setup_teardown(test_secrets_order,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test_setup_teardown(test_secrets_unreadable,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test(test_secrets_release_zeroed),
		cmocka_unit_test_setup_teardown(test_webhook_keys,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_public_keys,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test_setup_teardown(test_webhook_missing_file,
		    secrets_setup, secrets_teardown),
		cmocka_unit_test_setup_teardown(test_api_key,
		    secrets_setup, secrets_teardown),
	};

	return cmocka_run_group_tests_name("secrets", tests, NULL, NULL);
}
