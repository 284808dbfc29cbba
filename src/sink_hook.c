/*
 * sink_hook.c - see sink_hook.h.
 *
 * The hook runs on the sink's thread in three steps: spawn, pump, judge.
 *
 * Spawn is vfork() then execve.  fork() would copy the daemon's page tables
 * for every run (the hook sink ran at 1 % of the machine's spawn rate), and
 * posix_spawn() cannot set PR_SET_PDEATHSIG, which SPEC §3 needs: the hook
 * dies with the daemon.  An exec helper could set it, but would cost a second
 * execve per run.  So the child of vfork() shares the daemon's memory until
 * its execve and does only async-signal-safe system calls there: no malloc,
 * no stdio, no lock; the daemon's signals are blocked in every thread, and
 * the child resets every handler to its default before it unblocks any.
 *
 * It gets its own process group, so that a timeout can stop its children
 * too.  The parent feeds stdin and drains stdout+stderr through one pipe,
 * keeping the first HOOK_OUTPUT_KEEP bytes for the log and throwing the rest
 * away: a hook that floods its output cannot block or bloat the daemon.  It
 * waits for the hook's exit with a pidfd in the same poll as the pipes: no
 * sleep between the hook's exit and the next run.  The hook dies with the
 * daemon (PR_SET_PDEATHSIG), so a restarted daemon never runs a seq while an
 * old run of it is still going.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jsonnum.h"
#include "log.h"
#include "payment.h"
#include "sink.h"
#include "sink_hook.h"
#include "util.h"

#define HOOK_OUTPUT_KEEP	1024
#define HOOK_KILL_GRACE_MS	5000	/* SIGTERM, then SIGKILL this much later */
#define HOOK_POLL_MS		100	/* the longest poll: the stop flag is seen */
#define HOOK_NOPIDFD_POLL_MS	2	/* no pidfd: how often to try waitpid */
/*
 * SPEC §3: a variable's value may be cut.  The kernel refuses an execve
 * whose single string passes 128 KiB (E2BIG); a 200 KiB reference must not
 * wedge the sink.  Stdin always carries the whole line.
 */
#define HOOK_ENV_VALUE_MAX	4096

struct hook {
	char	*path;
	int64_t	 timeout_ms;
};

/*
 * SPEC §3's variables, in its order.  A payment field's variable comes from
 * the field table (pay_fields[].env, read under its outcome key); these are
 * the outcome line's own, each placed before the payment field it precedes.
 */
static const struct {
	enum pay_field_id	 before;
	const char		*name;
	const char		*key;
} env_own[] = {
	{ PF_ID, "VINR_SEQ", "seq" },
	{ PF_ID, "VINR_TYPE", "type" },
	{ PF_AMOUNT, "VINR_PREVIOUS_STATUS", "previousStatus" },
	{ PAY_NFIELDS, "VINR_SOURCE", "source" },
	{ PAY_NFIELDS, "VINR_EVENT_ID", "eventId" },
};
#define NENV_OWN (sizeof(env_own) / sizeof(env_own[0]))

/*
 * Appends "name=value" for the outcome key to env[*n]: a string as it is,
 * a number exactly as the line writes it (jsonnum.h), anything else
 * (null, absent, a fraction) empty.  0 or -1 (allocation).
 */
static int
env_add(char **env, size_t *n, const char *name, const cJSON *o, const char *key,
    const char *line, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	int64_t num;
	int r;

	if (cJSON_IsString(v)) {
		size_t vl = strlen(v->valuestring);

		/* Cut on a character boundary: the value stays UTF-8. */
		if (vl > HOOK_ENV_VALUE_MAX) {
			vl = HOOK_ENV_VALUE_MAX;
			while (vl > 0 && ((unsigned char)v->valuestring[vl] & 0xc0) == 0x80)
				vl--;
		}
		r = asprintf(&env[*n], "%s=%.*s", name, (int)vl, v->valuestring);
	}
	else if (jsonnum_value(line, len, o, v, &num) == JSONNUM_OK)
		r = asprintf(&env[*n], "%s=%lld", name, (long long)num);
	else
		r = asprintf(&env[*n], "%s=", name);
	if (r == -1) {
		env[*n] = NULL;
		return -1;
	}
	(*n)++;
	return 0;
}

char **
hook_env(const char *line, size_t len)
{
	cJSON *o;
	char **env;
	size_t n = 0, j = 0;

	if ((o = cJSON_ParseWithLength(line, len)) == NULL)
		return NULL;
	/* At most every own variable, every payment field, PATH, NULL. */
	if (!cJSON_IsObject(o) ||
	    (env = calloc(NENV_OWN + PAY_NFIELDS + 2, sizeof(*env))) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	for (int i = 0; i <= PAY_NFIELDS; i++) {
		for (; j < NENV_OWN && (int)env_own[j].before == i; j++)
			if (env_add(env, &n, env_own[j].name, o, env_own[j].key, line,
			    len) == -1)
				goto fail;
		if (i < PAY_NFIELDS && pay_fields[i].env != NULL &&
		    env_add(env, &n, pay_fields[i].env, o, pay_fields[i].key, line,
		    len) == -1)
			goto fail;
	}
	if ((env[n] = strdup("PATH=/usr/local/bin:/usr/bin:/bin")) == NULL)
		goto fail;
	cJSON_Delete(o);
	return env;
fail:
	cJSON_Delete(o);
	hook_env_free(env);
	return NULL;
}

void
hook_env_free(char **env)
{
	if (env == NULL)
		return;
	for (char **e = env; *e != NULL; e++)
		free(*e);
	free(env);
}

/*
 * In the child, before execve: every signal back to its default.  execve
 * keeps ignored signals ignored (we ignore SIGPIPE; a sanitizer runtime may
 * ignore others), and glibc's sigaction() refuses its reserved signals, so
 * this talks to the kernel directly.  Async-signal-safe.
 */
static void
reset_signals(void)
{
	struct {
		void		(*handler)(int);
		unsigned long	 flags;
		void		(*restorer)(void);
		unsigned long	 mask;
	} dfl = { SIG_DFL, 0, NULL, 0 };

	for (long sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
}

/* Keeps a printable, one-line copy of the start of the hook's output. */
static void
keep_output(char *keep, size_t *kept, const char *buf, size_t n)
{
	for (size_t i = 0; i < n && *kept < HOOK_OUTPUT_KEEP; i++)
		keep[(*kept)++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : ' ';
	keep[*kept] = '\0';
}

/* One run of the hook: its process, our ends of its pipes, what it said. */
struct run {
	pid_t	 pid;
	int	 pidfd;		/* readable once it exits; -1: none (old kernel) */
	int	 in;		/* its stdin; -1 once all is written (or refused) */
	int	 out;		/* its stdout and stderr; -1 at EOF */
	size_t	 written;
	char	 keep[HOOK_OUTPUT_KEEP + 1];
	size_t	 kept;
	int64_t	 deadline;	/* monotonic ms: SIGTERM */
	int64_t	 kill_at;	/* monotonic ms: SIGKILL, once termed */
	int	 status;	/* waitpid's, once exited */
	int	 exec_errno;	/* execve failed with this; 0: it ran */
	bool	 exited, termed, killed, stopped;
};

/*
 * In the child of vfork(): its memory is the daemon's until execve, so only
 * async-signal-safe calls, nothing allocated, nothing locked.  stdin, stdout
 * and stderr on the pipes, then execve.  If execve fails, its errno goes to
 * *exec_errno, which the parent reads once vfork() returns (it is suspended
 * until then).
 */
static void __attribute__((noreturn))
hook_child(const struct hook *h, char **env, const int in[2], const int out[2],
    pid_t parent, volatile int *exec_errno)
{
	char *argv[2] = { h->path, NULL };
	sigset_t none;

	/*
	 * A hook never outlives the daemon, even one killed by SIGKILL: the
	 * kernel kills it when the thread that started it dies.  If the daemon
	 * died before this was set, nobody would: leave at once.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(127);
	/*
	 * Handlers first: a signal let in while a handler of the daemon's was
	 * still set would run it on the daemon's memory.  Then undo the mask
	 * the daemon sets in every thread.
	 */
	reset_signals();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
	if (dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1 || dup2(out[1], 2) == -1)
		_exit(127);
	/* Nothing of the daemon's (database, sockets) leaks into it. */
	close_range(3, ~0U, 0);
	execve(h->path, argv, env);
	*exec_errno = errno;
	_exit(127);
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Step 1: starts the hook with env, its stdin and output on non-blocking
 * pipes, and a pidfd to wait for it.  Returns 0 (with run->exec_errno set
 * when execve failed: the child is gone or going), or -1 with a message in
 * err (nothing left open).
 */
static int
hook_spawn(const struct hook *h, char **env, struct run *run, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	volatile int exec_errno = 0;
	pid_t parent = getpid();

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((run->pid = vfork()) == -1) {
		snprintf(err, errlen, "vfork: %s", strerror(errno));
		goto fail;
	}
	if (run->pid == 0)
		hook_child(h, env, in, out, parent, &exec_errno);
	/* Here the child has called execve, or exited. */
	run->exec_errno = exec_errno;
	close(in[0]);
	close(out[1]);
	run->in = in[1];
	run->out = out[0];
	fcntl(run->in, F_SETFL, O_NONBLOCK);
	fcntl(run->out, F_SETFL, O_NONBLOCK);
	/* Without one (a kernel before 5.3) the pump polls every few ms. */
	run->pidfd = (int)syscall(SYS_pidfd_open, run->pid, 0);
	run->deadline = util_mono_ms() + h->timeout_ms;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
	}
	return -1;
}

/* SIGTERM at the deadline or the daemon's stop, SIGKILL after a grace. */
static void
hook_signal(struct sink *s, struct run *run)
{
	int64_t now = util_mono_ms();

	if (!run->termed && (now >= run->deadline || sink_stopping(s))) {
		run->stopped = sink_stopping(s) && now < run->deadline;
		kill(-run->pid, SIGTERM);
		run->termed = true;
		run->kill_at = now + HOOK_KILL_GRACE_MS;
	}
	if (run->termed && !run->killed && now >= run->kill_at) {
		kill(-run->pid, SIGKILL);
		run->killed = true;
	}
}

/* Writes what the hook's stdin takes, reads what it says: no blocking. */
static void
hook_io(struct run *run, const struct pollfd *pfd, int nfd, const char *line, size_t len)
{
	char buf[4096];
	ssize_t n;

	for (int i = 0; i < nfd; i++) {
		if (pfd[i].fd == run->in &&
		    (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write(run->in, line + run->written, len - run->written);
			if (n > 0)
				run->written += (size_t)n;
			/* A hook need not read its stdin: EPIPE is fine. */
			if (run->written == len || (n == -1 && errno != EAGAIN))
				close_fd(&run->in);
		} else if (pfd[i].fd == run->out &&
		    (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = read(run->out, buf, sizeof(buf));
			if (n > 0)
				keep_output(run->keep, &run->kept, buf, (size_t)n);
			else if (n == 0 || errno != EAGAIN)
				close_fd(&run->out);
		}
	}
}

/*
 * How long the pump may sleep in poll: until the next signal is due, but
 * at most HOOK_POLL_MS (the daemon's stop is a flag, seen between polls),
 * and only a few ms when no pidfd says that the hook exited.
 */
static int
hook_poll_ms(const struct run *run)
{
	int64_t t = HOOK_POLL_MS, now = util_mono_ms();

	if (run->pidfd == -1)
		t = HOOK_NOPIDFD_POLL_MS;
	if (!run->termed && run->deadline - now < t)
		t = run->deadline - now;
	else if (run->termed && !run->killed && run->kill_at - now < t)
		t = run->kill_at - now;
	return t < 0 ? 0 : (int)t;
}

/*
 * Step 2: feeds the line to the hook and drains its output until it exits,
 * signalling it at its deadline, ticking the sink all along.  Returns 0, or
 * -1 with a message in err when it cannot be watched any more.
 */
static int
hook_pump(struct sink *s, struct run *run, const char *line, size_t len, char *err,
    size_t errlen)
{
	while (!run->exited) {
		struct pollfd pfd[3];
		int nfd = 0;
		pid_t w;

		hook_signal(s, run);
		if (run->in != -1)
			pfd[nfd++] = (struct pollfd){ .fd = run->in, .events = POLLOUT };
		if (run->out != -1)
			pfd[nfd++] = (struct pollfd){ .fd = run->out, .events = POLLIN };
		if (run->pidfd != -1)
			pfd[nfd++] = (struct pollfd){ .fd = run->pidfd, .events = POLLIN };
		if (poll(pfd, (nfds_t)nfd, hook_poll_ms(run)) == -1 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		sink_tick(s);
		hook_io(run, pfd, nfd, line, len);
		if ((w = waitpid(run->pid, &run->status, WNOHANG)) == run->pid)
			run->exited = true;
		else if (w == -1 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
	}
	/* Its children may still hold the pipe; make sure they go too. */
	kill(-run->pid, SIGKILL);
	return 0;
}

/* Step 3: what the run means for the outcome (SPEC §3: exit 0 = delivered). */
static enum sink_rc
hook_judge(const struct hook *h, const struct run *run, char *err, size_t errlen)
{
	if (run->stopped) {
		snprintf(err, errlen, "stopped with the daemon");
		return SINK_DOWN;
	}
	if (run->termed) {
		snprintf(err, errlen, "timed out after %lld s",
		    (long long)(h->timeout_ms / 1000));
		return SINK_FAIL;
	}
	if (run->exec_errno != 0) {
		snprintf(err, errlen, "cannot run %s: %s", h->path,
		    strerror(run->exec_errno));
		return SINK_FAIL;
	}
	if (WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0)
		return SINK_OK;
	if (WIFEXITED(run->status))
		snprintf(err, errlen, "exit status %d", WEXITSTATUS(run->status));
	else
		snprintf(err, errlen, "killed by signal %d", WTERMSIG(run->status));
	return SINK_FAIL;
}

static enum sink_rc
hook_deliver(struct sink *s, int64_t seq, const char *line, size_t len,
    char *err, size_t errlen)
{
	struct hook *h = sink_impl(s);
	struct run run = { .pidfd = -1, .in = -1, .out = -1 };
	enum sink_rc rc = SINK_DOWN;
	char **env;

	if ((env = hook_env(line, len)) == NULL) {
		snprintf(err, errlen, "cannot build the environment");
		return SINK_FAIL;
	}
	if (hook_spawn(h, env, &run, err, errlen) == 0) {
		if (hook_pump(s, &run, line, len, err, errlen) == 0)
			rc = hook_judge(h, &run, err, errlen);
		if (run.kept > 0)
			log_info("hook: seq %lld: output: %s%s", (long long)seq, run.keep,
			    run.kept >= HOOK_OUTPUT_KEEP ? " [cut]" : "");
		close_fd(&run.in);
		close_fd(&run.out);
		close_fd(&run.pidfd);
	}
	hook_env_free(env);
	return rc;
}

static void
hook_close(struct sink *s)
{
	struct hook *h = sink_impl(s);

	free(h->path);
	free(h);
}

static const struct sink_ops hook_ops = {
	.name = "hook",
	.deliver = hook_deliver,
	.close = hook_close,
};

struct sink *
sink_hook_start(struct store *store, const struct sink_hook_params *hp, char *err,
    size_t errlen)
{
	struct sink_params p = {
		.all_events = hp->all_events,
		.max_attempts = hp->max_attempts,
		.fail_cap_ms = 300000,
		.down_cap_ms = 30000,
	};
	struct hook *h;
	struct sink *s;

	if (access(hp->path, X_OK) == -1) {
		snprintf(err, errlen, "hook %s: %s", hp->path, strerror(errno));
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL || (h->path = strdup(hp->path)) == NULL) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->timeout_ms = (int64_t)hp->timeout_s * 1000;
	if ((s = sink_start(store, &hook_ops, h, &p, err, errlen)) == NULL) {
		free(h->path);
		free(h);
	}
	return s;
}
