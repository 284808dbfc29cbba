/*
 * store_sqlite_cache.c - the SQLite writer's cache of payment rows (see
 * store_sqlite_cache.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store_sqlite_cache.h"

struct slot {
	uint32_t	 hash;
	bool		 used;
	struct payment	 p;
};

struct pay_cache {
	struct slot		*slots;
	size_t			 mask;
	struct pay_cache_stats	 st;
};

/* FNV-1a: ids are short ASCII strings. */
static uint32_t
hash_id(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct pay_cache *
pay_cache_new(size_t nslots)
{
	struct pay_cache *pc;
	size_t n = 1;

	while (n < nslots)
		n *= 2;
	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return NULL;
	if ((pc->slots = calloc(n, sizeof(*pc->slots))) == NULL) {
		free(pc);
		return NULL;
	}
	pc->mask = n - 1;
	return pc;
}

static void
slot_empty(struct slot *s)
{
	if (s->used)
		payment_release(&s->p);
	s->used = false;
}

void
pay_cache_clear(struct pay_cache *pc)
{
	if (pc == NULL)
		return;
	for (size_t i = 0; i <= pc->mask; i++)
		slot_empty(&pc->slots[i]);
	pc->st.clears++;
}

void
pay_cache_free(struct pay_cache *pc)
{
	if (pc == NULL)
		return;
	pay_cache_clear(pc);
	free(pc->slots);
	free(pc);
}

/* The slot that holds id, or NULL. */
static struct slot *
find(struct pay_cache *pc, const char *id, uint32_t h)
{
	struct slot *s = &pc->slots[h & pc->mask];

	return s->used && s->hash == h && strcmp(s->p.id, id) == 0 ? s : NULL;
}

bool
pay_cache_take(struct pay_cache *pc, const char *id, struct payment *out)
{
	struct slot *s;

	if (id == NULL || (s = find(pc, id, hash_id(id))) == NULL) {
		pc->st.misses++;
		return false;
	}
	*out = s->p;
	s->used = false;
	pc->st.hits++;
	return true;
}

void
pay_cache_put(struct pay_cache *pc, struct payment *p)
{
	struct slot *s;
	uint32_t h;

	if (p->id == NULL) {		/* cannot be looked up: not kept */
		payment_release(p);
		payment_init(p);
		return;
	}
	h = hash_id(p->id);
	s = &pc->slots[h & pc->mask];
	slot_empty(s);
	free(p->status_at);
	p->status_at = NULL;
	s->p = *p;
	s->hash = h;
	s->used = true;
	payment_init(p);
}

void
pay_cache_drop(struct pay_cache *pc, const char *id)
{
	struct slot *s;

	if (id != NULL && (s = find(pc, id, hash_id(id))) != NULL)
		slot_empty(s);
}

void
pay_cache_stats(const struct pay_cache *pc, struct pay_cache_stats *st)
{
	*st = pc->st;
}
