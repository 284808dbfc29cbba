/*
 * control.c - the control socket's transport (SPEC §4; see control.h and
 * control_int.h): the listening socket, the connections, line framing,
 * output buffers and the poll(2) loop.  It knows no command and no request
 * state: the layers above (control_block.c, control_cmd.c) reach it only
 * through the functions of control_int.h, and it calls up only through the
 * one control_upcall_fn it was opened with.
 *
 * DESIGN.  Thread: one, io_main().  It owns the listening socket, the
 * connections and their buffers; nothing else touches them.  Other threads
 * reach the loop only by writing one of the watched eventfds, which belong
 * to the layers above (the store's writer after a commit, an answer handed
 * back from the writer or the reconciler): the loop drains it and calls up
 * with CTL_READY.  control_io_stop() writes stop_fd, the transport's own.
 *
 * Framing: one request at a time per connection, answered in order.  A
 * whole line is handed up (CTL_LINE); if the layer above holds the
 * connection (control_conn_hold(): the answer comes later, a wait may last
 * an hour) no further line is handed up nor read until it releases it, and
 * only the peer's hang-up is watched.  Output goes to a per-connection
 * buffer written without blocking; while more than OUT_HIGH of it is unsent
 * nothing more is read, so a peer that never reads holds at most OUT_HIGH
 * plus one answer, and after CLOSE_GRACE_MS in "closing" it is dropped.
 *
 * A loop turn: poll (as long as the nearest deadline, CTL_SLEEP, allows);
 * the watched fds (CTL_READY); reads and hang-ups; accept (CTL_OPEN); once
 * CTL_TURN; then per connection its lines (CTL_LINE), CTL_CONN, a write,
 * and whether to close it; last the dead ones are freed (CTL_CLOSE).
 */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control_int.h"
#include "log.h"
#include "util.h"

struct control_conn {
	int		 fd;
	void		*data;		/* the layers above's */
	char		*in;		/* bytes read, not yet a whole line */
	size_t		 inlen, incap;
	char		*out;		/* out[outoff .. outlen) is unsent */
	size_t		 outoff, outlen, outcap;
	bool		 midline;	/* what was sent ends inside a line */
	bool		 held;		/* a request is being answered */
	bool		 streaming;	/* stays open after the peer's EOF */
	bool		 eof;		/* the peer will send nothing more */
	bool		 hup;		/* the peer is gone */
	bool		 closing;	/* close once out is written */
	int64_t		 close_by;	/* ... or at this monotonic ms */
	bool		 dead;		/* close at the end of this loop turn */
	int64_t		 last_in_ms;	/* a byte read, or a request outstanding */
	int64_t		 last_out_ms;	/* a byte written, or output begun */
};

struct control_io {
	char		*path;
	ino_t		 ino;		/* of the socket file we bound */
	control_upcall_fn up;
	void		*arg;
	int		 lfd;
	int		 stop_fd;	/* written by control_io_stop */
	int		 watch[CONTROL_WATCH_MAX];
	int		 nwatch;
	pthread_t	 thread;
	bool		 started;
	bool		 stopped;
	atomic_bool	 stopping;
	_Atomic int64_t	 tick_ms;	/* the loop's last turn */
	atomic_int	 nconns_now;	/* nconns, for other threads */
	int64_t		 idle_ms;	/* [control] idle_timeout */

	/* The control thread's own. */
	struct control_conn *conns[MAX_CLIENTS];
	int		 nconns;
};

static int
up(struct control_io *io, enum control_why why, struct control_conn *c, int64_t now)
{
	struct control_ev ev = { .why = why, .conn = c, .fd = -1, .now = now };

	return io->up(io->arg, &ev);
}

/* ------------------------------------------------------------------ */
/* Buffers */

static void
conn_free(struct control_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

void *
control_conn_data(struct control_conn *c)
{
	return c->data;
}

void
control_conn_set_data(struct control_conn *c, void *data)
{
	c->data = data;
}

size_t
control_conn_unsent(const struct control_conn *c)
{
	return c->outlen - c->outoff;
}

void
control_conn_hold(struct control_conn *c)
{
	c->held = true;
}

void
control_conn_release(struct control_conn *c)
{
	c->held = false;
}

void
control_conn_stream(struct control_conn *c)
{
	c->streaming = true;
}

bool
control_conn_closing(const struct control_conn *c)
{
	return c->closing;
}

bool
control_conn_dead(const struct control_conn *c)
{
	return c->dead;
}

void
control_conn_close_after(struct control_conn *c)
{
	if (!c->closing) {
		c->closing = true;
		c->close_by = util_mono_ms() + CLOSE_GRACE_MS;
	}
}

int
control_conn_append(struct control_conn *c, const char *buf, size_t len)
{
	size_t need, cap;
	char *p;

	if (c->outoff == c->outlen)
		c->last_out_ms = util_mono_ms();	/* output begins now */
	if (c->outoff > 0 && c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	need = c->outlen + len;
	if (need > c->outcap && c->outoff > 0) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
		need = c->outlen + len;
	}
	if (need > c->outcap) {
		for (cap = c->outcap ? c->outcap : 4096; cap < need; cap *= 2)
			;
		if ((p = realloc(c->out, cap)) == NULL) {
			log_warn("control: output buffer");
			c->dead = true;
			return -1;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, buf, len);
	c->outlen += len;
	return 0;
}

/* Writes what it can without blocking; a peer gone makes it dead. */
void
control_conn_flush(struct control_conn *c)
{
	ssize_t n;

	while (!c->dead && control_conn_unsent(c) > 0) {
		n = send(c->fd, c->out + c->outoff, control_conn_unsent(c), MSG_NOSIGNAL);
		if (n > 0) {
			c->last_out_ms = util_mono_ms();
			c->outoff += (size_t)n;
			c->midline = c->out[c->outoff - 1] != '\n';
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->dead = true;	/* EPIPE, ECONNRESET: nobody reads */
	}
	if (control_conn_unsent(c) == 0) {
		c->outoff = c->outlen = 0;
		/* A big answer went out: give its memory back. */
		if (c->outcap > OUT_HIGH) {
			free(c->out);
			c->out = NULL;
			c->outcap = 0;
		}
	}
}

int64_t
control_conn_stalled_ms(const struct control_conn *c, int64_t now)
{
	return control_conn_unsent(c) > 0 ? now - c->last_out_ms : 0;
}

void
control_conn_drop_unbegun(struct control_conn *c)
{
	char *nl;

	if (!c->midline)
		c->outlen = c->outoff;
	else if ((nl = memchr(c->out + c->outoff, '\n', control_conn_unsent(c))) != NULL)
		c->outlen = (size_t)(nl - c->out) + 1;
}

void
control_conn_send_json(struct control_conn *c, cJSON *o)
{
	char *s;

	if (o == NULL || (s = cJSON_PrintUnformatted(o)) == NULL) {
		log_warnx("control: out of memory for an answer");
		cJSON_Delete(o);
		c->dead = true;
		return;
	}
	cJSON_Delete(o);
	if (control_conn_append(c, s, strlen(s)) == 0)
		control_conn_append(c, "\n", 1);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Requests in */

static void
line_up(struct control_io *io, struct control_conn *c, size_t len, int64_t now)
{
	struct control_ev ev = { .why = CTL_LINE, .conn = c, .line = c->in,
	    .len = len, .fd = -1, .now = now };

	io->up(io->arg, &ev);
}

/*
 * Hands up the whole lines buffered while the connection is not held and
 * not behind on reading its answers.
 */
static void
conn_process(struct control_io *io, struct control_conn *c, int64_t now)
{
	static const char toolong[] = "{\"ok\":false,\"error\":\"bad_request\","
	    "\"message\":\"line longer than 65536 bytes\"}\n";
	char *nl;
	size_t len;

	_Static_assert(MAX_LINE == 65536, "toolong says 65536");
	while (!c->dead && !c->closing && !c->held && control_conn_unsent(c) < OUT_HIGH) {
		nl = c->inlen > 0 ? memchr(c->in, '\n', c->inlen) : NULL;
		if (nl == NULL) {
			if (c->inlen > MAX_LINE) {
				control_conn_append(c, toolong, sizeof(toolong) - 1);
				control_conn_close_after(c);
				return;
			}
			if (!c->eof)
				return;
			if (c->inlen > 0) {
				/* A last line without its newline still counts. */
				len = c->inlen;
				c->inlen = 0;
				line_up(io, c, len, now);
				continue;
			}
			/* Asked everything: stay only to stream. */
			if (!c->streaming)
				control_conn_close_after(c);
			return;
		}
		len = (size_t)(nl - c->in);
		line_up(io, c, len, now);
		c->inlen -= len + 1;
		memmove(c->in, nl + 1, c->inlen);
	}
}

/* Reads what the socket has (up to one line of room). */
static void
conn_read(struct control_conn *c)
{
	size_t cap;
	ssize_t n;
	char *p;

	while (!c->eof && c->inlen <= MAX_LINE) {
		if (c->inlen == c->incap) {
			cap = c->incap ? c->incap * 2 : 4096;
			if (cap > MAX_LINE + 1)
				cap = MAX_LINE + 1;
			if ((p = realloc(c->in, cap)) == NULL) {
				log_warn("control: input buffer");
				c->dead = true;
				return;
			}
			c->in = p;
			c->incap = cap;
		}
		n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (n > 0) {
			c->last_in_ms = util_mono_ms();
			c->inlen += (size_t)n;
			if (memchr(c->in + c->inlen - n, '\n', (size_t)n) != NULL)
				return;	/* answer it before reading on */
			continue;
		}
		if (n == 0)
			c->eof = true;
		else if (errno == EINTR)
			continue;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			c->dead = true;
		return;
	}
}

/* ------------------------------------------------------------------ */
/* The loop */

static void
accept_conns(struct control_io *io, int64_t now)
{
	static const char full[] = "{\"ok\":false,\"error\":\"internal\","
	    "\"message\":\"too many control clients\"}\n";
	struct control_conn *c;
	int fd;

	for (int i = 0; i < 128; i++) {
		fd = accept4(io->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control: accept");
			return;
		}
		if (io->nconns == MAX_CLIENTS) {
			log_warnx("control: %d clients already: refusing one", MAX_CLIENTS);
			(void)!send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			log_warn("control: accept");
			close(fd);
			return;
		}
		c->fd = fd;
		c->last_in_ms = c->last_out_ms = now;
		if (up(io, CTL_OPEN, c, now) == -1) {
			conn_free(c);
			return;
		}
		io->conns[io->nconns++] = c;
		atomic_store(&io->nconns_now, io->nconns);
	}
}

static void
drain(int fd)
{
	uint64_t v;

	(void)!read(fd, &v, sizeof(v));
}

/* Per connection at the end of a loop turn: lines, the turn above, write,
 * close. */
static void
conn_turn(struct control_io *io, struct control_conn *c, int64_t now)
{
	conn_process(io, c, now);
	if (!c->dead)
		up(io, CTL_CONN, c, now);
	control_conn_flush(c);
	if (c->hup && control_conn_unsent(c) == 0 && !c->held &&
	    (c->inlen == 0 || memchr(c->in, '\n', c->inlen) == NULL))
		c->dead = true;
	if (c->closing && (control_conn_unsent(c) == 0 || now >= c->close_by))
		c->dead = true;
	/* A peer that hung up hears no answer. */
	if (c->hup && c->held)
		c->dead = true;
	/*
	 * Idle: no request outstanding (a wait holds the connection), not
	 * subscribed, nothing sent for idle_ms.  Such clients would otherwise
	 * fill MAX_CLIENTS and lock the POS apps out.
	 */
	if (c->held || c->streaming)
		c->last_in_ms = now;
	else if (!c->dead && !c->closing && now - c->last_in_ms >= io->idle_ms) {
		log_warnx_rl("control_idle", "control: closing a client idle for "
		    "%lld s", (long long)(io->idle_ms / 1000));
		c->dead = true;
	}
}

static void
sweep(struct control_io *io, int64_t now)
{
	int i = 0;

	while (i < io->nconns) {
		struct control_conn *c = io->conns[i];

		if (!c->dead) {
			i++;
			continue;
		}
		up(io, CTL_CLOSE, c, now);
		conn_free(c);
		io->conns[i] = io->conns[--io->nconns];
	}
	atomic_store(&io->nconns_now, io->nconns);
}

static bool
wants_read(const struct control_conn *c)
{
	return !c->eof && !c->closing && !c->held &&
	    control_conn_unsent(c) < OUT_HIGH && c->inlen <= MAX_LINE;
}

static int
poll_timeout(struct control_io *io, int64_t now)
{
	int64_t t = 1000;
	int u = up(io, CTL_SLEEP, NULL, now);

	if (u >= 0 && u < t)
		t = u;
	for (int i = 0; i < io->nconns; i++) {
		struct control_conn *c = io->conns[i];

		if (c->closing && c->close_by - now < t)
			t = c->close_by - now;
		if (!c->held && !c->streaming && c->last_in_ms + io->idle_ms - now < t)
			t = c->last_in_ms + io->idle_ms - now;
	}
	return t < 0 ? 0 : (int)t;
}

/* After poll: the watched fds, then what the sockets said. */
static void
io_events(struct control_io *io, struct pollfd *pfd, struct control_conn **pc,
    int np, int64_t now)
{
	int first = 2 + io->nwatch;

	for (int i = 0; i < io->nwatch; i++)
		if (pfd[2 + i].revents & POLLIN) {
			struct control_ev ev = { .why = CTL_READY, .fd = io->watch[i],
			    .now = now };

			drain(io->watch[i]);
			io->up(io->arg, &ev);
		}
	for (int i = first; i < np; i++) {
		struct control_conn *c = pc[i];

		if (pfd[i].revents & POLLIN)
			conn_read(c);
		if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* Read what it sent before it went: a last track counts. */
			if (wants_read(c))
				conn_read(c);
			c->eof = c->hup = true;
		}
	}
	if (pfd[1].revents & POLLIN)
		accept_conns(io, now);
}

static void *
io_main(void *arg)
{
	struct control_io *io = arg;
	struct pollfd pfd[2 + CONTROL_WATCH_MAX + MAX_CLIENTS];
	struct control_conn *pc[2 + CONTROL_WATCH_MAX + MAX_CLIENTS];
	int64_t now;
	int n, np;

	while (!atomic_load(&io->stopping)) {
		now = util_mono_ms();
		atomic_store(&io->tick_ms, now);
		np = 0;
		pfd[np++] = (struct pollfd){ .fd = io->stop_fd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = io->lfd, .events = POLLIN };
		for (int i = 0; i < io->nwatch; i++)
			pfd[np++] = (struct pollfd){ .fd = io->watch[i], .events = POLLIN };
		for (int i = 0; i < io->nconns; i++) {
			struct control_conn *c = io->conns[i];
			short ev = 0;

			if (wants_read(c))
				ev |= POLLIN;
			if (control_conn_unsent(c) > 0)
				ev |= POLLOUT;
			pc[np] = c;
			pfd[np++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		n = poll(pfd, (nfds_t)np, poll_timeout(io, now));
		if (n == -1) {
			if (errno != EINTR) {
				log_warn("control: poll");
				usleep(100000);
			}
			continue;
		}
		io_events(io, pfd, pc, np, now);
		now = util_mono_ms();
		up(io, CTL_TURN, NULL, now);
		for (int i = 0; i < io->nconns; i++)
			conn_turn(io, io->conns[i], now);
		sweep(io, now);
	}

	/* Stopping: drop every connection. */
	for (int i = 0; i < io->nconns; i++)
		io->conns[i]->dead = true;
	sweep(io, util_mono_ms());
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop */

/*
 * Makes path free for bind(): a socket file left by a crash is removed, a
 * live one or anything else is an error.
 */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(fd);
		snprintf(err, errlen, "control socket %s: another process is listening on "
		    "it (is vinr-webhookd already running?)", path);
		return -1;
	}
	close(fd);
	if (errno != ECONNREFUSED && errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: cannot remove the stale file: %s",
		    path, strerror(errno));
		return -1;
	}
	log_info("control: removed the stale socket %s", path);
	return 0;
}

static int
check_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *copy, *dir;
	int rc = 0;

	if ((copy = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dir = dirname(copy);
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: directory %s does not exist",
		    path, dir);
		rc = -1;
	}
	free(copy);
	return rc;
}

/* Binds path and listens; io->lfd and io->ino are set. */
static int
io_listen(struct control_io *io, mode_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;

	memcpy(sun.sun_path, io->path, strlen(io->path));
	if (check_dir(io->path, err, errlen) == -1 ||
	    clear_stale(io->path, &sun, err, errlen) == -1)
		return -1;
	if ((io->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || bind(io->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "control socket %s: %s", io->path, strerror(errno));
		return -1;
	}
	if (chmod(io->path, mode) == -1 || lstat(io->path, &st) == -1 ||
	    listen(io->lfd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "control socket %s: %s", io->path, strerror(errno));
		unlink(io->path);
		return -1;
	}
	io->ino = st.st_ino;
	return 0;
}

struct control_io *
control_io_open(const char *path, mode_t mode, control_upcall_fn fn, void *arg,
    char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct control_io *io;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes",
		    path, sizeof(sun.sun_path) - 1);
		return NULL;
	}
	if ((io = calloc(1, sizeof(*io))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	io->lfd = io->stop_fd = -1;
	io->idle_ms = CONTROL_IDLE_DEFAULT_MS;
	io->up = fn;
	io->arg = arg;
	if ((io->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((io->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (io_listen(io, mode, err, errlen) == -1)
		goto fail;
	return io;
fail:
	if (io->lfd != -1)
		close(io->lfd);
	if (io->stop_fd != -1)
		close(io->stop_fd);
	free(io->path);
	free(io);
	return NULL;
}

void
control_io_set_idle(struct control_io *io, int64_t ms)
{
	io->idle_ms = ms > 0 ? ms : CONTROL_IDLE_DEFAULT_MS;
}

int
control_io_watch(struct control_io *io, int fd)
{
	if (io->started || io->nwatch == CONTROL_WATCH_MAX)
		return -1;
	io->watch[io->nwatch++] = fd;
	return 0;
}

int
control_io_start(struct control_io *io, char *err, size_t errlen)
{
	atomic_store(&io->tick_ms, util_mono_ms());
	if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
		snprintf(err, errlen, "cannot start the control thread");
		return -1;
	}
	io->started = true;
	return 0;
}

bool
control_io_alive(struct control_io *io)
{
	return util_mono_ms() - atomic_load(&io->tick_ms) < 15000;
}

int
control_io_clients(struct control_io *io)
{
	return atomic_load(&io->nconns_now);
}

void
control_io_stop(struct control_io *io)
{
	struct stat st;

	if (io == NULL || io->stopped)
		return;
	io->stopped = true;
	atomic_store(&io->stopping, true);
	if (io->started) {
		(void)!write(io->stop_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
		pthread_join(io->thread, NULL);
	}
	close(io->lfd);
	io->lfd = -1;
	/* Remove the file only if it is still ours. */
	if (lstat(io->path, &st) == 0 && st.st_ino == io->ino)
		unlink(io->path);
}

void
control_io_free(struct control_io *io)
{
	if (io == NULL)
		return;
	control_io_stop(io);
	close(io->stop_fd);
	free(io->path);
	free(io);
}
