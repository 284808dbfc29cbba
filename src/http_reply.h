/*
 * http_reply.h - the 200 body of SPEC §1.4, printed without cJSON.
 */
#ifndef HTTP_REPLY_H
#define HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* The bytes http_reply_received() may write for an id of idlen bytes. */
#define HTTP_REPLY_SIZE(idlen)	(64 + 6 * (idlen))

/*
 * Prints {"received":true,"eventId":ID,"duplicate":DUP} (and
 * ,"ignored":true when ignored) into out, which holds at least
 * HTTP_REPLY_SIZE(strlen(id)) bytes: byte for byte what
 * cJSON_PrintUnformatted() prints for the same object (its string escapes;
 * UTF-8 passes as it is).  NUL-terminated; returns its length.
 */
size_t	http_reply_received(char *out, const char *id, bool dup, bool ignored);

#endif
