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

void	log_init(int debug);
void	log_set_debug(int debug);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));	/* adds strerror(errno) */
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_crit(const char *, ...) __attribute__((format(printf, 1, 2)));	/* loud, no strerror */
/* Startup only: log and exit(code). */
void	fatal(int code, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));
void	fatalx(int code, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
