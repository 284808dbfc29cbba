/*
 * store_pg_int.h - what the PostgreSQL engine (store_pg.c) and whatever
 * else talks to the same database (a read connection, a LISTEN connection,
 * a leader election) share: how to connect, the migrations, and the code
 * that turns a result row into a struct payment or a pay request.  Not for
 * other modules: store.c knows no SQL.
 */
#ifndef VINR_STORE_PG_INT_H
#define VINR_STORE_PG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "payment.h"
#include "payreq.h"

struct store_params;

/* The migrations, generated from sql/pg/NNN_*.sql at build time:
 * pg_migrations[N-1] is schema version N. */
extern const char *const pg_migrations[];
extern const int pg_nmigrations;

/*
 * The channel a writer NOTIFYs in the transaction that stored outcomes or
 * marked a replay; the payload is the decimal text of the highest seq the
 * transaction stored, or "0" for a replay mark alone.  Delivered at COMMIT.
 */
#define STORE_PG_CHANNEL	"vinr_outcomes"

/* The advisory lock (pg_advisory_xact_lock) the migrations run under:
 * "vinr" and 1.  Other locks of ours take other second halves. */
#define STORE_PG_LOCK_MIGRATE	0x76696e7200000001LL

/*
 * Connects to where (a libpq connection string or URI without its
 * password) with params->password (NULL: libpq's own, PGPASSFILE ...),
 * application_name "vinr-webhookd/<instance>" (role appended after a "/"
 * when not NULL, e.g. "listen"), a 5 s connect timeout and TCP keepalives
 * that notice a dead peer within about 10 s.  Returns the connection, or
 * NULL with a message in err (never the password).  PQfinish() it.
 */
PGconn	*store_pg_connect(const char *where, const struct store_params *params,
	    const char *role, char *err, size_t errlen);

/*
 * Brings the schema up to date: each missing pg_migrations[v] in its own
 * transaction under STORE_PG_LOCK_MIGRATE, so that instances starting
 * together take turns.  Refuses a database newer than this program.
 * 0, or -1 with err.  No transaction is left open.
 */
int	store_pg_migrate(PGconn *, char *err, size_t errlen);

/*
 * Fills p from columns col0 .. col0+PAY_NFIELDS-1 of row (PAYMENT_COLS'
 * order, store_int.h), text format.  0 or -1 (allocation).
 */
int	store_pg_payment(const PGresult *, int row, int col0, struct payment *p);
/* Fills r from columns col0 .. col0+8 of row (PAYREQ_COLS' order). */
int	store_pg_payreq(const PGresult *, int row, int col0, struct pay_request *r);

/* A text-format integer column; 0 for NULL or garbage. */
int64_t	store_pg_int(const PGresult *, int row, int col);

/*
 * Whether an error in res (NULL: the connection's own) loses only the
 * statement (SQLSTATE class 22 data exception or 23 integrity constraint,
 * on a connection still up) rather than the transaction or the connection.
 */
bool	store_pg_job_error(PGconn *, const PGresult *res);

/*
 * The first line of an error message (res's, or the connection's when res
 * is NULL) into buf, without libpq's trailing newline.  Returns buf.
 */
const char *store_pg_errmsg(PGconn *, const PGresult *res, char *buf, size_t len);

#endif
