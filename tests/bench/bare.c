/*
 * bare.c - the reference for `make bench`: a bare libmicrohttpd server.
 *
 *   bare -p PORT [-s] [-m BYTES] [-e]
 *
 * It serves any POST the way vinr-webhookd's http.c serves a webhook, minus
 * everything that is the daemon's own work: the same threading model (an
 * internal polling thread pool of HTTP_THREADS threads with poll(2), suspend
 * and resume allowed), the same three-phase handler that copies the body
 * into a buffer of its own, and a small JSON answer with the same headers.
 * No signature, no JSON parse, no database.  So loadgen against bare
 * measures what libmicrohttpd and the loopback cost, and the daemon's
 * distance from it is the daemon's own work.
 *
 * -s: suspend each request once its body is in and let another thread
 * resume it (through a queue, as the daemon's writer does after a commit),
 * to measure what the suspend/resume hand-over costs by itself.
 *
 * -m: libmicrohttpd's per-connection memory pool (MHD_OPTION_CONNECTION_
 * MEMORY_LIMIT, 32 KiB by default), which it clears after every request.
 *
 * -e: epoll instead of poll(2), to measure what the daemon would gain (it
 * stays on poll: see http_start()).
 *
 * Runs until SIGTERM or SIGINT; prints its CPU time and request count on
 * stderr when it stops.  Exit 0, or 2 on a usage or setup error.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <microhttpd.h>

#define HTTP_THREADS	2	/* as in src/http.c */
#define MAX_BODY	262144

static const char answer[] = "{\"ok\":true,\"duplicate\":false}";

struct req {
	struct MHD_Connection	*conn;
	char			*body;
	size_t			 len, cap;
	bool			 done;		/* body in; answered or suspended */
	bool			 resumed;
	struct req		*next;		/* in the resume queue */
};

/* The resumer's queue (-s). */
static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct req	*head;
	bool		 stop;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, false };

static bool suspend_mode;
static atomic_ulong served;

static enum MHD_Result
send_answer(struct MHD_Connection *c)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(sizeof(answer) - 1,
	    (void *)(uintptr_t)answer, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	atomic_fetch_add(&served, 1);
	return ret;
}

/* Copies a chunk of the body, as the daemon does.  MHD_NO when too big. */
static enum MHD_Result
take_chunk(struct req *r, const char *upload, size_t n)
{
	if (r->len + n > MAX_BODY)
		return MHD_NO;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *b;

		while (cap < r->len + n)
			cap *= 2;
		if ((b = realloc(r->body, cap)) == NULL)
			return MHD_NO;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, upload, n);
	r->len += n;
	return MHD_YES;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	struct req *r = *ctx;
	size_t n;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->conn = c;
		*ctx = r;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		n = *upload_size;
		*upload_size = 0;
		return take_chunk(r, upload, n);
	}
	if (r->done && !r->resumed)
		return MHD_YES;
	if (r->done || !suspend_mode) {
		r->done = true;
		return send_answer(c);
	}
	/* -s: the body is in; another thread resumes us. */
	r->done = true;
	MHD_suspend_connection(c);
	pthread_mutex_lock(&q.mu);
	r->next = q.head;
	q.head = r;
	pthread_cond_signal(&q.cv);
	pthread_mutex_unlock(&q.mu);
	return MHD_YES;
}

static void
completed(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *ctx;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	free(r->body);
	free(r);
	*ctx = NULL;
}

/* -s: resumes every suspended request, a whole queue at a time. */
static void *
resumer(void *arg)
{
	struct req *r, *next;

	(void)arg;
	pthread_mutex_lock(&q.mu);
	while (!q.stop) {
		if ((r = q.head) == NULL) {
			pthread_cond_wait(&q.cv, &q.mu);
			continue;
		}
		q.head = NULL;
		pthread_mutex_unlock(&q.mu);
		for (; r != NULL; r = next) {
			next = r->next;
			r->resumed = true;
			MHD_resume_connection(r->conn);
		}
		pthread_mutex_lock(&q.mu);
	}
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

static double
tv_sec(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int
main(int argc, char *argv[])
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct MHD_Daemon *mhd;
	struct rusage ru;
	pthread_t rt;
	sigset_t sigs;
	int ch, port = 0, sig;
	size_t mem = 32 * 1024;

	while ((ch = getopt(argc, argv, "p:sm:e")) != -1) {
		if (ch == 'e')
			flags = (flags & ~(unsigned)MHD_USE_POLL) | MHD_USE_EPOLL;
		else if (ch == 'p')
			port = atoi(optarg);
		else if (ch == 's')
			suspend_mode = true;
		else if (ch == 'm')
			mem = strtoul(optarg, NULL, 10);
		else
			port = -1;
	}
	if (optind != argc || port <= 0 || port > 65535 || mem < 1024) {
		fprintf(stderr, "usage: bare -p PORT [-s] [-m BYTES] [-e]\n");
		return 2;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (suspend_mode && pthread_create(&rt, NULL, resumer, NULL) != 0)
		return 2;
	mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
	    MHD_OPTION_END);
	if (mhd == NULL) {
		fprintf(stderr, "bare: cannot listen on port %d: %s\n", port, strerror(errno));
		return 2;
	}
	fprintf(stderr, "bare: listening on port %d%s\n", port,
	    suspend_mode ? ", suspend/resume" : "");
	sigwait(&sigs, &sig);
	MHD_stop_daemon(mhd);
	if (suspend_mode) {
		pthread_mutex_lock(&q.mu);
		q.stop = true;
		pthread_cond_signal(&q.cv);
		pthread_mutex_unlock(&q.mu);
		pthread_join(rt, NULL);
	}
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "bare: %lu requests, CPU %.2f s\n", atomic_load(&served),
	    tv_sec(ru.ru_utime) + tv_sec(ru.ru_stime));
	return 0;
}
