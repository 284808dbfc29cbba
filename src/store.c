/*
 * store.c - the writer: the job queue, the group commit, the cursors, the
 * listeners and what /metrics and /healthz show of them (see the DESIGN
 * comment in store.h).  It knows no SQL: every statement goes through an
 * engine (store_engine.h; store_sqlite.c today).
 *
 * DESIGN
 *
 * Threads.  Any number of submitters call store_ingest() & co: the HTTP
 * workers and the control loop with the *_async forms, the sinks and the
 * reconciler with the blocking ones.  One writer thread
 * (writer_main) runs the queue.  Only the writer touches the engine's
 * connection and next_seq, cursors_saved_ms and next_prune_ms.
 *
 * Handover.  Everything shared lives under mu: the queue (head, tail), the
 * stopping flag, the cursors and the listeners; work_cv wakes the writer.  A
 * blocking submitter queues a job on its own stack with a condition
 * variable of its own (also on its stack) and sleeps on it until the writer
 * sets job->done.  An asynchronous job (the *_async calls, for event loops
 * that must not sleep) is on the heap: nobody sleeps on it, the writer calls
 * its done function after the commit, without mu, and frees it.  A sink's
 * cursor is not a job: store_cursor_set() only records the newest value and
 * marks it dirty, and the writer saves the dirty ones with its next batch.
 *
 * A batch.  The writer takes the whole queue (up to MAX_BATCH) and the dirty
 * cursors under mu, lets go of mu, and runs them in one transaction, so that
 * submitters keep queueing while the disk syncs and the next batch grows:
 * that is the group commit.  The first run has no savepoints; if a job fails
 * on its own the batch is rolled back and run again carefully, each job in a
 * savepoint.  Then it takes mu again and answers every job (only now: after
 * COMMIT, or after the transaction was lost), wakes the listeners if there
 * are new outcomes or replays, and updates the counters (atomics, read by
 * any thread without mu).
 *
 * Idle.  With nothing to do the writer wakes at least once a second: it
 * marks that it is alive (tick_ms, for /healthz), probes the database while
 * the last commit failed, or prunes one chunk for retention.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_engine.h"
#include "util.h"

#define MAX_LISTENERS	16
#define MAX_CURSORS	8
#define MAX_BATCH	2048

enum job_kind {
	JOB_INGEST,
	JOB_DEAD,
	JOB_TRACK,
	JOB_REPLAY,
	JOB_DEAD_DELIVERED,
	JOB_RC_SET,
	JOB_PAY_BEGIN,
	JOB_PAY_SET,
	JOB_PAY_MOVE,
	JOB_SYNC		/* nothing: the cursors ride along (store_sync()) */
};

struct job {
	enum job_kind		 kind;
	struct job		*next;
	bool			 done;
	pthread_cond_t		*cv;		/* a blocking submitter sleeps on it */
	int			 rc;		/* 0 committed, -1 not */
	store_done_fn		 done_fn;	/* set: asynchronous, on the heap */
	void			*done_arg;
	int64_t			 queued_ms;	/* monotonic: its storage deadline runs */
	bool			 expired;	/* past it before its batch began */
	union {
		struct store_ingest *ingest;
		struct {
			const char	*sink;
			int64_t		 seq;
			int		 attempts;
			const char	*error;
		} dead;
		struct {
			const struct payment *in;
			struct payment	*out;		/* NULL: not wanted */
		} track;
		struct {
			const char	*sink;		/* also JOB_DEAD_DELIVERED */
			int64_t		 seq;
			bool		 found;
		} replay;
		struct {
			const char	*payment_id;
			int		 attempts;
			const char	*next_at;
			const char	*state;
		} rc;
		struct {
			const struct pay_request *in;
			struct pay_request *out;
			int		 found;		/* a store_pay_found */
		} pay;
		struct {
			const char	*key;		/* JOB_PAY_SET */
			enum payreq_state from, to;	/* to: also JOB_PAY_SET */
			const char	*before;
			int		 moved;
		} pay_set;
	} u;
};

struct cursor {
	char		 sink[32];
	int64_t		 seq;
	bool		 dirty;
};

/* Histogram bounds for /metrics: commit seconds, and jobs per commit. */
const double store_commit_bounds[STORE_HIST_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5
};
const double store_batch_bounds[STORE_HIST_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048
};

struct store {
	char			*path;
	char			*password;	/* a copy, wiped at free; NULL: none */
	const struct store_engine *eng;
	struct store_conn	*db;		/* writer thread only, once started */

	pthread_t		 thread;
	bool			 started;
	pthread_mutex_t		 mu;
	pthread_cond_t		 work_cv;
	struct job		*head;
	struct job		**tail;
	bool			 stopping;
	struct cursor		 cursors[MAX_CURSORS];
	int			 ncursors;
	int			 listeners[MAX_LISTENERS];
	int			 nlisteners;

	int			 retain_days;
	int64_t			 next_seq;	/* writer thread only */
	int64_t			 cursors_saved_ms; /* writer thread only */
	int64_t			 next_prune_ms;	/* writer thread only */
	/* Counters for /metrics: atomics, read by any thread. */
	_Atomic uint64_t	 outcomes_by_status[PAY_CANCELLED + 1];
	_Atomic uint64_t	 commit_hist[STORE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 batch_hist[STORE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 commit_us_sum, batch_sum, commits;
	_Atomic int64_t		 last_seq;
	_Atomic int64_t		 tick_ms;	/* writer's last sign of life */
	_Atomic bool		 last_ok;	/* last commit succeeded */
};

/* What the writer took off the queue for one transaction. */
struct batch {
	struct job		*jobs;
	int			 n;
	struct cursor		 cur[MAX_CURSORS];
	int			 ncur;
	bool			 ok;		/* committed */
};

struct store *
store_open_engine(const struct store_engine *engine, const char *where,
    const struct store_params *params, char *err, size_t errlen)
{
	struct store *s;
	int64_t last;

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(where)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&s->mu, NULL);
	util_cond_init(&s->work_cv);
	s->tail = &s->head;
	s->eng = engine;
	if (params->password != NULL &&
	    (s->password = strdup(params->password)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((s->db = engine->open(where, params, err, errlen)) == NULL)
		goto fail;
	if ((last = engine->last_seq(s->db)) < 0) {
		snprintf(err, errlen, "cannot read the outcome counter");
		goto fail;
	}
	s->next_seq = last + 1;
	atomic_store(&s->last_seq, last);
	atomic_store(&s->last_ok, true);
	atomic_store(&s->tick_ms, util_mono_ms());
	return s;
fail:
	store_free(s);
	return NULL;
}

struct store *
store_open(const char *path, int synchronous, char *err, size_t errlen)
{
	struct store_params params = { .synchronous = synchronous };

	return store_open_engine(&store_sqlite_engine, path, &params, err, errlen);
}

/* One job's work in the open transaction: 0, STORE_E_JOB or STORE_E_TXN. */
static int
job_run(struct store *s, struct job *j, const char *now)
{
	const struct store_engine *e = s->eng;
	int rc;

	switch (j->kind) {
	case JOB_INGEST:
		rc = e->ingest(s->db, j->u.ingest, now, s->next_seq);
		if (rc == 0 && j->u.ingest->seq > 0)
			s->next_seq = j->u.ingest->seq + 1;
		return rc;
	case JOB_DEAD:
		return e->dead_letter(s->db, j->u.dead.sink, j->u.dead.seq,
		    j->u.dead.attempts, j->u.dead.error, now);
	case JOB_TRACK:
		return e->track(s->db, j->u.track.in, j->u.track.out, now);
	case JOB_REPLAY:
		rc = e->replay_mark(s->db, j->u.replay.sink, j->u.replay.seq);
		j->u.replay.found = rc > 0;
		return rc < 0 ? rc : 0;
	case JOB_DEAD_DELIVERED:
		rc = e->dead_delete(s->db, j->u.replay.sink, j->u.replay.seq);
		return rc < 0 ? rc : 0;
	case JOB_RC_SET:
		return e->rc_set(s->db, j->u.rc.payment_id, j->u.rc.attempts,
		    j->u.rc.next_at, j->u.rc.state);
	case JOB_PAY_BEGIN:
		rc = e->pay_begin(s->db, j->u.pay.in, j->u.pay.out, now);
		j->u.pay.found = rc;
		return rc < 0 ? rc : 0;
	case JOB_PAY_SET:
		return e->pay_set(s->db, j->u.pay_set.key, j->u.pay_set.to, now);
	case JOB_PAY_MOVE:
		rc = e->pay_move(s->db, j->u.pay_set.from, j->u.pay_set.to,
		    j->u.pay_set.before, now);
		j->u.pay_set.moved = rc;
		return rc < 0 ? rc : 0;
	case JOB_SYNC:
		return 0;
	}
	return STORE_E_JOB;
}

static void
job_fail(struct job *j)
{
	j->rc = -1;
	switch (j->kind) {
	case JOB_INGEST:
		j->u.ingest->result = INGEST_UNAVAILABLE;
		j->u.ingest->decision = -1;
		j->u.ingest->seq = 0;
		break;
	case JOB_TRACK:
		if (j->u.track.out != NULL)
			payment_release(j->u.track.out);
		break;
	case JOB_PAY_BEGIN:
		payreq_release(j->u.pay.out);
		break;
	default:
		break;
	}
}

/* What the job's caller is told once it is answered. */
static int
job_result(const struct job *j)
{
	if (j->rc == 0 && j->kind == JOB_REPLAY && !j->u.replay.found)
		return 1;
	if (j->rc == 0 && j->kind == JOB_PAY_BEGIN)
		return j->u.pay.found;
	if (j->rc == 0 && j->kind == JOB_PAY_MOVE)
		return j->u.pay_set.moved;
	return j->rc;
}

/*
 * One transaction for the whole batch.  Optimistic first: the jobs run one
 * after the other with no savepoints (a savepoint per job costs a
 * sub-journal write per page).  If a job fails for a reason of its own, the
 * batch is rolled back and run again carefully, each job in its own
 * savepoint, so that the others still commit.  An error that loses the
 * transaction (busy, I/O, disk full) fails the whole batch, and nothing of
 * it stays.  Returns 1 committed, 0 not, -1 run it again carefully.
 */
static int
writer_batch(struct store *s, struct batch *b, bool careful)
{
	const struct store_engine *e = s->eng;
	int64_t seq0 = s->next_seq;
	char now[TS_LEN];
	struct job *j;
	int rc;

	util_rfc3339(util_now_ms(), now);
	if ((rc = e->begin(s->db)) != 0)
		goto abort;
	for (j = b->jobs; j != NULL; j = j->next) {
		int64_t seq_before = s->next_seq;

		if (j->expired)
			continue;	/* already failed: not run */
		if (careful && (rc = e->savepoint(s->db)) != 0)
			goto abort;
		if ((rc = job_run(s, j, now)) == 0) {
			j->rc = 0;
			if (careful && (rc = e->release(s->db)) != 0)
				goto abort;
			continue;
		}
		if (rc != STORE_E_JOB)
			goto abort;
		if (!careful) {
			e->rollback(s->db);
			s->next_seq = seq0;
			return -1;
		}
		s->next_seq = seq_before;
		job_fail(j);
		if ((rc = e->savepoint_undo(s->db)) != 0)
			goto abort;
	}
	for (int i = 0; i < b->ncur; i++)
		if ((rc = e->cursor_set(s->db, b->cur[i].sink, b->cur[i].seq)) != 0)
			goto abort;
	if ((rc = e->commit(s->db)) != 0)
		goto abort;
	return 1;
abort:
	e->rollback(s->db);
	s->next_seq = seq0;
	for (j = b->jobs; j != NULL; j = j->next)
		job_fail(j);
	log_warnx_rl("commit", "database: transaction not committed (%s): %d job(s) refused",
	    e->error(s->db), b->n);
	return 0;
}


static void
notify_listeners(struct store *s)
{
	uint64_t one = 1;

	for (int i = 0; i < s->nlisteners; i++)
		if (write(s->listeners[i], &one, sizeof(one)) == -1 && errno != EAGAIN)
			log_warn("waking a listener");
}

/*
 * Raises last_seq to seq, never lowering it: another instance's commits
 * (store_wake()) may have raised it past this writer's.  True if it rose.
 */
static bool
raise_last_seq(struct store *s, int64_t seq)
{
	int64_t cur = atomic_load(&s->last_seq);

	while (seq > cur)
		if (atomic_compare_exchange_weak(&s->last_seq, &cur, seq))
			return true;
	return false;
}

static void
hist_add(_Atomic uint64_t *hist, const double *bounds, double v)
{
	int i = 0;

	while (i < STORE_HIST_BUCKETS && v > bounds[i])
		i++;
	atomic_fetch_add(&hist[i], 1);
}

/* After a commit: what /metrics counts. */
static void
count_batch(struct store *s, struct job *batch, int n, int64_t us)
{
	for (struct job *j = batch; j != NULL; j = j->next)
		if (j->kind == JOB_INGEST && j->rc == 0 && j->u.ingest->seq > 0)
			atomic_fetch_add(&s->outcomes_by_status[j->u.ingest->ev->pay.status], 1);
	hist_add(s->commit_hist, store_commit_bounds, (double)us / 1e6);
	hist_add(s->batch_hist, store_batch_bounds, n);
	atomic_fetch_add(&s->commit_us_sum, (uint64_t)us);
	atomic_fetch_add(&s->batch_sum, (uint64_t)n);
	atomic_fetch_add(&s->commits, 1);
}

/*
 * While the last commit failed, see on each idle tick whether the database
 * takes a write again, so that /healthz recovers without traffic.
 */
static void
writer_probe(struct store *s)
{
	if (s->eng->probe(s->db) == 0) {
		atomic_store(&s->last_ok, true);
		log_info("database: writable again");
	}
}

/*
 * Retention ([storage] retain_days): one chunk per idle tick, then again in
 * an hour.  Outcomes a sink has not delivered yet are kept.
 */
#define PRUNE_CHUNK	5000
#define LOCK_WAIT_MS	5000	/* SPEC §1.4: storage within 5 s of the request */
static void
writer_prune(struct store *s)
{
	const struct store_engine *e = s->eng;
	char cutoff[TS_LEN];
	int64_t delivered = s->next_seq - 1;
	int changed;

	/* Only what every sink configured now has delivered. */
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->ncursors; i++)
		if (s->cursors[i].seq < delivered)
			delivered = s->cursors[i].seq;
	pthread_mutex_unlock(&s->mu);
	util_rfc3339(util_now_ms() - (int64_t)s->retain_days * 86400000, cutoff);
	if (e->begin(s->db) != 0)
		return;
	if ((changed = e->prune(s->db, cutoff, delivered, PRUNE_CHUNK)) < 0 ||
	    e->commit(s->db) != 0) {
		e->rollback(s->db);
		return;
	}
	if (changed > 0)
		log_info("database: pruned %d row(s) older than %d days", changed,
		    s->retain_days);
	s->next_prune_ms = util_mono_ms() + (changed > 0 ? 0 : 3600000);
}

/*
 * Dirty cursors ride along with the next batch; alone they are saved at
 * most once a second (and at stop), so that a sink moving its cursor after
 * each delivery does not cost an fsync of its own each time.
 */
static bool
cursors_due(struct store *s)
{
	bool dirty = false;

	for (int i = 0; i < s->ncursors; i++)
		dirty |= s->cursors[i].dirty;
	return dirty && (s->stopping || util_mono_ms() - s->cursors_saved_ms >= 1000);
}

/*
 * Under mu, with nothing to do: sleeps until work comes or the next second
 * begins, then (without mu) probes or prunes if it is still idle.
 */
static void
writer_idle(struct store *s)
{
	struct timespec ts;

	util_deadline(&ts, 1000 - (util_mono_ms() - s->cursors_saved_ms) % 1000);
	pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
	atomic_store(&s->tick_ms, util_mono_ms());
	if (s->head != NULL || s->stopping)
		return;
	pthread_mutex_unlock(&s->mu);
	if (!atomic_load(&s->last_ok))
		writer_probe(s);
	else if (s->retain_days > 0 && util_mono_ms() >= s->next_prune_ms)
		writer_prune(s);
	pthread_mutex_lock(&s->mu);
}

/* Under mu: takes the whole queue (up to MAX_BATCH) and the dirty cursors. */
static void
writer_take(struct store *s, struct batch *b)
{
	struct job *j;

	b->jobs = s->head;
	b->n = 0;
	if (b->jobs != NULL) {
		for (b->n = 1, j = b->jobs; j->next != NULL && b->n < MAX_BATCH; b->n++)
			j = j->next;
		s->head = j->next;
		if (s->head == NULL)
			s->tail = &s->head;
		j->next = NULL;
	}
	b->ncur = 0;
	for (int i = 0; i < s->ncursors; i++)
		if (s->cursors[i].dirty) {
			b->cur[b->ncur++] = s->cursors[i];
			s->cursors[i].dirty = false;
		}
}

/*
 * SPEC §1.4's storage deadline holds per request, not per batch: a job that
 * waited LOCK_WAIT_MS in the queue (behind a batch that waited for the
 * write lock) fails now, and the batch waits for the lock only as long as
 * its oldest job has left.  Returns how long that is (ms).
 */
static int
writer_deadline(struct batch *b)
{
	int64_t now = util_mono_ms(), oldest = now;

	for (struct job *j = b->jobs; j != NULL; j = j->next) {
		if (!j->expired && now - j->queued_ms >= LOCK_WAIT_MS) {
			job_fail(j);
			j->expired = true;
		}
		if (!j->expired && j->queued_ms < oldest)
			oldest = j->queued_ms;
	}
	return (int)(LOCK_WAIT_MS - (now - oldest));
}

/* Without mu: the batch's transaction, carefully again if it must be. */
static void
writer_run(struct store *s, struct batch *b)
{
	int64_t t0 = util_mono_us();
	int ok;

	if (s->eng->set_lock_wait != NULL)
		s->eng->set_lock_wait(s->db, writer_deadline(b));
	if ((ok = writer_batch(s, b, false)) == -1)
		ok = writer_batch(s, b, true);
	if (s->eng->set_lock_wait != NULL)
		s->eng->set_lock_wait(s->db, LOCK_WAIT_MS);
	b->ok = ok == 1;
	if (b->ok)
		count_batch(s, b->jobs, b->n, util_mono_us() - t0);
}

/*
 * Under mu, after the transaction: records how it went, answers every job
 * of the batch and wakes the listeners.  Drops mu while it calls the
 * asynchronous jobs' done functions.
 */
static void
writer_answer(struct store *s, struct batch *b)
{
	struct job *j, *next, *async = NULL;
	struct timespec ts;
	bool replayed = false;

	atomic_store(&s->tick_ms, util_mono_ms());
	atomic_store(&s->last_ok, b->ok);
	if (b->ok && b->ncur > 0)
		s->cursors_saved_ms = util_mono_ms();
	if (!b->ok) {
		/* Cursors not saved stay dirty, unless a newer value came. */
		for (int c = 0; c < b->ncur; c++)
			for (int i = 0; i < s->ncursors; i++)
				if (strcmp(s->cursors[i].sink, b->cur[c].sink) == 0 &&
				    !s->cursors[i].dirty)
					s->cursors[i].dirty = true;
	}
	/*
	 * Wake each blocking submitter on its own condition variable,
	 * while mu is held: it cannot return (and its job vanish from
	 * its stack) before we let go of mu, so read next first.
	 * Asynchronous jobs are answered below, without mu.
	 */
	for (j = b->jobs; j != NULL; j = next) {
		next = j->next;
		replayed |= j->kind == JOB_REPLAY && job_result(j) == 0;
		if (j->done_fn != NULL) {
			j->next = async;
			async = j;
		} else {
			j->done = true;
			pthread_cond_signal(j->cv);
		}
	}
	if (b->ok && raise_last_seq(s, s->next_seq - 1))
		notify_listeners(s);
	else if (replayed)
		notify_listeners(s);
	if (async != NULL) {
		pthread_mutex_unlock(&s->mu);
		for (j = async; j != NULL; j = next) {
			next = j->next;
			j->done_fn(j->done_arg, job_result(j));
			free(j);
		}
		pthread_mutex_lock(&s->mu);
	}
	if (!b->ok && s->head == NULL) {
		/* Do not spin on a dead disk: let the next jobs wait a bit. */
		util_deadline(&ts, 100);
		pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
	}
}

static void *
writer_main(void *arg)
{
	struct store *s = arg;
	struct batch b;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->head == NULL && !cursors_due(s)) {
			if (s->stopping)
				break;
			writer_idle(s);
			continue;
		}
		writer_take(s, &b);
		pthread_mutex_unlock(&s->mu);
		writer_run(s, &b);
		pthread_mutex_lock(&s->mu);
		writer_answer(s, &b);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}


int
store_start(struct store *s)
{
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		log_warnx("cannot start the writer thread");
		return -1;
	}
	s->started = true;
	return 0;
}

/* Queues j and sleeps until the writer has answered it. */
static void
submit(struct store *s, struct job *j)
{
	pthread_cond_t cv;

	j->next = NULL;
	j->done = false;
	j->queued_ms = util_mono_ms();
	pthread_mutex_lock(&s->mu);
	if (s->stopping || !s->started) {
		pthread_mutex_unlock(&s->mu);
		job_fail(j);
		return;
	}
	pthread_cond_init(&cv, NULL);
	j->cv = &cv;
	*s->tail = j;
	s->tail = &j->next;
	pthread_cond_signal(&s->work_cv);
	while (!j->done)
		pthread_cond_wait(&cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&cv);
}

/*
 * Queues a heap job whose done function the writer calls after the commit.
 * Frees j and returns -1 when the store is stopping.
 */
static int
submit_async(struct store *s, struct job *j, store_done_fn done, void *arg)
{
	j->next = NULL;
	j->done = false;
	j->done_fn = done;
	j->done_arg = arg;
	j->queued_ms = util_mono_ms();
	pthread_mutex_lock(&s->mu);
	if (s->stopping || !s->started) {
		pthread_mutex_unlock(&s->mu);
		free(j);
		return -1;
	}
	*s->tail = j;
	s->tail = &j->next;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static struct job *
job_new(enum job_kind kind)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warn("store: queueing a job");
		return NULL;
	}
	j->kind = kind;
	return j;
}

void
store_ingest(struct store *s, struct store_ingest *in)
{
	struct job j = { .kind = JOB_INGEST, .u.ingest = in };

	submit(s, &j);
}

int
store_ingest_async(struct store *s, struct store_ingest *in, store_done_fn done,
    void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_INGEST)) == NULL)
		return -1;
	j->u.ingest = in;
	return submit_async(s, j, done, arg);
}

int
store_dead_letter(struct store *s, const char *sink, int64_t seq, int attempts,
    const char *last_error)
{
	struct job j = { .kind = JOB_DEAD };

	j.u.dead.sink = sink;
	j.u.dead.seq = seq;
	j.u.dead.attempts = attempts;
	j.u.dead.error = last_error;
	submit(s, &j);
	return j.rc;
}

int
store_track(struct store *s, const struct payment *in, struct payment *out)
{
	struct job j = { .kind = JOB_TRACK };

	if (out != NULL) {
		memset(out, 0, sizeof(*out));
		out->livemode = -1;
	}
	j.u.track.in = in;
	j.u.track.out = out;
	submit(s, &j);
	return job_result(&j);
}

int
store_track_async(struct store *s, const struct payment *in, store_done_fn done,
    void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_TRACK)) == NULL)
		return -1;
	j->u.track.in = in;
	return submit_async(s, j, done, arg);
}

int
store_replay(struct store *s, const char *sink, int64_t seq)
{
	struct job j = { .kind = JOB_REPLAY };

	j.u.replay.sink = sink;
	j.u.replay.seq = seq;
	submit(s, &j);
	return job_result(&j);
}

int
store_replay_async(struct store *s, const char *sink, int64_t seq,
    store_done_fn done, void *arg)
{
	struct job *j;

	if ((j = job_new(JOB_REPLAY)) == NULL)
		return -1;
	j->u.replay.sink = sink;
	j->u.replay.seq = seq;
	return submit_async(s, j, done, arg);
}

int
store_sync(struct store *s)
{
	struct job j = { .kind = JOB_SYNC };

	submit(s, &j);
	return j.rc;
}

int
store_dead_delivered(struct store *s, const char *sink, int64_t seq)
{
	struct job j = { .kind = JOB_DEAD_DELIVERED };

	j.u.replay.sink = sink;
	j.u.replay.seq = seq;
	submit(s, &j);
	return j.rc;
}

void
store_cursor_set(struct store *s, const char *sink, int64_t seq)
{
	int i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->ncursors; i++)
		if (strcmp(s->cursors[i].sink, sink) == 0)
			break;
	if (i == s->ncursors && i < MAX_CURSORS) {
		/* A sink's first call registers it with its saved cursor. */
		snprintf(s->cursors[i].sink, sizeof(s->cursors[i].sink), "%s", sink);
		s->cursors[i].seq = seq;
		s->ncursors++;
	}
	if (i < s->ncursors && seq > s->cursors[i].seq) {
		s->cursors[i].seq = seq;
		/* No wake-up: the writer saves it with its next batch, or
		 * within a second (see cursors_due). */
		s->cursors[i].dirty = true;
	}
	pthread_mutex_unlock(&s->mu);
}

int
store_rc_set(struct store *s, const char *payment_id, int attempts, const char *next_at,
    const char *state)
{
	struct job j = { .kind = JOB_RC_SET };

	j.u.rc.payment_id = payment_id;
	j.u.rc.attempts = attempts;
	j.u.rc.next_at = next_at;
	j.u.rc.state = state;
	submit(s, &j);
	return j.rc;
}

int
store_pay_begin(struct store *s, const struct pay_request *in, struct pay_request *out)
{
	struct job j = { .kind = JOB_PAY_BEGIN };

	payreq_init(out);
	j.u.pay.in = in;
	j.u.pay.out = out;
	submit(s, &j);
	return job_result(&j);
}

int
store_pay_set(struct store *s, const char *key, enum payreq_state state)
{
	struct job j = { .kind = JOB_PAY_SET };

	j.u.pay_set.key = key;
	j.u.pay_set.to = state;
	submit(s, &j);
	return j.rc;
}

int
store_pay_move(struct store *s, enum payreq_state from, enum payreq_state to,
    const char *before)
{
	struct job j = { .kind = JOB_PAY_MOVE };

	j.u.pay_set.from = from;
	j.u.pay_set.to = to;
	j.u.pay_set.before = before;
	submit(s, &j);
	return job_result(&j);
}

void
store_set_retention(struct store *s, int days)
{
	s->retain_days = days;
}

void
store_metrics_get(struct store *s, struct store_metrics *m)
{
	for (int i = 0; i <= PAY_CANCELLED; i++)
		m->outcomes_by_status[i] = atomic_load(&s->outcomes_by_status[i]);
	for (int i = 0; i <= STORE_HIST_BUCKETS; i++) {
		m->commit_hist[i] = atomic_load(&s->commit_hist[i]);
		m->batch_hist[i] = atomic_load(&s->batch_hist[i]);
	}
	m->commit_seconds_sum = (double)atomic_load(&s->commit_us_sum) / 1e6;
	m->batch_sum = atomic_load(&s->batch_sum);
	m->commits = atomic_load(&s->commits);
}

int
store_add_listener(struct store *s, int fd)
{
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (s->nlisteners < MAX_LISTENERS) {
		s->listeners[s->nlisteners++] = fd;
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* notify_listeners() runs under mu: once we hold it, no write is in flight. */
void
store_remove_listener(struct store *s, int fd)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i] == fd) {
			s->listeners[i] = s->listeners[--s->nlisteners];
			break;
		}
	pthread_mutex_unlock(&s->mu);
}

void
store_wake(struct store *s, int64_t seq)
{
	pthread_mutex_lock(&s->mu);
	raise_last_seq(s, seq);
	notify_listeners(s);
	pthread_mutex_unlock(&s->mu);
}

int64_t
store_last_seq(struct store *s)
{
	return atomic_load(&s->last_seq);
}

bool
store_healthy(struct store *s, const char **reason)
{
	if (!atomic_load(&s->last_ok)) {
		*reason = "storage_unavailable";
		return false;
	}
	if (s->started && util_mono_ms() - atomic_load(&s->tick_ms) > 15000) {
		*reason = "writer_stalled";
		return false;
	}
	return true;
}

const char *
store_path(struct store *s)
{
	return s->path;
}

const struct store_engine *
store_engine_of(struct store *s)
{
	return s->eng;
}

const char *
store_password(struct store *s)
{
	return s->password;
}

void
store_stop(struct store *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	store_stop(s);
	if (s->db != NULL)
		s->eng->close(s->db);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work_cv);
	free(s->path);
	if (s->password != NULL) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s);
}

