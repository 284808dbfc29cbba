/*
 * stats.c - see stats.h.
 *
 * Threads: stats_take() runs on whichever thread asks (libmicrohttpd's for
 * /metrics and /healthz, the control thread for "stats", main for the
 * watchdog).  It only reads atomics and the store's metrics (under the
 * store's lock), so it never waits for the disk.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "jsonnum.h"
#include "payment.h"
#include "sink.h"
#include "stats.h"
#include "util.h"

static void
note(char (*list)[STATS_NOTE_LEN], int *n, const char *fmt, const char *arg)
{
	if (*n < STATS_MAX_NOTES)
		snprintf(list[(*n)++], STATS_NOTE_LEN, fmt, arg);
}

/*
 * Health: whether every thread ticks (a failing disk is not a stuck thread:
 * restarting would not mend it, so of the writer only a stall counts
 * there), then whether the database is writable.  Ingest still works while
 * the reconciler waits for a new key or a sink cannot deliver: warnings.
 */
static void
take_health(const struct stats_source *src, struct control *ctl, struct stats *st)
{
	const char *why = NULL;
	bool store_ok = store_healthy(src->store, &why);
	bool writer_stalled = !store_ok && strcmp(why, "writer_stalled") == 0;

	if (writer_stalled)
		note(st->reasons, &st->nreasons, "%s", why);
	for (int i = 0; i < st->nsinks; i++)
		if (!st->sinks[i].alive)
			note(st->reasons, &st->nreasons, "%s_stalled", st->sinks[i].name);
	if (ctl != NULL && !control_alive(ctl))
		note(st->reasons, &st->nreasons, "%s_stalled", "control");
	if (!reconcile_alive(atomic_load(&src->reconciler)))
		note(st->reasons, &st->nreasons, "%s_stalled", "reconciler");
	if (!gateway_alive(atomic_load(&src->gateway)))
		note(st->reasons, &st->nreasons, "%s_stalled", "gateway");
	st->threads_ok = st->nreasons == 0;
	if (!store_ok && !writer_stalled)
		note(st->reasons, &st->nreasons, "%s", why);
	st->healthy = st->nreasons == 0;

	if (st->reconciler.state == RC_PAUSED)
		note(st->warnings, &st->nwarnings, "%s", "reconciler_paused");
	for (int i = 0; i < st->nsinks; i++)
		if (st->sinks[i].failing)
			note(st->warnings, &st->nwarnings, "sink_failing:%s", st->sinks[i].name);
}

void
stats_take(const struct stats_source *src, struct stats *st)
{
	struct control *ctl = atomic_load(&src->control);

	memset(st, 0, sizeof(*st));
	http_stats_get(atomic_load(&src->http), &st->webhooks);
	if (src->swap != NULL)
		pthread_mutex_lock(src->swap);
	for (int i = 0; i < src->nsinks; i++) {
		struct stats_sink *s = &st->sinks[st->nsinks];
		struct sink *k = src->sinks[i];

		if (k == NULL)
			continue;	/* not running here (not the leader) */
		s->name = sink_name(k);
		s->cursor = sink_cursor(k);
		s->dead = sink_dead_letters(k);
		s->alive = sink_alive(k);
		s->failing = sink_failing(k);
		st->nsinks++;
	}
	/* After the cursors: a cursor never passes the seq read after it. */
	st->last_seq = store_last_seq(src->store);
	for (int i = 0; i < st->nsinks; i++) {
		struct stats_sink *s = &st->sinks[i];

		s->lag = st->last_seq > s->cursor ? st->last_seq - s->cursor : 0;
	}
	reconcile_stats_get(atomic_load(&src->reconciler), &st->reconciler);
	st->leader = atomic_load(&src->leader);
	gateway_stats_get(atomic_load(&src->gateway), &st->api);
	st->control_clients = ctl != NULL ? control_clients(ctl) : 0;
	store_metrics_get(src->store, &st->store);
	st->uptime_s = (util_mono_ms() - src->started_ms) / 1000;
	take_health(src, ctl, st);
	if (src->swap != NULL)
		pthread_mutex_unlock(src->swap);
}

/* A Prometheus histogram from per-bucket counts (the last is +Inf). */
static void
histogram(FILE *f, const char *name, const char *help, const double *bounds,
    const uint64_t *counts, double sum, const char *sumfmt)
{
	uint64_t cum = 0;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < STORE_HIST_BUCKETS; i++) {
		cum += counts[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
		    (unsigned long long)cum);
	}
	cum += counts[STORE_HIST_BUCKETS];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)cum,
	    name);
	fprintf(f, sumfmt, sum);
	fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)cum);
}

static void
metrics_webhooks(FILE *f, const struct http_stats *w)
{
	fprintf(f, "# HELP vinr_webhooks_total Webhook deliveries by result.\n"
	    "# TYPE vinr_webhooks_total counter\n");
	fprintf(f, "vinr_webhooks_total{result=\"accepted\"} %llu\n",
	    (unsigned long long)w->accepted);
	fprintf(f, "vinr_webhooks_total{result=\"duplicate\"} %llu\n",
	    (unsigned long long)w->duplicate);
	fprintf(f, "vinr_webhooks_total{result=\"ignored\"} %llu\n",
	    (unsigned long long)w->ignored);
	for (int i = 0; i < REJ_COUNT; i++)
		fprintf(f, "vinr_webhooks_total{result=\"rejected\",reason=\"%s\"} %llu\n",
		    http_reject_name(i), (unsigned long long)w->rejected[i]);
}

static void
metrics_sinks(FILE *f, const struct stats *st)
{
	fprintf(f, "# HELP vinr_sink_lag Outcomes not yet delivered by a sink.\n"
	    "# TYPE vinr_sink_lag gauge\n");
	for (int i = 0; i < st->nsinks; i++)
		fprintf(f, "vinr_sink_lag{sink=\"%s\"} %lld\n", st->sinks[i].name,
		    (long long)st->sinks[i].lag);
	fprintf(f, "# HELP vinr_sink_dead_letters Dead letters waiting, per sink.\n"
	    "# TYPE vinr_sink_dead_letters gauge\n");
	for (int i = 0; i < st->nsinks; i++)
		fprintf(f, "vinr_sink_dead_letters{sink=\"%s\"} %lld\n", st->sinks[i].name,
		    (long long)st->sinks[i].dead);
}

char *
stats_render_metrics(const struct stats *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	metrics_webhooks(f, &st->webhooks);
	fprintf(f, "# HELP vinr_outcome_last_seq The last outcome seq committed.\n"
	    "# TYPE vinr_outcome_last_seq gauge\nvinr_outcome_last_seq %lld\n",
	    (long long)st->last_seq);
	metrics_sinks(f, st);
	fprintf(f, "# HELP vinr_outcomes_total Payment transitions recorded, by new status.\n"
	    "# TYPE vinr_outcomes_total counter\n");
	for (int i = PAY_PENDING; i <= PAY_CANCELLED; i++)
		fprintf(f, "vinr_outcomes_total{status=\"%s\"} %llu\n", pay_status_name(i),
		    (unsigned long long)st->store.outcomes_by_status[i]);
	histogram(f, "vinr_commit_seconds", "Time to run and commit one transaction.",
	    store_commit_bounds, st->store.commit_hist, st->store.commit_seconds_sum, "%g");
	histogram(f, "vinr_commit_batch_size", "Jobs (mostly webhooks) per transaction.",
	    store_batch_bounds, st->store.batch_hist, (double)st->store.batch_sum, "%.0f");
	fprintf(f, "# HELP vinr_reconciler_requests_total Retrieve calls to VINR, by "
	    "answer (none = no answer).\n# TYPE vinr_reconciler_requests_total counter\n");
	for (int i = 0; i < 8; i++)
		fprintf(f, "vinr_reconciler_requests_total{status=\"%s\"} %llu\n",
		    reconcile_status_labels[i], (unsigned long long)st->reconciler.by_status[i]);
	/* For alerting on what /healthz says (config/vinr-webhookd-alerts.yml). */
	fprintf(f, "# HELP vinr_healthy 1 when /healthz answers ok, else 0.\n"
	    "# TYPE vinr_healthy gauge\nvinr_healthy %d\n", st->healthy ? 1 : 0);
	if (st->leader != STATS_LEADER_NONE)
		fprintf(f, "# HELP vinr_leader 1 while this instance runs the hook and "
		    "the reconciler (postgres).\n# TYPE vinr_leader gauge\nvinr_leader %d\n",
		    st->leader == STATS_LEADER_LEADER);
	fprintf(f, "# HELP vinr_reconciler_paused 1 while VINR refuses the API key.\n"
	    "# TYPE vinr_reconciler_paused gauge\nvinr_reconciler_paused %d\n",
	    st->reconciler.state == RC_PAUSED ? 1 : 0);
	fprintf(f, "# HELP vinr_api_requests_total Calls to VINR for pay, cancel and "
	    "capture.\n# TYPE vinr_api_requests_total counter\nvinr_api_requests_total "
	    "%llu\n", (unsigned long long)st->api.requests);
	fprintf(f, "# HELP vinr_api_errors_total Those calls that got no 2xx answer.\n"
	    "# TYPE vinr_api_errors_total counter\nvinr_api_errors_total %llu\n",
	    (unsigned long long)st->api.errors);
	fprintf(f, "# HELP vinr_api_unknown_total Creates whose outcome became unknown.\n"
	    "# TYPE vinr_api_unknown_total counter\nvinr_api_unknown_total %llu\n",
	    (unsigned long long)st->api.unknown);
	fprintf(f, "# HELP vinr_control_clients Clients connected to the control socket.\n"
	    "# TYPE vinr_control_clients gauge\nvinr_control_clients %d\n",
	    st->control_clients);
	fprintf(f, "# HELP vinr_uptime_seconds Seconds since start.\n"
	    "# TYPE vinr_uptime_seconds gauge\nvinr_uptime_seconds %lld\n",
	    (long long)st->uptime_s);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static cJSON *
string_array(const char (*list)[STATS_NOTE_LEN], int n)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; a != NULL && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(list[i]));
	return a;
}

cJSON *
stats_render_health(const struct stats *st, bool *ok)
{
	cJSON *o;

	*ok = st->healthy;
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "status", st->healthy ? "ok" : "degraded");
	if (!st->healthy)
		cJSON_AddItemToObject(o, "reasons", string_array(st->reasons, st->nreasons));
	cJSON_AddItemToObject(o, "warnings", string_array(st->warnings, st->nwarnings));
	return o;
}

cJSON *
stats_render_json(const struct stats *st)
{
	cJSON *o, *w, *rej, *sinks, *s, *r;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	w = cJSON_AddObjectToObject(o, "webhooks");
	jsonnum_add(w, "accepted", (int64_t)st->webhooks.accepted);
	jsonnum_add(w, "duplicate", (int64_t)st->webhooks.duplicate);
	jsonnum_add(w, "ignored", (int64_t)st->webhooks.ignored);
	rej = cJSON_AddObjectToObject(w, "rejected");
	for (int i = 0; i < REJ_COUNT; i++)
		jsonnum_add(rej, http_reject_name(i), (int64_t)st->webhooks.rejected[i]);
	jsonnum_add(o, "lastSeq", (int64_t)st->last_seq);
	sinks = cJSON_AddObjectToObject(o, "sinks");
	for (int i = 0; i < st->nsinks; i++) {
		s = cJSON_AddObjectToObject(sinks, st->sinks[i].name);
		jsonnum_add(s, "cursor", (int64_t)st->sinks[i].cursor);
		jsonnum_add(s, "lag", (int64_t)st->sinks[i].lag);
		jsonnum_add(s, "dead", (int64_t)st->sinks[i].dead);
	}
	r = cJSON_AddObjectToObject(o, "reconciler");
	cJSON_AddStringToObject(r, "state", reconcile_state_name(st->reconciler.state));
	jsonnum_add(r, "requests", (int64_t)st->reconciler.requests);
	jsonnum_add(r, "errors", (int64_t)st->reconciler.errors);
	r = cJSON_AddObjectToObject(o, "api");
	jsonnum_add(r, "requests", (int64_t)st->api.requests);
	jsonnum_add(r, "errors", (int64_t)st->api.errors);
	jsonnum_add(r, "unknown", (int64_t)st->api.unknown);
	jsonnum_add(cJSON_AddObjectToObject(o, "control"), "clients", st->control_clients);
	jsonnum_add(o, "uptimeSeconds", (int64_t)st->uptime_s);
	return o;
}

char *
stats_metrics(void *src)
{
	struct stats st;

	stats_take(src, &st);
	return stats_render_metrics(&st);
}

cJSON *
stats_health(void *src, bool *ok)
{
	struct stats st;

	stats_take(src, &st);
	return stats_render_health(&st, ok);
}

cJSON *
stats_json(void *src)
{
	struct stats st;

	stats_take(src, &st);
	return stats_render_json(&st);
}
