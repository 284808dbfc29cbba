/*
 * sink_eventlog.h - the append-only event log (SPEC §3): every transition
 * as one JSON line, each written with one write(2), fdatasync'ed before the
 * cursor moves, reopened on SIGHUP for logrotate.
 */
#ifndef VINR_SINK_EVENTLOG_H
#define VINR_SINK_EVENTLOG_H

#include <stddef.h>

struct sink;
struct store;

/* What the event log needs of the configuration ([storage]). */
struct sink_eventlog_params {
	const char	*path;		/* the event log; created mode 0640 */
	const char	*cursor_key;	/* NULL: "eventlog" (see sink_params) */
};

/*
 * Opens the file (creating it) and starts the sink (the params are copied).
 * Returns NULL with a message in err on failure.  Stop and free it with
 * sink_stop() and sink_free().
 */
struct sink	*sink_eventlog_start(struct store *, const struct sink_eventlog_params *,
		    char *err, size_t errlen);

#endif
