/*
 * fuzz_control.c - a fuzz target for the control socket's request lines
 * (control_line.c), as a POS app or anything that can connect may send them.
 *
 * Input: bytes as they would arrive on a connection; they are cut into lines
 * at '\n' as the transport does (a line over 64 KiB closes the connection,
 * so longer ones are skipped).  Each line must be refused or give an object
 * whose every string is well-formed UTF-8 without NUL, and that prints back
 * as valid UTF-8 JSON that parses again.  Built with clang
 * -fsanitize=fuzzer (`make fuzz`) it is a libFuzzer target; built without
 * FUZZING it replays the files named on its command line (`make unit`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "control_line.h"
#include "jsonnum.h"
#include "util.h"

#define MAX_LINE	65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string in the tree (keys included) is UTF-8, and each integer
 * is read exactly where the daemon reads one. */
static void
check_tree(const char *line, size_t len, const cJSON *root, const cJSON *node)
{
	int64_t v;

	if (node->string != NULL && !util_utf8_valid(node->string, strlen(node->string)))
		abort();
	if (cJSON_IsString(node) &&
	    !util_utf8_valid(node->valuestring, strlen(node->valuestring)))
		abort();
	if (cJSON_IsNumber(node) &&
	    jsonnum_value(line, len, root, node, &v) == JSONNUM_NO_SOURCE)
		abort();
	for (const cJSON *c = node->child; c != NULL; c = c->next)
		check_tree(line, len, root, c);
}

static void
one_line(const char *line, size_t len)
{
	const char *why;
	cJSON *req, *again;
	char *out;

	switch (control_line_parse(line, len, &req, &why)) {
	case CONTROL_LINE_BLANK:
		return;
	case CONTROL_LINE_BAD:
		if (why == NULL || req != NULL)
			abort();
		return;
	case CONTROL_LINE_OK:
		break;
	}
	if (!cJSON_IsObject(req) || control_line_has_nul(line, len))
		abort();
	check_tree(line, len, req, req);
	if ((out = cJSON_PrintUnformatted(req)) != NULL) {
		if (!util_utf8_valid(out, strlen(out)) || (again = cJSON_Parse(out)) == NULL)
			abort();
		cJSON_Delete(again);
		free(out);
	}
	cJSON_Delete(req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if ((size_t)(nl - p) <= MAX_LINE)
			one_line(p, (size_t)(nl - p));
		p = nl + 1;
	}
	return 0;
}

#ifndef FUZZING
#include "fuzz_replay.h"
#endif
