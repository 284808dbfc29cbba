/*
 * fuzz_replay.h - the main() of a fuzz target built without libFuzzer: it
 * replays the files named on its command line through
 * LLVMFuzzerTestOneInput (`make unit` replays each corpus).  Included once,
 * at the end of a target.
 */
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
	printf("%s: %d corpus file(s) passed\n", argv[0], n);
	return 0;
}
