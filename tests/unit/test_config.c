/*
 * test_config.c - config.c: defaults, the INI file of SPEC §6, strictness and
 * its error messages.  The secret sources: test_secrets.c.
 *
 * Every file is written with mkstemp(3) under /tmp and removed again.  The bad
 * value cases are a table; each row is its own cmocka test.
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

#include "config.h"

/* The path of the file the last load_str() wrote (already removed). */
static char	last_path[64];

static char *
write_tmp(const char *content, size_t len)
{
	char	*path;
	int	 fd;

	path = strdup("/tmp/vinr-test-config-XXXXXX");
	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

/* Loads content (written to a temp file) over c. */
static int
load_len(struct config *c, const char *content, size_t len, char *err,
    size_t errlen)
{
	char	*path;
	int	 rc;

	path = write_tmp(content, len);
	snprintf(last_path, sizeof(last_path), "%s", path);
	rc = config_load(c, path, err, errlen);
	unlink(path);
	free(path);
	return rc;
}

static int
load_str(struct config *c, const char *content, char *err, size_t errlen)
{
	return load_len(c, content, strlen(content), err, errlen);
}

/* Asserts that err is exactly "<last_path><rest>". */
static void
assert_err(const char *err, const char *rest)
{
	char	want[512];

	snprintf(want, sizeof(want), "%s%s", last_path, rest);
	assert_string_equal(err, want);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void
test_defaults(void **state)
{
	struct config	c;

	(void)state;
	memset(&c, 0xa5, sizeof(c));
	config_defaults(&c);
	assert_null(c.file);
	assert_string_equal(c.listen, "127.0.0.1:8787");
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 8787);
	assert_string_equal(c.http_path, "/webhooks/vinr");
	assert_int_equal(c.max_body, 262144);
	assert_int_equal(c.scheme, SIG_SCHEME_VINR);
	assert_null(c.secret_file);
	assert_int_equal(c.tolerance, 300);
	assert_string_equal(c.database, "/var/lib/vinr-webhookd/vinr.db");
	assert_string_equal(c.event_log, "/var/log/vinr-webhookd/events.log");
	assert_int_equal(c.synchronous, 2);
	assert_int_equal(c.retain_days, 90);
	assert_null(c.hook);
	assert_int_equal(c.hook_timeout, 30);
	assert_null(c.socket);
	assert_false(c.socket_ack);
	assert_int_equal(c.max_attempts, 12);
	assert_int_equal(c.events, FORWARD_OUTCOMES);
	assert_string_equal(c.control_socket, "/run/vinr-webhookd/control.sock");
	assert_int_equal(c.control_mode, 0660);
	assert_string_equal(c.api_base, "https://api.vinr.com");
	assert_null(c.api_key_file);
	assert_int_equal(c.interval, 10);
	assert_int_equal(c.stale_after, 120);
	assert_int_equal(c.max_backoff, 900);
	assert_int_equal(c.give_up_after, 86400);
	assert_true(c.max_rps == 2.0);
	config_release(&c);
}

static void
test_release_twice(void **state)
{
	struct config	c;

	(void)state;
	config_defaults(&c);
	config_release(&c);
	assert_null(c.listen);
	assert_null(c.listen_host);
	assert_null(c.http_path);
	assert_null(c.database);
	assert_null(c.event_log);
	assert_null(c.control_socket);
	assert_null(c.api_base);
	config_release(&c);
	config_release(NULL);
}

/* SPEC §6's example, verbatim. */
static const char spec_example[] =
	"[http]\n"
	"listen = 127.0.0.1:8787      ; host:port, [v6]:port\n"
	"path = /webhooks/vinr\n"
	"max_body = 262144\n"
	"[webhook]\n"
	"scheme = vinr                ; vinr | standard\n"
	"secret_file = /etc/vinr-webhookd/webhook-secret   ; one secret per line, all accepted\n"
	"tolerance = 300\n"
	"[storage]\n"
	"database = /var/lib/vinr-webhookd/vinr.db\n"
	"event_log = /var/log/vinr-webhookd/events.log\n"
	"synchronous = full           ; full | normal\n"
	"retain_days = 90\n"
	"[forward]\n"
	"hook =\n"
	"hook_timeout = 30\n"
	"socket =\n"
	"socket_ack = false\n"
	"max_attempts = 12\n"
	"events = outcomes            ; outcomes | all\n"
	"[control]\n"
	"socket = /run/vinr-webhookd/control.sock\n"
	"mode = 0660\n"
	"[reconciler]\n"
	"api_base = https://api.vinr.com\n"
	"api_key_file = /etc/vinr-webhookd/api-key\n"
	"interval = 10\n"
	"stale_after = 120\n"
	"max_backoff = 900\n"
	"give_up_after = 86400\n"
	"max_rps = 2\n";

static void
test_spec_example(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	/* Set what the example unsets, so that the unsetting is seen. */
	c.hook = strdup("/bin/true");
	c.socket = strdup("/run/pos.sock");
	assert_int_equal(load_str(&c, spec_example, err, sizeof(err)), 0);
	assert_string_equal(c.file, last_path);
	assert_string_equal(c.listen, "127.0.0.1:8787");
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 8787);
	assert_string_equal(c.http_path, "/webhooks/vinr");
	assert_int_equal(c.max_body, 262144);
	assert_int_equal(c.scheme, SIG_SCHEME_VINR);
	assert_string_equal(c.secret_file, "/etc/vinr-webhookd/webhook-secret");
	assert_int_equal(c.tolerance, 300);
	assert_string_equal(c.database, "/var/lib/vinr-webhookd/vinr.db");
	assert_string_equal(c.event_log, "/var/log/vinr-webhookd/events.log");
	assert_int_equal(c.synchronous, 2);
	assert_int_equal(c.retain_days, 90);
	assert_null(c.hook);
	assert_int_equal(c.hook_timeout, 30);
	assert_null(c.socket);
	assert_false(c.socket_ack);
	assert_int_equal(c.max_attempts, 12);
	assert_int_equal(c.events, FORWARD_OUTCOMES);
	assert_string_equal(c.control_socket, "/run/vinr-webhookd/control.sock");
	assert_int_equal(c.control_mode, 0660);
	assert_string_equal(c.api_base, "https://api.vinr.com");
	assert_string_equal(c.api_key_file, "/etc/vinr-webhookd/api-key");
	assert_int_equal(c.interval, 10);
	assert_int_equal(c.stale_after, 120);
	assert_int_equal(c.max_backoff, 900);
	assert_int_equal(c.give_up_after, 86400);
	assert_true(c.max_rps == 2.0);
	config_release(&c);
}

/* Every key set to something other than its default. */
static void
test_every_key(void **state)
{
	struct config	c;
	char		err[512];
	static const char conf[] =
	    "# vinr-webhookd test configuration\n"
	    "; both comment styles\n"
	    "\n"
	    "[http]\n"
	    "listen = 0.0.0.0:9000 ; every address\n"
	    "path = /hooks/pay\r\n"
	    "max_body = 1048576\n"
	    "[webhook]\n"
	    "  scheme = standard   ; indented keys are keys\n"
	    "secret_file = secrets/webhook ; relative\n"
	    "tolerance = 60\n"
	    "[storage]\n"
	    "database = var/vinr.db\n"
	    "event_log = /tmp/events.log\n"
	    "synchronous = NORMAL\n"
	    "retain_days = 0\n"
	    "[forward]\n"
	    "hook = /usr/local/bin/on-outcome\n"
	    "hook_timeout = 5\n"
	    "socket = /run/pos/outcomes.sock\n"
	    "socket_ack = yes\n"
	    "max_attempts = 3\n"
	    "events = all\n"
	    "[control]\n"
	    "socket = ctl.sock\n"
	    "mode = 600\n"
	    "[reconciler]\n"
	    "api_base = http://127.0.0.1:4010/\n"
	    "api_key_file = /etc/k\n"
	    "interval = 1\n"
	    "stale_after = 30\n"
	    "max_backoff = 60\n"
	    "give_up_after = 3600\n"
	    "max_rps = 0.5\n";

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, conf, err, sizeof(err)), 0);
	assert_string_equal(c.listen, "0.0.0.0:9000");
	assert_string_equal(c.listen_host, "0.0.0.0");
	assert_int_equal(c.listen_port, 9000);
	assert_string_equal(c.http_path, "/hooks/pay");
	assert_int_equal(c.max_body, 1048576);
	assert_int_equal(c.scheme, SIG_SCHEME_STANDARD);
	assert_string_equal(c.secret_file, "secrets/webhook");
	assert_int_equal(c.tolerance, 60);
	assert_string_equal(c.database, "var/vinr.db");
	assert_string_equal(c.event_log, "/tmp/events.log");
	assert_int_equal(c.synchronous, 1);
	assert_int_equal(c.retain_days, 0);
	assert_string_equal(c.hook, "/usr/local/bin/on-outcome");
	assert_int_equal(c.hook_timeout, 5);
	assert_string_equal(c.socket, "/run/pos/outcomes.sock");
	assert_true(c.socket_ack);
	assert_int_equal(c.max_attempts, 3);
	assert_int_equal(c.events, FORWARD_ALL);
	assert_string_equal(c.control_socket, "ctl.sock");
	assert_int_equal(c.control_mode, 0600);
	assert_string_equal(c.api_base, "http://127.0.0.1:4010");
	assert_string_equal(c.api_key_file, "/etc/k");
	assert_int_equal(c.interval, 1);
	assert_int_equal(c.stale_after, 30);
	assert_int_equal(c.max_backoff, 60);
	assert_int_equal(c.give_up_after, 3600);
	assert_true(c.max_rps == 0.5);
	config_release(&c);
}

/* One bad value: [section] key = value must fail with reason in the message. */
struct bad {
	const char	*section;
	const char	*key;
	const char	*value;
	const char	*reason;
};

static struct bad bad_values[] = {
	{ "http", "listen", "", "must not be empty" },
	{ "http", "listen", "127.0.0.1", "expected host:port" },
	{ "http", "listen", ":8787", "empty host" },
	{ "http", "listen", "127.0.0.1:", "port is not a number" },
	{ "http", "listen", "127.0.0.1:0", "port out of range" },
	{ "http", "listen", "127.0.0.1:65536", "port out of range" },
	{ "http", "listen", "127.0.0.1:99999999999999999999999", "port out of range" },
	{ "http", "listen", "127.0.0.1:80x", "port is not a number" },
	{ "http", "listen", "127.0.0.1:+80", "port is not a number" },
	{ "http", "listen", "127.0.0.1:-80", "port is not a number" },
	{ "http", "listen", "::1:8787", "an IPv6 address must be written in brackets" },
	{ "http", "listen", "a b:80", "not a host name" },
	{ "http", "listen", "[::1]", "expected [address]:port" },
	{ "http", "listen", "[::1]8787", "expected [address]:port" },
	{ "http", "listen", "[::1]:", "port is not a number" },
	{ "http", "listen", "[::1:8787", "missing ']'" },
	{ "http", "listen", "[]:8787", "not an IPv6 address" },
	{ "http", "listen", "[127.0.0.1]:8787", "not an IPv6 address" },
	{ "http", "listen", "[fe80::1%]:8787", "empty IPv6 zone" },
	{ "http", "path", "", "must not be empty" },
	{ "http", "path", "webhooks/vinr", "must start with '/'" },
	{ "http", "path", "/healthz", "is reserved" },
	{ "http", "path", "/metrics", "is reserved" },
	{ "http", "path", "/a b", "must not contain" },
	{ "http", "path", "/hook?x=1", "must not contain" },
	{ "http", "max_body", "12x", "not a positive integer" },
	{ "http", "max_body", "0", "out of range (1 to 67108864)" },
	{ "http", "max_body", "67108865", "out of range" },
	{ "http", "max_body", "-1", "not a positive integer" },
	{ "http", "max_body", "+5", "not a positive integer" },
	{ "http", "max_body", "1.5", "not a positive integer" },
	{ "http", "max_body", "0x10", "not a positive integer" },
	{ "http", "max_body", "99999999999999999999999", "out of range" },
	{ "webhook", "scheme", "hmac", "not vinr or standard" },
	{ "webhook", "scheme", "vinr2", "not vinr or standard" },
	{ "webhook", "tolerance", "0", "out of range (1 to 86400)" },
	{ "webhook", "tolerance", "86401", "out of range" },
	{ "webhook", "tolerance", "-300", "not a positive integer" },
	{ "webhook", "tolerance", "5m", "not a positive integer" },
	{ "storage", "database", "", "must not be empty" },
	{ "storage", "synchronous", "off", "not full or normal" },
	{ "storage", "synchronous", "2", "not full or normal" },
	{ "storage", "retain_days", "-1", "not a non-negative integer" },
	{ "storage", "retain_days", "36501", "out of range (0 to 36500)" },
	{ "storage", "retain_days", "ten", "not a non-negative integer" },
	{ "forward", "hook_timeout", "0", "out of range (1 to 86400)" },
	{ "forward", "hook_timeout", "86401", "out of range" },
	{ "forward", "hook_timeout", "30s", "not a positive integer" },
	{ "forward", "socket_ack", "maybe", "not a boolean" },
	{ "forward", "socket_ack", "2", "not a boolean" },
	{ "forward", "socket_ack", "tru", "not a boolean" },
	{ "forward", "max_attempts", "0", "out of range (1 to 1000)" },
	{ "forward", "max_attempts", "1001", "out of range" },
	{ "forward", "max_attempts", "x", "not a positive integer" },
	{ "forward", "events", "some", "not outcomes or all" },
	{ "forward", "events", "none", "not outcomes or all" },
	{ "control", "mode", "0778", "not an octal file mode" },
	{ "control", "mode", "1000", "out of range (at most 0777)" },
	{ "control", "mode", "01777", "out of range" },
	{ "control", "mode", "rw-rw----", "not an octal file mode" },
	{ "control", "mode", "-660", "not an octal file mode" },
	{ "control", "mode", "0o660", "not an octal file mode" },
	{ "reconciler", "api_base", "", "must not be empty" },
	{ "reconciler", "api_base", "ftp://api.vinr.com", "must start with http:// or https://" },
	{ "reconciler", "api_base", "api.vinr.com", "must start with http:// or https://" },
	{ "reconciler", "api_base", "https://", "no host" },
	{ "reconciler", "api_base", "http:///v1", "no host" },
	{ "reconciler", "api_base", "https://api vinr.com", "must not contain" },
	{ "reconciler", "interval", "0", "out of range (1 to 315360000)" },
	{ "reconciler", "interval", "315360001", "out of range" },
	{ "reconciler", "interval", "1e3", "not a positive integer" },
	{ "reconciler", "stale_after", "-5", "not a positive integer" },
	{ "reconciler", "stale_after", "0", "out of range" },
	{ "reconciler", "max_backoff", "0", "out of range" },
	{ "reconciler", "max_backoff", "15m", "not a positive integer" },
	{ "reconciler", "give_up_after", "315360001", "out of range" },
	{ "reconciler", "give_up_after", "1day", "not a positive integer" },
	{ "reconciler", "max_rps", "0", "out of range" },
	{ "reconciler", "max_rps", "0.0", "out of range" },
	{ "reconciler", "max_rps", "1000.5", "out of range" },
	{ "reconciler", "max_rps", "1e400", "out of range" },
	{ "reconciler", "max_rps", "1e-400", "out of range" },
	{ "reconciler", "max_rps", "-1", "not a positive number" },
	{ "reconciler", "max_rps", "+1", "not a positive number" },
	{ "reconciler", "max_rps", "abc", "not a positive number" },
	{ "reconciler", "max_rps", "nan", "not a positive number" },
	{ "reconciler", "max_rps", "inf", "not a positive number" },
	{ "reconciler", "max_rps", "2x", "not a positive number" },
	{ "reconciler", "max_rps", "0x10", "not a positive number" },
	{ "reconciler", "max_rps", ".", "not a positive number" },
	{ "reconciler", "max_rps", "1e", "not a positive number" },
};
#define NBAD	(sizeof(bad_values) / sizeof(bad_values[0]))

static void
test_bad_value(void **state)
{
	const struct bad	*b = *state;
	struct config		 c;
	char			 conf[512], err[512], want[256];

	/* The key is on line 7. */
	snprintf(conf, sizeof(conf),
	    "# line 1\n"
	    "; line 2\n"
	    "\n"
	    "[control]\n"
	    "  # line 5\n"
	    "[%s]\n"
	    "%s = %s\n"
	    "[storage]\n"
	    "retain_days = 7\n",
	    b->section, b->key, b->value);
	config_defaults(&c);
	memset(err, 'x', sizeof(err));
	assert_int_equal(load_str(&c, conf, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:7: [%s] %s: %s", last_path,
	    b->section, b->key, b->reason);
	assert_contains(err, want);
	/* Never the value (it may be a secret pasted into the wrong key). */
	if (strlen(b->value) >= 3 && strstr(b->reason, b->value) == NULL &&
	    strstr("(true, false, yes, no, on, off, 1, 0)", b->value) == NULL)
		assert_null(strstr(err + strlen(last_path), b->value));
	/* Nothing of the file was applied. */
	assert_null(c.file);
	assert_int_equal(c.retain_days, 90);
	assert_string_equal(c.listen, "127.0.0.1:8787");
	assert_string_equal(c.database, "/var/lib/vinr-webhookd/vinr.db");
	config_release(&c);
}

static void
test_bad_value_message(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nlisten = 127.0.0.1:1\n"
	    "max_body = 12x\n", err, sizeof(err)), -1);
	assert_err(err, ":3: [http] max_body: not a positive integer");
	assert_null(strstr(err, "12x"));
	config_release(&c);
}

/* Every bad value of the file is reported, each on its line; none applied. */
static void
test_every_problem_reported(void **state)
{
	struct config	c;
	char		err[1024];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nmax_body = whsec_pasted\n"
	    "[webhook]\ntolerance = forever\nbogus = 1\n[storage]\nretain_days = 7\n",
	    err, sizeof(err)), -1);
	assert_contains(err, ":2: [http] max_body: not a positive integer\n");
	assert_contains(err, ":4: [webhook] tolerance: not a positive integer\n");
	assert_contains(err, ":5: [webhook] bogus: unknown key");
	assert_null(strstr(err, "whsec_pasted"));
	assert_null(strstr(err, "forever"));
	assert_int_equal(c.retain_days, 90);
	config_release(&c);
}

static void
test_unknown_section(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	/* Reported on its own line even when no key follows. */
	assert_int_equal(load_str(&c, "[http]\nmax_body = 5\n\n[foo]\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":4: unknown section [foo]");
	assert_int_equal(c.max_body, 262144);

	assert_int_equal(load_str(&c, "[http]\n[foo]\nbar = 1\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: unknown section [foo]");

	/* Names are exact: no case folding, no trimming inside brackets. */
	assert_int_equal(load_str(&c, "[HTTP]\n", err, sizeof(err)), -1);
	assert_err(err, ":1: unknown section [HTTP]");
	assert_int_equal(load_str(&c, "[ http ]\n", err, sizeof(err)), -1);
	assert_err(err, ":1: unknown section [\" http \"]");
	assert_int_equal(load_str(&c, "[]\n", err, sizeof(err)), -1);
	assert_err(err, ":1: unknown section [\"\"]");
	config_release(&c);
}

static void
test_unknown_key(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nlisten = 127.0.0.1:1\n"
	    "port = 80\n", err, sizeof(err)), -1);
	assert_err(err, ":3: [http] port: unknown key");

	/* A real key, but of another section. */
	assert_int_equal(load_str(&c, "[webhook]\nlisten = 127.0.0.1:1\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: [webhook] listen: unknown key");

	/* Keys are case-sensitive. */
	assert_int_equal(load_str(&c, "[http]\nListen = 127.0.0.1:1\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: [http] Listen: unknown key");

	/* Before any section. */
	assert_int_equal(load_str(&c, "; hello\nlisten = 127.0.0.1:1\n"
	    "[http]\n", err, sizeof(err)), -1);
	assert_err(err, ":2: listen: key outside any [section]");

	assert_int_equal(load_str(&c, "[http]\n= 5\n", err, sizeof(err)), -1);
	assert_err(err, ":2: [http] \"\": unknown key");
	assert_int_equal(c.listen_port, 8787);
	config_release(&c);
}

static void
test_repeated_key(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nmax_body = 1\n[webhook]\n"
	    "tolerance = 5\n[http]\nmax_body = 2\n", err, sizeof(err)), -1);
	assert_err(err, ":6: [http] max_body: repeated key "
	    "(first set on line 2)");
	assert_int_equal(c.max_body, 262144);

	/* Even when both say the same, or the first one unsets. */
	assert_int_equal(load_str(&c, "[forward]\nhook =\nhook =\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":3: [forward] hook: repeated key "
	    "(first set on line 2)");
	config_release(&c);
}

/* The same name in two sections is two keys; a section may come back. */
static void
test_same_name_other_section(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[forward]\nsocket = /run/a.sock\n"
	    "[control]\nsocket = /run/b.sock\n[forward]\nsocket_ack = on\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.socket, "/run/a.sock");
	assert_string_equal(c.control_socket, "/run/b.sock");
	assert_true(c.socket_ack);
	config_release(&c);
}

static void
test_empty_value_unsets(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c,
	    "[http]\nmax_body = 7\n"
	    "[webhook]\nscheme = standard\nsecret_file = /s\ntolerance = 60\n"
	    "[storage]\nsynchronous = normal\nretain_days = 5\n"
	    "[forward]\nhook = /h\nhook_timeout = 9\nsocket = /x\n"
	    "socket_ack = true\nmax_attempts = 2\nevents = all\n"
	    "[control]\nmode = 0600\n"
	    "[reconciler]\napi_key_file = /k\ninterval = 3\nstale_after = 4\n"
	    "max_backoff = 5\ngive_up_after = 6\nmax_rps = 9\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.tolerance, 60);

	/* A second file over the first: every empty value unsets. */
	assert_int_equal(load_str(&c,
	    "[http]\nmax_body =\n"
	    "[webhook]\nscheme =\nsecret_file =\ntolerance =   ; comment\n"
	    "[storage]\nevent_log =\nsynchronous =\nretain_days =\n"
	    "[forward]\nhook =\nhook_timeout =\nsocket =\nsocket_ack =\n"
	    "max_attempts =\nevents =\n"
	    "[control]\nsocket =\nmode =\n"
	    "[reconciler]\napi_key_file =\ninterval =\nstale_after =\n"
	    "max_backoff =\ngive_up_after =\nmax_rps =\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.max_body, 262144);
	assert_int_equal(c.scheme, SIG_SCHEME_VINR);
	assert_null(c.secret_file);
	assert_int_equal(c.tolerance, 300);
	assert_null(c.event_log);
	assert_int_equal(c.synchronous, 2);
	assert_int_equal(c.retain_days, 90);
	assert_null(c.hook);
	assert_int_equal(c.hook_timeout, 30);
	assert_null(c.socket);
	assert_false(c.socket_ack);
	assert_int_equal(c.max_attempts, 12);
	assert_int_equal(c.events, FORWARD_OUTCOMES);
	assert_null(c.control_socket);
	assert_int_equal(c.control_mode, 0660);
	assert_null(c.api_key_file);
	assert_int_equal(c.interval, 10);
	assert_int_equal(c.stale_after, 120);
	assert_int_equal(c.max_backoff, 900);
	assert_int_equal(c.give_up_after, 86400);
	assert_true(c.max_rps == 2.0);
	/* Keys not in the second file keep what the first set. */
	assert_string_equal(c.listen, "127.0.0.1:8787");
	config_release(&c);
}

static void
test_listen_forms(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nlisten = [::1]:8787\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.listen, "[::1]:8787");
	assert_string_equal(c.listen_host, "::1");
	assert_int_equal(c.listen_port, 8787);

	assert_int_equal(load_str(&c, "[http]\nlisten = [::]:1\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.listen_host, "::");
	assert_int_equal(c.listen_port, 1);

	assert_int_equal(load_str(&c, "[http]\nlisten = [fe80::1%lo]:65535\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.listen_host, "fe80::1%lo");
	assert_int_equal(c.listen_port, 65535);

	assert_int_equal(load_str(&c, "[http]\nlisten = localhost:08080\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.listen, "localhost:08080");
	assert_string_equal(c.listen_host, "localhost");
	assert_int_equal(c.listen_port, 8080);
	config_release(&c);
}

static void
test_value_forms(void **state)
{
	struct config	c;
	char		err[512];
	size_t		i;
	static const struct {
		const char	*v;
		bool		 want;
	} bools[] = {
		{ "true", true }, { "yes", true }, { "on", true }, { "1", true },
		{ "TRUE", true }, { "Yes", true },
		{ "false", false }, { "no", false }, { "off", false },
		{ "0", false }, { "OFF", false },
	};
	char	conf[128];

	(void)state;
	config_defaults(&c);
	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		c.socket_ack = !bools[i].want;
		snprintf(conf, sizeof(conf), "[forward]\nsocket_ack = %s\n",
		    bools[i].v);
		assert_int_equal(load_str(&c, conf, err, sizeof(err)), 0);
		assert_int_equal(c.socket_ack, bools[i].want);
	}

	assert_int_equal(load_str(&c, "[control]\nmode = 0777\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.control_mode, 0777);
	assert_int_equal(load_str(&c, "[control]\nmode = 640\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.control_mode, 0640);
	assert_int_equal(load_str(&c, "[control]\nmode = 0\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.control_mode, 0);

	assert_int_equal(load_str(&c, "[webhook]\nscheme = Standard\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.scheme, SIG_SCHEME_STANDARD);
	assert_int_equal(load_str(&c, "[storage]\nsynchronous = Normal\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.synchronous, 1);
	assert_int_equal(load_str(&c, "[storage]\nsynchronous = FULL\n",
	    err, sizeof(err)), 0);
	assert_int_equal(c.synchronous, 2);

	assert_int_equal(load_str(&c, "[reconciler]\nmax_rps = 1000\n",
	    err, sizeof(err)), 0);
	assert_true(c.max_rps == 1000.0);
	assert_int_equal(load_str(&c, "[reconciler]\nmax_rps = 2.5e-1\n",
	    err, sizeof(err)), 0);
	assert_true(c.max_rps == 0.25);
	assert_int_equal(load_str(&c, "[reconciler]\nmax_rps = .5\n",
	    err, sizeof(err)), 0);
	assert_true(c.max_rps == 0.5);

	/* The bounds themselves are accepted. */
	assert_int_equal(load_str(&c, "[http]\nmax_body = 67108864\n"
	    "[storage]\nretain_days = 36500\n[reconciler]\n"
	    "give_up_after = 315360000\n", err, sizeof(err)), 0);
	assert_int_equal(c.max_body, 67108864);
	assert_int_equal(c.retain_days, 36500);
	assert_int_equal(c.give_up_after, 315360000);

	/* One trailing slash dropped, the scheme lower-cased. */
	assert_int_equal(load_str(&c, "[reconciler]\n"
	    "api_base = https://api.example.com/\n", err, sizeof(err)), 0);
	assert_string_equal(c.api_base, "https://api.example.com");
	assert_int_equal(load_str(&c, "[reconciler]\n"
	    "api_base = HTTPS://Api.Example.com/base//\n", err, sizeof(err)), 0);
	assert_string_equal(c.api_base, "https://Api.Example.com/base/");
	config_release(&c);
}

static void
test_relative_paths(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[storage]\ndatabase = ./var/vinr.db\n"
	    "event_log = events.log\n[forward]\nhook = ../hooks/x\n",
	    err, sizeof(err)), 0);
	assert_string_equal(c.database, "./var/vinr.db");
	assert_string_equal(c.event_log, "events.log");
	assert_string_equal(c.hook, "../hooks/x");
	config_release(&c);
}

static void
test_syntax_errors(void **state)
{
	struct config	c;
	char		err[512];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[http]\nlisten 127.0.0.1:1\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: syntax error: expected [section] or key = value");

	assert_int_equal(load_str(&c, "# x\n[http\nlisten = 127.0.0.1:1\n",
	    err, sizeof(err)), -1);
	assert_contains(err, ":2: syntax error: a [section] without its ]\n");
	assert_contains(err, ":3: listen: key outside any [section]");

	/* No continuation lines: an indented line is just a line. */
	assert_int_equal(load_str(&c, "[forward]\nhook = /bin/a\n"
	    "    /bin/b\n", err, sizeof(err)), -1);
	assert_err(err, ":3: syntax error: expected [section] or key = value");

	/* "name: value" is not the SPEC's syntax, even though inih knows it. */
	assert_int_equal(load_str(&c, "[http]\nlisten: 127.0.0.1:1\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: syntax error: expected [section] or key = value");

	/* Neither a line that cannot be read nor a bad value ends the parse:
	 * every problem is reported (SPEC §6). */
	assert_int_equal(load_str(&c, "[http]\njunk\nmax_body = x\n[nope]\na = 1\n"
	    "[http]\nmax_connections = 0\n", err, sizeof(err)), -1);
	assert_contains(err, ":2: syntax error: expected [section] or key = value\n");
	assert_contains(err, ":3: [http] max_body: not a positive integer\n");
	assert_contains(err, ":4: unknown section [nope]\n");
	assert_null(strstr(err, ":5:"));	/* its keys: said once, at the header */
	assert_contains(err, ":7: [http] max_connections:");
	assert_int_equal(load_str(&c, "[http]\nmax_body = x\njunk\n",
	    err, sizeof(err)), -1);
	assert_contains(err, ":2: [http] max_body: not a positive integer\n");
	assert_contains(err, ":3: syntax error: expected [section] or key = value");
	assert_null(c.file);
	config_release(&c);
}

static void
test_long_line(void **state)
{
	struct config	c;
	char		err[512], conf[1024];

	(void)state;
	config_defaults(&c);
	snprintf(conf, sizeof(conf), "[storage]\n# ok\ndatabase = /%0600d\n"
	    "retain_days = 1\n", 0);
	assert_int_equal(load_str(&c, conf, err, sizeof(err)), -1);
	assert_contains(err, ":3: line too long");
	assert_string_equal(c.database, "/var/lib/vinr-webhookd/vinr.db");

	/* A 150-character path is fine. */
	snprintf(conf, sizeof(conf), "[storage]\ndatabase = /%0149d\n", 0);
	assert_int_equal(load_str(&c, conf, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.database), 150);
	config_release(&c);
}

static void
test_odd_bytes(void **state)
{
	struct config	c;
	char		err[512];
	static const char nul[] = "[http]\nmax_body = 1\0\n";
	static const char bom[] = "\xef\xbb\xbf[http]\nmax_body = 5\n";
	static const char bomfoo[] = "\xef\xbb\xbf[foo]\n";

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_len(&c, nul, sizeof(nul) - 1, err, sizeof(err)),
	    -1);
	assert_err(err, ":2: line contains a NUL byte");

	assert_int_equal(load_str(&c, bom, err, sizeof(err)), 0);
	assert_int_equal(c.max_body, 5);
	assert_int_equal(load_str(&c, bomfoo, err, sizeof(err)), -1);
	assert_err(err, ":1: unknown section [foo]");

	/* A bad value is never shown, odd bytes or not. */
	assert_int_equal(load_str(&c, "[http]\nmax_body = 1\x01\"\\\n",
	    err, sizeof(err)), -1);
	assert_err(err, ":2: [http] max_body: not a positive integer");
	assert_int_equal(load_str(&c, "[http]\nmax_body = 1"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "\n", err, sizeof(err)), -1);
	assert_null(strstr(err, "xxx"));

	/* A tiny err buffer is still NUL-terminated. */
	memset(err, 'x', sizeof(err));
	assert_int_equal(load_str(&c, "[http]\nmax_body = x\n", err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(load_str(&c, "[http]\nmax_body = x\n", NULL, 0), -1);
	config_release(&c);
}

static void
test_unreadable_config(void **state)
{
	struct config	c;
	char		err[512], want[256];

	(void)state;
	config_defaults(&c);
	assert_int_equal(config_load(&c, "/nonexistent/vinr.conf", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/vinr.conf: "
	    "No such file or directory");

	assert_int_equal(config_load(&c, "/tmp", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "/tmp: %s", strerror(EISDIR));
	assert_string_equal(err, want);
	assert_null(c.file);
	config_release(&c);
}

/* A failed load leaves the struct as the last good one left it. */
static void
test_failure_keeps_config(void **state)
{
	struct config	c;
	char		err[512], first[64];

	(void)state;
	config_defaults(&c);
	assert_int_equal(load_str(&c, "[webhook]\ntolerance = 60\n"
	    "[forward]\nhook = /bin/true\n", err, sizeof(err)), 0);
	snprintf(first, sizeof(first), "%s", last_path);
	assert_int_equal(load_str(&c, "[webhook]\ntolerance = 120\n"
	    "[forward]\nhook =\n[http]\nlisten = [::1]:9\nmax_body = 0\n",
	    err, sizeof(err)), -1);
	assert_string_equal(c.file, first);
	assert_int_equal(c.tolerance, 60);
	assert_string_equal(c.hook, "/bin/true");
	assert_string_equal(c.listen_host, "127.0.0.1");
	config_release(&c);
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_release_twice),
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_bad_value_message),
		cmocka_unit_test(test_every_problem_reported),
		cmocka_unit_test(test_unknown_section),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_repeated_key),
		cmocka_unit_test(test_same_name_other_section),
		cmocka_unit_test(test_empty_value_unsets),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_value_forms),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_odd_bytes),
		cmocka_unit_test(test_unreadable_config),
		cmocka_unit_test(test_failure_keeps_config),
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct CMUnitTest *tests;
	char **names;
	size_t i;
	int rc;

	tests = calloc(nfixed + NBAD, sizeof(*tests));
	names = calloc(NBAD, sizeof(*names));
	if (tests == NULL || names == NULL)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (i = 0; i < NBAD; i++) {
		if (asprintf(&names[i], "test_bad_value [%s] %s = \"%s\"",
		    bad_values[i].section, bad_values[i].key,
		    bad_values[i].value) == -1)
			return 1;
		tests[nfixed + i].name = names[i];
		tests[nfixed + i].test_func = test_bad_value;
		tests[nfixed + i].initial_state = &bad_values[i];
	}
	rc = _cmocka_run_group_tests("config", tests, nfixed + NBAD, NULL,
	    NULL);
	for (i = 0; i < NBAD; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
