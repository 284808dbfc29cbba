/*
 * sim_util.h - vinr-sim's small helpers: a seedable PRNG for the chaos
 * decisions, identifiers, timestamps, and the error triple every API answer
 * that is not 2xx carries.
 */
#ifndef VINR_SIM_UTIL_H
#define VINR_SIM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * xorshift64* seeded through splitmix64: tiny, fast, and the same sequence
 * for the same seed on every machine.  Not thread-safe: its owner serializes
 * the calls.
 */
struct sim_rand {
	uint64_t	s;
};

void		sim_rand_seed(struct sim_rand *, uint64_t seed);
uint64_t	sim_rand_next(struct sim_rand *);
/* Uniform in [0, 1). */
double		sim_rand_unit(struct sim_rand *);
/* A seed from getrandom(2), for runs without --seed. */
uint64_t	sim_rand_entropy(void);

/* prefix + a ULID (26 Crockford base32 characters: 48 bits of wall-clock
 * milliseconds, 80 random bits), e.g. "tpay_01J0Q8ZK3M4N5P6Q7R8S9T0V1W".
 * Identifiers never come from the seeded PRNG: they stay unique across runs. */
#define SIM_ID_LEN	48
void	sim_new_id(const char *prefix, char out[SIM_ID_LEN]);

/* RFC 3339 UTC with whole seconds ("2026-06-11T09:00:12Z"), as VINR's API
 * writes its timestamps. */
void	sim_rfc3339(int64_t ms, char buf[TS_LEN]);

/* A failed API call: HTTP status, error code, human message. */
struct sim_err {
	int		 status;
	const char	*code;
	char		 message[256];
};

void	sim_err_set(struct sim_err *, int status, const char *code, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

#endif
