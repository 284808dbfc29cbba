/*
 * test_config_storage.c - [storage] backend, dsn, instance, takeover (SPEC
 * §6, §8), and the PostgreSQL password's sources (secrets_pg_password()).
 */
#include <sys/stat.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "secrets.h"

static int
load(struct config *c, const char *content, char *err, size_t errlen)
{
	char path[] = "/tmp/vinr-test-cfgstorage-XXXXXX";
	int fd, rc;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	config_defaults(c);
	rc = config_load(c, path, err, errlen);
	unlink(path);
	return rc;
}

static void
test_defaults_sqlite(void **state)
{
	struct config c;
	char err[1024];

	(void)state;
	assert_int_equal(load(&c, "[storage]\nretain_days = 1\n", err, sizeof(err)), 0);
	assert_int_equal(c.backend, BACKEND_SQLITE);
	assert_null(c.dsn);
	assert_null(c.instance);	/* only postgres needs one */
	assert_int_equal(c.takeover, 10);
	config_release(&c);
}

static void
test_postgres_keys(void **state)
{
	struct config c;
	char err[1024];

	(void)state;
	assert_int_equal(load(&c, "[storage]\nbackend = postgres\n"
	    "dsn = postgresql://vinr@127.0.0.1:5432/vinr?sslmode=disable\n"
	    "instance = pos-1.shop_A\ntakeover = 3600\ndatabase = /x/y.db\n", err,
	    sizeof(err)), 0);
	assert_int_equal(c.backend, BACKEND_POSTGRES);
	assert_string_equal(c.dsn, "postgresql://vinr@127.0.0.1:5432/vinr?sslmode=disable");
	assert_string_equal(c.instance, "pos-1.shop_A");
	assert_int_equal(c.takeover, 3600);
	config_release(&c);
	/* Keyword form too. */
	assert_int_equal(load(&c, "[storage]\nbackend = postgres\n"
	    "dsn = host=/tmp port=5 dbname=vinr user=vinr\n", err, sizeof(err)), 0);
	config_release(&c);
}

static void
test_instance_defaults_to_host_name(void **state)
{
	struct config c;
	char err[1024], host[HOST_NAME_MAX + 1] = "";

	(void)state;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_int_equal(load(&c, "[storage]\nbackend = postgres\ndsn = dbname=vinr\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.instance, host);
	config_release(&c);
}

/* Each refused: the message names file:line and key, never the value. */
static void
refused(const char *content, const char *want, const char *never)
{
	struct config c;
	char err[2048];

	assert_int_equal(load(&c, content, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("\"%s\" not in \"%s\"", want, err);
	assert_non_null(strstr(err, "/tmp/vinr-test-cfgstorage-"));
	if (never != NULL && strstr(err, never) != NULL)
		fail_msg("\"%s\" shown in \"%s\"", never, err);
	config_release(&c);
}

static void
test_refused(void **state)
{
	(void)state;
	refused("[storage]\nbackend = mysql\n", ":2: [storage] backend: not sqlite or "
	    "postgres", NULL);
	refused("[storage]\nbackend = postgres\n", ":2: [storage] backend: postgres "
	    "needs [storage] dsn", NULL);
	refused("[storage]\ntakeover = 0\n", ":2: [storage] takeover: out of range "
	    "(1 to 3600)", NULL);
	refused("[storage]\ntakeover = 3601\n", "takeover: out of range", NULL);
	refused("[storage]\ninstance = a b\n", ":2: [storage] instance: may hold only",
	    NULL);
	refused("[storage]\ninstance = "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	    "instance: longer than 64", NULL);
	refused("[storage]\ndsn = nosuchkeyword=1\n", ":2: [storage] dsn: not a libpq",
	    "nosuchkeyword");
	refused("[storage]\ndsn = postgresql://[zz\n", "dsn: not a libpq", NULL);
}

static void
test_dsn_password_refused(void **state)
{
	(void)state;
	refused("[storage]\nbackend = postgres\n"
	    "dsn = postgresql://vinr:Hunter2Secret@db.example/vinr\n",
	    ":3: [storage] dsn: holds a password", "Hunter2Secret");
	refused("[storage]\nbackend = postgres\n"
	    "dsn = host=db user=vinr password=Hunter2Secret dbname=vinr\n",
	    ":3: [storage] dsn: holds a password", "Hunter2Secret");
	refused("[storage]\ndsn = postgresql://db/vinr?password=Hunter2Secret\n",
	    "holds a password", "Hunter2Secret");
}

/* The credential, then the environment, then none (libpq's own). */
static void
test_pg_password_sources(void **state)
{
	char dir[] = "/tmp/vinr-test-creds-XXXXXX", path[128], err[256];
	const char *src = NULL;
	char *pw = NULL;
	FILE *f;

	(void)state;
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("VINR_PG_PASSWORD");
	assert_int_equal(secrets_pg_password(&pw, &src, err, sizeof(err)), 0);
	assert_null(pw);
	assert_string_equal(src, "none");

	setenv("VINR_PG_PASSWORD", "from-env", 1);
	assert_int_equal(secrets_pg_password(&pw, &src, err, sizeof(err)), 0);
	assert_string_equal(pw, "from-env");
	assert_string_equal(src, "environment");
	secrets_key_free(pw);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pg-password", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("from-credential\n", f);
	fclose(f);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	assert_int_equal(secrets_pg_password(&pw, &src, err, sizeof(err)), 0);
	assert_string_equal(pw, "from-credential");
	assert_string_equal(src, "credential");
	secrets_key_free(pw);
	secrets_key_free(NULL);

	unlink(path);
	rmdir(dir);
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("VINR_PG_PASSWORD");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_sqlite),
		cmocka_unit_test(test_postgres_keys),
		cmocka_unit_test(test_instance_defaults_to_host_name),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_dsn_password_refused),
		cmocka_unit_test(test_pg_password_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
