/*
 * util.h - small helpers shared by every part: clocks and timestamps.
 */
#ifndef VINR_UTIL_H
#define VINR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TS_LEN	80	/* "2026-06-11T09:00:12.345Z" needs 25; room for any year */

/* Milliseconds: wall clock, and a monotonic clock for intervals. */
int64_t	util_now_ms(void);
int64_t	util_mono_ms(void);
/* Microseconds on the monotonic clock: for timing short work (a commit). */
int64_t	util_mono_us(void);
/* RFC 3339 UTC with milliseconds, for the given wall-clock milliseconds. */
void	util_rfc3339(int64_t ms, char buf[TS_LEN]);
/* A timespec "ms from now" on CLOCK_MONOTONIC, for pthread_cond_timedwait
 * on condition variables made with util_cond_init(). */
void	util_deadline(struct timespec *ts, int64_t ms);
int	util_cond_init(void *cond);	/* pthread_cond_t *, CLOCK_MONOTONIC */
/* s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool	util_utf8_valid(const char *s, size_t len);

/*
 * Formats a message into err (at most errlen bytes, NUL-terminated) for the
 * "-1 with a message in err" convention.  err NULL or errlen 0: nothing.
 */
void	util_seterr(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
