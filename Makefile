# Ossuary: the top-level entry points.
#
#   make              build ossuary.ko against KDIR (default: the running kernel)
#   make user         build libossuary and its tools into build/user
#   make check        run every test (host, fuzzers, KUnit and kselftests in the VM)
#   make demo         the main job end to end in the VM (release kernel;
#                     KERNEL=debug, DEMO_MIB=N to change)
#   make bench        kTLS / Ossuary / TCP side by side in the release VM
#                     (BENCH_ARGS=..., see tools/bench/bench.sh --help)
#   make fuzz         run each fuzz target for FUZZ_SECONDS (default 60)
#   make stress       the concurrency suites, big, in the KCSAN VM (KERNEL=faults:
#                     the debug kernel with fault injection; see
#                     tools/testing/stress/stress.sh for the figures)
#   make bench-user   the library's own benchmark (native, not a test)
#   make install      install the library, header, pkg-config file, tools
#                     and man pages (PREFIX, DESTDIR; after `make user`)
#   make uninstall    remove them again (the same PREFIX, DESTDIR)
#   make dkms-install register ossuary.ko with DKMS and build and install it
#                     for KVER (default: the running kernel); as root
#   make dkms-uninstall  remove it from DKMS and /usr/src again
#   make clean

KDIR ?= /lib/modules/$(shell uname -r)/build
FUZZ_SECONDS ?= 60
BUILD := $(CURDIR)/build
BENCH_ARGS ?=

.PHONY: all modules user check demo bench fuzz bench-user install uninstall clean vm-kernel
.PHONY: stress
.PHONY: dkms-install dkms-uninstall dkms-files
all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

user:
	$(MAKE) -C user O=$(BUILD)/user lib tools

check:
	tools/testing/check

demo:
	tools/demo/demo.sh

stress:
	KERNEL=$(or $(KERNEL),kcsan) tools/testing/stress/stress.sh

fuzz:
	$(MAKE) -C user O=$(BUILD)/user fuzzers
	user/fuzz/run.sh $(BUILD)/user $(FUZZ_SECONDS)

bench:
	tools/bench/bench.sh $(BENCH_ARGS)

bench-user:
	$(MAKE) -C user O=$(BUILD)/user benches
	$(BUILD)/user/bench/bench_user

install:
	$(MAKE) -C user O=$(BUILD)/user install

uninstall:
	$(MAKE) -C user O=$(BUILD)/user uninstall

# DKMS builds from /usr/src/ossuary-VERSION: copy there only the files the
# module is built from (no .git, no build output, no user space), replacing
# an older copy of the same version, then build and install for KVER.
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' $(CURDIR)/dkms.conf)
DKMS_SRC := /usr/src/ossuary-$(DKMS_VERSION)
DKMS_FILES := dkms.conf Kbuild kernel/Kbuild include/uapi/linux/ossuary.h \
	$(filter-out %.mod.c,$(wildcard kernel/*.c)) $(wildcard kernel/*.h)
KVER ?= $(shell uname -r)

dkms-install:
	@[ "$$(id -u)" = 0 ] || { echo "dkms-install: run as root (sudo make dkms-install)" >&2; exit 1; }
	@command -v dkms >/dev/null || { echo "dkms-install: dkms is not installed (apt-get install dkms)" >&2; exit 1; }
	@[ -d /lib/modules/$(KVER)/build ] || { echo "dkms-install: no headers for $(KVER) (apt-get install linux-headers-$(KVER))" >&2; exit 1; }
	rm -rf $(DKMS_SRC)
	mkdir -p $(DKMS_SRC)
	tar -cf - $(DKMS_FILES) | tar -xf - -C $(DKMS_SRC)
	dkms status -m ossuary -v $(DKMS_VERSION) | grep -q . || dkms add ossuary/$(DKMS_VERSION)
	dkms build ossuary/$(DKMS_VERSION) -k $(KVER) --force
	dkms install ossuary/$(DKMS_VERSION) -k $(KVER) --force

dkms-uninstall:
	-dkms remove ossuary/$(DKMS_VERSION) --all
	rm -rf $(DKMS_SRC)

# The list itself, for tools/testing/check's builds against other headers.
dkms-files:
	@echo $(DKMS_FILES)

# Build (or reuse) the cached test kernel: KERNEL=debug or release.
vm-kernel:
	tools/testing/vm/build-kernel $(or $(KERNEL),debug)

clean:
	-[ -d $(KDIR) ] && $(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C user O=$(BUILD)/user clean
	rm -rf $(BUILD)
