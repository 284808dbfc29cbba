/*
 * sink_hook.c - see sink_hook.h.
 *
 * The hook runs on the sink's thread: fork, then in the child only
 * async-signal-safe calls before execve (the daemon has other threads).  It
 * gets its own process group, so that a timeout can stop its children too.
 * The parent feeds stdin and drains stdout+stderr through one pipe with poll,
 * keeping the first HOOK_OUTPUT_KEEP bytes for the log and throwing the rest
 * away: a hook that floods its output cannot block or bloat the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

	if (cJSON_IsString(v))
		r = asprintf(&env[*n], "%s=%s", name, v->valuestring);
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

static enum sink_rc
hook_deliver(struct sink *s, int64_t seq, const char *line, size_t len,
    char *err, size_t errlen)
{
	struct hook *h = sink_impl(s);
	char **env, *argv[2] = { h->path, NULL };
	char keep[HOOK_OUTPUT_KEEP + 1] = "", buf[4096];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0;
	size_t kept = 0, written = 0;
	int64_t deadline, kill_at = 0;
	bool exited = false, termed = false, killed = false, stopped = false;
	pid_t pid;
	enum sink_rc rc;

	if ((env = hook_env(line, len)) == NULL) {
		snprintf(err, errlen, "cannot build the environment");
		return SINK_FAIL;
	}
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		rc = SINK_DOWN;
		goto done;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		rc = SINK_DOWN;
		goto done;
	}
	if (pid == 0) {
		sigset_t none;

		/* The daemon blocks its signals in every thread; undo that. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		reset_signals();
		setpgid(0, 0);
		if (dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1 || dup2(out[1], 2) == -1)
			_exit(127);
		/* Nothing of the daemon's (database, sockets) leaks into it. */
		close_range(3, ~0U, 0);
		execve(h->path, argv, env);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	deadline = util_mono_ms() + h->timeout_ms;

	while (!exited) {
		struct pollfd pfd[2];
		int nfd = 0, wait_ms;
		int64_t now = util_mono_ms();
		pid_t w;

		if (!termed && (now >= deadline || sink_stopping(s))) {
			stopped = sink_stopping(s) && now < deadline;
			kill(-pid, SIGTERM);
			termed = true;
			kill_at = now + HOOK_KILL_GRACE_MS;
		}
		if (termed && !killed && now >= kill_at) {
			kill(-pid, SIGKILL);
			killed = true;
		}
		if (in[1] != -1) {
			pfd[nfd].fd = in[1];
			pfd[nfd++].events = POLLOUT;
		}
		if (out[0] != -1) {
			pfd[nfd].fd = out[0];
			pfd[nfd++].events = POLLIN;
		}
		wait_ms = 100;
		if (nfd > 0 && poll(pfd, (nfds_t)nfd, wait_ms) == -1 && errno != EINTR)
			break;
		if (nfd == 0)
			usleep(wait_ms * 1000);
		sink_tick(s);
		for (int i = 0; i < nfd; i++) {
			if (pfd[i].fd == in[1] && (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
				ssize_t n = write(in[1], line + written, len - written);

				if (n > 0)
					written += (size_t)n;
				/* A hook need not read its stdin: EPIPE is fine. */
				if (written == len || (n == -1 && errno != EAGAIN)) {
					close(in[1]);
					in[1] = -1;
				}
			} else if (pfd[i].fd == out[0] && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				ssize_t n = read(out[0], buf, sizeof(buf));

				if (n > 0)
					keep_output(keep, &kept, buf, (size_t)n);
				else if (n == 0 || errno != EAGAIN) {
					close(out[0]);
					out[0] = -1;
				}
			}
		}
		if ((w = waitpid(pid, &status, WNOHANG)) == pid)
			exited = true;
		else if (w == -1 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			break;
		}
	}
	/* Its children may still hold the pipe; make sure they go too. */
	if (exited)
		kill(-pid, SIGKILL);

	if (kept > 0)
		log_info("hook: seq %lld: output: %s%s", (long long)seq, keep,
		    kept >= HOOK_OUTPUT_KEEP ? " [cut]" : "");
	if (!exited)
		rc = SINK_DOWN;
	else if (stopped) {
		snprintf(err, errlen, "stopped with the daemon");
		rc = SINK_DOWN;
	} else if (termed) {
		snprintf(err, errlen, "timed out after %lld s",
		    (long long)(h->timeout_ms / 1000));
		rc = SINK_FAIL;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = SINK_OK;
	else if (WIFEXITED(status)) {
		snprintf(err, errlen, "exit status %d%s", WEXITSTATUS(status),
		    WEXITSTATUS(status) == 127 ? " (not executable?)" : "");
		rc = SINK_FAIL;
	} else {
		snprintf(err, errlen, "killed by signal %d", WTERMSIG(status));
		rc = SINK_FAIL;
	}
done:
	for (int i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (out[i] != -1)
			close(out[i]);
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
hook_start(struct store *store, const struct config *cfg, char *err, size_t errlen)
{
	struct sink_params p = {
		.all_events = cfg->events == FORWARD_ALL,
		.max_attempts = cfg->max_attempts,
		.fail_cap_ms = 300000,
		.down_cap_ms = 30000,
	};
	struct hook *h;
	struct sink *s;

	if (access(cfg->hook, X_OK) == -1) {
		snprintf(err, errlen, "hook %s: %s", cfg->hook, strerror(errno));
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL || (h->path = strdup(cfg->hook)) == NULL) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->timeout_ms = (int64_t)cfg->hook_timeout * 1000;
	if ((s = sink_start(store, &hook_ops, h, &p, err, errlen)) == NULL) {
		free(h->path);
		free(h);
	}
	return s;
}
