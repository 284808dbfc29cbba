/*
 * store_int.h - what the SQLite engine (store_sqlite.c, the writer's side)
 * and store_read_sqlite.c (the readers' side) share: the connection, the
 * migrations, the payment columns and the code that turns a row into a
 * struct payment.  store_read_pg.c takes only the column lists.  Not for
 * other modules: store.c knows no SQLite.
 */
#ifndef VINR_STORE_INT_H
#define VINR_STORE_INT_H

#include <sqlite3.h>

#include "payment.h"
#include "payreq.h"

/*
 * The columns payment_from_row() reads, in this order: pay_fields[i].column
 * for i = 0 .. PAY_NFIELDS-1 (payment.h), joined by ", ".  A macro because
 * the SQL is built from string literals at compile time; test_payment.c
 * checks it against the table, the assertion below its length.
 */
#define PAYMENT_COLS "id, terminal_id, reference, status, amount, amount_captured, " \
	"currency, capture_method, entry_method, brand, last4, auth_code, decline_code, " \
	"livemode, created_at"
#define PAYMENT_NCOLS 15
_Static_assert(PAYMENT_NCOLS == PAY_NFIELDS, "PAYMENT_COLS is the field table's columns");

/* Fills p from columns col0 .. col0+14 of the current row; 0 or -1. */
int	payment_from_row(sqlite3_stmt *, int col0, struct payment *p);

/* The columns payreq_from_row() reads, in this order. */
#define PAYREQ_COLS "key, terminal_id, reference, currency, capture_method, amount, " \
	"state, payment_id, created_at"

/* Fills r from columns col0 .. col0+8 of the current row; 0 or -1. */
int	payreq_from_row(sqlite3_stmt *, int col0, struct pay_request *r);

/* The migrations, generated from sql/NNN_*.sql at build time. */
extern const char *const sql_migrations[];
extern const int sql_nmigrations;

/*
 * The payment upsert and "track" statements, written from the field table
 * (payment.h) so that a column added there is stored with no list to keep
 * in step: parameters mark1 .. markN in the table's order (mark: '?' for
 * SQLite, '$' for PostgreSQL), then N+1 updated_at and, for the upsert,
 * N+2 last_event_id.  An applied transition replaces every column; "track"
 * fills only what a known payment lacks and keeps its status.  0, or -1
 * when a buffer is too small.
 */
int	store_pay_sql(char mark, char *upsert, size_t ulen, char *track, size_t tlen);

/* Opens a connection with the pragmas every connection of ours uses. */
sqlite3	*store_connect(const char *path, int flags, char *err, size_t errlen);

#endif
