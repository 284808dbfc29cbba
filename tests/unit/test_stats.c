/*
 * test_stats.c - stats.c's renderers: one snapshot gives the same sink
 * figures in /metrics and in the STATS object, every metric family /metrics
 * has always had, and /healthz's two shapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

static void
fill(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	st->last_seq = 9007199254740993LL;	/* past 2^53 in /metrics */
	st->nsinks = 2;
	st->sinks[0] = (struct stats_sink){ "eventlog", st->last_seq, 0, 0, true, false };
	st->sinks[1] = (struct stats_sink){ "hook", 40, 7, 3, true, true };
	st->webhooks.accepted = 5;
	st->webhooks.rejected[REJ_INVALID_SIG] = 2;
	st->reconciler.state = RC_PAUSED;
	st->reconciler.requests = 11;
	st->api = (struct gateway_stats){ 12, 3, 1 };
	st->control_clients = 4;
	st->uptime_s = 61;
	st->threads_ok = st->healthy = true;
	snprintf(st->warnings[st->nwarnings++], STATS_NOTE_LEN, "reconciler_paused");
	snprintf(st->warnings[st->nwarnings++], STATS_NOTE_LEN, "sink_failing:hook");
}

static void
assert_line(const char *text, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (strstr(text, want) == NULL)
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void
test_metrics_and_json_agree(void **state)
{
	struct stats st;
	char *text, *json;
	cJSON *o, *back;

	(void)state;
	fill(&st);
	text = stats_render_metrics(&st);
	o = stats_render_json(&st);
	assert_non_null(text);
	assert_non_null(o);
	assert_line(text, "vinr_sink_lag{sink=\"hook\"} 7");
	assert_line(text, "vinr_sink_dead_letters{sink=\"hook\"} 3");
	assert_line(text, "vinr_sink_lag{sink=\"eventlog\"} 0");
	assert_line(text, "vinr_outcome_last_seq 9007199254740993");
	assert_line(text, "vinr_webhooks_total{result=\"rejected\",reason=\"invalid_signature\"} 2");
	assert_line(text, "vinr_control_clients 4");
	assert_line(text, "vinr_uptime_seconds 61");
	assert_line(text, "vinr_api_requests_total 12");
	assert_line(text, "vinr_api_errors_total 3");
	assert_line(text, "vinr_api_unknown_total 1");
	/* What a client reads: the printed line, integers exact. */
	json = cJSON_PrintUnformatted(o);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"lastSeq\":9007199254740993,"));
	assert_non_null(strstr(json, "\"hook\":{\"cursor\":40,\"lag\":7,\"dead\":3}"));
	assert_non_null(strstr(json, "\"api\":{\"requests\":12,\"errors\":3,\"unknown\":1}"));
	back = cJSON_Parse(json);
	assert_non_null(back);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(back, "reconciler"), "state")->valuestring,
	    "paused");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(back, "control"), "clients")->valueint, 4);
	cJSON_Delete(back);
	free(json);
	assert_int_equal(cJSON_GetArraySize(o), 7);
	free(text);
	cJSON_Delete(o);
}

/* Every family /metrics has had, with its type: users scrape them. */
static void
test_metric_families_kept(void **state)
{
	static const char *const families[] = {
		"vinr_webhooks_total counter", "vinr_outcome_last_seq gauge",
		"vinr_sink_lag gauge", "vinr_sink_dead_letters gauge",
		"vinr_outcomes_total counter", "vinr_commit_seconds histogram",
		"vinr_commit_batch_size histogram",
		"vinr_reconciler_requests_total counter", "vinr_control_clients gauge",
		"vinr_uptime_seconds gauge", "vinr_api_requests_total counter",
		"vinr_api_errors_total counter", "vinr_api_unknown_total counter",
	};
	struct stats st;
	char *text, line[128];

	(void)state;
	fill(&st);
	text = stats_render_metrics(&st);
	assert_non_null(text);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s", families[i]);
		assert_line(text, line);
	}
	free(text);
}

static void
test_health_shapes(void **state)
{
	struct stats st;
	bool ok = false;
	cJSON *o;
	char *s;

	(void)state;
	fill(&st);
	o = stats_render_health(&st, &ok);
	s = cJSON_PrintUnformatted(o);
	assert_true(ok);
	assert_string_equal(s, "{\"status\":\"ok\",\"warnings\":[\"reconciler_paused\","
	    "\"sink_failing:hook\"]}");
	free(s);
	cJSON_Delete(o);

	st.healthy = false;
	snprintf(st.reasons[st.nreasons++], STATS_NOTE_LEN, "hook_stalled");
	st.nwarnings = 0;
	o = stats_render_health(&st, &ok);
	s = cJSON_PrintUnformatted(o);
	assert_false(ok);
	assert_string_equal(s, "{\"status\":\"degraded\",\"reasons\":[\"hook_stalled\"],"
	    "\"warnings\":[]}");
	free(s);
	cJSON_Delete(o);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_and_json_agree),
		cmocka_unit_test(test_metric_families_kept),
		cmocka_unit_test(test_health_shapes),
	};

	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
