/*
 * sink_hook.h - the shell-hook sink (SPEC §3): runs [forward] hook once per
 * outcome, with no shell, the outcome line on stdin and only the VINR_*
 * variables and PATH in its environment.  Exit 0 = delivered.
 */
#ifndef VINR_SINK_HOOK_H
#define VINR_SINK_HOOK_H

#include <stddef.h>

#include "config.h"

struct sink;
struct store;

struct sink	*hook_start(struct store *, const struct config *, char *err, size_t errlen);

/*
 * Builds the hook's environment for one outcome line: a NULL-terminated
 * array of "NAME=value" strings.  The caller frees it with hook_env_free().
 * NULL if the line is not an outcome object.  Exposed for unit tests.
 */
char	**hook_env(const char *line, size_t len);
void	  hook_env_free(char **);

#endif
