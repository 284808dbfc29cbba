/*
 * cluster.c - see cluster.h.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "cluster.h"
#include "leader.h"
#include "log.h"
#include "pg_listen.h"
#include "reconcile.h"
#include "sink.h"
#include "stats.h"
#include "store.h"

struct cluster {
	struct cluster_params	 p;
	struct leader		*leader;
	struct pg_listen	*listen;
};

/* On the election's thread: the lock is ours. */
static int
on_lead(void *arg)
{
	struct cluster *c = arg;
	struct sink *hook = NULL;

	/* Leading without a hook would hold every other instance off it. */
	if (c->p.start(c->p.arg, &hook) == -1) {
		log_warnx("the hook did not start: leadership given up, to be tried again");
		return -1;
	}
	pthread_mutex_lock(c->p.src->swap);
	if (c->p.hook_slot >= 0)
		c->p.src->sinks[c->p.hook_slot] = hook;
	atomic_store(&c->p.src->leader, STATS_LEADER_LEADER);
	pthread_mutex_unlock(c->p.src->swap);
	reconcile_set_rounds(c->p.reconciler, true);
	return 0;
}

/* On the election's thread: the lock may be gone; stop delivering now. */
static void
on_lose(void *arg)
{
	struct cluster *c = arg;
	struct sink *hook = NULL;

	reconcile_set_rounds(c->p.reconciler, false);
	pthread_mutex_lock(c->p.src->swap);
	if (c->p.hook_slot >= 0) {
		hook = c->p.src->sinks[c->p.hook_slot];
		c->p.src->sinks[c->p.hook_slot] = NULL;
	}
	atomic_store(&c->p.src->leader, STATS_LEADER_FOLLOWER);
	pthread_mutex_unlock(c->p.src->swap);
	sink_stop(hook);
	sink_free(hook);
	/* Before the lock goes (the caller drops the session after this): the
	 * next leader resumes from what this one delivered, not a second
	 * earlier. */
	if (hook != NULL && store_sync(c->p.store) == -1)
		log_warnx("lost leadership: the hook's cursor could not be saved: "
		    "the next leader may run the hook again for the last outcomes");
}

struct cluster *
cluster_start(const struct cluster_params *p, char *err, size_t errlen)
{
	struct cluster *c;
	struct pg_listen_params lp = { p->dsn, p->password, p->takeover, p->store };
	struct leader_params ep = { .dsn = p->dsn, .password = p->password,
	    .takeover = p->takeover, .on_lead = on_lead, .on_lose = on_lose };

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->p = *p;
	ep.arg = c;
	atomic_store(&p->src->leader, STATS_LEADER_FOLLOWER);
	if ((c->listen = pg_listen_start(&lp, err, errlen)) == NULL ||
	    (c->leader = leader_start(&ep, err, errlen)) == NULL) {
		cluster_free(c);
		return NULL;
	}
	return c;
}

void
cluster_stop(struct cluster *c)
{
	if (c == NULL)
		return;
	leader_stop(c->leader);
	pg_listen_stop(c->listen);
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	cluster_stop(c);
	leader_free(c->leader);
	pg_listen_free(c->listen);
	free(c);
}
