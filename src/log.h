/*
 * log.h - one line per message on stderr, after OpenBSD's log.c.
 *
 * When JOURNAL_STREAM is set (systemd), every line starts with an sd-daemon
 * "<N>" priority prefix; otherwise with a UTC timestamp.  Callers never pass
 * secrets: nothing here could tell one from another.
 */
#ifndef VINR_LOG_H
#define VINR_LOG_H

#include <stdarg.h>
#include <stdint.h>

void	log_init(int debug);
void	log_set_debug(int debug);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));	/* adds strerror(errno) */
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_errx(const char *, ...) __attribute__((format(printf, 1, 2)));	/* as fatalx, no exit */
void	log_crit(const char *, ...) __attribute__((format(printf, 1, 2)));	/* loud, no strerror */
/*
 * A warning that a peer can cause (a refused request, a failed commit):
 * rate-limited per key (a short constant string such as the error code).
 * The first line of each LOG_RL_WINDOW_MS window is written; the others are
 * counted and summed up in one line ("KEY: N more like the next line") when
 * the key is next used after its window.  Any thread.
 */
#define LOG_RL_WINDOW_MS	10000
void	log_warnx_rl(const char *key, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Tests: another window length (ms). */
void	log_rl_set_window(int64_t ms);
/* Startup only: log and exit(code). */
void	fatal(int code, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));
void	fatalx(int code, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Startup only: logs "configuration WHAT: LINE" for each line of text (it
 * is cut up in place), then exit(code). */
void	fatalx_lines(int code, const char *what, char *text) __attribute__((noreturn));

#endif
