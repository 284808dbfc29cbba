/*
 * sink_eventlog.c - see sink_eventlog.h.
 *
 * deliver() only appends the line to a buffer; push(), which the sink calls
 * once per batch, writes the whole batch with one write(2), and flush(),
 * which the sink calls before it moves its cursor (at most every
 * SINK_SYNC_GAP_MS under load, see sink.c), also syncs it with one
 * fdatasync.  A line that is not yet synced is not yet delivered as far as
 * the cursor knows: a failed write or sync means the lines since the cursor
 * are delivered again, never that a line is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sink.h"
#include "sink_eventlog.h"

/* A batch that grows past this is written before the next line joins it. */
#define EL_BUF_MAX	(1024 * 1024)

struct eventlog {
	char	*path;
	int	 fd;
	char	*buf;		/* whole lines not written yet */
	size_t	 len, cap;
	/*
	 * Lines the sink counts as delivered may not be in the file: a write
	 * failed and dropped the buffer in deliver(), or the old file's sync
	 * failed at a reopen.  The next push() or flush() then fails, so that
	 * the sink delivers again from its saved cursor.
	 */
	bool	 lost;
};

static int
el_open(struct eventlog *el)
{
	el->fd = open(el->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return el->fd == -1 ? -1 : 0;
}

/* Cuts the last n bytes written (O_APPEND: the end of the file). */
static int
el_cut(struct eventlog *el, size_t n)
{
	struct stat st;

	if (fstat(el->fd, &st) == -1 || (size_t)st.st_size < n)
		return -1;
	return ftruncate(el->fd, st.st_size - (off_t)n);
}

/*
 * Writes the buffered lines with one write(2) (more only if the kernel takes
 * part of it).  A short write that cannot go on (disk full) would leave a
 * torn line: the file is cut back to where the batch began, so that a reader
 * never sees one, and the whole batch is delivered again later.  Returns 0,
 * or -1 with the buffer dropped (the sink re-reads those lines).
 */
static int
el_write(struct eventlog *el)
{
	size_t done = 0;
	ssize_t n;

	if (el->len == 0)
		return 0;
	if (el->fd == -1 && el_open(el) == -1) {
		log_warn("eventlog: open %s", el->path);
		goto fail;
	}
	while (done < el->len) {
		n = write(el->fd, el->buf + done, el->len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		log_warnx("eventlog: write %s: %s", el->path,
		    n == -1 ? strerror(errno) : "short write");
		if (done > 0 && el_cut(el, done) == -1)
			log_warn("eventlog: cannot cut a partial line from %s", el->path);
		goto fail;
	}
	el->len = 0;
	return 0;
fail:
	el->len = 0;
	return -1;
}

/* Appends the line to the batch: flush() writes it. */
static enum sink_rc
el_deliver(struct sink *s, int64_t seq, const char *line, size_t len,
    char *err, size_t errlen)
{
	struct eventlog *el = sink_impl(s);
	size_t cap;
	char *p;

	(void)seq;
	if (el->len > 0 && el->len + len > EL_BUF_MAX && el_write(el) == -1) {
		el->lost = true;
		snprintf(err, errlen, "cannot write %s", el->path);
		return SINK_DOWN;
	}
	if (el->len + len > el->cap) {
		for (cap = el->cap ? el->cap : 64 * 1024; cap < el->len + len; cap *= 2)
			;
		if ((p = realloc(el->buf, cap)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return SINK_DOWN;
		}
		el->buf = p;
		el->cap = cap;
	}
	memcpy(el->buf + el->len, line, len);
	el->len += len;
	return SINK_OK;
}

/* See lost: 0, or -1 (once) with the buffer dropped. */
static int
el_check_lost(struct eventlog *el)
{
	if (!el->lost)
		return 0;
	el->lost = false;
	el->len = 0;
	return -1;
}

static int
el_flush(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	if (el_check_lost(el) == -1 || el_write(el) == -1)
		return -1;
	/* A pipe or a terminal cannot be synced (EINVAL): nothing to do. */
	if (el->fd == -1 || (fdatasync(el->fd) == -1 && errno != EINVAL)) {
		log_warn("eventlog: fdatasync %s", el->path);
		return -1;
	}
	return 0;
}

/* Writes the batch without syncing it: the sink's flush() syncs later. */
static int
el_push(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	return el_check_lost(el) == -1 ? -1 : el_write(el);
}

static void
el_reopen(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	if (el->fd != -1) {
		/* Lines pushed but not yet synced are in the old file. */
		if (fdatasync(el->fd) == -1 && errno != EINVAL) {
			log_warn("eventlog: fdatasync %s before reopening", el->path);
			el->lost = true;
		}
		close(el->fd);
	}
	if (el_open(el) == -1)
		log_warn("eventlog: reopen %s", el->path);
	else
		log_info("eventlog: reopened %s", el->path);
}

static void
el_close(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	if (el->fd != -1)
		close(el->fd);
	free(el->buf);
	free(el->path);
	free(el);
}

static const struct sink_ops eventlog_ops = {
	.name = "eventlog",
	.deliver = el_deliver,
	.flush = el_flush,
	.push = el_push,
	.reopen = el_reopen,
	.close = el_close,
};

struct sink *
sink_eventlog_start(struct store *store, const struct sink_eventlog_params *ep,
    char *err, size_t errlen)
{
	struct sink_params p = {
		.all_events = true,
		.max_attempts = 1,
		.fail_cap_ms = 30000,
		.down_cap_ms = 30000,
		.cursor_key = ep->cursor_key,
	};
	struct eventlog *el;
	struct sink *s;

	if ((el = calloc(1, sizeof(*el))) == NULL || (el->path = strdup(ep->path)) == NULL) {
		free(el);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (el_open(el) == -1) {
		snprintf(err, errlen, "event log %s: %s", ep->path, strerror(errno));
		free(el->path);
		free(el);
		return NULL;
	}
	if ((s = sink_start(store, &eventlog_ops, el, &p, err, errlen)) == NULL) {
		close(el->fd);
		free(el->path);
		free(el);
	}
	return s;
}
