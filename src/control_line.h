/*
 * control_line.h - one control-socket request line (SPEC §4) to a JSON
 * object: the pure part of the protocol, apart from the transport and the
 * commands so that it can be fuzzed alone (tests/fuzz/fuzz_control.c).
 */
#ifndef VINR_CONTROL_LINE_H
#define VINR_CONTROL_LINE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

enum control_line_rc {
	CONTROL_LINE_OK,	/* *req is the request object */
	CONTROL_LINE_BLANK,	/* nothing but blanks: asks nothing */
	CONTROL_LINE_BAD	/* answered bad_request with *why */
};

/*
 * Parses line[0..len) (without its '\n'; trailing CR, spaces and tabs are
 * ignored): exactly one JSON object, well-formed UTF-8, no "\u0000" in a
 * string (cJSON would end the string there: "a\u0000b" would read as "a").
 * On CONTROL_LINE_OK, *req is a new object the caller deletes; on
 * CONTROL_LINE_BAD, *why is a static message.  Any thread.
 */
enum control_line_rc control_line_parse(const char *line, size_t len, cJSON **req,
		    const char **why);

/* Whether s[0..len) holds a "\u0000" escape inside a JSON string. */
bool		 control_line_has_nul(const char *s, size_t len);

#endif
