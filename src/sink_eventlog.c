/*
 * sink_eventlog.c - see sink_eventlog.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sink.h"
#include "sink_eventlog.h"

struct eventlog {
	char	*path;
	int	 fd;
};

static int
el_open(struct eventlog *el)
{
	el->fd = open(el->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return el->fd == -1 ? -1 : 0;
}

/*
 * A short write (disk full) would leave half a line: cut the file back to
 * where the line began, so that a reader never sees a torn line.
 */
static enum sink_rc
el_deliver(struct sink *s, int64_t seq, const char *line, size_t len,
    char *err, size_t errlen)
{
	struct eventlog *el = sink_impl(s);
	struct stat st;
	ssize_t n;

	(void)seq;
	if (el->fd == -1 && el_open(el) == -1) {
		snprintf(err, errlen, "open %s: %s", el->path, strerror(errno));
		log_warnx("eventlog: %s", err);
		return SINK_DOWN;
	}
	n = write(el->fd, line, len);
	if (n == (ssize_t)len)
		return SINK_OK;
	snprintf(err, errlen, "write %s: %s", el->path,
	    n == -1 ? strerror(errno) : "short write");
	log_warnx("eventlog: %s", err);
	if (n > 0 && fstat(el->fd, &st) == 0 && ftruncate(el->fd, st.st_size - n) == -1)
		log_warn("eventlog: cannot cut a partial line from %s", el->path);
	return SINK_DOWN;
}

static int
el_flush(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	/* A pipe or a terminal cannot be synced (EINVAL): nothing to do. */
	if (el->fd == -1 || (fdatasync(el->fd) == -1 && errno != EINVAL)) {
		log_warn("eventlog: fdatasync %s", el->path);
		return -1;
	}
	return 0;
}

static void
el_reopen(struct sink *s)
{
	struct eventlog *el = sink_impl(s);

	if (el->fd != -1) {
		fdatasync(el->fd);
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
	free(el->path);
	free(el);
}

static const struct sink_ops eventlog_ops = {
	.name = "eventlog",
	.deliver = el_deliver,
	.flush = el_flush,
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
