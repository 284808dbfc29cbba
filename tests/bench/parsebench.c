/*
 * parsebench.c - the HTTP worker's own per-request work, alone: what
 * event_parse() (cJSON parse, the payment fields, jsonnum), the 200 body,
 * a loadgen-like body's jsonnum lookup, the Vinr-Signature check (one key,
 * and two keys with the sender on the second: a rotation) and the UTF-8
 * check of the body cost, in thread CPU time; and what the size of the
 * body's buffer does to the parse that follows (http.c allocates it per
 * request: 4 KiB, or since this round the declared Content-Length).
 *
 * The daemon's per-thread CPU moves by +-5 us per event from run to run on
 * the shared 2-core machine; these figures are the minimum of ROUNDS runs
 * of N iterations each, so a change of a few hundred ns shows.  Compare two
 * builds by running their parsebench alternately.
 *
 * usage: parsebench [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "http_reply.h"
#include "jsonnum.h"
#include "signature.h"
#include "util.h"

#define ROUNDS	7

/* The body build/loadgen sends for a completed payment. */
static const char body[] =
    "{\"id\":\"evt_r1a2b3c4_0000000000012345\",\"object\":\"event\","
    "\"type\":\"terminal_payment.completed\",\"createdAt\":\"2026-06-11T09:00:12Z\","
    "\"livemode\":false,\"data\":{\"object\":{\"id\":\"tpay_r1a2b3c4_0000000000001234\","
    "\"object\":\"terminal_payment\",\"terminalId\":\"term_01HZ5QXYZ07\","
    "\"amount\":12345,\"currency\":\"USD\",\"reference\":\"order_r1a2b3c4_0000000000001234\","
    "\"status\":\"completed\",\"captureMethod\":\"automatic\","
    "\"responseMode\":\"sync\",\"entryMethod\":\"contactless\","
    "\"last4\":\"4242\",\"brand\":\"visa\","
    "\"createdAt\":\"2026-06-11T09:00:10Z\",\"completedAt\":\"2026-06-11T09:00:33Z\","
    "\"authCode\":\"A12345\",\"metadata\":{\"lane\":\"7\",\"cashier\":\"c12\"}}}}";

static double
cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

enum what {
	W_EVENT, W_CJSON, W_JSONNUM, W_REPLY, W_SIG, W_SIG2, W_UTF8, W_BUF4K,
	W_BUFLEN
};

#define NOW	1781168412LL

/* Two keys: the sender signs with the second, the first is an old one. */
static struct sig_key keys[2];
static char sighdr[128];

/* One round of n iterations of w; returns ns per iteration, or -1. */
static double
round_of(enum what w, int n, const cJSON *root, const cJSON *amount)
{
	struct vinr_event ev;
	size_t len = sizeof(body) - 1;
	char out[HTTP_REPLY_SIZE(64)];
	volatile size_t sink = 0;
	char *buf;
	int64_t v;
	double t0 = cpu_ns();

	for (int i = 0; i < n; i++) {
		switch (w) {
		case W_EVENT:
			if (event_parse(body, len, NULL, &ev) != EVENT_OK)
				return -1;
			event_release(&ev);
			break;
		case W_CJSON:
			cJSON_Delete(cJSON_ParseWithLength(body, len));
			break;
		case W_JSONNUM:
			if (jsonnum_value(body, len, root, amount, &v) != JSONNUM_OK)
				return -1;
			break;
		case W_REPLY:
			sink += http_reply_received(out, "evt_r1a2b3c4_0000000000012345",
			    false, false);
			break;
		case W_SIG:
			if (sig_verify_vinr(sighdr, body, len, keys + 1, 1, NOW,
			    300) != SIG_OK)
				return -1;
			break;
		case W_SIG2:
			/* The old key first, as during a rotation. */
			if (sig_verify_vinr(sighdr, body, len, keys, 2, NOW,
			    300) != SIG_OK)
				return -1;
			break;
		case W_UTF8:
			if (!util_utf8_valid(body, len))
				return -1;
			break;
		case W_BUF4K:
		case W_BUFLEN:
			/* The request's buffer, the body copied in, parsed. */
			if ((buf = malloc(w == W_BUF4K ? 4096 : len)) == NULL)
				return -1;
			memcpy(buf, body, len);
			if (event_parse(buf, len, NULL, &ev) != EVENT_OK)
				return -1;
			event_release(&ev);
			free(buf);
			break;
		}
	}
	(void)sink;
	return (cpu_ns() - t0) / n;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {
		"event_parse + event_release", "  of which cJSON parse + delete",
		"jsonnum_value (the amount)", "the 200 body (http_reply_received)",
		"sig_verify_vinr (1 key)", "sig_verify_vinr (2 keys, 2nd matches)",
		"util_utf8_valid (the body)",
		"body in a 4 KiB buffer + event_parse",
		"body in a buffer of its size + event_parse"
	};
	int n = argc > 1 ? atoi(argv[1]) : 100000;
	cJSON *root = cJSON_ParseWithLength(body, sizeof(body) - 1);
	const cJSON *amount;
	double best, t;

	amount = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "data"),
	    "object"), "amount");
	if (n <= 0 || amount == NULL)
		return 2;
	if (sig_key_from_secret(SIG_SCHEME_VINR, "whsec_parsebench_key_0001",
	    &keys[0]) == -1 ||
	    sig_key_from_secret(SIG_SCHEME_VINR, "whsec_parsebench_key_0002",
	    &keys[1]) == -1 ||
	    sig_sign_vinr(&keys[1], NOW, body, sizeof(body) - 1, sighdr,
	    sizeof(sighdr)) < 0)
		return 2;
	for (int w = W_EVENT; w <= W_BUFLEN; w++) {
		best = -1;
		for (int r = 0; r < ROUNDS; r++) {
			if ((t = round_of(w, n, root, amount)) < 0) {
				fprintf(stderr, "parsebench: %s failed\n", names[w]);
				return 1;
			}
			if (best < 0 || t < best)
				best = t;
		}
		printf("%-40s %8.0f ns\n", names[w], best);
	}
	cJSON_Delete(root);
	sig_key_release(&keys[0]);
	sig_key_release(&keys[1]);
	return 0;
}
