/*
 * store_checkpoint.h - the SQLite engine's checkpointer (store_sqlite.c's
 * only): SQLite's own checkpoints, which run inside the committing
 * transaction that every request of the batch waits on, replaced by a
 * thread with a connection of its own that copies the WAL into the database
 * (PASSIVE, never blocking the writer), and a bound on the WAL's size.
 */
#ifndef VINR_STORE_CHECKPOINT_H
#define VINR_STORE_CHECKPOINT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* The checkpointer's state, shared with the writer under mu.  Embedded in
 * the writer's connection; all zero until store_ckpt_start(). */
struct store_ckpt {
	pthread_t	 thread;
	bool		 running;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* wakes the checkpointer */
	pthread_cond_t	 done_cv;	/* a pass ended */
	sqlite3		*db;		/* the checkpointer's own connection */
	int		 frames;	/* in the WAL after the last commit */
	int		 copied;	/* of them, in the database already */
	bool		 stop;
	uint64_t	 want;		/* passes the writer asked for */
	uint64_t	 done;		/* the last asked-for pass that ended */
};

/*
 * Turns SQLite's own checkpoints off for writer (the write connection, in
 * WAL mode) and starts the checkpointer on own, a second read-write
 * connection to the same database, which it takes over (closed by
 * store_ckpt_stop(), or here on failure).  0, or -1 with err (ck stays not
 * running).
 */
int	store_ckpt_start(struct store_ckpt *ck, sqlite3 *writer, sqlite3 *own,
	    char *err, size_t errlen);
/*
 * The writer, before each transaction: past the hard bound, waits (at most
 * a second) for one pass that starts now.  Does nothing when not running.
 */
void	store_ckpt_bound(struct store_ckpt *ck);
/* Stops the thread and closes its connection; nothing when not running.
 * Call before the writer's connection closes. */
void	store_ckpt_stop(struct store_ckpt *ck);

#endif
