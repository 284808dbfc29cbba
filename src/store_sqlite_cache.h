/*
 * store_sqlite_cache.h - the SQLite writer's cache of payment rows.
 *
 * DESIGN: with SQLite one connection of one process writes the payments
 * table (store_sqlite.c), so the row it just wrote is the row a SELECT
 * would read back.  The cache keeps those rows, so that the next event of
 * the same payment skips the SELECT and the copy of every text column.
 * It is direct-mapped (a slot per hash, a collision evicts) and bounded.
 * It only holds rows as they are in the open transaction or the last
 * committed one: the engine clears it on every ROLLBACK and ROLLBACK TO,
 * and whenever another connection committed (PRAGMA data_version), and
 * drops a row before any other statement changes it.  Never used by the
 * PostgreSQL engine: several instances write there.
 */
#ifndef VINR_STORE_SQLITE_CACHE_H
#define VINR_STORE_SQLITE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payment.h"

struct pay_cache;

/* A cache of nslots (rounded up to a power of two, at least 1) empty
 * slots; NULL on allocation failure.  Freed with pay_cache_free(). */
struct pay_cache	*pay_cache_new(size_t nslots);
/* Frees the cache and every payment it holds; NULL is fine. */
void			 pay_cache_free(struct pay_cache *);

/*
 * Moves the payment id out of the cache into *out (which must hold
 * nothing: its old strings are not freed) and returns true; the slot is
 * then empty, so that a job that fails half-way leaves no copy behind.
 * False on a miss (*out untouched).
 */
bool	pay_cache_take(struct pay_cache *, const char *id, struct payment *out);
/*
 * Moves *p (the row exactly as stored) into the cache, evicting what its
 * slot held; the transient status_at is freed, not kept, and a payment
 * with no id is freed.  p is left holding nothing.
 */
void	pay_cache_put(struct pay_cache *, struct payment *p);
/* Forgets the payment id, if cached. */
void	pay_cache_drop(struct pay_cache *, const char *id);
/* Forgets every payment. */
void	pay_cache_clear(struct pay_cache *);

/* Lookups that hit and missed, and clears, since pay_cache_new() (tests, bench). */
struct pay_cache_stats {
	uint64_t	hits, misses, clears;
};
void	pay_cache_stats(const struct pay_cache *, struct pay_cache_stats *);

/* The same figures for the SQLite engine's connection (store_sqlite.c). */
struct store_conn;
void	store_sqlite_cache_stats(struct store_conn *, struct pay_cache_stats *);

#endif
