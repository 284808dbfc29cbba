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

/* Opens path (creating it, mode 0640) and starts the sink.  NULL + err. */
struct sink	*eventlog_start(struct store *, const char *path, char *err, size_t errlen);

#endif
