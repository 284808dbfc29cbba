/*
 * sink_hook.h - the shell-hook sink (SPEC §3): runs [forward] hook once per
 * outcome, with no shell, the outcome line on stdin and only the VINR_*
 * variables and PATH in its environment.  Exit 0 = delivered.
 */
#ifndef VINR_SINK_HOOK_H
#define VINR_SINK_HOOK_H

#include <stdbool.h>
#include <stddef.h>

struct sink;
struct store;

/* What the hook sink needs of the configuration ([forward]). */
struct sink_hook_params {
	const char	*path;		/* the hook: an executable, run with no shell */
	int		 timeout_s;	/* per run: SIGTERM, then SIGKILL 5 s later */
	int		 max_attempts;	/* failed runs before a dead letter */
	bool		 all_events;	/* every transition, or outcomes only */
};

/*
 * Checks that the hook is executable and starts the sink (the params are
 * copied).  Returns NULL with a message in err on failure.  Stop and free it
 * with sink_stop() and sink_free().
 */
struct sink	*sink_hook_start(struct store *, const struct sink_hook_params *,
		    char *err, size_t errlen);

/*
 * Builds the hook's environment for one outcome line: a NULL-terminated
 * array of "NAME=value" strings.  The caller frees it with hook_env_free().
 * NULL if the line is not an outcome object.  Exposed for unit tests.
 */
char	**hook_env(const char *line, size_t len);
void	  hook_env_free(char **);

#endif
