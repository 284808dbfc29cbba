/*
 * sink.c - the delivery loop every sink shares (see sink.h).
 *
 * Threads: one per sink (sink_main).  The main thread only sets flags
 * (stop, reopen) and writes to the sink's eventfd to wake it; any thread
 * reads the atomics (cursor, dead, failing, tick) for stats and health.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "payment.h"
#include "sink.h"
#include "store.h"
#include "store_read.h"
#include "util.h"

#define BATCH		256
/*
 * A sink with ops->push flushes at most this often: the event log's
 * fdatasync (an i_size change, so an ext4 journal commit each time) once
 * per 10 ms under load instead of once per commit.  Lines are written at
 * once all the same; only the saved cursor waits for the flush.
 */
#define SINK_SYNC_GAP_MS	10

struct line {
	int64_t		 seq;
	bool		 skip;		/* filtered out by events = outcomes */
	char		*buf;		/* json + '\n' */
	size_t		 len;
};

struct sink {
	const struct sink_ops	*ops;
	char			*key;		/* cursor and dead letters: sink_params */
	void			*impl;
	struct sink_params	 p;
	struct store		*store;
	struct store_reader	*reader;
	pthread_t		 thread;
	bool			 running;	/* thread started, not joined */
	bool			 listening;	/* efd is a store listener */
	int			 efd;
	atomic_bool		 stopping;
	atomic_bool		 failing;	/* the last delivery failed */
	atomic_bool		 reopen;
	_Atomic int64_t		 tick_ms;
	_Atomic int64_t		 cursor;
	_Atomic int64_t		 dead;		/* its rows in dead_letters, cached */
	/* The sink thread's own: pushed up to sent (> cursor) but not flushed
	 * yet, 0 when nothing is waiting; when the last flush ran. */
	int64_t			 sent;
	int64_t			 synced_ms;

	struct line		 lines[BATCH];
	int			 nlines;
};

void *
sink_impl(struct sink *s)
{
	return s->impl;
}

bool
sink_stopping(struct sink *s)
{
	return atomic_load(&s->stopping);
}

void
sink_tick(struct sink *s)
{
	atomic_store(&s->tick_ms, util_mono_ms());
}

const char *
sink_name(struct sink *s)
{
	return s->ops->name;
}

bool
sink_alive(struct sink *s)
{
	return util_mono_ms() - atomic_load(&s->tick_ms) < 15000;
}

int64_t
sink_cursor(struct sink *s)
{
	return atomic_load(&s->cursor);
}

int64_t
sink_dead_letters(struct sink *s)
{
	return atomic_load(&s->dead);
}

bool
sink_failing(struct sink *s)
{
	return atomic_load(&s->failing);
}

/*
 * The dead letters are counted by the database (the one truth: a restart, a
 * replay or a repeated dead letter cannot make a counter drift); the count
 * is cached for other threads after each change, on the sink's thread.
 */
static void
count_dead(struct sink *s)
{
	int64_t n = store_reader_dead_count(s->reader, s->key);

	if (n >= 0)
		atomic_store(&s->dead, n);
}

/* Sleeps until woken by the writer or main, or ms pass. */
static void
sink_wait(struct sink *s, int64_t ms)
{
	struct pollfd pfd = { .fd = s->efd, .events = POLLIN };
	uint64_t v;

	if (ms > 1000)
		ms = 1000;	/* tick at least every second */
	if (ms > 0 && poll(&pfd, 1, (int)ms) == 1)
		(void)!read(s->efd, &v, sizeof(v));
	sink_tick(s);
}

/*
 * Appends a line to the batch: the JSON and its newline, or nothing to send
 * when skip.  Returns 0, 1 when the batch is full, -1 out of memory.
 */
static int
add_line(struct sink *s, int64_t seq, bool skip, const char *json, int jsonlen)
{
	struct line *l = &s->lines[s->nlines];

	if (s->nlines == BATCH)
		return 1;
	l->seq = seq;
	l->skip = skip;
	l->buf = NULL;
	l->len = 0;
	if (!skip) {
		if ((l->buf = malloc((size_t)jsonlen + 1)) == NULL)
			return -1;
		memcpy(l->buf, json, (size_t)jsonlen);
		l->buf[jsonlen] = '\n';
		l->len = (size_t)jsonlen + 1;
	}
	s->nlines++;
	return 0;
}

/* An outcome after the cursor; events = outcomes skips the others. */
static int
collect(void *arg, int64_t seq, const char *status, const char *json, int jsonlen)
{
	struct sink *s = arg;

	return add_line(s, seq, !s->p.all_events &&
	    !pay_status_is_outcome(pay_status_parse(status)), json, jsonlen);
}

/* A dead letter re-queued by "replay": json is NULL if it was pruned. */
static int
collect_replay(void *arg, int64_t seq, const char *json, int jsonlen)
{
	return add_line(arg, seq, json == NULL, json, jsonlen);
}

static void
drop_lines(struct sink *s)
{
	for (int i = 0; i < s->nlines; i++)
		free(s->lines[i].buf);
	s->nlines = 0;
}

static int64_t
backoff_ms(int n, int64_t cap)
{
	int64_t ms = 1000;

	while (--n > 0 && ms < cap)
		ms *= 2;
	return ms < cap ? ms : cap;
}

/*
 * Saves the cursor once what was delivered is durable.  Returns false when
 * it is not (the destination's flush failed: a full or failing disk under
 * the event log): they will be delivered again, after a back-off, and the
 * sink counts as failing meanwhile.  Unless force, a sink with ops->push
 * that flushed less than SINK_SYNC_GAP_MS ago only pushes, and remembers
 * in sent what the next flush saves.
 */
static bool
advance(struct sink *s, int64_t delivered, bool force)
{
	if (delivered <= atomic_load(&s->cursor))
		return true;
	if (s->ops->push != NULL && !force &&
	    util_mono_ms() - s->synced_ms < SINK_SYNC_GAP_MS) {
		if (s->ops->push(s) == -1) {
			s->sent = 0;	/* read again from the cursor */
			return false;
		}
		s->sent = delivered;
		return true;
	}
	if (s->ops->flush != NULL && s->ops->flush(s) == -1) {
		s->sent = 0;
		return false;
	}
	s->synced_ms = util_mono_ms();
	s->sent = 0;
	atomic_store(&s->cursor, delivered);
	store_cursor_set(s->store, s->key, delivered);
	return true;
}

/* Where the next batch starts: past what was pushed, if anything was. */
static int64_t
read_from(struct sink *s)
{
	int64_t cur = atomic_load(&s->cursor);

	return s->sent > cur ? s->sent : cur;
}

/*
 * Nothing new to deliver: a pushed batch is flushed once the gap since the
 * last flush is over.  Returns the ms to wait before that, 0 when nothing
 * waits, -1 when the flush failed.
 */
static int64_t
flush_pending(struct sink *s)
{
	int64_t wait;

	if (s->sent <= atomic_load(&s->cursor))
		return 0;
	if ((wait = s->synced_ms + SINK_SYNC_GAP_MS - util_mono_ms()) > 0)
		return wait;
	return advance(s, s->sent, true) ? 0 : -1;
}

/*
 * Delivers the dead letters that "replay" re-queued, each once more; one
 * that goes out leaves the dead list.  They are old seqs, out of order by
 * nature: the consumer dedupes by seq anyway.  Returns false when the
 * destination failed (try later).
 */
static bool
replay_dead(struct sink *s, char *err, size_t errlen)
{
	bool ok = true;

	if (store_reader_replays(s->reader, s->key, collect_replay, s) <= 0) {
		drop_lines(s);
		return true;
	}
	for (int i = 0; i < s->nlines && !sink_stopping(s); i++) {
		struct line *l = &s->lines[i];

		if (l->skip)
			log_warnx("%s: seq %lld cannot be replayed: its outcome was pruned",
			    s->ops->name, (long long)l->seq);
		else if (s->ops->deliver(s, l->seq, l->buf, l->len, err, errlen) != SINK_OK ||
		    (s->ops->flush != NULL && s->ops->flush(s) == -1)) {
			log_warnx("%s: replay of seq %lld failed: %s", s->ops->name,
			    (long long)l->seq, err);
			ok = false;
			break;
		}
		if (store_dead_delivered(s->store, s->key, l->seq) == 0 && !l->skip)
			log_info("%s: seq %lld replayed", s->ops->name, (long long)l->seq);
	}
	drop_lines(s);
	count_dead(s);
	return ok;
}

static void *
sink_main(void *arg)
{
	struct sink *s = arg;
	char err[256];
	int64_t retry_at = 0, delivered, wait;
	int attempts = 0, downs = 0, n;

	while (!sink_stopping(s)) {
		if (atomic_exchange(&s->reopen, false) && s->ops->reopen != NULL)
			s->ops->reopen(s);
		if (util_mono_ms() < retry_at) {
			sink_wait(s, retry_at - util_mono_ms());
			continue;
		}
		if (!replay_dead(s, err, sizeof(err))) {
			atomic_store(&s->failing, true);
			downs++;
			retry_at = util_mono_ms() + backoff_ms(downs, s->p.down_cap_ms);
			continue;
		}
		delivered = read_from(s);
		n = store_reader_outcomes(s->reader, delivered, BATCH, collect, s);
		if (n <= 0) {
			drop_lines(s);
			if (n == 0 && (wait = flush_pending(s)) != 0) {
				if (wait > 0) {
					sink_wait(s, wait);
					continue;
				}
				atomic_store(&s->failing, true);
				downs++;
				retry_at = util_mono_ms() + backoff_ms(downs, s->p.down_cap_ms);
				continue;
			}
			if (n == 0)
				atomic_store(&s->failing, false);	/* all out */
			sink_wait(s, 1000);
			continue;
		}
		for (int i = 0; i < s->nlines && !sink_stopping(s); i++) {
			struct line *l = &s->lines[i];
			enum sink_rc rc;

			if (l->skip) {
				delivered = l->seq;
				continue;
			}
			err[0] = '\0';
			rc = s->ops->deliver(s, l->seq, l->buf, l->len, err, sizeof(err));
			sink_tick(s);
			atomic_store(&s->failing, rc != SINK_OK);
			if (rc == SINK_OK) {
				delivered = l->seq;
				attempts = downs = 0;
				continue;
			}
			if (rc == SINK_DOWN) {
				downs++;
				retry_at = util_mono_ms() + backoff_ms(downs, s->p.down_cap_ms);
				break;
			}
			attempts++;
			if (attempts < s->p.max_attempts) {
				log_warnx("%s: seq %lld failed (attempt %d of %d): %s",
				    s->ops->name, (long long)l->seq, attempts,
				    s->p.max_attempts, err);
				retry_at = util_mono_ms() + backoff_ms(attempts, s->p.fail_cap_ms);
				break;
			}
			/* Everything before it must be saved first: the dead
			 * letter moves the cursor past it. */
			advance(s, delivered, true);
			if (store_dead_letter(s->store, s->key, l->seq, attempts,
			    err) == -1) {
				retry_at = util_mono_ms() + 1000;
				break;
			}
			log_warnx("%s: seq %lld dead-lettered after %d attempts: %s",
			    s->ops->name, (long long)l->seq, attempts, err);
			count_dead(s);
			atomic_store(&s->cursor, l->seq);
			delivered = l->seq;
			attempts = 0;
		}
		drop_lines(s);
		if (!advance(s, delivered, false)) {
			atomic_store(&s->failing, true);
			downs++;
			retry_at = util_mono_ms() + backoff_ms(downs, s->p.down_cap_ms);
		}
	}
	/* Stopping: what was pushed is flushed and its cursor saved now. */
	if (s->sent > atomic_load(&s->cursor))
		advance(s, s->sent, true);
	return NULL;
}

struct sink *
sink_start(struct store *store, const struct sink_ops *ops, void *impl,
    const struct sink_params *p, char *err, size_t errlen)
{
	struct sink *s;
	int64_t cur;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->ops = ops;
	s->impl = impl;
	s->p = *p;
	s->store = store;
	s->efd = -1;
	if ((s->reader = store_reader_open(store, err, errlen)) == NULL)
		goto fail;
	if ((s->key = strdup(p->cursor_key != NULL ? p->cursor_key : ops->name)) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->p.cursor_key = s->key;
	if ((cur = store_reader_cursor(s->reader, s->key)) < 0) {
		snprintf(err, errlen, "%s: cannot read its cursor", ops->name);
		goto fail;
	}
	atomic_store(&s->cursor, cur);
	store_cursor_set(store, s->key, cur);	/* registers it: retention */
	count_dead(s);
	sink_tick(s);
	if ((s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (store_add_listener(store, s->efd) == -1) {
		snprintf(err, errlen, "too many listeners");
		goto fail;
	}
	s->listening = true;
	if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
		snprintf(err, errlen, "cannot start the %s thread", ops->name);
		goto fail;
	}
	s->running = true;
	return s;
fail:
	s->ops = NULL;		/* the caller still owns impl */
	sink_free(s);
	return NULL;
}

static void
wake(struct sink *s)
{
	uint64_t one = 1;

	(void)!write(s->efd, &one, sizeof(one));
}

void
sink_reopen(struct sink *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->reopen, true);
	wake(s);
}

void
sink_stop(struct sink *s)
{
	if (s == NULL)
		return;
	if (s->running) {
		atomic_store(&s->stopping, true);
		wake(s);
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	/* From here the writer no longer writes to efd. */
	if (s->listening) {
		store_remove_listener(s->store, s->efd);
		s->listening = false;
	}
}

void
sink_free(struct sink *s)
{
	if (s == NULL)
		return;
	sink_stop(s);
	drop_lines(s);
	if (s->ops != NULL && s->ops->close != NULL)
		s->ops->close(s);
	if (s->efd != -1)
		close(s->efd);
	store_reader_free(s->reader);
	free(s->key);
	free(s);
}
