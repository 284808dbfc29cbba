/*
 * cluster.h - what an instance does beside the others on one PostgreSQL
 * database (SPEC §8): it listens for their commits (pg_listen.h) and
 * competes for the hook sink and the reconciler (leader.h).
 *
 * DESIGN: the hook sink and the reconciler exist only while this instance
 * leads.  They are started by the caller's start callback (main knows the
 * configuration) on the election's thread, published in the stats source
 * under its swap lock, and on a loss taken out under the lock, then stopped
 * and freed at once.  The hook sink reads the shared cursor at start, and a
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
	/* Starts the hook sink and the reconciler (either may be left NULL);
	 * 0, or -1 (logged by it; the election goes on, leading nothing). */
	int			(*start)(void *arg, struct sink **hook,
				    struct reconciler **rc);
	void			*arg;
};

/* Starts listening and competing.  NULL with a message in err on failure. */
struct cluster	*cluster_start(const struct cluster_params *, char *err, size_t errlen);
/* SIGHUP: the running hook sink reopens, the reconciler re-reads its key. */
void		 cluster_reload(struct cluster *);
/*
 * The control socket's "reconcile" (control_reconciler's callback, arg the
 * cluster): the running reconciler's answer, or -1 while another instance
 * leads.
 */
int		 cluster_reconcile(void *cluster, const char *payment_id, void *req);
/* Stops the election (the hook and reconciler with it) and the listener.
 * Never frees.  NULL ok. */
void		 cluster_stop(struct cluster *);
/* Stops it if needed and frees.  NULL ok. */
void		 cluster_free(struct cluster *);

#endif
