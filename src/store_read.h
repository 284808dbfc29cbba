/*
 * store_read.h - a read connection to the database, for one thread.
 *
 * Sinks and the control socket each open their own: WAL lets them read a
 * consistent snapshot while the writer commits.  Never share one between
 * threads.
 */
#ifndef VINR_STORE_READ_H
#define VINR_STORE_READ_H

#include <stdint.h>

struct store_reader;

/* NULL with a message in err on failure.  Free with store_reader_free(). */
struct store_reader	*store_reader_open(const char *path, char *err, size_t errlen);
void			 store_reader_free(struct store_reader *);

/*
 * Calls fn for each outcome with seq > after, in seq order, at most limit.
 * fn returns 0 to go on, anything else to stop early.  json is valid only
 * during the call.  Returns the number of outcomes passed to fn, or -1.
 */
typedef int (*outcome_fn)(void *arg, int64_t seq, const char *status,
    const char *json, int jsonlen);
int	store_reader_outcomes(struct store_reader *, int64_t after, int limit,
	    outcome_fn fn, void *arg);

/* The sink's saved cursor (0 when it has none), or -1 on error. */
int64_t	store_reader_cursor(struct store_reader *, const char *sink);

#endif
