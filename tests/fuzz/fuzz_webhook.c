/*
 * fuzz_webhook.c - a fuzz target for what an attacker can send: the
 * signature headers and the body, through the pure cores (signature.c,
 * event.c, payment.c).
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

#include "event.h"
#include "payment.h"
#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = {
		"whsec_fuzz", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	};
	struct sig_key vk, sk;
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
	if (sig_key_from_secret(SIG_SCHEME_STANDARD, secrets[1], &sk) == 0) {
		(void)sig_verify_standard(hdr, hdr, hdr, body, blen, &sk, 1, 1614265330, 300);
		sig_key_release(&sk);
	}
	if (event_parse(body, blen, hdr, &ev) == EVENT_OK) {
		if (ev.ignore_reason == NULL) {
			struct payment cur = { .livemode = -1 };
			enum pay_status prev = PAY_NONE;
			char *json;

			/* Create, then the same again (stale), then merge. */
			for (int i = 0; i < 2; i++)
				if (payment_apply(&cur, &ev.pay, &prev) == PAY_TRANSITION &&
				    (json = payment_outcome_json(&cur, prev, 1, ev.id,
				    "webhook", "a", "b")) != NULL)
					free(json);
			(void)payment_fill_missing(&cur, &ev.pay);
			payment_release(&cur);
		}
		event_release(&ev);
	}
	free(hdr);
	return 0;
}

#ifndef FUZZING
int
main(int argc, char *argv[])
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf;
		long len;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)len + 1)) == NULL) {
			perror(argv[i]);
			return 1;
		}
		if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
			perror(argv[i]);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, (size_t)len);
		free(buf);
		n++;
	}
	printf("fuzz corpus: %d passed, 0 failed\n", n);
	return 0;
}
#endif
