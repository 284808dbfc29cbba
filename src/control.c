/*
 * control.c - the control socket's loop (see control.h, SPEC §4): the
 * sockets, the clients' buffers, waiters and subscribers, and the answers
 * that other threads hand back.  The requests themselves are in
 * control_cmd.c; what both share is in control_int.h.
 *
 * Threads: one, control_main().  It owns the listening socket, the clients,
 * its read connection and its eventfds; nothing else touches them.  Other
 * threads reach it through two doors only.  The store's writer writes
 * outcome_fd after each commit with new outcomes (store_add_listener).  The
 * answers to work handed elsewhere (the writer's done callbacks for track and
 * replay, control_reconcile_done() from the reconciler) move their op from
 * the inflight list to the done list under mu and write wake_fd.
 *
 * Clients: one request at a time per connection, answered in order.  The
 * next line is looked at only once the previous request is answered; while
 * a request is busy (a wait may last an hour) the socket is not read, only
 * its hang-up is watched.  Output goes to a per-client buffer written
 * without blocking; while more than OUT_HIGH of it is unsent the client is
 * neither read from nor fed, so one that never reads holds at most OUT_HIGH
 * plus one answer, and after CLOSE_GRACE_MS in "closing" it is dropped.
 *
 * wait: a waiter is a busy client with a payment id and a deadline.  On each
 * wake-up from the writer the new outcomes (seq, payment, status only) are
 * read once, after seen_seq, and matched against the waiters; the poll
 * timeout is the nearest deadline.  Nothing slips between a wait's check and
 * its registration: both happen on this thread, so an outcome committed
 * before the check is seen by it, and one committed after it has a seq above
 * seen_seq and is matched at the next wake-up.
 *
 * subscribe: each subscriber has its own cursor (sub_seq, the last seq put
 * in its buffer) and pulls the outcomes after it from the database whenever
 * its buffer is below OUT_LOW.  Backlog and live lines come from the same
 * pull, so there is no seam: no gap and no duplicate.  Memory is bounded by
 * the buffer, not by how far behind a subscriber is; a backlog of any size
 * is served at the reader's pace.  One that has caught up once and then
 * falls more than LAG_MAX outcomes behind while not reading is sent lagging
 * and closed.
 */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control.h"
#include "control_int.h"
#include "log.h"
#include "payment.h"
#include "store.h"
#include "store_read.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* Client buffers */

static void
client_free(struct client *cl)
{
	if (cl == NULL)
		return;
	if (cl->fd != -1)
		close(cl->fd);
	free(cl->in);
	free(cl->out);
	cJSON_Delete(cl->req_id);
	free(cl->wait_id);
	free(cl);
}

static size_t
unsent(const struct client *cl)
{
	return cl->outlen - cl->outoff;
}

/* Marks the client to be closed once what it was sent is written. */
void
control_close_after(struct client *cl)
{
	if (!cl->closing) {
		cl->closing = true;
		cl->close_by = util_mono_ms() + CLOSE_GRACE_MS;
	}
	cl->subscribed = false;
}

static int
out_append(struct client *cl, const char *buf, size_t len)
{
	size_t need, cap;
	char *p;

	if (cl->outoff > 0 && cl->outoff == cl->outlen)
		cl->outoff = cl->outlen = 0;
	need = cl->outlen + len;
	if (need > cl->outcap && cl->outoff > 0) {
		memmove(cl->out, cl->out + cl->outoff, cl->outlen - cl->outoff);
		cl->outlen -= cl->outoff;
		cl->outoff = 0;
		need = cl->outlen + len;
	}
	if (need > cl->outcap) {
		for (cap = cl->outcap ? cl->outcap : 4096; cap < need; cap *= 2)
			;
		if ((p = realloc(cl->out, cap)) == NULL) {
			log_warn("control: output buffer");
			cl->dead = true;
			return -1;
		}
		cl->out = p;
		cl->outcap = cap;
	}
	memcpy(cl->out + cl->outlen, buf, len);
	cl->outlen += len;
	return 0;
}

/* Writes what it can without blocking; a peer gone makes it dead. */
static void
client_flush(struct client *cl)
{
	ssize_t n;

	while (!cl->dead && unsent(cl) > 0) {
		n = send(cl->fd, cl->out + cl->outoff, unsent(cl), MSG_NOSIGNAL);
		if (n > 0) {
			cl->outoff += (size_t)n;
			cl->midline = cl->out[cl->outoff - 1] != '\n';
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		cl->dead = true;	/* EPIPE, ECONNRESET: nobody reads */
	}
	if (unsent(cl) == 0) {
		cl->outoff = cl->outlen = 0;
		/* A big answer went out: give its memory back. */
		if (cl->outcap > OUT_HIGH) {
			free(cl->out);
			cl->out = NULL;
			cl->outcap = 0;
		}
	}
}

/* Sends o (and deletes it) as one line. */
void
control_send_json(struct client *cl, cJSON *o)
{
	char *s;

	if (o == NULL || (s = cJSON_PrintUnformatted(o)) == NULL) {
		log_warnx("control: out of memory for an answer");
		cJSON_Delete(o);
		cl->dead = true;
		return;
	}
	cJSON_Delete(o);
	if (out_append(cl, s, strlen(s)) == 0)
		out_append(cl, "\n", 1);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Work handed to the writer or the reconciler (answered further down) */

/* The writer's answer, on its thread: hand the op to the control thread. */
static void
op_done(struct control *ctl, struct op *op)
{
	struct op **pp;

	pthread_mutex_lock(&ctl->mu);
	for (pp = &ctl->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	op->next = ctl->done;
	ctl->done = op;
	ctl->ninflight--;
	pthread_cond_signal(&ctl->cv);
	/* Under mu: once it is released, control_stop may free ctl. */
	(void)!write(ctl->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	pthread_mutex_unlock(&ctl->mu);
}

void
control_store_done(void *arg, int rc)
{
	struct op *op = arg;

	op->rc = rc;
	op_done(op->ctl, op);
}

void
control_op_free(struct op *op)
{
	if (op == NULL)
		return;
	payment_release(&op->pay);
	free(op->id);
	free(op);
}

struct op *
control_op_new(struct control *ctl, struct client *cl, enum busy kind)
{
	struct op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL) {
		control_reply_error(ctl, cl, "internal", "out of memory");
		return NULL;
	}
	op->ctl = ctl;
	op->token = cl->token;
	op->kind = kind;
	op->pay.livemode = -1;
	return op;
}

/* Puts op on the inflight list before it is handed over. */
void
control_op_register(struct control *ctl, struct op *op)
{
	pthread_mutex_lock(&ctl->mu);
	op->next = ctl->inflight;
	ctl->inflight = op;
	ctl->ninflight++;
	pthread_mutex_unlock(&ctl->mu);
}

/* Takes op back off the inflight list when the handover failed. */
void
control_op_cancel(struct control *ctl, struct op *op)
{
	struct op **pp;

	pthread_mutex_lock(&ctl->mu);
	for (pp = &ctl->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			ctl->ninflight--;
			break;
		}
	pthread_mutex_unlock(&ctl->mu);
	control_op_free(op);
}

/* ------------------------------------------------------------------ */
/* Requests in */

/*
 * Answers the whole lines buffered while the client is free to ask and not
 * behind on reading its answers.
 */
static void
client_process(struct control *ctl, struct client *cl)
{
	char *nl;
	size_t len;

	while (!cl->dead && !cl->closing && cl->busy == B_NONE && unsent(cl) < OUT_HIGH) {
		nl = cl->inlen > 0 ? memchr(cl->in, '\n', cl->inlen) : NULL;
		if (nl == NULL) {
			if (cl->inlen > MAX_LINE) {
				control_reply_error(ctl, cl, "bad_request",
				    "line longer than %d bytes", MAX_LINE);
				control_close_after(cl);
				return;
			}
			if (!cl->eof)
				return;
			if (cl->inlen > 0) {
				/* A last line without its newline still counts. */
				len = cl->inlen;
				cl->inlen = 0;
				control_handle_line(ctl, cl, cl->in, len);
				continue;
			}
			/* Asked everything: stay only to stream. */
			if (!cl->subscribed)
				control_close_after(cl);
			return;
		}
		len = (size_t)(nl - cl->in);
		control_handle_line(ctl, cl, cl->in, len);
		cl->inlen -= len + 1;
		memmove(cl->in, nl + 1, cl->inlen);
	}
}

/* Reads what the socket has (up to one line of room). */
static void
client_read(struct client *cl)
{
	size_t cap;
	ssize_t n;
	char *p;

	while (!cl->eof && cl->inlen <= MAX_LINE) {
		if (cl->inlen == cl->incap) {
			cap = cl->incap ? cl->incap * 2 : 4096;
			if (cap > MAX_LINE + 1)
				cap = MAX_LINE + 1;
			if ((p = realloc(cl->in, cap)) == NULL) {
				log_warn("control: input buffer");
				cl->dead = true;
				return;
			}
			cl->in = p;
			cl->incap = cap;
		}
		n = recv(cl->fd, cl->in + cl->inlen, cl->incap - cl->inlen, 0);
		if (n > 0) {
			cl->inlen += (size_t)n;
			if (memchr(cl->in + cl->inlen - n, '\n', (size_t)n) != NULL)
				return;	/* answer it before reading on */
			continue;
		}
		if (n == 0)
			cl->eof = true;
		else if (errno == EINTR)
			continue;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			cl->dead = true;
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Outcomes: waiters and subscribers */

static int
match_waiters(void *arg, int64_t seq, const char *payment_id, const char *status)
{
	struct control *ctl = arg;

	ctl->seen_seq = seq;
	if (payment_id == NULL || !pay_status_is_outcome(pay_status_parse(status)))
		return 0;
	for (int i = 0; i < ctl->nclients; i++) {
		struct client *cl = ctl->clients[i];

		if (cl->busy == B_WAIT && !cl->dead && strcmp(cl->wait_id, payment_id) == 0)
			control_reply_wait(ctl, cl, false);
	}
	return 0;
}

/* The writer committed new outcomes. */
static void
outcomes_committed(struct control *ctl)
{
	int n;

	ctl->unseen = false;
	if (ctl->nwaiters == 0) {
		/* A wait asked later checks the database itself. */
		ctl->seen_seq = store_last_seq(ctl->store);
		return;
	}
	do {
		n = store_reader_transitions(ctl->reader, ctl->seen_seq, MATCH_BATCH,
		    match_waiters, ctl);
	} while (n == MATCH_BATCH && ctl->nwaiters > 0);
	if (n == -1)
		ctl->unseen = true;	/* try again at the next turn */
}

static int
feed_line(void *arg, int64_t seq, const char *status, const char *json, int jsonlen)
{
	struct client *cl = arg;

	(void)status;
	if (out_append(cl, json, (size_t)jsonlen) == -1 || out_append(cl, "\n", 1) == -1)
		return -1;
	cl->sub_seq = seq;
	return unsent(cl) >= OUT_HIGH;
}

/*
 * Drops the lines not yet begun (a line partly sent is finished: never a
 * torn line), says lagging instead, and closes.  Not an answer to a request:
 * no "id", and a request in flight on the connection simply dies with it.
 */
static void
send_lagging(struct client *cl)
{
	char *nl, msg[128];
	cJSON *o;

	if (!cl->midline)
		cl->outlen = cl->outoff;
	else if ((nl = memchr(cl->out + cl->outoff, '\n', unsent(cl))) != NULL)
		cl->outlen = (size_t)(nl - cl->out) + 1;
	log_info("control: a subscriber fell more than %d outcomes behind: dropped",
	    LAG_MAX);
	if ((o = cJSON_CreateObject()) != NULL) {
		cJSON_AddBoolToObject(o, "ok", false);
		cJSON_AddStringToObject(o, "error", "lagging");
		snprintf(msg, sizeof(msg), "fell more than %d outcomes behind; subscribe "
		    "again with since = the last seq received", LAG_MAX);
		cJSON_AddStringToObject(o, "message", msg);
	}
	control_send_json(cl, o);
	control_close_after(cl);
}

static void
feed(struct control *ctl, struct client *cl)
{
	int64_t last = store_last_seq(ctl->store);
	int n;

	if (cl->caught_up && last - cl->sub_seq > LAG_MAX && unsent(cl) >= OUT_LOW) {
		send_lagging(cl);
		return;
	}
	for (int round = 0; round < FEED_ROUNDS; round++) {
		if (cl->dead || !cl->subscribed || cl->sub_seq >= last ||
		    unsent(cl) >= OUT_LOW)
			return;
		n = store_reader_outcomes(ctl->reader, cl->sub_seq, PULL_BATCH,
		    feed_line, cl);
		if (n <= 0) {
			if (n == -1)
				ctl->again = true;
			return;
		}
		if (cl->sub_seq >= last)
			cl->caught_up = true;
		client_flush(cl);
	}
	if (!cl->dead && cl->sub_seq < last && unsent(cl) < OUT_LOW)
		ctl->again = true;	/* more for it after the others' turn */
}

/* ------------------------------------------------------------------ */
/* Answers from other threads */

static struct client *
client_by_token(struct control *ctl, uint64_t token)
{
	for (int i = 0; i < ctl->nclients; i++)
		if (ctl->clients[i]->token == token && !ctl->clients[i]->dead)
			return ctl->clients[i];
	return NULL;
}

static void
answers_arrived(struct control *ctl)
{
	struct client *cl;
	struct op *list, *op;

	pthread_mutex_lock(&ctl->mu);
	list = ctl->done;
	ctl->done = NULL;
	pthread_mutex_unlock(&ctl->mu);
	while ((op = list) != NULL) {
		list = op->next;
		/* A client that hung up meanwhile misses it: the work is done. */
		if ((cl = client_by_token(ctl, op->token)) != NULL && cl->busy == op->kind)
			control_answer(ctl, cl, op);
		control_op_free(op);
	}
}

/* req is the op: it stays on the inflight list, and alive, until this. */
void
control_reconcile_done(void *req, const char *error, const char *message,
    bool changed)
{
	struct op *op = req;

	snprintf(op->error, sizeof(op->error), "%s", error != NULL ? error : "");
	snprintf(op->message, sizeof(op->message), "%s",
	    message != NULL ? message : error != NULL ? error : "");
	op->changed = changed;
	op_done(op->ctl, op);
}

/* ------------------------------------------------------------------ */
/* The loop */

static void
accept_clients(struct control *ctl)
{
	static const char full[] = "{\"ok\":false,\"error\":\"internal\","
	    "\"message\":\"too many control clients\"}\n";
	struct client *cl;
	int fd;

	for (int i = 0; i < 128; i++) {
		fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control: accept");
			return;
		}
		if (ctl->nclients == MAX_CLIENTS) {
			log_warnx("control: %d clients already: refusing one", MAX_CLIENTS);
			(void)!send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		if ((cl = calloc(1, sizeof(*cl))) == NULL) {
			log_warn("control: accept");
			close(fd);
			return;
		}
		cl->fd = fd;
		cl->token = ++ctl->next_token;
		ctl->clients[ctl->nclients++] = cl;
		atomic_store(&ctl->nclients_now, ctl->nclients);
	}
}

static void
drain(int fd)
{
	uint64_t v;

	(void)!read(fd, &v, sizeof(v));
}

/* Per client at the end of a loop turn: ask, feed, write, close. */
static void
client_turn(struct control *ctl, struct client *cl, int64_t now)
{
	if (!cl->dead && cl->busy == B_WAIT && now >= cl->wait_until)
		control_reply_wait(ctl, cl, true);
	client_process(ctl, cl);
	if (cl->subscribed && !cl->closing)
		feed(ctl, cl);
	client_flush(cl);
	if (cl->hup && unsent(cl) == 0 && cl->busy == B_NONE &&
	    (cl->inlen == 0 || memchr(cl->in, '\n', cl->inlen) == NULL))
		cl->dead = true;
	if (cl->closing && (unsent(cl) == 0 || now >= cl->close_by))
		cl->dead = true;
	/* A peer that hung up hears no answer. */
	if (cl->hup && cl->busy != B_NONE)
		cl->dead = true;
}

static void
sweep(struct control *ctl)
{
	int i = 0;

	while (i < ctl->nclients) {
		struct client *cl = ctl->clients[i];

		if (!cl->dead) {
			i++;
			continue;
		}
		if (cl->busy == B_WAIT)
			ctl->nwaiters--;
		client_free(cl);
		ctl->clients[i] = ctl->clients[--ctl->nclients];
	}
	atomic_store(&ctl->nclients_now, ctl->nclients);
}

static bool
wants_read(const struct client *cl)
{
	return !cl->eof && !cl->closing && cl->busy == B_NONE &&
	    unsent(cl) < OUT_HIGH && cl->inlen <= MAX_LINE;
}

static int
poll_timeout(struct control *ctl, int64_t now)
{
	int64_t t = 1000;

	if (ctl->again)
		return 0;
	if (ctl->unseen)
		t = 100;	/* the database failed us: not too hot a retry */
	for (int i = 0; i < ctl->nclients; i++) {
		struct client *cl = ctl->clients[i];

		if (cl->busy == B_WAIT && cl->wait_until - now < t)
			t = cl->wait_until - now;
		if (cl->closing && cl->close_by - now < t)
			t = cl->close_by - now;
	}
	return t < 0 ? 0 : (int)t;
}

static void *
control_main(void *arg)
{
	struct control *ctl = arg;
	struct pollfd pfd[3 + MAX_CLIENTS];
	struct client *pcl[3 + MAX_CLIENTS];
	int64_t now;
	int n, np;

	while (!atomic_load(&ctl->stopping)) {
		now = util_mono_ms();
		atomic_store(&ctl->tick_ms, now);
		np = 0;
		pfd[np++] = (struct pollfd){ .fd = ctl->wake_fd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = ctl->outcome_fd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = ctl->lfd, .events = POLLIN };
		for (int i = 0; i < ctl->nclients; i++) {
			struct client *cl = ctl->clients[i];
			short ev = 0;

			if (wants_read(cl))
				ev |= POLLIN;
			if (unsent(cl) > 0)
				ev |= POLLOUT;
			pcl[np] = cl;
			pfd[np++] = (struct pollfd){ .fd = cl->fd, .events = ev };
		}
		n = poll(pfd, (nfds_t)np, poll_timeout(ctl, now));
		ctl->again = false;
		if (n == -1) {
			if (errno != EINTR) {
				log_warn("control: poll");
				usleep(100000);
			}
			continue;
		}
		if (pfd[0].revents & POLLIN) {
			drain(ctl->wake_fd);
			answers_arrived(ctl);
		}
		if (pfd[1].revents & POLLIN) {
			drain(ctl->outcome_fd);
			ctl->unseen = true;
		}
		if (ctl->unseen)
			outcomes_committed(ctl);
		for (int i = 3; i < np; i++) {
			struct client *cl = pcl[i];

			if (pfd[i].revents & POLLIN)
				client_read(cl);
			if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
				/* Read what it sent before it went: a last track counts. */
				if (wants_read(cl))
					client_read(cl);
				cl->eof = cl->hup = true;
			}
		}
		if (pfd[2].revents & POLLIN)
			accept_clients(ctl);
		now = util_mono_ms();
		for (int i = 0; i < ctl->nclients; i++)
			client_turn(ctl, ctl->clients[i], now);
		sweep(ctl);
	}

	/* Stopping: drop the clients, then wait for the work handed out. */
	for (int i = 0; i < ctl->nclients; i++)
		client_free(ctl->clients[i]);
	ctl->nclients = 0;
	pthread_mutex_lock(&ctl->mu);
	while (ctl->ninflight > 0)
		pthread_cond_wait(&ctl->cv, &ctl->mu);
	pthread_mutex_unlock(&ctl->mu);
	answers_arrived(ctl);
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

struct control *
control_start(const struct control_params *p, char *err, size_t errlen)
{
	struct control *ctl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	bool bound = false, mu = false;

	if (strlen(p->path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes",
		    p->path, sizeof(sun.sun_path) - 1);
		return NULL;
	}
	memcpy(sun.sun_path, p->path, strlen(p->path));
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(p->path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ctl->lfd = ctl->outcome_fd = ctl->wake_fd = -1;
	ctl->store = p->store;
	ctl->stats = p->stats;
	ctl->stats_arg = p->stats_arg;
	ctl->rc = p->reconciler;

	if (check_dir(p->path, err, errlen) == -1 ||
	    clear_stale(p->path, &sun, err, errlen) == -1)
		goto fail;
	if ((ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || bind(ctl->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "control socket %s: %s", p->path, strerror(errno));
		goto fail;
	}
	bound = true;
	if (chmod(p->path, p->mode) == -1 || lstat(p->path, &st) == -1 ||
	    listen(ctl->lfd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "control socket %s: %s", p->path, strerror(errno));
		goto fail;
	}
	ctl->ino = st.st_ino;
	if ((ctl->reader = store_reader_open(store_path(p->store), err, errlen)) == NULL)
		goto fail;
	if ((ctl->outcome_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
	    (ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&ctl->mu, NULL);
	pthread_cond_init(&ctl->cv, NULL);
	mu = true;
	/* Registered before seen_seq is read: no commit can fall between. */
	if (store_add_listener(p->store, ctl->outcome_fd) == -1) {
		snprintf(err, errlen, "control: too many store listeners");
		goto fail;
	}
	ctl->listening = true;
	ctl->seen_seq = store_last_seq(p->store);
	atomic_store(&ctl->tick_ms, util_mono_ms());
	if (pthread_create(&ctl->thread, NULL, control_main, ctl) != 0) {
		snprintf(err, errlen, "cannot start the control thread");
		goto fail;
	}
	ctl->started = true;
	log_info("control socket %s (mode %04o)", p->path, (unsigned)p->mode);
	return ctl;
fail:
	if (ctl != NULL) {
		if (ctl->listening)
			store_remove_listener(p->store, ctl->outcome_fd);
		if (mu) {
			pthread_mutex_destroy(&ctl->mu);
			pthread_cond_destroy(&ctl->cv);
		}
		if (ctl->outcome_fd != -1)
			close(ctl->outcome_fd);
		if (ctl->wake_fd != -1)
			close(ctl->wake_fd);
		store_reader_free(ctl->reader);
		if (ctl->lfd != -1)
			close(ctl->lfd);
		if (bound)
			unlink(p->path);
		free(ctl->path);
		free(ctl);
	}
	return NULL;
}

bool
control_alive(struct control *ctl)
{
	return util_mono_ms() - atomic_load(&ctl->tick_ms) < 15000;
}

int
control_clients(struct control *ctl)
{
	return atomic_load(&ctl->nclients_now);
}

void
control_stop(struct control *ctl)
{
	struct stat st;

	if (ctl == NULL || ctl->lfd == -1)
		return;
	atomic_store(&ctl->stopping, true);
	(void)!write(ctl->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	if (ctl->started)
		pthread_join(ctl->thread, NULL);
	ctl->started = false;
	store_remove_listener(ctl->store, ctl->outcome_fd);
	close(ctl->lfd);
	ctl->lfd = -1;
	/* Remove the file only if it is still ours. */
	if (lstat(ctl->path, &st) == 0 && st.st_ino == ctl->ino)
		unlink(ctl->path);
}

void
control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	control_stop(ctl);
	close(ctl->outcome_fd);
	close(ctl->wake_fd);
	store_reader_free(ctl->reader);
	pthread_mutex_destroy(&ctl->mu);
	pthread_cond_destroy(&ctl->cv);
	free(ctl->path);
	free(ctl);
}
