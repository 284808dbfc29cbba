/*
 * store.h - durable state, written by one thread.
 *
 * DESIGN: one writer thread owns the only write connection.  Every change
 * (an ingested event, a dead letter, a tracked payment, ...) is a job put on
 * its queue; a sink's cursor is a value it saves along with the next batch.
 * The writer takes every job waiting and runs them in one transaction,
 * commits, and only then answers them: a job's caller learns the result
 * after COMMIT or not at all.  If one job fails on its own, the batch is run
 * again with each job in its own savepoint, so that the others still commit.
 * After a commit that produced outcomes it wakes the listeners (sinks,
 * control) by writing to their eventfds; they read the outcomes with their
 * own read connections (store_read.h).  No connection is shared between
 * threads.  The SQL lives in an engine (store_engine.h): SQLite today.
 */
#ifndef VINR_STORE_H
#define VINR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "payment.h"
#include "payreq.h"

struct store;

enum ingest_result {
	INGEST_ACCEPTED = 0,	/* newly stored */
	INGEST_IGNORED,		/* newly stored, not applicable to a payment */
	INGEST_DUPLICATE,	/* the dedupe key was seen before */
	INGEST_UNAVAILABLE	/* not committed: nothing of it was stored */
};

struct store_ingest {
	/* in */
	const struct vinr_event	*ev;
	const char		*body;
	size_t			 bodylen;
	const char		*source;	/* "webhook" | "reconciler" | "api" */
	/*
	 * "api" only: the pay request (its key) whose create VINR answered
	 * with this payment; it is linked to it and the payment tracked, in
	 * the same transaction.  NULL otherwise: then the payment resolves
	 * the oldest unknown request it matches (SPEC §4.1), if any.
	 */
	const char		*pay_key;
	/* out */
	enum ingest_result	 result;
	int			 decision;	/* enum pay_decision, -1 if none */
	int64_t			 seq;		/* the outcome's seq, 0 if none */
};

/* How to open the database ([storage] of the configuration). */
struct store_params {
	int		 synchronous;	/* SQLite: 2 full, 1 normal */
	/*
	 * PostgreSQL: the password for the DSN (NULL: libpq's own, e.g.
	 * PGPASSFILE), the caller's, kept valid while the store is open; and
	 * this daemon's instance name ([storage] instance).
	 */
	const char	*password;
	const char	*instance;
};

struct store_engine;

/*
 * Opens the store on engine: connects to where (for SQLite, the database
 * file, created if needed), applies the migrations it lacks and reads the
 * seq counter.  The writer is not started.  Returns NULL with a message in
 * err on failure.  store_free() it.
 */
struct store	*store_open_engine(const struct store_engine *engine, const char *where,
		    const struct store_params *params, char *err, size_t errlen);
/*
 * store_open_engine() on SQLite: the database at path, in WAL mode with the
 * synchronous level given (2 full, 1 normal).
 */
struct store	*store_open(const char *path, int synchronous, char *err, size_t errlen);
/* Starts the writer thread.  Returns 0 or -1. */
int		 store_start(struct store *);
/*
 * Stops the writer after it has committed every job already queued (and
 * every cursor already set).  Jobs submitted after this fail.  Frees
 * nothing; NULL ok.
 */
void		 store_stop(struct store *);
/* Stops first if needed, then closes the connection and frees.  NULL ok. */
void		 store_free(struct store *);

/* Blocks until the event is committed (or could not be).  Thread-safe. */
void		 store_ingest(struct store *, struct store_ingest *);

/*
 * Records that sink delivered everything up to seq.  Does not block: the
 * writer saves the newest value with its next commit (and at stop).  A
 * sink's first call registers it (with the cursor it resumes from):
 * retention never prunes an outcome a registered sink has not delivered.
 */
void		 store_cursor_set(struct store *, const char *sink, int64_t seq);

/*
 * Commits the cursors set so far now (they ride along with an empty job),
 * instead of with the next batch or within a second.  Blocks until
 * committed; 0 or -1.  For a hook sink handing over to another instance.
 */
int		 store_sync(struct store *);

/* Records a dead letter and moves the cursor past it.  Blocks until
 * committed; returns 0 or -1. */
int		 store_dead_letter(struct store *, const char *sink, int64_t seq,
		    int attempts, const char *last_error);

/*
 * For event loops that must not sleep in a commit: the *_async forms queue
 * the job and return at once; the writer calls done(arg, rc) on its own
 * thread, after the COMMIT that holds the job, with the rc the blocking form
 * would have returned.  done must be quick and must not call into the store:
 * typically it queues the answer and wakes its own thread.  The async forms
 * return 0 when queued (done will be called exactly once, also when the
 * store is stopped later: the writer drains its queue first) or -1 when the
 * store is stopping (done is never called).  Their string arguments must
 * stay valid until done is called.
 */
typedef void (*store_done_fn)(void *arg, int rc);

/*
 * store_ingest() without blocking: done(arg, rc) is called on the writer's
 * thread once the event is committed (or could not be: in->result says
 * which).  in and its event must stay valid until then.  Returns 0, or -1
 * when the store is stopping or out of memory (done is then never called).
 */
int		 store_ingest_async(struct store *, struct store_ingest *in,
		    store_done_fn done, void *arg);

/*
 * "track" (SPEC §4): a payment that the POS created.  Unknown: stored as
 * pending with the fields of in and tracked = 1.  Known: keeps its status
 * and updated_at, gets tracked = 1 and the fields of in that it lacks.  No
 * outcome either way.  in->id is required; in->status is ignored.  When out
 * is not NULL it receives the payment as stored (payment_release it).
 * Blocks until committed; returns 0 or -1.
 */
int		 store_track(struct store *, const struct payment *in,
		    struct payment *out);
int		 store_track_async(struct store *, const struct payment *in,
		    store_done_fn done, void *arg);

/*
 * "replay" (SPEC §4): marks the dead letter (sink, seq) for another delivery
 * (replay = 1) and wakes the listeners, so that the sink finds it with
 * store_reader_replays().  Returns 0, 1 when there is no such dead letter,
 * or -1 when it could not be committed.
 */
int		 store_replay(struct store *, const char *sink, int64_t seq);
int		 store_replay_async(struct store *, const char *sink, int64_t seq,
		    store_done_fn done, void *arg);

/*
 * A replayed dead letter was delivered: deletes it (it leaves the dead
 * list).  Deleting one that is not there is no error.  Blocks until
 * committed; returns 0 or -1.
 */
int		 store_dead_delivered(struct store *, const char *sink, int64_t seq);

/*
 * Registers an eventfd (or pipe write end) that the writer writes an 8-byte
 * 1 to after each commit that added outcomes or marked a dead letter for
 * replay.  At most 16.  Returns 0 or -1.
 */
int		 store_add_listener(struct store *, int fd);
/*
 * Another instance committed up to seq (SPEC §8: LISTEN/NOTIFY), or 0 when
 * it is not known what (a replay mark, a reconnect: listeners re-read): raises
 * the highest committed seq to seq if it is greater, never lowering it, and
 * wakes the listeners as a local commit does.  Any thread.
 */
void		 store_wake(struct store *, int64_t seq);
/* Unregisters fd: once this returns the writer no longer writes to it, and
 * its owner may close it. */
void		 store_remove_listener(struct store *, int fd);

/*
 * Records the reconciler's view of a payment (SPEC §4 "reconcile"): attempts
 * so far, the next try (RFC 3339, NULL for none) and the state (idle,
 * scheduled, gave_up, not_found, paused).  Blocks until committed; 0 or -1.
 */
int		 store_rc_set(struct store *, const char *payment_id, int attempts,
		    const char *next_at, const char *state);

/* What store_pay_begin() found. */
enum store_pay_found {
	STORE_PAY_NEW = 0,	/* stored as sending: create it now */
	STORE_PAY_EXISTS,	/* the key's request, for the same payment: do not create */
	STORE_PAY_MISMATCH	/* the key was used for another payment */
};

/*
 * "pay" (SPEC §4.1), before VINR is called: commits the request in (key,
 * terminal, amount, currency, reference, capture method) in state sending,
 * unless its key already has a request that is not not_created.  out
 * (payreq_release it) receives the request as stored: the new one, or the
 * key's earlier one for STORE_PAY_EXISTS and STORE_PAY_MISMATCH
 * (payreq_mismatch() says what differs).  Returns a store_pay_found, or
 * -1 when nothing could be committed.  Blocks until committed.
 */
int		 store_pay_begin(struct store *, const struct pay_request *in,
		    struct pay_request *out);
/* Sets the state of key's request (PR_UNKNOWN, PR_NOT_CREATED).  Blocks;
 * 0 or -1. */
int		 store_pay_set(struct store *, const char *key, enum payreq_state);
/*
 * Moves every request in state from that was committed before `before`
 * (RFC 3339) to state to: at start sending → unknown (the daemon died
 * while VINR was being asked), later unknown → not_created after [api]
 * unknown_after.  Returns how many moved, or -1.  Blocks.
 */
int		 store_pay_move(struct store *, enum payreq_state from,
		    enum payreq_state to, const char *before);

/* [storage] retain_days (0 = keep everything).  Before store_start(). */
void		 store_set_retention(struct store *, int days);

/* What /metrics shows of the writer.  Histogram counts are per bucket (not
 * cumulative); the last bucket is +Inf. */
#define STORE_HIST_BUCKETS 12
extern const double store_commit_bounds[STORE_HIST_BUCKETS];
extern const double store_batch_bounds[STORE_HIST_BUCKETS];
struct store_metrics {
	uint64_t	outcomes_by_status[PAY_CANCELLED + 1];
	uint64_t	commit_hist[STORE_HIST_BUCKETS + 1];
	uint64_t	batch_hist[STORE_HIST_BUCKETS + 1];
	double		commit_seconds_sum;
	uint64_t	batch_sum;
	uint64_t	commits;
};
void		 store_metrics_get(struct store *, struct store_metrics *);

/* The highest committed seq. */
int64_t		 store_last_seq(struct store *);
/*
 * True when the writer is alive (it ticks at least every second) and its
 * last commit succeeded; otherwise false with a reason ("storage_unavailable",
 * "writer_stalled").
 */
bool		 store_healthy(struct store *, const char **reason);

/*
 * For read connections (store_reader_open()): where it was opened (the
 * SQLite file, or the PostgreSQL DSN: never log it), its engine, and the
 * password it was given (NULL for none), a copy the store wipes at
 * store_free().  Valid until store_free(); never log the password.
 */
const char	*store_path(struct store *);
const struct store_engine *store_engine_of(struct store *);
const char	*store_password(struct store *);

#endif
