# vinr-webhookd - see README.md.  `make run` and `make test` work from a fresh
# clone on Debian 12: both first install what is missing (scripts/deps.sh).

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
PYTHON	?= /usr/bin/python3

PKGS	 = libmicrohttpd libcjson sqlite3 libpq inih libsystemd openssl libcurl
CC	?= cc
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wcast-qual -Werror
HARDEN	 = -fstack-protector-strong -D_FORTIFY_SOURCE=2
CFLAGS	?= -O2 -g
SAN	?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(SAN) $(WARN) $(HARDEN) \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -Isrc
LIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
LDFLAGS	?=

# Everything in src/ but the programs' main files goes into one archive that
# the daemon, the tools and the unit tests link against.
LIB_SRCS = $(filter-out src/main.c src/vinrctl.c,$(wildcard src/*.c))
LIB_OBJS = $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
SIM_SRCS = $(wildcard src/sim/*.c)
SIM_OBJS = $(SIM_SRCS:src/sim/%.c=$(BUILD)/obj/sim/%.o)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS = $(wildcard tests/bench/*.c)
BENCH_BINS = $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/%)

# The fuzz targets (tests/fuzz/fuzz_NAME.c, corpus tests/fuzz/corpus_NAME;
# the webhook's is tests/fuzz/corpus), built as corpus replayers.
FUZZ_NAMES = webhook control ini
FUZZ_REPLAY = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz_%)
PROGS	 = $(BUILD)/vinr-webhookd
ifneq ($(wildcard src/vinrctl.c),)
PROGS	+= $(BUILD)/vinrctl
endif
ifneq ($(SIM_SRCS),)
PROGS	+= $(BUILD)/vinr-sim
endif

.PHONY: all deps deps-pg run run-pg test unit e2e asan bench fuzz clean install progs deb
all: $(PROGS) $(UNIT_BINS) $(BENCH_BINS) $(FUZZ_REPLAY)

# The programs alone: what `make run`, `make install` and the package need
# (no unit tests, so no cmocka).
progs: $(PROGS)

deps:
	@scripts/deps.sh

# The PostgreSQL server only where something runs one: the tests (make test,
# make asan), make run-pg and make bench.  Building needs only libpq.
deps-pg:
	@scripts/deps.sh postgresql-15

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/sim/%.o: src/sim/%.c $(wildcard src/*.h src/sim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc/sim -c -o $@ $<

# The migrations travel inside the binary (see src/store_int.h).
$(BUILD)/gen/migrations.c: $(wildcard sql/*.sql) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(sort $(wildcard sql/*.sql)) > $@

$(BUILD)/obj/migrations.o: $(BUILD)/gen/migrations.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# PostgreSQL's (sql/pg/) as pg_migrations[] (see src/store_pg.c).
$(BUILD)/gen/pg_migrations.c: $(wildcard sql/pg/*.sql) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh -n pg_migrations $(sort $(wildcard sql/pg/*.sql)) > $@

$(BUILD)/obj/pg_migrations.o: $(BUILD)/gen/pg_migrations.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libvinr.a: $(LIB_OBJS) $(BUILD)/obj/migrations.o $(BUILD)/obj/pg_migrations.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/vinr-webhookd: $(BUILD)/obj/main.o $(BUILD)/libvinr.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/vinrctl: $(BUILD)/obj/vinrctl.o $(BUILD)/libvinr.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/vinr-sim: $(SIM_OBJS) $(BUILD)/libvinr.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/libvinr.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvinr.a $(LIBS) -lcmocka

$(BUILD)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_replay.h $(BUILD)/libvinr.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvinr.a $(LIBS)

$(BUILD)/%: tests/bench/%.c $(BUILD)/libvinr.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvinr.a $(LIBS)

# The dependency install is its own step so that pkg-config exists before the
# compile rules above expand their flags.
# Only the programs it runs: no unit tests, so no cmocka needed.
run: deps
	@$(MAKE) --no-print-directory $(PROGS)
	@scripts/run-dev.sh

# Two daemons on one throwaway PostgreSQL cluster under ./var/pg (SPEC §8).
run-pg: deps deps-pg
	@$(MAKE) --no-print-directory $(PROGS)
	@scripts/run-pg.sh

test: deps deps-pg
	@$(MAKE) --no-print-directory all
	@VINR_REQUIRE_PG=1 VINR_E2E_REQUIRE_PG=1 $(MAKE) --no-print-directory lint unit e2e

# Under a throwaway PostgreSQL cluster (scripts/with-pg.sh), so that the
# PostgreSQL engine's, reader's and election's tests run too.
unit: $(UNIT_BINS) $(FUZZ_REPLAY)
	@scripts/with-pg.sh sh -c 'set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done'
	@set -e; for n in $(FUZZ_NAMES); do d=tests/fuzz/corpus_$$n; \
	    [ $$n = webhook ] && d=tests/fuzz/corpus; $(BUILD)/tests/fuzz_$$n $$d/*; done

# libFuzzer (clang) on the pure cores for FUZZ_SECONDS; new inputs that find
# new paths are added to tests/fuzz/corpus, which `make test` replays.
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang >/dev/null || apt-get install -y -qq clang libclang-rt-14-dev
	@mkdir -p build/fuzz
	clang -std=c11 -D_GNU_SOURCE -DFUZZING -g -O1 -Isrc $$(pkg-config --cflags libcjson) \
	    -fsanitize=fuzzer,address,undefined -o build/fuzz/fuzz_webhook \
	    tests/fuzz/fuzz_webhook.c src/signature.c src/event.c src/payment.c src/jsonnum.c \
	    $$(pkg-config --libs libcjson openssl)
	clang -std=c11 -D_GNU_SOURCE -DFUZZING -g -O1 -Isrc $$(pkg-config --cflags libcjson) \
	    -fsanitize=fuzzer,address,undefined -o build/fuzz/fuzz_control \
	    tests/fuzz/fuzz_control.c src/control_line.c src/util.c src/jsonnum.c \
	    $$(pkg-config --libs libcjson)
	clang -std=c11 -D_GNU_SOURCE -DFUZZING -g -O1 -Isrc \
	    -fsanitize=fuzzer,address,undefined -o build/fuzz/fuzz_ini \
	    tests/fuzz/fuzz_ini.c src/config.c $$(pkg-config --libs inih)
	build/fuzz/fuzz_webhook -max_total_time=$(FUZZ_SECONDS) -max_len=8192 tests/fuzz/corpus
	build/fuzz/fuzz_control -max_total_time=$(FUZZ_SECONDS) -max_len=8192 tests/fuzz/corpus_control
	build/fuzz/fuzz_ini -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -dict=tests/fuzz/ini.dict \
	    tests/fuzz/corpus_ini

e2e: $(PROGS)
	VINR_BIN_DIR=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/e2e $(PYTEST_ARGS)

# The whole suite against an AddressSanitizer + UBSan build in build/asan.
asan: deps deps-pg
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 $(MAKE) --no-print-directory BUILD=build/asan \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" unit e2e

bench: deps deps-pg
	@$(MAKE) --no-print-directory all
	@tests/bench/run.sh $(abspath $(BUILD))

# Lays out every file under $(DESTDIR)$(PREFIX) (programs, SQL, man pages,
# systemd units, bash completion, monitoring rules and dashboard, docs) and
# $(DESTDIR)/etc (example config, logrotate).  An existing
# /etc/vinr-webhookd/vinr-webhookd.conf is never overwritten.
SYSCONFDIR ?= /etc
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR	?= $(PREFIX)/share/doc/vinr-webhookd
CONFMODE ?= 0640
install: progs
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/vinr-webhookd/sql \
	    $(DESTDIR)$(PREFIX)/share/vinr-webhookd/examples \
	    $(DESTDIR)$(PREFIX)/share/vinr-webhookd/monitoring $(DESTDIR)$(COMPLETIONDIR) \
	    $(DESTDIR)$(DOCDIR)/docs \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/vinr-webhookd $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/vinr-webhookd/sql/
	install -d $(DESTDIR)$(PREFIX)/share/vinr-webhookd/sql/pg
	install -m 0644 sql/pg/*.sql $(DESTDIR)$(PREFIX)/share/vinr-webhookd/sql/pg/
	install -m 0644 config/nginx.conf config/nginx-cluster.conf $(DESTDIR)$(PREFIX)/share/vinr-webhookd/examples/
	if [ -d config/examples ]; then install -m 0755 config/examples/* \
	    $(DESTDIR)$(PREFIX)/share/vinr-webhookd/examples/; fi
	install -m 0644 man/vinrctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	if [ -x $(BUILD)/vinr-sim ]; then install -m 0644 man/vinr-sim.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/; fi
	install -m 0644 man/vinr-webhookd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 man/vinr-webhookd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/vinr-webhookd.service \
	    > $(DESTDIR)$(UNITDIR)/vinr-webhookd.service
	install -m 0644 systemd/vinr-webhookd.socket $(DESTDIR)$(UNITDIR)/
	chmod 0644 $(DESTDIR)$(UNITDIR)/vinr-webhookd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/vinr-webhookd/vinr-webhookd.conf ] || \
	    install -m $(CONFMODE) config/vinr-webhookd.conf $(DESTDIR)$(SYSCONFDIR)/vinr-webhookd/
	install -m 0644 config/logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/vinr-webhookd
	install -m 0644 config/monitoring/* $(DESTDIR)$(PREFIX)/share/vinr-webhookd/monitoring/
	install -m 0644 contrib/bash-completion/vinrctl $(DESTDIR)$(COMPLETIONDIR)/vinrctl
	install -m 0644 README.md LICENSE $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -D -m 0644 systemd/vinr-webhookd.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/vinr-webhookd.conf
	@[ -n "$(DESTDIR)" ] || echo "make install: run systemd-sysusers to create the" \
	    "vinr-webhookd user and group (POS apps join the group)"

# The Debian packages (vinr-webhookd, vinr-sim) in $(BUILD)/deb/, built from
# a copy of the tree so that dpkg-buildpackage writes nothing beside it.
# Only this target installs the packaging tools.
DEB_TOOLS = dpkg-dev debhelper fakeroot lintian
deb: deps
	@scripts/deps.sh $(DEB_TOOLS)
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb/src
	tar --exclude=./build --exclude=./var --exclude=./.git -cf - . | \
	    tar -C $(BUILD)/deb/src -xf -
	cd $(BUILD)/deb/src && dpkg-buildpackage -us -uc -b
	lintian --fail-on error $(BUILD)/deb/*.changes
	@ls -1 $(BUILD)/deb/*.deb

clean:
	rm -rf build var

# DESIGN.md's layout rules that a machine can check: file and function
# lengths, and no two compiled files that need each other (nm).
.PHONY: lint
lint: all
	@scripts/check-layout.sh $(BUILD)
