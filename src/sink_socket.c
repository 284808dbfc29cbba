/*
 * sink_socket.c - see sink_socket.h.
 *
 * Runs on the sink's thread with one connection at a time.  Every wait is a
 * poll of at most a second, so the thread keeps ticking and sees a stop.
 * A consumer that stops reading (or acking) for SOCKET_STALL_MS is treated
 * as gone: the connection is dropped and the unacknowledged lines are sent
 * again after the reconnect.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sink.h"
#include "sink_socket.h"
#include "util.h"

#define SOCKET_STALL_MS	30000
#define ACK_LINE_MAX	64

struct sock {
	char	*path;
	bool	 ack;
	int	 fd;
	bool	 was_up;
	char	 in[ACK_LINE_MAX];	/* a partial ack line */
	size_t	 inlen;
};

static void
sock_drop(struct sock *k, const char *why)
{
	if (k->fd != -1) {
		close(k->fd);
		k->fd = -1;
		log_warnx("socket: %s: connection lost (%s); will resend from the cursor",
		    k->path, why);
	}
	k->inlen = 0;
}

static int
sock_connect(struct sock *k, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", k->path);
	if ((k->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
	    connect(k->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "connect %s: %s", k->path, strerror(errno));
		if (k->fd != -1)
			close(k->fd);
		k->fd = -1;
		if (k->was_up)
			log_warnx("socket: %s", err);
		k->was_up = false;
		return -1;
	}
	k->inlen = 0;
	k->was_up = true;
	log_info("socket: connected to %s", k->path);
	return 0;
}

/* Waits up to a second for ev on the socket; -1 if it went away. */
static int
sock_poll(struct sink *s, struct sock *k, short ev)
{
	struct pollfd pfd = { .fd = k->fd, .events = ev };
	int n = poll(&pfd, 1, 1000);

	sink_tick(s);
	if (n == -1)
		return errno == EINTR ? 0 : -1;
	if (n == 1 && (pfd.revents & (POLLERR | POLLNVAL)))
		return -1;
	return n;
}

/*
 * Without acks: read and throw away whatever the consumer writes (acks sent
 * anyway, say), so that it never blocks on a full socket; and notice a
 * consumer that hung up before we write to it.
 */
static bool
sock_hung_up(struct sock *k)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int
sock_write(struct sink *s, struct sock *k, const char *line, size_t len,
    char *err, size_t errlen)
{
	int64_t until = util_mono_ms() + SOCKET_STALL_MS;
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(k->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "write: %s", strerror(errno));
			return -1;
		}
		if (sink_stopping(s) || util_mono_ms() > until) {
			snprintf(err, errlen, "consumer not reading");
			return -1;
		}
		if (!k->ack && sock_hung_up(k)) {
			snprintf(err, errlen, "closed by the consumer");
			return -1;
		}
		if (sock_poll(s, k, POLLOUT) == -1) {
			snprintf(err, errlen, "write: connection error");
			return -1;
		}
	}
	return 0;
}

/*
 * Reads ack lines until one holds seq.  Acks for other seqs (a repeat of an
 * earlier one, say) are skipped.  Returns 0, or -1 when the connection is
 * gone or the consumer is silent too long.
 */
static int
sock_wait_ack(struct sink *s, struct sock *k, int64_t seq, char *err, size_t errlen)
{
	int64_t until = util_mono_ms() + SOCKET_STALL_MS;

	for (;;) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(k->in, '\n', k->inlen)) != NULL) {
			size_t l = (size_t)(nl - k->in);
			char num[ACK_LINE_MAX];
			long long got;
			char *end;

			memcpy(num, k->in, l);
			num[l] = '\0';
			memmove(k->in, nl + 1, k->inlen - l - 1);
			k->inlen -= l + 1;
			got = strtoll(num, &end, 10);
			while (*end == ' ' || *end == '\r' || *end == '\t')
				end++;
			if (end != num && *end == '\0' && got == seq)
				return 0;
		}
		if (k->inlen == sizeof(k->in)) {
			snprintf(err, errlen, "ack line too long");
			return -1;
		}
		n = recv(k->fd, k->in + k->inlen, sizeof(k->in) - k->inlen, 0);
		if (n > 0) {
			k->inlen += (size_t)n;
			continue;
		}
		if (n == 0) {
			snprintf(err, errlen, "closed by the consumer");
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -1;
		}
		if (sink_stopping(s) || util_mono_ms() > until) {
			snprintf(err, errlen, "no ack for seq %lld", (long long)seq);
			return -1;
		}
		if (sock_poll(s, k, POLLIN) == -1) {
			snprintf(err, errlen, "read: connection error");
			return -1;
		}
	}
}

static enum sink_rc
sock_deliver(struct sink *s, int64_t seq, const char *line, size_t len,
    char *err, size_t errlen)
{
	struct sock *k = sink_impl(s);

	if (k->fd != -1 && !k->ack && sock_hung_up(k))
		sock_drop(k, "closed by the consumer");
	if (k->fd == -1 && sock_connect(k, err, errlen) == -1)
		return SINK_DOWN;
	if (sock_write(s, k, line, len, err, errlen) == -1 ||
	    (k->ack && sock_wait_ack(s, k, seq, err, errlen) == -1)) {
		sock_drop(k, err);
		return SINK_DOWN;
	}
	return SINK_OK;
}

static void
sock_reopen(struct sink *s)
{
	sock_drop(sink_impl(s), "reconnect on SIGHUP");
}

static void
sock_close(struct sink *s)
{
	struct sock *k = sink_impl(s);

	if (k->fd != -1)
		close(k->fd);
	free(k->path);
	free(k);
}

static const struct sink_ops socket_ops = {
	.name = "socket",
	.deliver = sock_deliver,
	.reopen = sock_reopen,
	.close = sock_close,
};

struct sink *
sink_socket_start(struct store *store, const struct sink_socket_params *sp,
    char *err, size_t errlen)
{
	struct sink_params p = {
		.all_events = sp->all_events,
		.max_attempts = sp->max_attempts,
		.fail_cap_ms = 300000,
		.down_cap_ms = 30000,
		.cursor_key = sp->cursor_key,
	};
	struct sockaddr_un sun;
	struct sock *k;
	struct sink *s;

	if (strlen(sp->path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "[forward] socket %s: path too long", sp->path);
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL || (k->path = strdup(sp->path)) == NULL) {
		free(k);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->ack = sp->ack;
	k->fd = -1;
	k->was_up = true;	/* so that a first failure is logged */
	if ((s = sink_start(store, &socket_ops, k, &p, err, errlen)) == NULL) {
		free(k->path);
		free(k);
	}
	return s;
}
