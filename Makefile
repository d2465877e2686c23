# dmaloadd: one Makefile for the daemon, the client library and CLI, and the tests.
#
#   make                 build everything into $(BUILD) (default build/)
#   make deps            install the Debian packages needed to build and test
#   make run             build and run dmaloadd in the foreground on built-in defaults
#   make check           the whole suite: plain build, then ASan+UBSan build
#   make check-one       the suite once, on $(BUILD) (SANITIZE=... picks the build)
#   make check-python    the Python package's tests (tests/python/) on $(BUILD)
#   make bench           the copy-method benchmark; writes docs/BENCHMARKS.md
#   make stress          issue 12's attacks on one daemon: a table of latency, RSS, fds, CPU
#   make check-kernel    the dma-buf tests in qemu on a kernel built for them
#   make check-systemd   the units under a real systemd: a Debian tree booted in
#                        systemd-nspawn, with the package installed (tests/systemd/)
#   make deb             the Debian packages (dpkg-buildpackage) into $(BUILD)/deb/
#   make check-layers    no include cycle among the daemon's modules
#   make fuzz            build the libFuzzer targets (clang) into build-fuzz/
#   make fuzz-long       the stateful daemon fuzzer for an hour (FUZZ_LONG_SECONDS)
#   make install         install under $(DESTDIR)$(PREFIX)
#   make install-hugepages  opt in to surplus huge pages (a sysctl.d drop-in)
#   make install-thp        opt in to 64 KiB shmem folios (a tmpfiles.d snippet)
#   make SANITIZE=address,undefined   a sanitizer build (into build-san/)

PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
# The Python package (python/dmaload) goes where Debian's /usr/bin/python3 looks:
# /usr/lib/python3/dist-packages for PREFIX=/usr (the Debian package), else
# PREFIX/lib/python3.X/dist-packages (/usr/local/lib/python3.11/dist-packages).
PYTHON3 ?= /usr/bin/python3
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(shell $(PYTHON3) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)/dist-packages)
# Where systemd looks for packaged units on Debian bookworm (pkg-config systemd
# --variable=systemdsystemunitdir); the same for /usr and /usr/local installs.
UNITDIR ?= /lib/systemd/system
CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wformat=2 -Wundef -Wno-unused-parameter -Wno-sign-compare
ifeq ($(CI),true)
WARNINGS += -Werror
endif

ifdef SANITIZE
BUILD ?= build-san
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD ?= build
endif

PKGS := liburing libsystemd inih
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lpthread

ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fPIC $(WARNINGS) $(CFLAGS) -iquote proto -iquote client -iquote daemon \
	-DSYSCONFDIR='"$(SYSCONFDIR)"' $(DEP_CFLAGS)

PROTO_SRC := proto/dmaload-proto.c
DAEMON_SRC := $(wildcard daemon/*.c)
LIB_SRC := client/dmaload.c
CTL_SRC := client/dmaload-ctl.c

PROTO_OBJ := $(PROTO_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ := $(CTL_SRC:%.c=$(BUILD)/%.o)

# Tests: every tests/unit/*.c and tests/integration/*.c is one program; they share
# tests/lib/*.c.
TLIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/lib/*.c))
# The daemon's clock and /proc/meminfo reader, which tests and bench share (unit
# tests have it with the rest of the daemon).
TUTIL_OBJ := $(BUILD)/daemon/util.o
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/*.c))
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/*.c))
# Helper programs of the benchmark and of the qemu harness (built on the host; the
# harness copies its programs and their libraries into the guest).
BENCH_BIN := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(wildcard tests/bench/*.c))
# What the bench programs share (one row: files, checks, the output line).
BENCH_LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/bench/lib/*.c))
# make stress: the attacks of issue 12 against one daemon, reported as a table.
STRESS_BIN := $(patsubst tests/stress/%.c,$(BUILD)/tests/stress/%,$(wildcard tests/stress/*.c))
KERNEL_BIN := $(patsubst tests/kernel/%.c,$(BUILD)/tests/kernel/%,$(wildcard tests/kernel/*.c))
# Test helper programs that are not tests (tests/run-one.sh runs only unit/ and
# integration/): the FUSE test filesystem, built when libfuse3-dev is there (the tests
# that mount it SKIP without it).
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS := $(shell pkg-config --libs fuse3 2>/dev/null)
FUSE_BIN := $(if $(FUSE_LIBS),$(patsubst tests/fuse/%.c,$(BUILD)/tests/fuse/%,$(wildcard tests/fuse/*.c)))
# The daemon's objects minus main, for unit tests of its parts (config, ...).
DAEMON_LIB_OBJ := $(filter-out $(BUILD)/daemon/main.o,$(DAEMON_OBJ))

# The units, with the binaries' paths under PREFIX filled in (systemd/*.in).
UNITS := $(addprefix $(BUILD)/systemd/,dmaloadd.socket dmaloadd.service dmaload-preload@.service)

BINS := $(BUILD)/dmaloadd $(BUILD)/dmaload-ctl $(BUILD)/libdmaload.a \
	$(BUILD)/libdmaload.so.0 $(BUILD)/dmaload.pc $(UNITS)

.PHONY: all deps run check check-one check-python check-kernel check-systemd check-compat check-layers deb \
	bench stress \
	fuzz fuzz-long install install-hugepages install-thp clean tests FORCE
all: $(BINS)
tests: $(UNIT_BIN) $(INTEG_BIN) $(KERNEL_BIN) $(FUSE_BIN) $(STRESS_BIN)

$(BUILD)/%.o: %.c $(wildcard proto/*.h client/*.h daemon/*.h tests/lib/*.h tests/bench/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/dmaloadd: $(DAEMON_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/libdmaload.a: $(LIB_OBJ) $(PROTO_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdmaload.so.0: $(LIB_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libdmaload.so.0 -o $@ $^

# Files with paths in them depend on this stamp, rewritten only when a path changes: a
# `make install PREFIX=/usr` after a plain `make` regenerates them.
PATHS := $(PREFIX):$(BINDIR):$(SBINDIR):$(LIBDIR):$(INCLUDEDIR)
$(BUILD)/paths.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PATHS)' | cmp -s - $@ || echo '$(PATHS)' > $@
FORCE:

$(BUILD)/dmaload.pc: client/dmaload.pc.in Makefile $(BUILD)/paths.stamp
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' $< > $@

# Only the named placeholders: the units' own @aio, @setuid, ... stay as written.
$(BUILD)/systemd/%: systemd/%.in Makefile $(BUILD)/paths.stamp
	@mkdir -p $(dir $@)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' $< > $@

$(BUILD)/systemd/%.socket: systemd/%.socket
	@mkdir -p $(dir $@)
	cp $< $@

$(BUILD)/dmaload-ctl: $(CTL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TLIB_OBJ) $(DAEMON_LIB_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(TLIB_OBJ) $(TUTIL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/tests/fuse/%.o: ALL_CFLAGS += $(FUSE_CFLAGS)
$(BUILD)/tests/fuse/%: $(BUILD)/tests/fuse/%.o $(TLIB_OBJ) $(TUTIL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS)

$(BUILD)/tests/bench/%: $(BUILD)/tests/bench/%.o $(BENCH_LIB_OBJ) $(TLIB_OBJ) $(TUTIL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(BUILD)/tests/stress/%: $(BUILD)/tests/stress/%.o $(TLIB_OBJ) $(TUTIL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/tests/kernel/%: $(BUILD)/tests/kernel/%.o $(TLIB_OBJ) $(TUTIL_OBJ) $(BUILD)/libdmaload.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

deps:
	bash tests/deps.sh

run: all
	$(BUILD)/dmaloadd

# The whole suite, as CI runs it: plain, then under ASan+UBSan; one total at the end.
check:
	bash tests/run.sh

# One pass of the suite over $(BUILD).
check-one: all tests
	bash tests/run-one.sh $(BUILD)

# The dmaload Python package (python/) over $(BUILD)'s libdmaload.so.0 and daemon,
# with /usr/bin/python3 (part of make check).
check-python: all
	bash tests/python/run.sh $(BUILD)

# The layering of daemon/ (docs/ARCHITECTURE.md): fails on an include cycle.
check-layers:
	bash tests/layers/check-includes.sh

# The previous release (built from git) against this tree: old client, new daemon and
# the reverse.
check-compat: all
	bash tests/compat/run.sh $(BUILD)

# The dma-buf tests need /dev/udmabuf and /dev/dma_heap: they run in qemu on two kernels
# the harness builds (and caches under ~/.cache/dmaloadd): stock 6.12, and 6.12 with
# tests/kernel/patches/ (copy_file_range into memfds and dma-bufs).
check-kernel: all tests
	bash tests/kernel/run.sh $(BUILD)

# A bookworm tree (debootstrap, cached under ~/.cache/dmaloadd) booted with systemd as
# PID 1 in systemd-nspawn, the package installed in it with dpkg; needs root.
check-systemd: all tests
	bash tests/systemd/run.sh $(BUILD)

# dpkg-buildpackage -b on a copy of this tree (tracked and untracked, not ignored files);
# the .debs, .buildinfo and .changes land in $(BUILD)/deb/.
deb:
	bash tests/systemd/build-deb.sh $(BUILD)/deb

# Methods side by side in one run; needs root (drops the page cache, reserves huge
# pages). Prints the table and writes docs/BENCHMARKS.md.
bench: all $(BENCH_BIN)
	bash tests/bench/run.sh $(BUILD)

# The attacks of issue 12 (tests/stress/) against one daemon on conf/dmaloadd.conf,
# a few seconds each; prints case, the root victim's load latency, the daemon's RSS,
# fds and CPU. Reported, never asserted. Run as root (the attackers become nobody).
stress: all $(STRESS_BIN)
	bash tests/stress/run.sh $(BUILD)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
		build-fuzz/fuzz-proto build-fuzz/fuzz-daemon
build-fuzz/fuzz-proto: tests/fuzz/fuzz-proto.c $(PROTO_SRC)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -Iproto \
		-o $@ $^
# The stateful target: the daemon's objects (minus main) built by clang with the
# sanitizers (the fuzz target's CFLAGS above), driven in-process (fuzz-daemon.c).
$(BUILD)/fuzz-daemon: $(BUILD)/tests/fuzz/fuzz-daemon.o $(DAEMON_LIB_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(DEP_LIBS)

# fuzz-daemon for FUZZ_LONG_SECONDS (default 3600) on a copy of its corpus
# (tests/fuzz/corpus-daemon/); a crash input lands in build-fuzz/crashes/.
FUZZ_LONG_SECONDS ?= 3600
fuzz-long: fuzz
	bash tests/fuzz/run-daemon.sh $(FUZZ_LONG_SECONDS)

# PREFIX=/usr for a distribution's package (debian/rules); /usr/local by default.
install: all
	install -Dm755 $(BUILD)/dmaloadd $(DESTDIR)$(SBINDIR)/dmaloadd
	install -Dm755 $(BUILD)/dmaload-ctl $(DESTDIR)$(BINDIR)/dmaload-ctl
	install -Dm644 $(BUILD)/libdmaload.a $(DESTDIR)$(LIBDIR)/libdmaload.a
	install -Dm755 $(BUILD)/libdmaload.so.0 $(DESTDIR)$(LIBDIR)/libdmaload.so.0
	ln -sf libdmaload.so.0 $(DESTDIR)$(LIBDIR)/libdmaload.so
# dmaload.h includes "dmaload-proto.h": the two go side by side in includedir.
	install -Dm644 client/dmaload.h $(DESTDIR)$(INCLUDEDIR)/dmaload.h
	install -Dm644 proto/dmaload-proto.h $(DESTDIR)$(INCLUDEDIR)/dmaload-proto.h
	install -Dm644 $(BUILD)/dmaload.pc $(DESTDIR)$(LIBDIR)/pkgconfig/dmaload.pc
	install -Dm644 conf/dmaloadd.conf $(DESTDIR)$(SYSCONFDIR)/dmaloadd/dmaloadd.conf
	for u in $(UNITS); do install -Dm644 $$u $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	# The huge-page allowance is opt-in: a copy to take, not an active drop-in.
	install -Dm644 conf/60-dmaloadd-hugepages.conf \
		$(DESTDIR)$(PREFIX)/share/dmaloadd/60-dmaloadd-hugepages.conf
	install -Dm644 conf/60-dmaloadd-thp.conf \
		$(DESTDIR)$(PREFIX)/share/dmaloadd/60-dmaloadd-thp.conf
	for m in docs/man/*.[0-9]; do \
		s=$${m##*.}; install -Dm644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; \
	done
	# The Python package: plain files, no build step (it finds libdmaload.so.0
	# through the dynamic loader, hence ldconfig for a live install).
	for f in python/dmaload/*.py; do \
		install -Dm644 $$f $(DESTDIR)$(PYTHONDIR)/dmaload/$${f##*/}; \
	done
	[ -n "$(DESTDIR)" ] || ldconfig

# Opt-in: surplus huge pages for dmaloadd's buffers (conf/60-dmaloadd-hugepages.conf
# says what it costs). Applied at once unless DESTDIR is set.
install-hugepages:
	install -Dm644 conf/60-dmaloadd-hugepages.conf \
		$(DESTDIR)$(SYSCONFDIR)/sysctl.d/60-dmaloadd-hugepages.conf
	[ -n "$(DESTDIR)" ] || sysctl -p $(SYSCONFDIR)/sysctl.d/60-dmaloadd-hugepages.conf

# Opt-in: 64 KiB shmem folios for mappings that ask (conf/60-dmaloadd-thp.conf says
# what it costs). Applied at once unless DESTDIR is set: by systemd-tmpfiles, or
# where there is none by writing the knob.
THP_64K := /sys/kernel/mm/transparent_hugepage/hugepages-64kB/shmem_enabled
install-thp:
	install -Dm644 conf/60-dmaloadd-thp.conf \
		$(DESTDIR)$(SYSCONFDIR)/tmpfiles.d/60-dmaloadd-thp.conf
	[ -n "$(DESTDIR)" ] || ! [ -w $(THP_64K) ] || \
		systemd-tmpfiles --create $(SYSCONFDIR)/tmpfiles.d/60-dmaloadd-thp.conf || \
		echo advise > $(THP_64K)

clean:
	rm -rf build build-san build-fuzz
