/*
 * store_fixture.h - the unit tests' store fixture: a writer and a read
 * connection on a fresh database in a temporary directory, for cmocka's
 * setup/teardown.  Included by the test files that need it (each test file
 * is its own program).
 */
#ifndef VINR_TEST_STORE_FIXTURE_H
#define VINR_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "store_read.h"

struct fixture {
	char			 dir[64];
	char			 path[128];
	struct store		*store;
	struct store_reader	*reader;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vinr-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vinr.db", f->dir);
	if ((f->store = store_open(f->path, 1, err, sizeof(err))) == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	if (store_start(f->store) == -1)
		return -1;
	if ((f->reader = store_reader_open(f->store, err, sizeof(err))) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	store_reader_free(f->reader);
	store_free(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

#endif
