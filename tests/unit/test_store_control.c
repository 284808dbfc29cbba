/*
 * test_store_control.c - unit tests of the store's jobs and reads for the
 * control socket and the sinks' replays: store_track(), store_replay(),
 * store_dead_delivered(), their _async forms, and store_reader_payment(),
 * _find(), _pending(), _dead(), _dead_count(), _replays(), _transitions().
 *
 * Each test gets a fresh database in its own temporary directory and a
 * running writer; everything goes through the public API.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_read.h"

#include "store_fixture.h"

/* Ingests a webhook for payment id with status and extra payment fields. */
static int64_t
ingest(struct fixture *f, const char *id, const char *status, const char *extra)
{
	static int n;
	struct store_ingest in = { 0 };
	struct vinr_event ev;
	char body[1024];

	snprintf(body, sizeof(body), "{\"id\":\"evt_%d\",\"type\":\"terminal_payment.%s\","
	    "\"createdAt\":\"2026-06-11T09:00:12Z\",\"livemode\":true,\"data\":{\"object\":{\"id\":\"%s\","
	    "\"status\":\"%s\"%s%s}}}", ++n, status, id, status, *extra ? "," : "", extra);
	assert_int_equal(event_parse(body, strlen(body), NULL, &ev), EVENT_OK);
	in.ev = &ev;
	in.body = body;
	in.bodylen = strlen(body);
	in.source = "webhook";
	store_ingest(f->store, &in);
	assert_int_equal(in.result, INGEST_ACCEPTED);
	event_release(&ev);
	return in.seq;
}

static cJSON *
get(struct fixture *f, const char *id)
{
	cJSON *p = NULL;

	assert_int_equal(store_reader_payment(f->reader, id, &p), 1);
	return p;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The reader writes integers as raw JSON text (exact, see jsonnum.h). */
static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_true(cJSON_IsRaw(v) || cJSON_IsNumber(v));
	return cJSON_IsRaw(v) ? strtod(v->valuestring, NULL) : v->valuedouble;
}

static void
test_payment_keys_in_order(void **state)
{
	static const char *const keys[] = {
		"paymentId", "terminalId", "reference", "status", "amount",
		"amountCaptured", "currency", "captureMethod", "entryMethod", "brand",
		"last4", "authCode", "declineCode", "livemode", "createdAt", "updatedAt",
		"lastEventId", "tracked", "reconcile", NULL
	};
	struct fixture *f = *state;
	cJSON *p, *k, *rc;
	int i = 0;

	ingest(f, "tpay_1", "completed", "\"amount\":2500");
	p = get(f, "tpay_1");
	cJSON_ArrayForEach(k, p)
		assert_string_equal(k->string, keys[i++]);
	assert_null(keys[i]);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "livemode")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "tracked")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "currency")));
	assert_string_equal(str(p, "lastEventId"), "evt_1");
	rc = cJSON_GetObjectItemCaseSensitive(p, "reconcile");
	assert_int_equal((int)num(rc, "attempts"), 0);
	assert_string_equal(str(rc, "state"), "idle");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rc, "nextAt")));
	cJSON_Delete(p);
	p = (cJSON *)1;
	assert_int_equal(store_reader_payment(f->reader, "tpay_none", &p), 0);
	assert_null(p);
}

static void
test_track_unknown_and_known(void **state)
{
	struct fixture *f = *state;
	struct payment in = { .id = "tpay_t", .reference = "order_1", .currency = "EUR",
	    .has_amount = true, .amount = 990, .livemode = -1, .status = PAY_COMPLETED };
	struct payment out;
	cJSON *p;

	assert_int_equal(store_track(f->store, &in, &out), 0);
	assert_int_equal(out.status, PAY_PENDING);	/* in->status is ignored */
	assert_string_equal(out.reference, "order_1");
	assert_int_equal(out.amount, 990);
	payment_release(&out);
	assert_int_equal(store_last_seq(f->store), 0);	/* no outcome */
	p = get(f, "tpay_t");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "tracked")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "lastEventId")));
	cJSON_Delete(p);

	/* Known: keeps its status and fields, gains the missing ones. */
	ingest(f, "tpay_k", "authorized", "\"amount\":100");
	in.id = "tpay_k";
	assert_int_equal(store_track(f->store, &in, NULL), 0);
	p = get(f, "tpay_k");
	assert_string_equal(str(p, "status"), "authorized");
	assert_int_equal((int)num(p, "amount"), 100);
	assert_string_equal(str(p, "reference"), "order_1");
	assert_string_equal(str(p, "currency"), "EUR");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "tracked")));
	cJSON_Delete(p);
	assert_int_equal(store_last_seq(f->store), 1);

	/* A transition later keeps tracked. */
	ingest(f, "tpay_t", "completed", "");
	p = get(f, "tpay_t");
	assert_string_equal(str(p, "status"), "completed");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "tracked")));
	cJSON_Delete(p);
}

struct done {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 calls;
	int		 rc;
};

static void
on_done(void *arg, int rc)
{
	struct done *d = arg;

	pthread_mutex_lock(&d->mu);
	d->calls++;
	d->rc = rc;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static int
wait_done(struct done *d)
{
	pthread_mutex_lock(&d->mu);
	while (d->calls == 0)
		pthread_cond_wait(&d->cv, &d->mu);
	d->calls = 0;
	pthread_mutex_unlock(&d->mu);
	return d->rc;
}

static void
test_async_jobs(void **state)
{
	struct fixture *f = *state;
	struct done d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -2 };
	struct payment in = { .id = "tpay_a", .livemode = -1 };
	int64_t seq;
	cJSON *p;

	assert_int_equal(store_track_async(f->store, &in, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 0);
	p = get(f, "tpay_a");
	assert_string_equal(str(p, "status"), "pending");
	cJSON_Delete(p);

	seq = ingest(f, "tpay_a", "failed", "");
	assert_int_equal(store_dead_letter(f->store, "hook", seq, 3, "exit 1"), 0);
	assert_int_equal(store_replay_async(f->store, "hook", seq, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 0);
	assert_int_equal(store_replay_async(f->store, "hook", seq + 1, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(store_replay_async(f->store, "socket", seq, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);

	/* After stop: refused, and done is never called. */
	store_stop(f->store);
	assert_int_equal(store_track_async(f->store, &in, on_done, &d), -1);
	assert_int_equal(store_track(f->store, &in, NULL), -1);
	assert_int_equal(d.calls, 0);
}

static int
collect_replay(void *arg, int64_t seq, const char *json, int jsonlen)
{
	cJSON *arr = arg, *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "seq", (double)seq);
	if (json != NULL)
		cJSON_AddItemToObject(o, "outcome", cJSON_ParseWithLength(json, (size_t)jsonlen));
	cJSON_AddItemToArray(arr, o);
	return 0;
}

static void
test_replay_and_delivered(void **state)
{
	struct fixture *f = *state;
	int64_t s1, s2, s3;
	uint64_t v;
	cJSON *arr, *dead, *o;
	int efd;

	s1 = ingest(f, "tpay_r1", "completed", "");
	s2 = ingest(f, "tpay_r2", "failed", "");
	s3 = ingest(f, "tpay_r3", "cancelled", "");
	assert_int_equal(store_dead_letter(f->store, "hook", s1, 12, "exit status 1"), 0);
	assert_int_equal(store_dead_letter(f->store, "hook", s2, 12, "timeout"), 0);
	assert_int_equal(store_dead_letter(f->store, "socket", s3, 5, NULL), 0);
	assert_int_equal(store_reader_dead_count(f->reader, "hook"), 2);
	assert_int_equal(store_reader_dead_count(f->reader, "socket"), 1);
	assert_int_equal(store_reader_dead_count(f->reader, "eventlog"), 0);

	dead = store_reader_dead(f->reader);
	assert_int_equal(cJSON_GetArraySize(dead), 3);
	o = cJSON_GetArrayItem(dead, 0);
	assert_string_equal(str(o, "sink"), "hook");
	assert_int_equal((int)num(o, "seq"), (int)s1);
	assert_int_equal((int)num(o, "attempts"), 12);
	assert_string_equal(str(o, "lastError"), "exit status 1");
	assert_non_null(str(o, "at"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(dead, 2), "lastError")));
	cJSON_Delete(dead);

	/* Nothing to replay yet. */
	arr = cJSON_CreateArray();
	assert_int_equal(store_reader_replays(f->reader, "hook", collect_replay, arr), 0);
	cJSON_Delete(arr);

	/* A replay wakes the listeners. */
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(store_add_listener(f->store, efd), 0);
	assert_int_equal(store_replay(f->store, "hook", s2), 0);
	assert_int_equal(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_int_equal(store_replay(f->store, "hook", 999), 1);
	store_remove_listener(f->store, efd);
	close(efd);

	arr = cJSON_CreateArray();
	assert_int_equal(store_reader_replays(f->reader, "hook", collect_replay, arr), 1);
	o = cJSON_GetArrayItem(arr, 0);
	assert_int_equal((int)num(o, "seq"), (int)s2);
	assert_string_equal(str(cJSON_GetObjectItemCaseSensitive(o, "outcome"), "paymentId"),
	    "tpay_r2");
	cJSON_Delete(arr);

	/* Delivered: it leaves the dead list; twice is no error. */
	assert_int_equal(store_dead_delivered(f->store, "hook", s2), 0);
	assert_int_equal(store_dead_delivered(f->store, "hook", s2), 0);
	assert_int_equal(store_reader_dead_count(f->reader, "hook"), 1);
	arr = cJSON_CreateArray();
	assert_int_equal(store_reader_replays(f->reader, "hook", collect_replay, arr), 0);
	cJSON_Delete(arr);
	/* A new dead letter for the same (sink, seq) is not a replay. */
	assert_int_equal(store_replay(f->store, "hook", s1), 0);
	assert_int_equal(store_dead_letter(f->store, "hook", s1, 1, "again"), 0);
	arr = cJSON_CreateArray();
	assert_int_equal(store_reader_replays(f->reader, "hook", collect_replay, arr), 0);
	cJSON_Delete(arr);
}

static void
test_find_and_pending(void **state)
{
	struct fixture *f = *state;
	struct payment in = { .id = "tpay_f0", .reference = "ref_x", .livemode = -1 };
	cJSON *arr;

	ingest(f, "tpay_f1", "pending", "\"reference\":\"ref_x\","
	    "\"createdAt\":\"2026-06-11T09:00:01Z\"");
	ingest(f, "tpay_f2", "completed", "\"reference\":\"ref_x\","
	    "\"createdAt\":\"2026-06-11T09:00:03Z\"");
	ingest(f, "tpay_f3", "processing", "\"reference\":\"ref_y\"");
	/* Tracked now, no createdAt: counts by updatedAt, the newest. */
	assert_int_equal(store_track(f->store, &in, NULL), 0);

	arr = store_reader_find(f->reader, "ref_x");
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "paymentId"), "tpay_f0");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 1), "paymentId"), "tpay_f2");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 2), "paymentId"), "tpay_f1");
	cJSON_Delete(arr);
	arr = store_reader_find(f->reader, "ref_none");
	assert_int_equal(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);

	arr = store_reader_pending(f->reader, 0);
	assert_int_equal(cJSON_GetArraySize(arr), 3);	/* f1, f3, f0; not f2 */
	cJSON_Delete(arr);
	arr = store_reader_pending(f->reader, 3600);
	assert_int_equal(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);
}

static int
count_transition(void *arg, int64_t seq, const char *payment_id, const char *status)
{
	int *n = arg;

	(void)seq;
	assert_non_null(payment_id);
	assert_non_null(status);
	(*n)++;
	return 0;
}

static void
test_transitions(void **state)
{
	struct fixture *f = *state;
	int n = 0;

	ingest(f, "tpay_x", "pending", "");
	ingest(f, "tpay_x", "completed", "");
	ingest(f, "tpay_y", "failed", "");
	assert_int_equal(store_reader_transitions(f->reader, 1, 10, count_transition, &n), 2);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(store_reader_transitions(f->reader, 0, 1, count_transition, &n), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_payment_keys_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_track_unknown_and_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_and_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_and_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
	};

	log_init(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
