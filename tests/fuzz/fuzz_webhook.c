/*
 * fuzz_webhook.c - a fuzz target for what an attacker can send: the
 * signature headers and the body, through the pure cores (signature.c,
 * event.c, payment.c, jsonnum.c).
 *
 * Input: the first line is used as every signature header, the rest as the
 * body.  Built with clang -fsanitize=fuzzer (`make fuzz`) it is a libFuzzer
 * target; built without FUZZING it replays the files named on its command
 * line (`make test` replays tests/fuzz/corpus under the sanitizers of the
 * build).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "jsonnum.h"
#include "payment.h"
#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * jsonnum's promises on every number node of a tree parsed from text:
 * never "wrong source" (the text is the tree's own), an exact value that
 * rounds to cJSON's double, out of range only beyond 2^63.
 */
static void
check_numbers(const char *text, size_t len, const cJSON *root, const cJSON *node)
{
	enum jsonnum_rc rc;
	int64_t v;
	double d;

	if (cJSON_IsNumber(node)) {
		d = node->valuedouble;
		rc = jsonnum_value(text, len, root, node, &v);
		if (rc == JSONNUM_NO_SOURCE || rc == JSONNUM_ABSENT ||
		    rc == JSONNUM_NOT_NUMBER || (rc == JSONNUM_OK && (double)v != d) ||
		    (rc == JSONNUM_RANGE && d < 0x1p63 && d > -0x1p63))
			abort();
	}
	for (const cJSON *c = node->child; c != NULL; c = c->next)
		check_numbers(text, len, root, c);
}

/* The literal parser on any bytes, and its round trip through "%lld". */
static void
fuzz_jsonnum(const char *s, size_t len)
{
	const char *end = NULL;
	char num[24];
	cJSON *root;
	int64_t v, w;

	if (jsonnum_parse(s, len, &v) == JSONNUM_OK) {
		snprintf(num, sizeof(num), "%lld", (long long)v);
		if (jsonnum_parse(num, strlen(num), &w) != JSONNUM_OK || w != v)
			abort();
	}
	/* As event.c parses: one value, then only whitespace. */
	if ((root = cJSON_ParseWithLengthOpts(s, len, &end, 0)) == NULL)
		return;
	while (end < s + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end == s + len)
		check_numbers(s, len, root, root);
	cJSON_Delete(root);
}

/* The outcome line gives back the payment's integers exactly. */
static void
check_outcome(const char *json, const struct payment *p)
{
	cJSON *o = cJSON_Parse(json);
	int64_t v;

	if (o == NULL)
		abort();
	if (p->has_amount && (jsonnum_get(json, strlen(json), o, o, "amount", &v) !=
	    JSONNUM_OK || v != p->amount))
		abort();
	if (p->has_amount_captured && (jsonnum_get(json, strlen(json), o, o,
	    "amountCaptured", &v) != JSONNUM_OK || v != p->amount_captured))
		abort();
	cJSON_Delete(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = {
		"whsec_fuzz", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	};
	static const char pubkey[] = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
	struct sig_key vk, sk[2];
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl != NULL ? (size_t)(nl - data) : size;
	const char *body = nl != NULL ? (const char *)nl + 1 : "";
	size_t blen = nl != NULL ? size - hlen - 1 : 0;
	char *hdr = malloc(hlen + 1);
	struct vinr_event ev;

	if (hdr == NULL)
		return 0;
	memcpy(hdr, data, hlen);
	hdr[hlen] = '\0';
	if (sig_key_from_secret(SIG_SCHEME_VINR, secrets[0], &vk) == 0) {
		(void)sig_verify_vinr(hdr, body, blen, &vk, 1, 1718096412, 300);
		sig_key_release(&vk);
	}
	/* A secret and a trusted public key: v1 and v1a (SPEC §1.3). */
	if (sig_key_from_secret(SIG_SCHEME_STANDARD, secrets[1], &sk[0]) == 0) {
		if (sig_key_from_public(hdr, &sk[1]) == 0)
			sig_key_release(&sk[1]);
		if (sig_key_from_private(hdr, &sk[1]) == 0)
			sig_key_release(&sk[1]);
		if (sig_key_from_public(pubkey, &sk[1]) == 0) {
			(void)sig_verify_standard(hdr, hdr, hdr, body, blen, sk, 2,
			    1614265330, 300);
			(void)sig_verify_standard("msg_p5jXN8AQM9LWM0D4loKWxJek",
			    "1614265330", hdr, body, blen, sk, 2, 1614265330, 300);
			sig_key_release(&sk[1]);
		}
		sig_key_release(&sk[0]);
	}
	fuzz_jsonnum(body, blen);
	fuzz_jsonnum(hdr, hlen);
	if (event_parse(body, blen, hdr, &ev) == EVENT_OK) {
		if (ev.ignore_reason == NULL) {
			struct payment cur = { .livemode = -1 };
			enum pay_status prev = PAY_NONE;
			char *json;

			/* Create, then the same again (stale), then merge. */
			for (int i = 0; i < 2; i++)
				if (payment_apply(&cur, &ev.pay, &prev) == PAY_TRANSITION &&
				    (json = payment_outcome_json(&cur, prev, 1, ev.id,
				    "webhook", "a", "b")) != NULL) {
					check_outcome(json, &cur);
					free(json);
				}
			(void)payment_fill_missing(&cur, &ev.pay);
			payment_release(&cur);
		}
		event_release(&ev);
	}
	free(hdr);
	return 0;
}

#ifndef FUZZING
#include "fuzz_replay.h"
#endif
