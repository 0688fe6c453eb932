#!/usr/bin/env bash
# bench.sh [--mib N] [--sf-mib N] [--reps N] [--pairs N] [--nets "lo veth"]
#          [--cpus "max qemu64"] [--cpu MODEL] [--baseline REV]
#          [--unread-pairs N] [--timeout S] [--no-oss] [--no-profile]
#          [--quick] [--aead-only] [--out FILE] [--tunnel]
#
# `make bench`: builds libossuary, tools/bench/ossuary-bench, ossuary.ko
# (a copy of kernel/, built in build/bench/kmod against the release test
# kernel, so kernel/ossuary.ko built for the debug kernel is left alone)
# and the raw AEAD bench module; boots the release kernel under QEMU once
# per CPU model in --cpus (default "max qemu64": the SIMD crypto paths,
# then generic C; --cpu MODEL runs one) and runs tools/bench/guest-bench.sh
# there; then runs the library's native handshake benchmark (bench_user).
# Writes the Markdown report to FILE (default build/bench/results.md) and
# to stdout: first one table of the issue 13 figures for every CPU model
# and path, then each boot's own tables.
#
# --reps N (default 7): runs per case (median, min–max). --baseline REV
# also builds ossuary.ko from git revision REV (git archive of kernel/,
# Kbuild and the uapi header into build/bench/base, against the same
# release kernel) and runs every Ossuary kernel case and the memory
# cases with both modules in the same boot (rmmod/insmod between, the
# baseline right before the current one), printing before and after.
# --unread-pairs N (default 32): pairs for the memory-with-1-MiB-unread
# case. Memory does not depend on the CPU model: it is measured in the
# first boot only. --mib N (default 4): MiB per run of 16 KiB writes and
# sendfile (plain TCP 16 KiB writes 4x that, 1 KiB writes a quarter). --quick: a fast check while developing (2 MiB per run, 3 runs,
# 1000 pairs, 8 unread pairs, no profile, -cpu max only); later options
# override it. --aead-only builds and runs only the raw AEAD module.
# --tunnel appends tools/bench/tunnel-bench.sh's table (ossuary-tunnel
# against spiped and stunnel4; one more boot of the release kernel).
#
# Not a test: a slow number never fails it; a case that errors does.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

mib=4
sf_mib=
reps=7
pairs=10000
unread_pairs=32
nets="lo veth"
timeout_s=3600
cpus="max qemu64"
oss=1
profile=1
aead_only=0
tunnel=0
baseline=
out=
args=("$@")
while [ $# -gt 0 ]; do
	case "$1" in
	--mib) mib=$2; shift ;;
	--sf-mib) sf_mib=$2; shift ;;
	--reps) reps=$2; shift ;;
	--pairs) pairs=$2; shift ;;
	--unread-pairs) unread_pairs=$2; shift ;;
	--nets) nets=$2; shift ;;
	--timeout) timeout_s=$2; shift ;;
	--cpu) cpus=$2; shift ;;
	--cpus) cpus=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--quick) mib=2; reps=3; pairs=1000; unread_pairs=8; profile=0; cpus=max ;;
	--no-oss) oss=0 ;;
	--no-profile) profile=0 ;;
	--aead-only) aead_only=1 ;;
	--tunnel) tunnel=1 ;;
	--out) out=$2; shift ;;
	-h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
	baseline=
	step "building ossuary_aead_bench.ko against $kdir"
	mkdir -p "$build/aead"
	cp -p tools/bench/aead/Kbuild tools/bench/aead/ossuary_aead_bench.c "$build/aead/"
	make -C "$kdir" M="$build/aead" modules >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
fi

base_dir=
base_desc=
if [ -n "$baseline" ]; then
	base_rev=$(git rev-parse --short "$baseline^{commit}") ||
		{ echo "bench.sh: --baseline $baseline is not a revision" >&2; exit 2; }
	base_desc="$baseline ($base_rev)"
	step "building the baseline ossuary.ko from $base_desc"
	rm -rf "$build/base"
	mkdir -p "$build/base/kmod"
	git archive "$base_rev" Kbuild kernel include/uapi/linux/ossuary.h | tar -x -C "$build/base/kmod"
	env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES make -C "$kdir" M="$build/base/kmod" modules >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "bench.sh: baseline module build failed" >&2; exit 1; }
	base_dir=$build/base/kmod/kernel
fi

native=
if [ "$aead_only" = 0 ]; then
	step "native handshake benchmark (bench_user)"
	native=$("$build/user/bench/bench_user" 1)
fi

cmd="tools/bench/bench.sh${args[*]:+ ${args[*]}}"
tree=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
up0=$(uptime)
t_all=$(date +%s)
vm_rc=0
klog='^\[ *[0-9]+\.[0-9]+\] '
data=$build/data.txt
: >"$data"
first=1
for cpu in $cpus; do
	step "booting the release kernel (-cpu $cpu); this takes minutes under TCG"
	guest_out=$build/guest-$cpu.out
	t0=$(date +%s)
	set +e
	tools/testing/vm/run --release --cpu "$cpu" --timeout "$timeout_s" -- \
		env BENCH_MIB="$mib" BENCH_SF_MIB="$sf_mib" BENCH_REPS="$reps" BENCH_PAIRS="$pairs" \
		BENCH_UNREAD_PAIRS="$unread_pairs" BENCH_MEM="$first" \
		BENCH_NETS="$nets" BENCH_OSS="$oss" BENCH_PROFILE="$profile" BENCH_AEAD_ONLY="$aead_only" \
		tools/bench/guest-bench.sh "$build/ossuary-bench" "$build/kmod/kernel" \
		"$build/aead/ossuary_aead_bench.ko" $base_dir >"$guest_out"
	rc=$?
	set -e
	[ "$rc" = 0 ] || vm_rc=$rc
	echo "$(( $(date +%s) - t0 ))" >"$build/guest-$cpu.secs"
	# progress lines and kernel messages share the guest console with the tables
	grep -E "^guest-bench:|$klog" "$guest_out" >&2 || true
	grep '^DATA ' "$guest_out" | sed "s/^DATA /$cpu /" >>"$data"
	first=0
done
elapsed=$(( $(date +%s) - t_all ))

# One table of issue 13's figures: every CPU model and path side by side.
summary() {
	awk -v cpus="$cpus" -v nets="$nets" -v base="$base_desc" '
	function med(list,    a, m, i, j, t) {
		m = split(list, a, " ")
		if (m == 0) return ""
		for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	function r(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "–" }
	function cell(x, y) { return base == "" ? x : x " (" y ")" }
	$2 == "SUM" { split($3, nl, ":"); k = $1 " " nl[1] " " nl[2]; thr[k] = $5; rxp[k] = $11; rxs[k] = $14; gall[k] = $17 }
	$2 == "AEAD" && $3 == 16384 { seal[$1] = seal[$1] " " $5; open_[$1] = open_[$1] " " $6; nrec[$1] = $4 }
	$2 == "MEM" { memt[$1 " " $3] = $6 }
	$2 == "UNREAD" { unr[$1 " " $3] = $7 }
	END {
		nc = split(cpus, C, " "); nn = split(nets, N, " ")
		for (i = 1; i <= nc; i++) if (nrec[C[i]] > 0) {
			b = nrec[C[i]] * 16384 / 1048576
			pair[C[i]] = b / ((med(seal[C[i]]) + med(open_[C[i]])) / 1e9)
			sm = med(seal[C[i]]); om = med(open_[C[i]])
			slow[C[i]] = b / ((sm > om ? sm : om) / 1e9)
		}
		printf "| figure | goal |"
		for (i = 1; i <= nc; i++) for (j = 1; j <= nn; j++) printf " `-cpu %s` %s |", C[i], N[j] == "lo" ? "loopback" : N[j]
		printf "\n|---|---|"
		for (i = 1; i <= nc * nn; i++) printf "---|"
		printf "\n"
		row("Ossuary ÷ kTLS, 16 KiB writes (throughput)", "≥ 1.10", "thr", "w16k", "ktls")
		row("Ossuary ÷ kTLS, 1 KiB writes (throughput)", "≥ 1.10", "thr", "w1k", "ktls")
		row("Ossuary ÷ kTLS, sendfile (throughput)", "≥ 1.10", "thr", "sf", "ktls")
		row("Ossuary ÷ raw AEAD seal+open on one CPU, 16 KiB writes", "≥ 0.80", "thr", "w16k", "aead")
		row("Ossuary ÷ raw AEAD, the slower of seal and open (sender and receiver on two vCPUs), 16 KiB writes", "≥ 0.80", "thr", "w16k", "aslow")
		row("receiver side CPU/GiB (receiver vCPU), Ossuary ÷ kTLS, 16 KiB writes", "≤ 0.90", "rxs", "w16k", "ktls")
		row("receiver process CPU/GiB, Ossuary ÷ kTLS, 16 KiB writes", "≤ 0.90", "rxp", "w16k", "ktls")
		row("receiver side CPU/GiB, Ossuary ÷ kTLS, sendfile", "≤ 0.90", "rxs", "sf", "ktls")
		row("whole guest CPU/GiB, Ossuary ÷ kTLS, 16 KiB writes", "(< 1)", "all", "w16k", "ktls")
		row("after ÷ before, 16 KiB writes (throughput)", "> 1", "thr", "w16k", "self")
		row("kTLS 16 KiB writes, MiB/s (for scale)", "", "abs", "w16k", "ktls")
		row("Ossuary 16 KiB writes, MiB/s (for scale)", "", "abs", "w16k", "oss")
		memrow("kernel memory per idle offloaded socket, Ossuary ÷ kTLS (total)", "≤ 0.25", memt)
		memrow("kernel memory per connection with 1 MiB unread, Ossuary ÷ kTLS (MemAvailable)", "≤ 1.00", unr)
	}
	function row(what, goal, kind, v, den,    i, j, c, n, a, bb, d) {
		if (den == "self" && base == "") return
		printf "| %s | %s |", what, goal
		for (i = 1; i <= nc; i++) for (j = 1; j <= nn; j++) {
			c = C[i]; n = N[j]
			if (kind == "abs") { x = thr[c " " n " " den "-" v]; printf " %s |", x == "" ? "–" : x; continue }
			a = val(kind, c " " n " oss-" v); bb = val(kind, c " " n " base-" v)
			if (den == "self") { printf " %s |", r(a, bb); continue }
			d = den == "aead" ? pair[c] : den == "aslow" ? slow[c] : val(kind, c " " n " " den "-" v)
			printf " %s |", cell(r(a, d), r(bb, d))
		}
		printf "\n"
	}
	function val(kind, k) { return kind == "thr" ? thr[k] : kind == "rxp" ? rxp[k] : kind == "all" ? gall[k] : rxs[k] }
	function memrow(what, goal, arr,    i, j, c) {
		printf "| %s | %s |", what, goal
		for (i = 1; i <= nc; i++) for (j = 1; j <= nn; j++) {
			c = C[i]
			if (j > 1) { printf " (same) |"; continue }
			printf " %s |", cell(r(arr[c " oss"], arr[c " ktls"]), r(arr[c " base"], arr[c " ktls"]))
		}
		printf "\n"
	}' "$data"
}

{
	echo "# Ossuary benchmark results"
	echo
	echo "- command: \`$cmd\`$([ "$cmd" = tools/bench/bench.sh ] && echo ' (`make bench`)'), $(date -u '+%Y-%m-%d %H:%M UTC'), wall time of the guest runs ${elapsed}s ($(for c in $cpus; do echo -n "$c $(cat "$build/guest-$c.secs")s "; done | sed 's/ $//'))"
	echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
	echo "- host uptime before: \`$up0\`"
	echo "- host uptime after: \`$(uptime)\`"
	echo "- $(qemu-system-x86_64 --version | head -n 1), TCG (no KVM), -cpu $cpus (one boot each) -smp 2 -m 2048"
	echo "- tree: $tree$([ -n "$base_desc" ] && echo "; baseline (\"before\") ossuary.ko from $base_desc")"
	echo "- $reps runs per case, $mib MiB per run (16 KiB writes, sendfile; TCP 16 KiB: $((mib * 4)) MiB; 1 KiB writes: $(( mib / 4 > 0 ? mib / 4 : 1 )) MiB)"
	if [ "$oss" = 1 ] && [ "$aead_only" = 0 ]; then
		echo
		echo "## Issue 13 figures"
		echo
		echo "Ratios of medians.$([ -n "$base_desc" ] && echo " Each cell: after (before), before = the baseline module $base_desc in the same boot.") Receiver side CPU: see the Streams tables. Memory is measured over loopback only."
		echo
		summary
	fi
	for cpu in $cpus; do
		echo
		echo "## -cpu $cpu"
		echo
		grep -Ev "^guest-bench:|^DATA |$klog" "$build/guest-$cpu.out" | sed 's/^\(#\{1,4\}\) /#\1 /'
		if grep -Eq "$klog" "$build/guest-$cpu.out"; then
			echo
			echo "Kernel messages on the guest console during the run:"
			echo
			echo '```'
			grep -E "$klog" "$build/guest-$cpu.out"
			echo '```'
		fi
	done
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
	echo "bench.sh: a guest run failed (exit $vm_rc); report so far in $out" >&2
	exit "$vm_rc"
fi
if [ "$tunnel" = 1 ]; then
	step "tunnels: tools/bench/tunnel-bench.sh --release"
	tools/bench/tunnel-bench.sh --release --out "$build/tunnel.md" >/dev/null
	{ echo; sed 's/^\(#\{1,5\}\) /#\1 /' "$build/tunnel.md"; } >>"$out"
	cat "$build/tunnel.md"
fi
step "report written to $out"
