/*
 * stats.h - one snapshot of the daemon's figures, rendered three ways:
 * /metrics (Prometheus text), /healthz (SPEC §1.4) and the control socket's
 * STATS object (SPEC §4).
 *
 * DESIGN: stats_take() is the only code that asks the subsystems for their
 * figures; the renderers only format a snapshot.  So the three renderings
 * cannot disagree: a sink's lag is lastSeq - cursor (never below 0) and its
 * dead letters are sink_dead_letters() (its rows in dead_letters) in every
 * one of them.
 */
#ifndef VINR_STATS_H
#define VINR_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gateway.h"
#include "http.h"
#include "reconcile.h"
#include "store.h"

#define STATS_MAX_SINKS		3	/* eventlog, hook, socket */
#define STATS_MAX_NOTES		12	/* reasons or warnings */
#define STATS_NOTE_LEN		48

struct control;
struct sink;

/* The leader election of SPEC §8 (postgres): none with sqlite. */
enum stats_leader {
	STATS_LEADER_NONE = 0,
	STATS_LEADER_FOLLOWER,	/* another instance runs the hook and the rounds */
	STATS_LEADER_LEADER	/* this one does */
};

/*
 * Where the figures come from.  The pointers that main sets once a
 * subsystem has started, while other threads may already read the source
 * (http, reconciler, control), are atomic; NULL means "not running" (zeros,
 * "disabled").  sinks are set before any reader starts, except where swap
 * is set (postgres: the hook sink and the reconciler come and go with the
 * leadership): then a slot and the reconciler change only under *swap, a
 * NULL slot is a sink not running here, and stats_take() holds *swap.
 */
struct stats_source {
	struct store			*store;
	struct sink			*sinks[STATS_MAX_SINKS];
	int				 nsinks;
	pthread_mutex_t			*swap;		/* NULL: no changes */
	atomic_int			 leader;	/* enum stats_leader */
	struct http *_Atomic		 http;
	struct reconciler *_Atomic	 reconciler;
	struct control *_Atomic		 control;
	struct gateway *_Atomic		 gateway;	/* NULL: no API key */
	int64_t				 started_ms;	/* util_mono_ms() at start */
};

struct stats_sink {
	const char	*name;		/* static: the sink's cursor name */
	int64_t		 cursor;
	int64_t		 lag;		/* last_seq - cursor, never below 0 */
	int64_t		 dead;		/* dead letters waiting */
	bool		 alive;		/* its thread ticks */
	bool		 failing;	/* its last delivery failed */
};

struct stats {
	struct http_stats	 webhooks;
	int64_t			 last_seq;
	struct stats_sink	 sinks[STATS_MAX_SINKS];
	int			 nsinks;
	struct reconcile_stats	 reconciler;
	struct gateway_stats	 api;		/* pay, cancel, capture (SPEC §4.1) */
	int			 control_clients;
	int			 leader;	/* enum stats_leader */
	struct store_metrics	 store;
	int64_t			 uptime_s;
	bool			 threads_ok;	/* every thread ticks: the watchdog's test */
	bool			 healthy;	/* and the database is writable: /healthz */
	/* /healthz: why not healthy; what is wrong but does not stop ingest. */
	char			 reasons[STATS_MAX_NOTES][STATS_NOTE_LEN];
	int			 nreasons;
	char			 warnings[STATS_MAX_NOTES][STATS_NOTE_LEN];
	int			 nwarnings;
};

/* Fills st from every subsystem of src.  Any thread. */
void	 stats_take(const struct stats_source *src, struct stats *st);

/* The renderers of a snapshot.  NULL when out of memory. */
/* Prometheus text (the caller frees it). */
char	*stats_render_metrics(const struct stats *);
/* The /healthz body (the caller deletes it); *ok false means 503. */
cJSON	*stats_render_health(const struct stats *, bool *ok);
/* SPEC §4's STATS object (the caller deletes it). */
cJSON	*stats_render_json(const struct stats *);

/*
 * Take a snapshot of src (a struct stats_source *) and render it: the
 * callbacks of http_hooks and of control_params.  Any thread.
 */
char	*stats_metrics(void *src);
cJSON	*stats_health(void *src, bool *ok);
cJSON	*stats_json(void *src);

#endif
