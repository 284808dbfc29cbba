/*
 * store_pg_conn.c - connecting to PostgreSQL, the migrations, the row
 * mapping and the error classes: what every connection of ours to the
 * database needs (see store_pg_int.h), apart from the writer's statements
 * (store_pg.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "store.h"
#include "store_pg_int.h"

/* The server's NOTICEs ("relation already exists, skipping") are for
 * debugging: libpq would write them to stderr. */
static void
notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("database: %.*s", (int)strcspn(msg, "\n"), msg);
}

PGconn *
store_pg_connect(const char *where, const struct store_params *params,
    const char *role, char *err, size_t errlen)
{
	const char *keys[16], *vals[16];
	char app[64];
	PGconn *pg;
	int n = 0;

	snprintf(app, sizeof(app), "vinr-webhookd/%s%s%s",
	    params->instance != NULL ? params->instance : "",
	    role != NULL ? "/" : "", role != NULL ? role : "");
	/*
	 * Ours first, so that the DSN may set its own (a longer connect
	 * timeout over a slow link, say); the password last.  A dead peer
	 * (a primary gone, a cable cut) shows within about 10 s: keepalives
	 * while idle, tcp_user_timeout while data waits for an ACK.
	 */
#define KV(k, v) (keys[n] = (k), vals[n++] = (v))
	KV("application_name", app);
	KV("connect_timeout", "5");
	KV("keepalives", "1");
	KV("keepalives_idle", "5");
	KV("keepalives_interval", "2");
	KV("keepalives_count", "3");
	KV("tcp_user_timeout", "10000");
	KV("dbname", where);
	if (params->password != NULL)
		KV("password", params->password);
#undef KV
	keys[n] = vals[n] = NULL;
	if ((pg = PQconnectdbParams(keys, vals, 1)) == NULL) {
		snprintf(err, errlen, "postgres: out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		/* libpq's message names host, port and user, never the password. */
		store_pg_errmsg(pg, NULL, err, errlen);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, notice, NULL);
	return pg;
}

const char *
store_pg_errmsg(PGconn *pg, const PGresult *res, char *buf, size_t len)
{
	const char *m = res != NULL ? PQresultErrorMessage(res) : NULL;
	size_t n;

	if (m == NULL || *m == '\0')
		m = pg != NULL ? PQerrorMessage(pg) : "";
	if (m == NULL || *m == '\0')
		m = "unknown error (out of memory?)";
	snprintf(buf, len, "%s", m);
	n = strcspn(buf, "\n");
	buf[n] = '\0';
	return buf;
}

bool
store_pg_job_error(PGconn *pg, const PGresult *res)
{
	const char *state;

	if (PQstatus(pg) != CONNECTION_OK || res == NULL ||
	    (state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) == NULL)
		return false;
	/*
	 * 22 data exception (a byte sequence not in UTF-8, a number out of
	 * range), 23 integrity constraint, and 54000 (a key too long for its
	 * index): this statement's data, not the database.  Everything else
	 * (lock timeout 55P03, admin shutdown 57P01, disk full 53100,
	 * serialization 40001, a broken connection) loses the transaction.
	 */
	return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
	    strcmp(state, "54000") == 0;
}

/* One statement (or several, with no parameters); -1 with err. */
static int
exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen, int64_t *first)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		store_pg_errmsg(pg, res, err, errlen);
		PQclear(res);
		return -1;
	}
	if (first != NULL)
		*first = st == PGRES_TUPLES_OK && PQntuples(res) > 0 ?
		    store_pg_int(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/*
 * One step: under the lock, the version now, and the next migration if
 * one is missing.  1 applied one, 0 up to date, -1 with err.
 */
static int
migrate_step(PGconn *pg, char *err, size_t errlen)
{
	char sql[160];
	int64_t version;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
	    (long long)STORE_PG_LOCK_MIGRATE);
	if (exec_ok(pg, sql, err, errlen, NULL) == -1 ||
	    exec_ok(pg, "CREATE TABLE IF NOT EXISTS vinr_schema (version integer "
	    "NOT NULL)", err, errlen, NULL) == -1 ||
	    exec_ok(pg, "SELECT coalesce(max(version), 0) FROM vinr_schema", err,
	    errlen, &version) == -1)
		goto fail;
	if (version > pg_nmigrations) {
		snprintf(err, errlen, "database schema version %lld is newer than this "
		    "program knows (%d)", (long long)version, pg_nmigrations);
		goto fail;
	}
	if (version == pg_nmigrations)
		return exec_ok(pg, "COMMIT", err, errlen, NULL) == -1 ? -1 : 0;
	snprintf(sql, sizeof(sql), "DELETE FROM vinr_schema; INSERT INTO vinr_schema "
	    "(version) VALUES (%lld)", (long long)version + 1);
	if (exec_ok(pg, pg_migrations[version], err, errlen, NULL) == -1 ||
	    exec_ok(pg, sql, err, errlen, NULL) == -1 ||
	    exec_ok(pg, "COMMIT", err, errlen, NULL) == -1)
		goto fail;
	log_info("database migrated to schema version %lld", (long long)version + 1);
	return 1;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -1;
}

int
store_pg_migrate(PGconn *pg, char *err, size_t errlen)
{
	int rc;

	while ((rc = migrate_step(pg, err, errlen)) == 1)
		;
	return rc;
}

int64_t
store_pg_int(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Column k of PAYMENT_COLS is pay_fields[k]: the table maps it. */
int
store_pg_payment(const PGresult *res, int row, int c, struct payment *p)
{
	payment_init(p);
	for (int i = 0; i < PAY_NFIELDS; i++) {
		if (PQgetisnull(res, row, c + i))
			continue;
		if (!pay_field_is_text(i))
			pay_field_set_int(p, i, true, store_pg_int(res, row, c + i));
		else if (pay_field_set_text(p, i, PQgetvalue(res, row, c + i)) == -1) {
			payment_release(p);
			return -1;
		}
	}
	return 0;
}

int
store_pg_payreq(const PGresult *res, int row, int c, struct pay_request *r)
{
	const char *col[PAYREQ_NCOLS];

	for (int i = 0; i < PAYREQ_NCOLS; i++)
		col[i] = PQgetisnull(res, row, c + i) ? NULL : PQgetvalue(res, row, c + i);
	return payreq_from_columns(r, col, store_pg_int(res, row, c + 5));
}
