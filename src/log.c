/*
 * log.c - see log.h.  Each message is formatted into one buffer and written
 * with one write(2), so lines from different threads never interleave.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int	log_journal;
static int	log_debug_on;

void
log_init(int debug)
{
	const char *js = getenv("JOURNAL_STREAM");

	log_journal = js != NULL && *js != '\0';
	log_debug_on = debug;
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

static void
vlog(int pri, const char *tag, const char *errstr, const char *fmt, va_list ap)
{
	char		 buf[2048];
	size_t		 n = 0;
	int		 r;

	if (log_journal) {
		r = snprintf(buf, sizeof(buf), "<%d>", pri);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tag);
	}
	if (r > 0)
		n = (size_t)r;
	r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (errstr != NULL) {
		r = snprintf(buf + n, sizeof(buf) - n, ": %s", errstr);
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof(buf) - 2)
			n = sizeof(buf) - 2;
	}
	/* A message must stay one line, whatever a peer sent us. */
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, n);
}

#define LOG_BODY(pri, tag, err) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	vlog(pri, tag, err, fmt, ap);		\
	va_end(ap);				\
} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(4, "warning", e);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(4, "warning", NULL);
}

void
log_errx(const char *fmt, ...)
{
	LOG_BODY(3, "error", NULL);
}

void
log_crit(const char *fmt, ...)
{
	LOG_BODY(2, "critical", NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(6, "info", NULL);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY(7, "debug", NULL);
}

void
fatal(int code, const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(3, "error", e);
	exit(code);
}

void
fatalx_lines(int code, const char *what, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_errx("configuration %s: %s", what, line);
	exit(code);
}

void
fatalx(int code, const char *fmt, ...)
{
	LOG_BODY(3, "error", NULL);
	exit(code);
}

/*
 * Rate-limited lines: one table of keys (each a reason such as
 * "invalid_signature"), each with a window.  The first line of a window is
 * written whole; the rest are only counted, and the count is written as one
 * summary line when the key is next used after its window has closed.  So a
 * flood costs at most two lines per key per window, whatever its rate.
 */
#define RL_SLOTS	32

struct rl_slot {
	char		 key[48];
	int64_t		 since_ms;	/* start of the window */
	uint64_t	 dropped;	/* lines not written in it */
};

static pthread_mutex_t	 rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_slot	 rl_slots[RL_SLOTS];
static int64_t		 rl_window_ms = LOG_RL_WINDOW_MS;

void
log_rl_set_window(int64_t ms)
{
	pthread_mutex_lock(&rl_lock);
	rl_window_ms = ms;
	pthread_mutex_unlock(&rl_lock);
}

static int64_t
rl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Decides for one line of key: returns true to write it; *dropped is then the
 * count of the previous window's lines that were not written.
 */
static bool
rl_admit(const char *key, uint64_t *dropped, int64_t *span_ms)
{
	int64_t now = rl_now_ms();
	struct rl_slot *s = NULL, *oldest = &rl_slots[0];
	bool ok;

	*dropped = 0;
	pthread_mutex_lock(&rl_lock);
	for (int i = 0; i < RL_SLOTS && s == NULL; i++) {
		if (strcmp(rl_slots[i].key, key) == 0)
			s = &rl_slots[i];
		else if (rl_slots[i].since_ms < oldest->since_ms)
			oldest = &rl_slots[i];
	}
	if (s == NULL) {
		/* A new key takes the stalest slot: a bounded table. */
		s = oldest;
		snprintf(s->key, sizeof(s->key), "%s", key);
		s->since_ms = now;
		s->dropped = 0;
		ok = true;
	} else if (now - s->since_ms >= rl_window_ms) {
		*dropped = s->dropped;
		*span_ms = now - s->since_ms;
		s->since_ms = now;
		s->dropped = 0;
		ok = true;
	} else {
		s->dropped++;
		ok = false;
	}
	pthread_mutex_unlock(&rl_lock);
	return ok;
}

void
log_warnx_rl(const char *key, const char *fmt, ...)
{
	uint64_t dropped;
	int64_t span = 0;

	if (!rl_admit(key, &dropped, &span))
		return;
	if (dropped > 0)
		log_warnx("%s: %llu more like the next line in the last %lld s "
		    "(rate-limited)", key, (unsigned long long)dropped,
		    (long long)(span / 1000));
	LOG_BODY(4, "warning", NULL);
}
