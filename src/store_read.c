/*
 * store_read.c - read connections (see store_read.h): the public functions,
 * which forward to the reader of the store's engine (store_read_int.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "store_engine.h"
#include "store_read_int.h"
#include "util.h"

struct store_reader {
	const struct store_reader_ops	*ops;
	struct store_rconn		*c;
};

/* Each engine's reader.  Here, not in the engine: the writer's engine never
 * needs the readers, and so the objects do not need each other. */
static const struct {
	const struct store_engine	*engine;
	const struct store_reader_ops	*ops;
} readers[] = {
	{ &store_sqlite_engine, &store_read_sqlite_ops },
	{ &store_pg_engine, &store_read_pg_ops },
};

struct store_reader *
store_reader_open_where(const struct store_engine *engine, const char *where,
    const char *password, char *err, size_t errlen)
{
	const struct store_reader_ops *ops = NULL;
	struct store_reader *r;

	for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++)
		if (readers[i].engine == engine)
			ops = readers[i].ops;
	if (ops == NULL) {
		snprintf(err, errlen, "no reader for the %s engine", engine->name);
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->ops = ops;
	if ((r->c = ops->open(where, password, err, errlen)) == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

struct store_reader *
store_reader_open(struct store *s, char *err, size_t errlen)
{
	return store_reader_open_where(store_engine_of(s), store_path(s),
	    store_password(s), err, errlen);
}

void
store_reader_free(struct store_reader *r)
{
	if (r == NULL)
		return;
	r->ops->free(r->c);
	free(r);
}

int
store_reader_outcomes(struct store_reader *r, int64_t after, int limit,
    outcome_fn fn, void *arg)
{
	return r->ops->outcomes(r->c, after, limit, fn, arg);
}

int64_t
store_reader_cursor(struct store_reader *r, const char *sink)
{
	return r->ops->cursor(r->c, sink);
}

int
store_reader_transitions(struct store_reader *r, int64_t after, int limit,
    transition_fn fn, void *arg)
{
	return r->ops->transitions(r->c, after, limit, fn, arg);
}

int
store_reader_payment(struct store_reader *r, const char *id, cJSON **out)
{
	return r->ops->payment(r->c, id, out);
}

cJSON *
store_reader_find(struct store_reader *r, const char *reference)
{
	return r->ops->find(r->c, reference);
}

cJSON *
store_reader_pending(struct store_reader *r, int64_t older_than_s)
{
	char before[TS_LEN];

	/* Our timestamps are RFC 3339 UTC text with milliseconds: the cutoff
	 * compares as text in either database. */
	util_rfc3339(util_now_ms() - older_than_s * 1000, before);
	return r->ops->pending(r->c, before);
}

cJSON *
store_reader_dead(struct store_reader *r)
{
	return r->ops->dead(r->c);
}

int64_t
store_reader_dead_count(struct store_reader *r, const char *sink)
{
	return r->ops->dead_count(r->c, sink);
}

int
store_reader_replays(struct store_reader *r, const char *sink, replay_fn fn, void *arg)
{
	return r->ops->replays(r->c, sink, fn, arg);
}

int
store_reader_rc_due(struct store_reader *r, const char *now, const char *stale_before,
    int limit, rc_due_fn fn, void *arg)
{
	return r->ops->rc_due(r->c, now, stale_before, limit, fn, arg);
}

int
store_reader_pay_request(struct store_reader *r, const char *key, struct pay_request *out)
{
	return r->ops->pay_request(r->c, key, out);
}

int
store_reader_pay_oldest(struct store_reader *r, enum payreq_state state, char at[TS_LEN])
{
	return r->ops->pay_oldest(r->c, state, at);
}
