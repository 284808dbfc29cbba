/*
 * store_read_int.h - what store_read.c (the public functions) asks of a read
 * connection of one engine: store_read_sqlite.c and store_read_pg.c.  Not
 * for other modules.
 *
 * DESIGN: store_read.c picks the reader of the store's engine and forwards
 * every call to it; it computes what does not depend on the database (the
 * cutoff of "pending") once, so that both engines answer alike.  Each engine
 * defines its own struct store_rconn.  Every call reads one snapshot: it is
 * one statement (or one read-only repeatable-read transaction), so a batch
 * the writer is committing is seen whole or not at all.
 */
#ifndef VINR_STORE_READ_INT_H
#define VINR_STORE_READ_INT_H

#include "store_read.h"

/* What PAYMENT shows beyond PAYMENT_COLS (store_int.h), in this order,
 * after them. */
#define META_COLS "updated_at, last_event_id, tracked, rc_attempts, rc_next_at, rc_state"

struct store_engine;
struct store_rconn;

/* The operations of store_read.h, on an engine's connection. */
struct store_reader_ops {
	/*
	 * Connects to where (SQLite: the file; PostgreSQL: the DSN, with
	 * password when not NULL).  NULL with a message in err, which never
	 * holds where or the password.
	 */
	struct store_rconn *(*open)(const char *where, const char *password,
	    char *err, size_t errlen);
	void	(*free)(struct store_rconn *);
	int	(*outcomes)(struct store_rconn *, int64_t after, int limit,
		    outcome_fn fn, void *arg);
	int64_t	(*cursor)(struct store_rconn *, const char *sink);
	int	(*transitions)(struct store_rconn *, int64_t after, int limit,
		    transition_fn fn, void *arg);
	int	(*payment)(struct store_rconn *, const char *id, cJSON **out);
	cJSON	*(*find)(struct store_rconn *, const char *reference);
	/* The payments pending or processing with updated_at <= before. */
	cJSON	*(*pending)(struct store_rconn *, const char *before);
	cJSON	*(*dead)(struct store_rconn *);
	int64_t	(*dead_count)(struct store_rconn *, const char *sink);
	int	(*replays)(struct store_rconn *, const char *sink, replay_fn fn,
		    void *arg);
	int	(*rc_due)(struct store_rconn *, const char *now,
		    const char *stale_before, int limit, rc_due_fn fn, void *arg);
	int	(*pay_request)(struct store_rconn *, const char *key,
		    struct pay_request *out);
	int	(*pay_oldest)(struct store_rconn *, enum payreq_state state,
		    char at[TS_LEN]);
};

extern const struct store_reader_ops store_read_sqlite_ops;	/* store_read_sqlite.c */
extern const struct store_reader_ops store_read_pg_ops;		/* store_read_pg.c */

/*
 * store_reader_open() without a store: a read connection of engine to where
 * (a file or a DSN), with password (NULL: none).  For tests and tools.
 * NULL with a message in err.
 */
struct store_reader	*store_reader_open_where(const struct store_engine *engine,
			    const char *where, const char *password, char *err,
			    size_t errlen);

#endif
