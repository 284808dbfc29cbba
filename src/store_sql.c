/*
 * store_sql.c - SQL text both engines share (see store_int.h).
 */
#include <stdio.h>
#include <string.h>

#include "payment.h"
#include "store_int.h"

int
store_pay_sql(char mark, char *upsert, size_t ulen, char *track, size_t tlen)
{
	char cols[512] = "", vals[256] = "", set_up[1024] = "", set_track[1024] = "";
	const int n = PAY_NFIELDS;
	size_t len = 0;

#define CAT(buf, ...) (len = strlen(buf), \
	snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__) >= (int)(sizeof(buf) - len))
	for (int i = 0; i < n; i++) {
		const char *col = pay_fields[i].column, *sep = i > 0 ? ", " : "";

		if (CAT(cols, "%s%s", sep, col) || CAT(vals, "%s%c%d", sep, mark, i + 1))
			return -1;
		if (i == PF_ID)
			continue;	/* the conflict target */
		if (CAT(set_up, "%s = %c%d, ", col, mark, i + 1))
			return -1;
		/* payments.col in DO UPDATE is the stored row (both engines). */
		if (i != PF_STATUS && CAT(set_track, "%s = coalesce(payments.%s, %c%d), ",
		    col, col, mark, i + 1))
			return -1;
	}
#undef CAT
	if (snprintf(upsert, ulen, "INSERT INTO payments (%s, updated_at, last_event_id) "
	    "VALUES (%s, %c%d, %c%d) ON CONFLICT (id) DO UPDATE SET %supdated_at = %c%d, "
	    "last_event_id = %c%d, rc_attempts = 0, rc_next_at = NULL, rc_state = 'idle'",
	    cols, vals, mark, n + 1, mark, n + 2, set_up, mark, n + 1, mark, n + 2) >=
	    (int)ulen ||
	    snprintf(track, tlen, "INSERT INTO payments (%s, updated_at, tracked) VALUES "
	    "(%s, %c%d, 1) ON CONFLICT (id) DO UPDATE SET %stracked = 1", cols, vals, mark,
	    n + 1, set_track) >= (int)tlen)
		return -1;
	return 0;
}
