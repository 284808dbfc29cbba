/*
 * store_engine.h - what the writer (store.c) asks of a storage engine.
 *
 * DESIGN: store.c owns the queue, the group commit, the seq counter, the
 * cursors, the listeners and the counters; it knows no SQL.  An engine owns
 * one write connection and every statement that goes through it.  The writer
 * calls it from its own thread only, one call at a time: an engine needs no
 * lock of its own.  Every write happens between begin() and commit() (or
 * rollback()); the writer answers its callers only after commit() returned 0.
 *
 * A batch: begin, then each job's operation, then cursor_set for the dirty
 * cursors, then commit.  The first pass runs the jobs without savepoints; if
 * one returns STORE_E_JOB the writer rolls back and runs the batch again,
 * each job between savepoint() and release() (or savepoint_undo()).
 *
 * Operations return 0, or one of these (never an engine's own codes: the
 * engine logs what its database said, and error() keeps the text):
 */
#ifndef VINR_STORE_ENGINE_H
#define VINR_STORE_ENGINE_H

#include <stdint.h>

#include "payment.h"
#include "store.h"

/*
 * This operation failed on its own (a constraint, bad input, ...): the
 * transaction is intact and the other jobs of the batch may still commit.
 */
#define STORE_E_JOB	(-1)
/*
 * The transaction is lost (busy, I/O, disk full, out of memory, the
 * connection gone): nothing of it will commit; the writer rolls back and
 * fails the whole batch.
 */
#define STORE_E_TXN	(-2)

/* An engine's connection: each engine defines it; the writer only holds it. */
struct store_conn;

struct store_engine {
	const char *name;		/* "sqlite" */

	/*
	 * Connects to where (SQLite: the file, created if needed), brings the
	 * schema up to date, and prepares what the operations need.  NULL with
	 * a message in err on failure.  The result is the writer's alone.
	 */
	struct store_conn *(*open)(const char *where, const struct store_params *,
	    char *err, size_t errlen);
	/* Closes and frees; an open transaction is rolled back.  NULL ok. */
	void	(*close)(struct store_conn *);
	/*
	 * The highest seq ever committed (0 for none), also when its outcome
	 * has been pruned since, or -1 when it cannot be read.  The writer
	 * calls it once, after open(), and counts on from there.
	 */
	int64_t	(*last_seq)(struct store_conn *);
	/* The text of the last error an operation returned, for logs. */
	const char *(*error)(struct store_conn *);

	/* How long (ms, at least 1) the next begin() may wait for the write
	 * lock.  NULL: the engine's own limit. */
	void	(*set_lock_wait)(struct store_conn *, int ms);
	/* Opens the batch's transaction, taking the write lock now. */
	int	(*begin)(struct store_conn *);
	/* Makes the transaction durable; on failure nothing of it is (and the
	 * writer calls rollback()). */
	int	(*commit)(struct store_conn *);
	/* Ends the open transaction keeping nothing.  Harmless when none is
	 * open.  0 or STORE_E_TXN. */
	int	(*rollback)(struct store_conn *);
	/* The careful pass: savepoint() before each job, release() keeps what
	 * the job did, savepoint_undo() drops it (and the savepoint). */
	int	(*savepoint)(struct store_conn *);
	int	(*release)(struct store_conn *);
	int	(*savepoint_undo)(struct store_conn *);

	/*
	 * One event (SPEC §2-3): dedupe by in->ev->id, load the payment,
	 * payment_apply(), store the event with what it did, and on a
	 * transition store the payment and its outcome.  Sets in->result,
	 * in->decision (-1 if none) and in->seq: the seq the outcome was
	 * stored under, or 0 for no outcome.  seq is the one the writer
	 * proposes (one past the last it knows of); an engine that shares
	 * its counter with other writers may take a greater one from its
	 * database instead: the writer counts on from in->seq.  now (RFC
	 * 3339) is the batch's time.  Then the pay requests (SPEC §4.1): with
	 * in->pay_key, that request is linked to the payment and the payment
	 * tracked; without, a payment that matches an unknown request
	 * (terminal, reference, amount; payreq_link_ok()) and is linked to
	 * none resolves the oldest such request the same way.  On an error
	 * in's results are undefined.
	 */
	int	(*ingest)(struct store_conn *, struct store_ingest *in, const char *now,
		    int64_t seq);
	/* "track" (see store_track()).  When out is not NULL it is released
	 * and refilled with the payment as stored. */
	int	(*track)(struct store_conn *, const struct payment *in,
		    struct payment *out, const char *now);
	/*
	 * "pay" (see store_pay_begin()): returns a store_pay_found (>= 0) with
	 * out refilled (it is released first), or an error.
	 */
	int	(*pay_begin)(struct store_conn *, const struct pay_request *in,
		    struct pay_request *out, const char *now);
	/* Sets key's request to state (see store_pay_set()). */
	int	(*pay_set)(struct store_conn *, const char *key, enum payreq_state state,
		    const char *now);
	/* See store_pay_move(): how many moved, or an error. */
	int	(*pay_move)(struct store_conn *, enum payreq_state from,
		    enum payreq_state to, const char *before, const char *now);
	/* Moves sink's cursor to seq, never backwards. */
	int	(*cursor_set)(struct store_conn *, const char *sink, int64_t seq);
	/* Records (or refreshes, clearing its replay mark) the dead letter
	 * (sink, seq) and moves sink's cursor past it. */
	int	(*dead_letter)(struct store_conn *, const char *sink, int64_t seq,
		    int attempts, const char *last_error, const char *now);
	/* Marks the dead letter (sink, seq) for replay.  Returns how many were
	 * marked (0 when there is none, or 1), or an error. */
	int	(*replay_mark)(struct store_conn *, const char *sink, int64_t seq);
	/* Deletes the dead letter (sink, seq).  Returns how many went (0 or
	 * 1), or an error. */
	int	(*dead_delete)(struct store_conn *, const char *sink, int64_t seq);
	/* Records the reconciler's view of a payment (see store_rc_set()). */
	int	(*rc_set)(struct store_conn *, const char *payment_id, int attempts,
		    const char *next_at, const char *state);

	/*
	 * Retention, inside a transaction the writer opened: deletes at most
	 * chunk events and chunk outcomes recorded before cutoff (RFC 3339),
	 * the outcomes only up to seq delivered.  Returns the rows deleted
	 * (0: nothing left to prune), or an error.
	 */
	int	(*prune)(struct store_conn *, const char *cutoff, int64_t delivered,
		    int chunk);
	/*
	 * Outside a transaction: 0 when the database takes a write again
	 * (SQLite: it can take the write lock), else an error.  Leaves no
	 * transaction open.
	 */
	int	(*probe)(struct store_conn *);
};

/* The engines. */
extern const struct store_engine store_sqlite_engine;	/* store_sqlite.c */
extern const struct store_engine store_pg_engine;	/* store_pg.c */

#endif
