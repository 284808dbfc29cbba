/*
 * http_reply.c - see http_reply.h.
 *
 * Every webhook that is stored is answered with this body: building a cJSON
 * object of four nodes, printing it and copying the print into the
 * response cost more than the rest of the answer.
 */
#include <string.h>

#include "http_reply.h"

/*
 * Copies s into out as a JSON string's contents, with cJSON's escapes:
 * '"' and '\\' and the control characters below 32 (\b \f \n \r \t by
 * name, the others as \u00xx).  Returns the bytes written (at most 6 per
 * byte of s).
 */
static size_t
json_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	unsigned char ch;

	for (; (ch = (unsigned char)*s) != '\0'; s++) {
		if (ch >= 32 && ch != '"' && ch != '\\') {
			*o++ = (char)ch;
			continue;
		}
		*o++ = '\\';
		switch (ch) {
		case '"': case '\\': *o++ = (char)ch; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[ch >> 4];
			o[4] = hex[ch & 15];
			o += 5;
			break;
		}
	}
	return (size_t)(o - out);
}

size_t
http_reply_received(char *out, const char *id, bool dup, bool ignored)
{
	static const char head[] = "{\"received\":true,\"eventId\":\"";
	char *o = out;

	memcpy(o, head, sizeof(head) - 1);
	o += sizeof(head) - 1;
	o += json_escape(o, id);
	o = stpcpy(o, dup ? "\",\"duplicate\":true" : "\",\"duplicate\":false");
	o = stpcpy(o, ignored ? ",\"ignored\":true}" : "}");
	return (size_t)(o - out);
}
