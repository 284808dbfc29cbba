/*
 * test_control_hook.c - the control socket's reconciler hook (control.h):
 * "reconcile" handed to a fake reconciler that answers from its own thread
 * through control_reconcile_done(), errors passed through, a refused request,
 * the stats callback, and control_stop() waiting for an answer still out.
 *
 * The real reconciler is wired in main.c; this checks control.c's side of
 * the contract with a real store and a real socket.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "util.h"

/* The fake: answers each request after delay_ms on a thread of its own. */
struct fake {
	const char	*error;		/* what to answer; NULL = done */
	bool		 changed;
	bool		 refuse;	/* reconcile() returns -1 */
	int		 delay_ms;
	atomic_int	 calls;
};

struct answer {
	struct fake	*f;
	void		*req;
};

static void *
answer_later(void *arg)
{
	struct answer *a = arg;

	usleep((useconds_t)a->f->delay_ms * 1000);
	control_reconcile_done(a->req, a->f->error, a->f->error ? "said VINR" : NULL,
	    a->f->changed);
	free(a);
	return NULL;
}

static int
fake_reconcile(void *arg, const char *payment_id, void *req)
{
	struct fake *f = arg;
	struct answer *a;
	pthread_t t;

	(void)payment_id;
	atomic_fetch_add(&f->calls, 1);
	if (f->refuse)
		return -1;
	a = malloc(sizeof(*a));
	a->f = f;
	a->req = req;
	if (pthread_create(&t, NULL, answer_later, a) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

/* The stats callback: a STATS object of its own making. */
static cJSON *
fake_stats(void *arg)
{
	struct fake *f = arg;
	cJSON *st = cJSON_CreateObject(), *rc;

	rc = cJSON_AddObjectToObject(st, "reconciler");
	cJSON_AddStringToObject(rc, "state", "ok");
	cJSON_AddNumberToObject(rc, "requests", atomic_load(&f->calls));
	cJSON_AddNumberToObject(rc, "errors", 7);
	return st;
}

struct fixture {
	char			 dir[64];
	char			 sock[128];
	struct store		*store;
	struct control		*ctl;
	struct fake		 fake;
	struct control_reconciler rc;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct control_params p = { 0 };
	char db[128], err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/vinr-test-ctl-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(db, sizeof(db), "%s/vinr.db", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/control.sock", f->dir);
	if ((f->store = store_open(db, 1, err, sizeof(err))) == NULL ||
	    store_start(f->store) == -1)
		return -1;
	f->rc = (struct control_reconciler){ fake_reconcile, &f->fake };
	p.path = f->sock;
	p.mode = 0600;
	p.store = f->store;
	p.stats = fake_stats;
	p.stats_arg = &f->fake;
	p.reconciler = &f->rc;
	if ((f->ctl = control_start(&p, err, sizeof(err))) == NULL) {
		print_error("control_start: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	control_free(f->ctl);
	store_free(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Sends one line and reads the answer line, parsed. */
static cJSON *
ask(int fd, const char *line)
{
	char buf[8192];
	size_t n = 0;
	ssize_t r;

	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	while (n == 0 || buf[n - 1] != '\n') {
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		assert_true(r > 0);
		n += (size_t)r;
	}
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
test_reconcile_answers(void **state)
{
	struct fixture *f = *state;
	struct payment in = { .id = "tpay_r", .livemode = -1 };
	int fd = connect_to(f->sock);
	cJSON *r;

	/* Done, payment known: the payment and "changed". */
	assert_int_equal(store_track(f->store, &in, NULL), 0);
	f->fake.changed = true;
	f->fake.delay_ms = 50;
	r = ask(fd, "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_r\",\"id\":5}\n");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "changed")));
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "id")->valueint, 5);
	assert_string_equal(str(cJSON_GetObjectItemCaseSensitive(r, "payment"), "paymentId"),
	    "tpay_r");
	cJSON_Delete(r);

	/* VINR's errors pass through. */
	f->fake.error = "upstream_error";
	r = ask(fd, "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_r\"}\n");
	assert_string_equal(str(r, "error"), "upstream_error");
	assert_string_equal(str(r, "message"), "said VINR");
	cJSON_Delete(r);
	f->fake.error = "not_found";
	r = ask(fd, "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_x\"}\n");
	assert_string_equal(str(r, "error"), "not_found");
	cJSON_Delete(r);

	/* A refused request is internal, and the connection goes on. */
	f->fake.refuse = true;
	r = ask(fd, "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_r\"}\n");
	assert_string_equal(str(r, "error"), "internal");
	cJSON_Delete(r);

	/* The stats hook. */
	r = ask(fd, "{\"cmd\":\"stats\"}\n");
	{
		const cJSON *rc = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(r, "stats"), "reconciler");

		assert_string_equal(str(rc, "state"), "ok");
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(rc, "requests")->valueint, 4);
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(rc, "errors")->valueint, 7);
	}
	cJSON_Delete(r);
	assert_int_equal(control_clients(f->ctl), 1);
	assert_true(control_alive(f->ctl));
	close(fd);
}

/* The client hangs up while its reconcile is out: the answer is dropped. */
static void
test_reconcile_client_gone(void **state)
{
	struct fixture *f = *state;
	const char *line = "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_gone\"}\n";
	int fd = connect_to(f->sock);

	f->fake.delay_ms = 200;
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	usleep(50 * 1000);
	close(fd);
	usleep(300 * 1000);
	assert_int_equal(atomic_load(&f->fake.calls), 1);
	assert_int_equal(control_clients(f->ctl), 0);
}

/* control_stop() waits for an answer still out (teardown stops at once). */
static void
test_stop_waits_for_reconcile(void **state)
{
	struct fixture *f = *state;
	const char *line = "{\"cmd\":\"reconcile\",\"paymentId\":\"tpay_s\"}\n";
	int fd = connect_to(f->sock);
	int64_t t0;

	f->fake.delay_ms = 300;
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	while (atomic_load(&f->fake.calls) == 0)
		usleep(1000);
	t0 = util_mono_ms();
	control_stop(f->ctl);
	assert_true(util_mono_ms() - t0 >= 200);
	control_free(f->ctl);
	f->ctl = NULL;
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reconcile_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_client_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_waits_for_reconcile, setup, teardown),
	};

	log_init(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
