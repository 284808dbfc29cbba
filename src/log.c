/*
 * log.c - see log.h.  Each message is formatted into one buffer and written
 * with one write(2), so lines from different threads never interleave.
 */
#include <errno.h>
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
fatalx(int code, const char *fmt, ...)
{
	LOG_BODY(3, "error", NULL);
	exit(code);
}
