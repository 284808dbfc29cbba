/*
 * sink_socket.h - the Unix-socket sink (SPEC §3): connects to the POS app's
 * socket and writes outcome lines; with socket_ack a line counts only once
 * the consumer writes back a line holding its seq.  Connection loss:
 * reconnect (1 s doubling, capped at 30 s) and resend from the cursor.
 */
#ifndef VINR_SINK_SOCKET_H
#define VINR_SINK_SOCKET_H

#include <stddef.h>

#include "config.h"

struct sink;
struct store;

struct sink	*socket_sink_start(struct store *, const struct config *, char *err,
		    size_t errlen);

#endif
