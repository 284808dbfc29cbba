/*
 * sim_util.c - see sim_util.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "sim_util.h"

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
sim_rand_seed(struct sim_rand *r, uint64_t seed)
{
	r->s = splitmix64(&seed);
	if (r->s == 0)		/* xorshift's one forbidden state */
		r->s = 0x2545f4914f6cdd1dULL;
}

uint64_t
sim_rand_next(struct sim_rand *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

double
sim_rand_unit(struct sim_rand *r)
{
	return (double)(sim_rand_next(r) >> 11) / 9007199254740992.0;	/* 2^53 */
}

static void
entropy(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = getrandom(p, len, 0);
		if (n <= 0) {
			/* Never expected on Linux >= 3.17; still give something. */
			uint64_t x = (uint64_t)util_mono_ms() ^ ((uint64_t)util_now_ms() << 20);

			for (; len > 0; len--)
				*p++ = (unsigned char)splitmix64(&x);
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

uint64_t
sim_rand_entropy(void)
{
	uint64_t x;

	entropy(&x, sizeof(x));
	return x;
}

void
sim_new_id(const char *prefix, char out[SIM_ID_LEN])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint64_t ms = (uint64_t)util_now_ms();
	unsigned char rnd[10];
	size_t n;
	int i;

	entropy(rnd, sizeof(rnd));
	n = strlen(prefix);
	if (n > SIM_ID_LEN - 27)
		n = SIM_ID_LEN - 27;
	memcpy(out, prefix, n);
	/* 48-bit time: 10 characters of 5 bits (the top two bits are zero). */
	for (i = 9; i >= 0; i--) {
		out[n + (size_t)i] = b32[ms & 31];
		ms >>= 5;
	}
	/* 80 random bits: 16 characters. */
	for (i = 0; i < 16; i++) {
		int bit = i * 5, byte = bit / 8, off = bit % 8;
		unsigned v = (unsigned)rnd[byte] << 8 | (byte + 1 < 10 ? rnd[byte + 1] : 0);

		out[n + 10 + (size_t)i] = b32[(v >> (11 - off)) & 31];
	}
	out[n + 26] = '\0';
}

void
sim_rfc3339(int64_t ms, char buf[TS_LEN])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, TS_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void
sim_err_set(struct sim_err *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}
