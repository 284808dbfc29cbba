/*
 * loadgen.c - closed-loop HTTP load generator for vinr-webhookd.
 *
 *   loadgen -p PORT (-k SECRET | -K FILE) [-c CONNS] [-n TOTAL] [-d SECONDS]
 *           [-I seq|random] [-H HOST] [-P PATH] [-r RUNID] [-R] [-q]
 *
 * Every connection is one thread with one blocking TCP socket and HTTP/1.1
 * keep-alive; it sends a request, reads the whole answer, and only then sends
 * the next one (so the offered load is exactly the daemon's speed).
 *
 * All requests are built and signed (sig_sign_vinr, SPEC §1.2) before the
 * clock starts: the timed phase does one send() and a few recv()s per request
 * and a memmem() or two on the answer, nothing else.
 *
 * Events: unique ids "evt_<run>_<16 hex>" (-I: in sending order, like VINR's
 * ULID-style ids, or scattered like UUIDs).  Each connection owns its
 * payments and walks each one through a life cycle, in order, on its own
 * socket, so that (the daemon answering only after commit) every event is a
 * transition and produces exactly one outcome:
 *     pending -> processing -> authorized -> completed
 *     pending -> failed
 *     authorized -> completed            (a capture)
 *     pending -> cancelled
 * With -d the run stops at the deadline or when the pool of -n requests is
 * used up, whichever comes first.  Every request is signed with the time the
 * preparation started: a run must end within the daemon's tolerance (300 s
 * by default) or the rest is refused with 401.  -R (with -d) starts each
 * connection's requests over when they run out before the deadline: only
 * for a server that does not dedupe (tests/bench/bare.c), so that a pool
 * of a few thousand requests keeps a fast server busy for the whole run.
 *
 * Output: a human summary on stdout, then one line
 *     RESULT key=value ...
 * for scripts.  Exit 0 when every request got 200 duplicate:false, 1 when
 * some did not, 2 on a usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "signature.h"

#define RESP_BUF	8192
#define DEFAULT_POOL	200000	/* requests prepared for a -d run without -n */

struct conn {
	int		 id;
	pthread_t	 thread;
	int		 fd;

	/* The prepared requests: one arena, offsets into it. */
	char		*arena;
	size_t		*off;
	size_t		*len;
	size_t		 nreq;

	/* Results. */
	uint64_t	*lat_ns;	/* one per request sent */
	size_t		 nlat, latcap;
	uint64_t	 ok;		/* 200 duplicate:false, not ignored */
	uint64_t	 dup;		/* 200 duplicate:true */
	uint64_t	 ignored;	/* 200 ignored:true */
	uint64_t	 http_err;	/* any other status */
	uint64_t	 io_err;	/* connect/send/recv/parse failures */
	uint64_t	 reconnects;
	unsigned	 status_count[6];	/* by class: 1xx .. 5xx */
	char		 first_err[160];

	char		 rbuf[RESP_BUF];
};

static struct {
	const char		*host;
	int			 port;
	const char		*path;
	int			 conns;
	long			 total;
	double			 duration;
	char			 run[32];
	struct sig_key		 key;
	bool			 quiet;
	bool			 random_ids;
	bool			 repeat;	/* -R */
	struct sockaddr_in	 addr;
	pthread_barrier_t	 ready;
	atomic_bool		 setup_failed;
	struct timespec		 t0;
	int64_t			 deadline_ns;	/* 0: none */
} g;

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen -p PORT (-k SECRET | -K FILE) [-c CONNS] "
	    "[-n TOTAL] [-d SECONDS] [-I seq|random] [-H HOST] [-P PATH] [-r RUNID] [-R] [-q]\n"
	    "  -c  connections (threads), default 32\n"
	    "  -n  total requests (with -d: the pool, default %d)\n"
	    "  -d  run for this many seconds (or until the pool is used)\n"
	    "  -I  ids in sending order (seq, default, like ULIDs) or scattered (random)\n"
	    "  -r  run id in every event id (default: from time and pid)\n"
	    "  -R  with -d: send each connection's requests again until the deadline\n",
	    DEFAULT_POOL);
	exit(2);
}

/* The first secret of a secret file (SPEC §6 syntax). */
static char *
read_secret(const char *file)
{
	char line[4096], *p, *e;
	FILE *f = fopen(file, "r");

	if (f == NULL) {
		perror(file);
		exit(2);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		for (e = p + strlen(p); e > p && (e[-1] == '\n' || e[-1] == '\r' ||
		    e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		fclose(f);
		return strdup(p);
	}
	fclose(f);
	fprintf(stderr, "%s: no secret\n", file);
	exit(2);
}

/* Life cycles, see the top of the file.  "" ends one. */
static const char *const cycles[][5] = {
	{ "pending", "processing", "authorized", "completed", "" },
	{ "pending", "failed", "" },
	{ "authorized", "completed", "" },
	{ "pending", "cancelled", "" },
};
#define NCYCLES	(sizeof(cycles) / sizeof(cycles[0]))

static const char *
status_time_key(const char *st)
{
	if (strcmp(st, "authorized") == 0)
		return "authorizedAt";
	if (strcmp(st, "completed") == 0)
		return "completedAt";
	if (strcmp(st, "failed") == 0)
		return "failedAt";
	if (strcmp(st, "cancelled") == 0)
		return "cancelledAt";
	return NULL;
}

/*
 * The unique part of an id.  -I seq (default): n itself, so that ids sort in
 * the order they are sent, like VINR's ULID-style ids ("evt_01J0Q8ZK3M"): the
 * daemon's indexes grow at their right edge.  -I random: a bijective hash of
 * n (splitmix64), like UUIDv4s: every insert lands on a random index page.
 */
static void
make_key(char out[17], uint64_t n)
{
	if (g.random_ids) {
		n += 0x9e3779b97f4a7c15ULL;
		n = (n ^ (n >> 30)) * 0xbf58476d1ce4e5b9ULL;
		n = (n ^ (n >> 27)) * 0x94d049bb133111ebULL;
		n ^= n >> 31;
	}
	snprintf(out, 17, "%016" PRIx64, n);
}

/* A realistic payment event body (~650 bytes).  Returns its length. */
static int
make_body(char *out, size_t outlen, const struct conn *c, size_t i, size_t pay,
    const char *status)
{
	const char *tk = status_time_key(status);
	char extra[160] = "", ek[17], pk[17];
	long amount = 100 + (long)((pay * 7919) % 99900);

	/* Numbered across connections in sending order: request i of every
	 * connection goes out at about the same time. */
	make_key(ek, (uint64_t)i * (uint64_t)g.conns + (uint64_t)c->id);
	make_key(pk, (uint64_t)pay * (uint64_t)g.conns + (uint64_t)c->id);
	if (tk != NULL)
		snprintf(extra, sizeof(extra), ",\"%s\":\"2026-06-11T09:00:%02zuZ\"", tk,
		    i % 60);
	if (strcmp(status, "failed") == 0)
		strcat(extra, ",\"declineCode\":\"insufficient_funds\"");
	else if (strcmp(status, "authorized") == 0 || strcmp(status, "completed") == 0)
		strcat(extra, ",\"authCode\":\"A12345\"");
	return snprintf(out, outlen,
	    "{\"id\":\"evt_%s_%s\",\"object\":\"event\","
	    "\"type\":\"terminal_payment.%s\",\"createdAt\":\"2026-06-11T09:00:12Z\","
	    "\"livemode\":false,\"data\":{\"object\":{\"id\":\"tpay_%s_%s\","
	    "\"object\":\"terminal_payment\",\"terminalId\":\"term_01HZ5QXYZ%02d\","
	    "\"amount\":%ld,\"currency\":\"USD\",\"reference\":\"order_%s_%s\","
	    "\"status\":\"%s\",\"captureMethod\":\"automatic\","
	    "\"responseMode\":\"sync\",\"entryMethod\":\"contactless\","
	    "\"last4\":\"4242\",\"brand\":\"visa\","
	    "\"createdAt\":\"2026-06-11T09:00:10Z\"%s,"
	    "\"metadata\":{\"lane\":\"%d\",\"cashier\":\"c%zu\"}}}}",
	    g.run, ek, status, g.run, pk, c->id % 100, amount,
	    g.run, pk, status, extra, c->id, pay % 50);
}

/* Builds and signs this connection's requests. */
static int
prepare(struct conn *c)
{
	char body[2048], sig[256], head[768];
	size_t cap = c->nreq * 1400 + 1, used = 0, i, pay = 0;
	int cyc = c->id % (int)NCYCLES, step = 0, bl, sl, hl;
	long long t = (long long)time(NULL);

	c->arena = malloc(cap);
	c->off = calloc(c->nreq ? c->nreq : 1, sizeof(*c->off));
	c->len = calloc(c->nreq ? c->nreq : 1, sizeof(*c->len));
	c->latcap = c->nreq ? c->nreq : 1;
	c->lat_ns = calloc(c->latcap, sizeof(*c->lat_ns));
	if (c->arena == NULL || c->off == NULL || c->len == NULL || c->lat_ns == NULL)
		return -1;
	for (i = 0; i < c->nreq; i++) {
		const char *st = cycles[cyc][step];

		bl = make_body(body, sizeof(body), c, i, pay, st);
		if (bl < 0 || (size_t)bl >= sizeof(body))
			return -1;
		sl = sig_sign_vinr(&g.key, t, body, (size_t)bl, sig, sizeof(sig));
		if (sl < 0)
			return -1;
		hl = snprintf(head, sizeof(head),
		    "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: vinr-loadgen\r\n"
		    "Content-Type: application/json\r\nVinr-Signature: %s\r\n"
		    "Content-Length: %d\r\n\r\n", g.path, g.host, g.port, sig, bl);
		if (hl < 0 || (size_t)hl >= sizeof(head))
			return -1;
		if (used + (size_t)hl + (size_t)bl > cap) {
			char *a;

			cap *= 2;
			if ((a = realloc(c->arena, cap)) == NULL)
				return -1;
			c->arena = a;
		}
		c->off[i] = used;
		memcpy(c->arena + used, head, (size_t)hl);
		memcpy(c->arena + used + hl, body, (size_t)bl);
		c->len[i] = (size_t)hl + (size_t)bl;
		used += c->len[i];
		/* Next status of this payment, or the next payment. */
		if (cycles[cyc][++step][0] == '\0') {
			step = 0;
			pay++;
			cyc = (cyc + 1) % (int)NCYCLES;
		}
	}
	return 0;
}

static void
note_err(struct conn *c, const char *fmt, const char *arg)
{
	if (c->first_err[0] == '\0')
		snprintf(c->first_err, sizeof(c->first_err), fmt, arg);
}

static int
dial(struct conn *c)
{
	int one = 1;

	if (c->fd != -1)
		close(c->fd);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&g.addr, sizeof(g.addr)) == -1) {
		note_err(c, "connect: %s", strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Case-insensitive search for a header name at a line start. */
static const char *
find_header(const char *h, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = h; p + n < end; p++) {
		if (p[0] == '\n' && strncasecmp(p + 1, name, n) == 0)
			return p + 1 + n;
	}
	return NULL;
}

/*
 * Reads one response.  Returns its status, or -1 (connection lost or not
 * HTTP).  *body / *blen point into c->rbuf.  *close_after when the server
 * says Connection: close.
 */
static int
read_response(struct conn *c, const char **body, size_t *blen, bool *close_after)
{
	size_t have = 0, hlen = 0, clen = 0;
	const char *eoh = NULL, *v;
	int status = -1;

	*close_after = false;
	for (;;) {
		ssize_t r = recv(c->fd, c->rbuf + have, sizeof(c->rbuf) - 1 - have, 0);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			note_err(c, "recv: %s", r == 0 ? "connection closed" :
			    strerror(errno));
			return -1;
		}
		have += (size_t)r;
		c->rbuf[have] = '\0';
		if (eoh == NULL) {
			if ((eoh = memmem(c->rbuf, have, "\r\n\r\n", 4)) == NULL) {
				if (have >= sizeof(c->rbuf) - 1) {
					note_err(c, "%s", "response header too large");
					return -1;
				}
				continue;
			}
			hlen = (size_t)(eoh - c->rbuf) + 4;
			if (have < 12 || strncmp(c->rbuf, "HTTP/1.", 7) != 0) {
				note_err(c, "%s", "not an HTTP response");
				return -1;
			}
			status = atoi(c->rbuf + 9);
			if ((v = find_header(c->rbuf, eoh, "content-length:")) == NULL) {
				note_err(c, "%s", "no Content-Length");
				return -1;
			}
			clen = strtoul(v, NULL, 10);
			if (hlen + clen >= sizeof(c->rbuf)) {
				note_err(c, "%s", "response body too large");
				return -1;
			}
			v = find_header(c->rbuf, eoh, "connection:");
			if (v != NULL) {
				while (*v == ' ')
					v++;
				*close_after = strncasecmp(v, "close", 5) == 0;
			}
		}
		if (have >= hlen + clen)
			break;
	}
	*body = c->rbuf + hlen;
	*blen = clen;
	c->rbuf[hlen + clen] = '\0';
	return status;
}

/* Room for more latencies (-R sends more requests than it prepared). */
static int
grow_lat(struct conn *c)
{
	uint64_t *l = realloc(c->lat_ns, 2 * c->latcap * sizeof(*l));

	if (l == NULL)
		return -1;
	c->lat_ns = l;
	c->latcap *= 2;
	return 0;
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	const char *body;
	size_t blen;
	bool close_after;

	c->fd = -1;
	if (prepare(c) == -1) {
		fprintf(stderr, "loadgen: connection %d: cannot prepare requests\n", c->id);
		atomic_store(&g.setup_failed, true);
	} else if (dial(c) == -1) {
		fprintf(stderr, "loadgen: connection %d: %s\n", c->id, c->first_err);
		atomic_store(&g.setup_failed, true);
	}
	pthread_barrier_wait(&g.ready);	/* all prepared and connected */
	pthread_barrier_wait(&g.ready);	/* main started the clock */
	if (atomic_load(&g.setup_failed))
		return NULL;

	for (size_t k = 0; c->nreq > 0 && (g.repeat || k < c->nreq); k++) {
		size_t i = k % c->nreq;
		int64_t t0 = mono_ns(), t1;
		int st;

		if (g.deadline_ns != 0 && t0 >= g.deadline_ns)
			break;
		if (c->nlat == c->latcap && grow_lat(c) == -1) {
			note_err(c, "%s", "out of memory");
			break;
		}
		if (c->fd == -1) {
			c->reconnects++;
			if (dial(c) == -1) {
				c->io_err++;
				usleep(10000);
				continue;
			}
		}
		if (send_all(c->fd, c->arena + c->off[i], c->len[i]) == -1) {
			note_err(c, "send: %s", strerror(errno));
			c->io_err++;
			close(c->fd);
			c->fd = -1;
			continue;
		}
		st = read_response(c, &body, &blen, &close_after);
		t1 = mono_ns();
		c->lat_ns[c->nlat++] = (uint64_t)(t1 - t0);
		if (st < 0) {
			c->io_err++;
			close(c->fd);
			c->fd = -1;
			continue;
		}
		if (st >= 100 && st < 600)
			c->status_count[st / 100]++;
		if (st != 200) {
			c->http_err++;
			if (c->first_err[0] == '\0')
				snprintf(c->first_err, sizeof(c->first_err), "HTTP %d: %.*s",
				    st, (int)(blen > 100 ? 100 : blen), body);
		} else if (memmem(body, blen, "\"duplicate\":false", 17) == NULL)
			c->dup++;
		else if (memmem(body, blen, "\"ignored\":true", 14) != NULL)
			c->ignored++;
		else
			c->ok++;
		if (close_after) {
			close(c->fd);
			c->fd = -1;
		}
	}
	if (c->fd != -1)
		close(c->fd);
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)n);
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1e6;
}

static double
tv_sec(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* The command line into g; reads the secret.  Exits 2 on misuse. */
static void
parse_args(int argc, char *argv[], char **secret_buf)
{
	const char *secret = NULL, *secret_file = NULL;
	int ch;

	g.host = "127.0.0.1";
	g.path = "/webhooks/vinr";
	g.conns = 32;
	g.total = -1;
	snprintf(g.run, sizeof(g.run), "%lx%x", (unsigned long)time(NULL) & 0xffffff,
	    (unsigned)getpid() & 0xffff);
	while ((ch = getopt(argc, argv, "p:k:K:c:n:d:H:P:r:qI:R")) != -1) {
		switch (ch) {
		case 'p':
			g.port = atoi(optarg);
			break;
		case 'k':
			secret = optarg;
			break;
		case 'K':
			secret_file = optarg;
			break;
		case 'c':
			g.conns = atoi(optarg);
			break;
		case 'n':
			g.total = atol(optarg);
			break;
		case 'd':
			g.duration = atof(optarg);
			break;
		case 'H':
			g.host = optarg;
			break;
		case 'P':
			g.path = optarg;
			break;
		case 'r':
			snprintf(g.run, sizeof(g.run), "%s", optarg);
			break;
		case 'q':
			g.quiet = true;
			break;
		case 'R':
			g.repeat = true;
			break;
		case 'I':
			if (strcmp(optarg, "random") == 0)
				g.random_ids = true;
			else if (strcmp(optarg, "seq") != 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc || g.port <= 0 || g.port > 65535 || g.conns < 1 ||
	    (secret == NULL) == (secret_file == NULL) || g.duration < 0 ||
	    (g.total < 0 && g.duration == 0) || g.total == 0 ||
	    (g.repeat && g.duration == 0))
		usage();
	if (secret_file != NULL)
		secret = *secret_buf = read_secret(secret_file);
	if (sig_key_from_secret(SIG_SCHEME_VINR, secret, &g.key) == -1) {
		fprintf(stderr, "loadgen: unusable secret\n");
		exit(2);
	}
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)g.port);
	if (inet_pton(AF_INET, g.host, &g.addr.sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s: not an IPv4 address\n", g.host);
		exit(2);
	}
	if (g.duration > 240)
		fprintf(stderr, "loadgen: warning: signatures older than the daemon's "
		    "tolerance (300 s by default) are refused\n");
}

/*
 * Starts the connection threads, lets them go at once, and waits for them.
 * Returns the seconds and the CPU seconds of the run; exits 2 on failure.
 */
static void
run_conns(struct conn *cs, long pool, double *secs, double *cpu)
{
	struct rusage ru0, ru1;
	struct timespec t1;

	pthread_barrier_init(&g.ready, NULL, (unsigned)g.conns + 1);
	if (!g.quiet)
		fprintf(stderr, "loadgen: preparing %ld signed requests on %d connections "
		    "(run id %s)\n", pool, g.conns, g.run);
	for (int i = 0; i < g.conns; i++) {
		pthread_attr_t a;

		cs[i].id = i;
		cs[i].nreq = (size_t)(pool / g.conns + (i < pool % g.conns));
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 256 * 1024);
		if (pthread_create(&cs[i].thread, &a, conn_main, &cs[i]) != 0) {
			fprintf(stderr, "loadgen: cannot start thread %d\n", i);
			exit(2);
		}
		pthread_attr_destroy(&a);
	}
	pthread_barrier_wait(&g.ready);
	getrusage(RUSAGE_SELF, &ru0);
	clock_gettime(CLOCK_MONOTONIC, &g.t0);
	if (g.duration > 0)
		g.deadline_ns = mono_ns() + (int64_t)(g.duration * 1e9);
	pthread_barrier_wait(&g.ready);
	for (int i = 0; i < g.conns; i++)
		pthread_join(cs[i].thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - g.t0.tv_sec) + (double)(t1.tv_nsec - g.t0.tv_nsec) / 1e9;
	getrusage(RUSAGE_SELF, &ru1);
	if (atomic_load(&g.setup_failed)) {
		fprintf(stderr, "loadgen: setup failed\n");
		exit(2);
	}
	*cpu = tv_sec(ru1.ru_utime) - tv_sec(ru0.ru_utime) +
	    tv_sec(ru1.ru_stime) - tv_sec(ru0.ru_stime);
}

/* Sums the connections' counts and prints them.  Returns the exit status. */
static int
report(struct conn *cs, double secs, double cpu)
{
	uint64_t *all, ok = 0, dup = 0, ign = 0, herr = 0, ioerr = 0, recon = 0;
	unsigned status_count[6] = { 0 };
	const char *first_err = NULL;
	size_t nall = 0, k;
	double sum = 0;

	for (int i = 0; i < g.conns; i++)
		nall += cs[i].nlat;
	if ((all = malloc((nall ? nall : 1) * sizeof(*all))) == NULL)
		return 2;
	k = 0;
	for (int i = 0; i < g.conns; i++) {
		struct conn *c = &cs[i];

		memcpy(all + k, c->lat_ns, c->nlat * sizeof(*all));
		k += c->nlat;
		ok += c->ok;
		dup += c->dup;
		ign += c->ignored;
		herr += c->http_err;
		ioerr += c->io_err;
		recon += c->reconnects;
		for (int s = 0; s < 6; s++)
			status_count[s] += c->status_count[s];
		if (first_err == NULL && c->first_err[0] != '\0')
			first_err = c->first_err;
	}
	qsort(all, nall, sizeof(*all), cmp_u64);
	for (k = 0; k < nall; k++)
		sum += (double)all[k];

	printf("loadgen: %d connection(s), %zu requests in %.2f s: %.0f requests/s\n",
	    g.conns, nall, secs, secs > 0 ? (double)nall / secs : 0.0);
	printf("  200 duplicate:false %" PRIu64 ", duplicate %" PRIu64 ", ignored %" PRIu64
	    ", other status %" PRIu64 " (4xx %u, 5xx %u), I/O errors %" PRIu64
	    ", reconnects %" PRIu64 "\n", ok, dup, ign, herr, status_count[4],
	    status_count[5], ioerr, recon);
	printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n",
	    pct(all, nall, 50), pct(all, nall, 90), pct(all, nall, 99),
	    nall ? (double)all[nall - 1] / 1e6 : 0.0, nall ? sum / (double)nall / 1e6 : 0.0);
	printf("  loadgen CPU: %.2f s (%.0f%% of one core)\n", cpu,
	    secs > 0 ? 100.0 * cpu / secs : 0.0);
	if (first_err != NULL)
		printf("  first error: %s\n", first_err);
	printf("RESULT conns=%d requests=%zu ok=%" PRIu64 " dup=%" PRIu64 " ignored=%" PRIu64
	    " http_err=%" PRIu64 " io_err=%" PRIu64 " secs=%.3f rps=%.1f p50_ms=%.3f"
	    " p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f cpu_s=%.2f run=%s"
	    " ids=%s\n",
	    g.conns, nall, ok, dup, ign, herr, ioerr, secs,
	    secs > 0 ? (double)nall / secs : 0.0, pct(all, nall, 50), pct(all, nall, 90),
	    pct(all, nall, 99), nall ? (double)all[nall - 1] / 1e6 : 0.0,
	    nall ? sum / (double)nall / 1e6 : 0.0, cpu, g.run, g.random_ids ? "random" : "seq");

	free(all);
	return ok == nall && nall > 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	char *secret_buf = NULL;
	struct conn *cs;
	double secs, cpu;
	long pool;
	int rc;

	parse_args(argc, argv, &secret_buf);
	pool = g.total > 0 ? g.total : DEFAULT_POOL;
	if (pool < g.conns)
		g.conns = (int)pool;
	if ((cs = calloc((size_t)g.conns, sizeof(*cs))) == NULL)
		return 2;
	run_conns(cs, pool, &secs, &cpu);
	rc = report(cs, secs, cpu);
	for (int i = 0; i < g.conns; i++) {
		free(cs[i].arena);
		free(cs[i].off);
		free(cs[i].len);
		free(cs[i].lat_ns);
	}
	free(cs);
	sig_key_release(&g.key);
	free(secret_buf);
	pthread_barrier_destroy(&g.ready);
	return rc;
}
