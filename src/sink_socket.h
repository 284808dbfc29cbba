/*
 * sink_socket.h - the Unix-socket sink (SPEC §3): connects to the POS app's
 * socket and writes outcome lines; with socket_ack a line counts only once
 * the consumer writes back a line holding its seq.  Connection loss:
 * reconnect (1 s doubling, capped at 30 s) and resend from the cursor.
 */
#ifndef VINR_SINK_SOCKET_H
#define VINR_SINK_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

struct sink;
struct store;

/* What the socket sink needs of the configuration ([forward]). */
struct sink_socket_params {
	const char	*path;		/* the consumer's socket */
	bool		 ack;		/* wait for the consumer's ack of each line */
	int		 max_attempts;	/* failed deliveries before a dead letter */
	bool		 all_events;	/* every transition, or outcomes only */
	const char	*cursor_key;	/* NULL: "socket" (see sink_params) */
};

/*
 * Starts the sink (the params are copied); the consumer need not be there
 * yet.  Returns NULL with a message in err on failure (a path too long for a
 * socket).  Stop and free it with sink_stop() and sink_free().
 */
struct sink	*sink_socket_start(struct store *, const struct sink_socket_params *,
		    char *err, size_t errlen);

#endif
