/*
 * control_line.c - see control_line.h.
 */
#include <string.h>

#include "control_line.h"
#include "util.h"

/*
 * Walks the strings of the line, skipping the other escapes ("\\u0000" is
 * a backslash and text, not a NUL).
 */
bool
control_line_has_nul(const char *s, size_t len)
{
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			in_str = !in_str;
		else if (in_str && s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 5 < len && strncmp(s + i + 2, "0000", 4) == 0)
				return true;
			i++;
		}
	}
	return false;
}

enum control_line_rc
control_line_parse(const char *line, size_t len, cJSON **req, const char **why)
{
	const char *end = NULL;
	cJSON *o;

	*req = NULL;
	*why = NULL;
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
	    line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return CONTROL_LINE_BLANK;
	if (!util_utf8_valid(line, len) || control_line_has_nul(line, len)) {
		*why = "a request is UTF-8 JSON without NUL characters";
		return CONTROL_LINE_BAD;
	}
	o = cJSON_ParseWithLengthOpts(line, len, &end, false);
	if (o != NULL)
		while (end < line + len && (*end == ' ' || *end == '\t' || *end == '\r'))
			end++;
	if (o == NULL || end != line + len || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		*why = "a request is one JSON object per line";
		return CONTROL_LINE_BAD;
	}
	*req = o;
	return CONTROL_LINE_OK;
}
