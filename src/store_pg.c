/*
 * store_pg.c - the PostgreSQL engine behind store_engine.h (SPEC §8).
 *
 * Not written yet: open() refuses, so that the rest of the daemon can be
 * wired to it.
 */
#include <stdio.h>

#include "store_engine.h"

static struct store_conn *
pg_open(const char *where, const struct store_params *params, char *err,
    size_t errlen)
{
	(void)where;
	(void)params;
	snprintf(err, errlen, "the postgres backend is not built yet");
	return NULL;
}

const struct store_engine store_pg_engine = {
	.name = "postgres",
	.open = pg_open,
};
