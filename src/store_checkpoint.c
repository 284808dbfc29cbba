/*
 * store_checkpoint.c - the SQLite engine's checkpointer: the WAL copied into
 * the database off the writer thread (see store_checkpoint.h).
 *
 * It copies the WAL into the database once the WAL holds CKPT_SOFT frames
 * (4 MiB), then each CKPT_STEP new frames, on its own connection and
 * thread.  Past CKPT_HARD frames (7 MiB) the writer, between two
 * transactions, waits for one more pass (at most CKPT_WAIT_MS): with no
 * commit in between that pass copies every frame, and the next commit
 * starts the WAL over and cuts the file to the journal_size_limit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

#include "log.h"
#include "store_checkpoint.h"

#define CKPT_SOFT	1024
#define CKPT_HARD	1792
#define CKPT_STEP	256	/* new frames worth a pass */
#define CKPT_WAIT_MS	1000
#define CKPT_IDLE_MS	100


/* The writer's connection after each commit: wakes the checkpointer. */
static int
ckpt_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store_ckpt *ck = arg;

	(void)db;
	(void)name;
	pthread_mutex_lock(&ck->mu);
	ck->frames = frames;
	if (frames < ck->copied)
		ck->copied = 0;		/* the WAL started over */
	if (frames >= CKPT_SOFT && frames - ck->copied >= CKPT_STEP)
		pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	return SQLITE_OK;
}

/*
 * One PASSIVE pass: copies what no reader still needs, never waits for a
 * lock and never blocks the writer (SQLite lets one checkpoint run beside
 * one write transaction).  A failure (I/O, a full disk) is only logged:
 * the next pass tries again, and the writer's own rollback path truncates
 * the WAL when a commit fails for space.
 */
static int
ckpt_pass(struct store_ckpt *ck)
{
	int rc, logged = 0, copied = 0;

	rc = sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    &logged, &copied);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
		log_warnx_rl("checkpoint", "database: WAL checkpoint: %s",
		    sqlite3_errmsg(ck->db));
	return copied > 0 ? copied : 0;
}

static void *
ckpt_main(void *arg)
{
	struct store_ckpt *ck = arg;
	struct timespec ts;
	uint64_t want;
	int copied;

	pthread_setname_np(pthread_self(), "checkpointer");
	pthread_mutex_lock(&ck->mu);
	while (!ck->stop) {
		if ((ck->frames < CKPT_SOFT || ck->frames - ck->copied < CKPT_STEP) &&
		    ck->want == ck->done) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += CKPT_IDLE_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&ck->cv, &ck->mu, &ts);
			continue;
		}
		want = ck->want;
		pthread_mutex_unlock(&ck->mu);
		copied = ckpt_pass(ck);
		pthread_mutex_lock(&ck->mu);
		if (copied > ck->copied && copied <= ck->frames)
			ck->copied = copied;
		ck->done = want;
		pthread_cond_broadcast(&ck->done_cv);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/*
 * The bound: called by the writer before a transaction.  Past CKPT_HARD
 * frames it waits for a pass that starts now (no commit runs meanwhile, so
 * it copies everything readers allow); the first commit after it starts
 * the WAL over.  Most passes happen before: this wait only comes when the
 * checkpointer fell behind a sustained load, and lasts one pass.
 */
void
store_ckpt_bound(struct store_ckpt *ck)
{
	struct timespec ts;
	uint64_t my;

	if (!ck->running)
		return;
	pthread_mutex_lock(&ck->mu);
	if (ck->frames >= CKPT_HARD) {
		my = ++ck->want;
		pthread_cond_signal(&ck->cv);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CKPT_WAIT_MS / 1000;
		while (ck->done < my && !ck->stop &&
		    pthread_cond_timedwait(&ck->done_cv, &ck->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&ck->mu);
}

void
store_ckpt_stop(struct store_ckpt *ck)
{
	if (!ck->running)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->stop = true;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	pthread_join(ck->thread, NULL);
	ck->running = false;
	sqlite3_close(ck->db);
	ck->db = NULL;
	pthread_mutex_destroy(&ck->mu);
	pthread_cond_destroy(&ck->cv);
	pthread_cond_destroy(&ck->done_cv);
}

int
store_ckpt_start(struct store_ckpt *ck, sqlite3 *writer, sqlite3 *own, char *err,
    size_t errlen)
{
	char *msg = NULL;

	ck->db = own;
	/* A connection that has read nothing yet does not know it is WAL:
	 * its checkpoints would do nothing. */
	if (sqlite3_exec(ck->db, "PRAGMA journal_mode = WAL", NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg != NULL ? msg : sqlite3_errmsg(ck->db));
		sqlite3_free(msg);
		sqlite3_close(ck->db);
		ck->db = NULL;
		return -1;
	}
	pthread_mutex_init(&ck->mu, NULL);
	pthread_cond_init(&ck->cv, NULL);
	pthread_cond_init(&ck->done_cv, NULL);
	if (pthread_create(&ck->thread, NULL, ckpt_main, ck) != 0) {
		snprintf(err, errlen, "cannot start the checkpointer thread");
		sqlite3_close(ck->db);
		ck->db = NULL;
		return -1;
	}
	ck->running = true;
	/* Replaces wal_autocheckpoint's hook: SQLite checkpoints no more. */
	sqlite3_wal_hook(writer, ckpt_wal_hook, ck);
	return 0;
}
