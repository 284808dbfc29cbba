/*
 * store_read.c - read connections (see store_read.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store_int.h"
#include "store_read.h"

enum rstmt {
	RS_OUTCOMES, RS_CURSOR,
	RS_COUNT
};

static const char *const rstmt_sql[RS_COUNT] = {
	[RS_OUTCOMES] = "SELECT seq, status, json FROM outcomes WHERE seq > ?1 "
	    "ORDER BY seq LIMIT ?2",
	[RS_CURSOR] = "SELECT seq FROM cursors WHERE sink = ?1",
};

struct store_reader {
	sqlite3		*db;
	sqlite3_stmt	*st[RS_COUNT];
};

struct store_reader *
store_reader_open(const char *path, char *err, size_t errlen)
{
	struct store_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((r->db = store_connect(path, SQLITE_OPEN_READONLY, err, errlen)) == NULL)
		goto fail;
	for (int i = 0; i < RS_COUNT; i++)
		if (sqlite3_prepare_v3(r->db, rstmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &r->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
			goto fail;
		}
	return r;
fail:
	store_reader_free(r);
	return NULL;
}

void
store_reader_free(struct store_reader *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < RS_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
	free(r);
}

int
store_reader_outcomes(struct store_reader *r, int64_t after, int limit,
    outcome_fn fn, void *arg)
{
	sqlite3_stmt *st = r->st[RS_OUTCOMES];
	int rc, n = 0;

	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(arg, sqlite3_column_int64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    sqlite3_column_bytes(st, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_warnx("database: reading outcomes: %s", sqlite3_errmsg(r->db));
		return -1;
	}
	return n;
}

int64_t
store_reader_cursor(struct store_reader *r, const char *sink)
{
	sqlite3_stmt *st = r->st[RS_CURSOR];
	int64_t v = -1;
	int rc;

	sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		v = 0;
	else
		log_warnx("database: reading cursor %s: %s", sink, sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	return v;
}
