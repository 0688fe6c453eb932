#!/usr/bin/env bash
# bench.sh [--mib N] [--sf-mib N] [--reps N] [--pairs N] [--nets "lo veth"]
#          [--timeout S] [--cpu MODEL] [--no-oss] [--no-profile] [--aead-only]
#          [--out FILE] [--tunnel]
#
# `make bench`: builds libossuary, tools/bench/ossuary-bench, ossuary.ko
# (a copy of kernel/, built in build/bench/kmod against the release test
# kernel, so kernel/ossuary.ko built for the debug kernel is left alone)
# and the raw AEAD bench module; boots the release kernel under QEMU
# (tools/testing/vm/run --release --cpu max: the SIMD crypto paths) and
# runs tools/bench/guest-bench.sh there; then runs the library's native
# handshake benchmark (bench_user). Writes the Markdown report to FILE
# (default build/bench/results.md) and to stdout. --aead-only builds and
# runs only the raw AEAD module (crypto API vs lib/crypto, 16 KiB and
# 1 KiB records): a few minutes less, and no need for ossuary.ko to build.
# --tunnel appends tools/bench/tunnel-bench.sh's table (ossuary-tunnel
# against spiped and stunnel4; one more boot of the release kernel).
#
# Not a test: a slow number never fails it; a case that errors does.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

mib=8
sf_mib=
reps=5
pairs=10000
nets="lo veth"
timeout_s=3600
cpu=max
oss=1
profile=1
aead_only=0
tunnel=0
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--mib) mib=$2; shift ;;
	--sf-mib) sf_mib=$2; shift ;;
	--reps) reps=$2; shift ;;
	--pairs) pairs=$2; shift ;;
	--nets) nets=$2; shift ;;
	--timeout) timeout_s=$2; shift ;;
	--cpu) cpu=$2; shift ;;
	--no-oss) oss=0 ;;
	--no-profile) profile=0 ;;
	--aead-only) aead_only=1 ;;
	--tunnel) tunnel=1 ;;
	--out) out=$2; shift ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
sf_mib=${sf_mib:-$mib}
build=$top/build/bench
out=${out:-$build/results.md}
mkdir -p "$build"
log=$build/build.log
: >"$log"

step() { echo "bench.sh: $*" >&2; }

if [ "$aead_only" = 0 ]; then
	step "building libossuary and ossuary-bench in $build"
	make -C user O="$build/user" lib benches >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
	make -C tools/bench O="$build" LIBO="$build/user" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
fi

step "release kernel (waits if another build holds the lock)"
kdir=$(tools/testing/vm/build-kernel release)

if [ "$oss" = 1 ] && [ "$aead_only" = 0 ]; then
	step "building ossuary.ko and ossuary_aead_bench.ko against $kdir"
	make -C tools/bench O="$build" KDIR="$kdir" kmods >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "bench.sh: module build failed (--no-oss runs without ossuary.ko)" >&2; exit 1; }
else
	step "building ossuary_aead_bench.ko against $kdir"
	mkdir -p "$build/aead"
	cp -p tools/bench/aead/Kbuild tools/bench/aead/ossuary_aead_bench.c "$build/aead/"
	make -C "$kdir" M="$build/aead" modules >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
fi

native=
if [ "$aead_only" = 0 ]; then
	step "native handshake benchmark (bench_user)"
	native=$("$build/user/bench/bench_user" 1)
fi

cmd="tools/bench/bench.sh"
[ "$mib" != 8 ] && cmd+=" --mib $mib"
[ "$sf_mib" != "$mib" ] && cmd+=" --sf-mib $sf_mib"
[ "$reps" != 5 ] && cmd+=" --reps $reps"
[ "$pairs" != 10000 ] && cmd+=" --pairs $pairs"
[ "$nets" != "lo veth" ] && cmd+=" --nets '$nets'"
[ "$cpu" != max ] && cmd+=" --cpu $cpu"
[ "$oss" = 0 ] && cmd+=" --no-oss"
[ "$profile" = 0 ] && cmd+=" --no-profile"
[ "$aead_only" = 1 ] && cmd+=" --aead-only"

step "booting the release kernel (-cpu $cpu); this takes minutes under TCG"
guest_out=$build/guest.out
t0=$(date +%s)
set +e
tools/testing/vm/run --release --cpu "$cpu" --timeout "$timeout_s" -- \
	env BENCH_MIB="$mib" BENCH_SF_MIB="$sf_mib" BENCH_REPS="$reps" BENCH_PAIRS="$pairs" \
	BENCH_NETS="$nets" BENCH_OSS="$oss" BENCH_PROFILE="$profile" BENCH_AEAD_ONLY="$aead_only" \
	tools/bench/guest-bench.sh "$build/ossuary-bench" "$build/kmod/kernel" \
	"$build/aead/ossuary_aead_bench.ko" >"$guest_out"
vm_rc=$?
set -e
elapsed=$(( $(date +%s) - t0 ))
# progress lines and kernel messages share the guest console with the tables
klog='^\[ *[0-9]+\.[0-9]+\] '
grep -E "^guest-bench:|$klog" "$guest_out" >&2 || true

{
	echo "# Ossuary benchmark results"
	echo
	echo "- command: \`$cmd\`$([ "$cmd" = tools/bench/bench.sh ] && echo ' (`make bench`)'), $(date -u '+%Y-%m-%d %H:%M UTC'), guest run ${elapsed}s"
	echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $(qemu-system-x86_64 --version | head -n 1), TCG (no KVM), -cpu $cpu -smp 2 -m 2048"
	echo "- tree: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
	echo
	grep -Ev "^guest-bench:|$klog" "$guest_out"
	if grep -Eq "$klog" "$guest_out"; then
		echo
		echo "Kernel messages on the guest console during the run:"
		echo
		echo '```'
		grep -E "$klog" "$guest_out"
		echo '```'
	fi
	if [ -n "$native" ]; then
		echo
		echo "## Handshakes through the library (native, no VM: bench_user)"
		echo
		echo '```'
		echo "$native"
		echo '```'
	fi
} >"$out"
cat "$out"
if [ "$vm_rc" != 0 ]; then
	echo "bench.sh: the guest run failed (exit $vm_rc); report so far in $out" >&2
	exit "$vm_rc"
fi
if [ "$tunnel" = 1 ]; then
	step "tunnels: tools/bench/tunnel-bench.sh --release"
	tools/bench/tunnel-bench.sh --release --out "$build/tunnel.md" >/dev/null
	{ echo; sed 's/^\(#\{1,5\}\) /#\1 /' "$build/tunnel.md"; } >>"$out"
	cat "$build/tunnel.md"
fi
step "report written to $out"
