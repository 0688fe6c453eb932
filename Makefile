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
#   make bench-user   the library's own benchmark (native, not a test)
#   make install      install the library, header and tools (PREFIX, DESTDIR)
#   make clean

KDIR ?= /lib/modules/$(shell uname -r)/build
FUZZ_SECONDS ?= 60
BUILD := $(CURDIR)/build
BENCH_ARGS ?=

.PHONY: all modules user check demo bench fuzz bench-user install clean vm-kernel
all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

user:
	$(MAKE) -C user O=$(BUILD)/user lib tools

check:
	tools/testing/check

demo:
	tools/demo/demo.sh

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

# Build (or reuse) the cached test kernel: KERNEL=debug or release.
vm-kernel:
	tools/testing/vm/build-kernel $(or $(KERNEL),debug)

clean:
	-[ -d $(KDIR) ] && $(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C user O=$(BUILD)/user clean
	rm -rf $(BUILD)
