/*
 * enginebench.c - the writer's engine alone: CPU per stored event of the
 * SQLite engine (store_sqlite.c behind store_engine.h), with no HTTP, no
 * queue and no other thread competing, so that a change of a few
 * microseconds in the writer's path shows above this machine's noise.
 *
 * enginebench [-n EVENTS] [-b BATCH] [-s SYNCHRONOUS] [-p] DIR
 *
 * Ingests EVENTS (40000) events like loadgen's (~650 bytes; each payment
 * goes pending, processing, authorized, completed: every event a
 * transition) in transactions of BATCH (50), synchronous SYNCHRONOUS (0:
 * no fsync, the CPU alone).  Prints the writer thread's CPU per event
 * (CLOCK_THREAD_CPUTIME_ID), the process's (the checkpointer included),
 * wall time and the bytes written per event, the payment cache's hits and
 * misses (store_sqlite_cache.h), and a RESULT line.  Parsing the events is
 * done before and not counted.  -p runs each event in its own savepoint, as
 * store.c's careful run does after a job failed (its first run has none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "store.h"
#include "store_engine.h"
#include "store_sqlite_cache.h"

static double
now_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Bytes this process handed to write(2) and pwrite(2) so far: the WAL's. */
static double
wchar(void)
{
	char line[128];
	double v = 0;
	FILE *f;

	if ((f = fopen("/proc/self/io", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "wchar:", 6) == 0)
			v = atof(line + 6);
	fclose(f);
	return v;
}

static const char *const steps[] = { "pending", "processing", "authorized", "completed" };

int
main(int argc, char **argv)
{
	const struct store_engine *e = &store_sqlite_engine;
	struct store_params params = { .synchronous = 0 };
	struct vinr_event *ev;
	struct store_ingest in;
	struct store_conn *c;
	struct pay_cache_stats cs;
	char **body, path[512], err[256];
	double t0, c0, p0, t1, c1, p1, w0, w1;
	int n = 40000, batch = 50, opt, seq = 1, sp = 0;

	while ((opt = getopt(argc, argv, "n:b:s:p")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 's': params.synchronous = atoi(optarg); break;
		case 'p': sp = 1; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || n < 1 || batch < 1)
		goto usage;
	log_init(0);
	snprintf(path, sizeof(path), "%s/engine.db", argv[optind]);
	if ((ev = calloc((size_t)n, sizeof(*ev))) == NULL ||
	    (body = calloc((size_t)n, sizeof(*body))) == NULL)
		return 1;
	for (int i = 0; i < n; i++) {
		const char *st = steps[i % 4];
		int pay = i / 4;

		if (asprintf(&body[i], "{\"id\":\"evt_%08d\",\"object\":\"event\","
		    "\"type\":\"terminal_payment.%s\",\"createdAt\":\"2026-06-11T09:00:12Z\","
		    "\"livemode\":false,\"data\":{\"object\":{\"id\":\"tpay_%08d\","
		    "\"object\":\"terminal_payment\",\"terminalId\":\"term_01HZ5QXYZ%02d\","
		    "\"amount\":%d,\"currency\":\"USD\",\"reference\":\"order_%08d\","
		    "\"status\":\"%s\",\"captureMethod\":\"automatic\","
		    "\"responseMode\":\"sync\",\"entryMethod\":\"contactless\","
		    "\"last4\":\"4242\",\"brand\":\"visa\","
		    "\"createdAt\":\"2026-06-11T09:00:10Z\",\"authCode\":\"A12345\","
		    "\"metadata\":{\"lane\":\"%d\",\"cashier\":\"c%d\"}}}}",
		    i, st, pay, pay % 100, 100 + pay % 9000, pay, st, pay % 7, pay % 50) < 0 ||
		    event_parse(body[i], strlen(body[i]), NULL, &ev[i]) != EVENT_OK) {
			fprintf(stderr, "enginebench: event %d\n", i);
			return 1;
		}
	}
	if ((c = e->open(path, &params, err, sizeof(err))) == NULL) {
		fprintf(stderr, "enginebench: %s\n", err);
		return 1;
	}
	w0 = wchar();
	t0 = now_us(CLOCK_MONOTONIC);
	c0 = now_us(CLOCK_THREAD_CPUTIME_ID);
	p0 = now_us(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < n; i += batch) {
		if (e->begin(c) != 0)
			return 1;
		for (int k = i; k < n && k < i + batch; k++) {
			in = (struct store_ingest){ .ev = &ev[k], .body = body[k],
			    .bodylen = strlen(body[k]), .source = "webhook" };
			if ((sp && e->savepoint(c) != 0) ||
			    e->ingest(c, &in, "2026-06-11T09:00:13.000Z", seq) != 0 ||
			    in.result != INGEST_ACCEPTED || in.seq != seq ||
			    (sp && e->release(c) != 0)) {
				fprintf(stderr, "enginebench: ingest %d failed\n", k);
				return 1;
			}
			seq++;
		}
		if (e->commit(c) != 0)
			return 1;
	}
	t1 = now_us(CLOCK_MONOTONIC);
	c1 = now_us(CLOCK_THREAD_CPUTIME_ID);
	p1 = now_us(CLOCK_PROCESS_CPUTIME_ID);
	w1 = wchar();
	store_sqlite_cache_stats(c, &cs);
	e->close(c);
	printf("enginebench: %d events, batches of %d, synchronous %d%s: writer %.1f us, "
	    "process %.1f us CPU per event, %.1f us wall, %.0f B written per event "
	    "(WAL and checkpoints); payment cache %llu hits, %llu misses, %llu clears\n",
	    n, batch, params.synchronous, sp ? ", savepoints" : "",
	    (c1 - c0) / n, (p1 - p0) / n, (t1 - t0) / n, (w1 - w0) / n,
	    (unsigned long long)cs.hits, (unsigned long long)cs.misses,
	    (unsigned long long)cs.clears);
	printf("RESULT writer_us=%.1f process_us=%.1f wall_us=%.1f bytes=%.0f\n",
	    (c1 - c0) / n, (p1 - p0) / n, (t1 - t0) / n, (w1 - w0) / n);
	for (int i = 0; i < n; i++) {
		event_release(&ev[i]);
		free(body[i]);
	}
	free(ev);
	free(body);
	return 0;
usage:
	fprintf(stderr, "usage: enginebench [-n events] [-b batch] [-s synchronous] [-p] dir\n");
	return 2;
}
