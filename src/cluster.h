/*
 * cluster.h - what an instance does beside the others on one PostgreSQL
 * database (SPEC §8): it listens for their commits (pg_listen.h) and
 * competes for the hook sink and the reconciler (leader.h).
 *
 * DESIGN: the hook sink exists only while this instance leads.  It is
 * started by the caller's start callback (main knows the configuration) on
 * the election's thread, published in the stats source under its swap lock,
 * and on a loss taken out under the lock, then stopped and freed at once.
 * The reconciler runs on every instance, so that the control socket's
 * "reconcile" works on each, but its rounds over due payments are turned on
 * only while this instance leads (reconcile_set_rounds()).  The hook sink reads the shared cursor at start, and a
 * cursor never moves backwards in the database, so a new leader resumes
 * where the last one stopped.
 */
#ifndef VINR_CLUSTER_H
#define VINR_CLUSTER_H

struct cluster;
struct reconciler;
struct sink;
struct stats_source;
struct store;

struct cluster_params {
	const char		*dsn;
	const char		*password;	/* NULL ok; kept valid until cluster_free() */
	int			 takeover;	/* seconds */
	struct store		*store;
	/* Its sinks[hook_slot] (-1: no hook) and reconciler are swapped; its
	 * swap must point to a mutex that outlives the cluster. */
	struct stats_source	*src;
	int			 hook_slot;
	/* Starts the hook sink (may be left NULL); 0, or -1 (logged by it;
	 * the election goes on, leading nothing). */
	int			(*start)(void *arg, struct sink **hook);
	void			*arg;
	/* Its rounds run while this instance leads.  NULL: none. */
	struct reconciler	*reconciler;
};

/* Starts listening and competing.  NULL with a message in err on failure. */
struct cluster	*cluster_start(const struct cluster_params *, char *err, size_t errlen);
/* Stops the election (the hook and the rounds with it) and the listener.
 * Never frees.  NULL ok. */
void		 cluster_stop(struct cluster *);
/* Stops it if needed and frees.  NULL ok. */
void		 cluster_free(struct cluster *);

#endif
