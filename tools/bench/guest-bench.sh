#!/usr/bin/env bash
# guest-bench.sh BENCH_BIN KMOD_DIR AEAD_KO [BASE_KMOD_DIR]: runs inside
# the test VM (tools/testing/vm/run): loads tls.ko (from $OSSUARY_KDIR)
# and ossuary.ko, sets up two network namespaces joined by a veth pair
# (10.77.0.1 and 10.77.0.2), runs every case over loopback and over the
# veth, and prints the tables in Markdown. With BASE_KMOD_DIR (an
# ossuary.ko built from an older revision: bench.sh --baseline), every
# Ossuary kernel case also runs with that module ("base-" cases, right
# before the same case with KMOD_DIR's module; rmmod/insmod between).
# Last it prints the raw figures as "DATA ..." lines (bench.sh combines
# two boots from them and leaves them out of the report).
#
# Environment (defaults in brackets):
#   BENCH_MIB [16]    MiB per transfer with 16 KiB writes or sendfile (plain
#                     TCP moves 4x that; 1 KiB writes move a quarter)
#   BENCH_SF_MIB [=BENCH_MIB]  size of the tmpfs file for the sendfile cases
#   BENCH_REPS [5]    repetitions per case (median, min, max)
#   BENCH_PAIRS [2000] socket pairs for the memory measurement
#   BENCH_AEAD_RECORDS [512]  16 KiB records per raw AEAD run (1 KiB: 16x)
#   BENCH_AEAD_ONLY [0]  1 = only the guest header and the raw AEAD runs
#   BENCH_NETS ["lo veth"]     which paths to run
#   BENCH_PROFILE [1]  perf cpu-clock profile of the 16 KiB write cases
#   BENCH_OSS [1]      0 = skip the ossuary.ko cases (module not ready)
#   BENCH_CASES [all]  space-separated labels to run (e.g. "tcp-w16k oss-sf")
#   BENCH_MEM [1]      0 = skip the memory measurement
#   BENCH_PIN [0,1 with 2+ vCPUs]  TXCPU,RXCPU: sender and receiver pinned
#                     apart, receive softirq steered to RXCPU with RPS (lo,
#                     veth-b) and the sender's to TXCPU (veth-a); "none" = not
#   BENCH_UNREAD_PAIRS [32]  pairs for memory with unread bytes in flight
#   BENCH_UNREAD_MIB [1]      MiB each writer leaves unread
#
# Not a test: it exits non-zero only when a case fails to run.
set -uo pipefail

bin=$1
kmod_dir=$2
aead_ko=$3
base_dir=${4:-}
mib=${BENCH_MIB:-16}
small=$(( mib / 4 > 0 ? mib / 4 : 1 ))
sf_mib=${BENCH_SF_MIB:-$mib}
reps=${BENCH_REPS:-5}
pairs=${BENCH_PAIRS:-2000}
aead_records=${BENCH_AEAD_RECORDS:-512}
nets=${BENCH_NETS:-lo veth}
profile=${BENCH_PROFILE:-1}
case_timeout=${BENCH_CASE_TIMEOUT:-900}
oss=${BENCH_OSS:-1}
kdir=${OSSUARY_KDIR:?run me through tools/testing/vm/run}
out=/tmp/bench
mkdir -p "$out"
rc=0

fail() {
	echo "guest-bench: $*" >&2
	rc=1
}

echo "## Guest"
echo
echo "- kernel: $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs online, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
echo "- CPU model (guest /proc/cpuinfo): $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
simd=""
for f in ssse3 avx avx2 avx512f avx512vl; do
	grep -m1 '^flags' /proc/cpuinfo | grep -qw "$f" && simd="$simd $f"
done
echo "- SIMD flags:${simd:- none}"

# The raw AEAD limit: ossuary_aead_bench.ko, repeated like the streams,
# with 16 KiB and with 1 KiB records (16x as many: the same bytes). Each
# run times the crypto API and lib/crypto paths, interleaved. Lines:
# rec_bytes records api_seal_ns api_open_ns lib_seal_ns lib_open_ns
aead=$out/aead
driver=""
aead_run() {
	local rb n p
	: >"$aead"
	for rb in 16384 1024; do
		n=$((aead_records * 16384 / rb))
		for _ in $(seq "$reps"); do
			if ! insmod "$aead_ko" records="$n" rec_bytes="$rb"; then
				fail "ossuary_aead_bench failed (rec_bytes=$rb): $(dmesg | grep ossuary_aead_bench | tail -n 1)"
				return
			fi
			p=/sys/module/ossuary_aead_bench/parameters
			driver=$(cat $p/driver)
			echo "$rb $n $(cat $p/seal_ns) $(cat $p/open_ns) $(cat $p/lib_seal_ns) $(cat $p/lib_open_ns)" >>"$aead"
			rmmod ossuary_aead_bench
		done
	done
}

# crypto API vs lib/crypto, side by side
aead_table() {
	[ -s "$aead" ] || return 0
	echo
	echo "## Kernel AEAD: crypto API vs lib/crypto (issue 4)"
	echo
	echo "\`ossuary_aead_bench.ko\`: the same records (4-byte header as AAD, order-0 pages,"
	echo "sealed in place) through the crypto API (\`$driver\`, what \`ossuary.ko\`"
	echo "uses) and through lib/crypto's \`chacha_crypt()\` and \`poly1305_*()\` composed"
	echo "in one pass over the pages; the module checks that both seal byte-identical"
	echo "records and open each other's before it times anything. µs per record:"
	echo "median (min–max) of $reps runs of $aead_records × 16 KiB or $((aead_records * 16)) × 1 KiB records, in"
	echo "each of which the two paths alternate in batches of 32 records; MiB/s from"
	echo "the medians. lib ÷ API: median (min–max) of the per-run time ratios, below 1"
	echo "when lib is faster. Guest clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown)"
	echo "(the module times batches with the TSC and shares out the run's ktime)."
	echo
	awk '
	function sort(a, m,    i, j, t) {
		for (i = 2; i <= m; i++) {
			t = a[i]
			for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	{
		m = ++cnt[$1]
		us[$1, "seal", "api", m] = $3 / $2 / 1000; us[$1, "open", "api", m] = $4 / $2 / 1000
		us[$1, "seal", "lib", m] = $5 / $2 / 1000; us[$1, "open", "lib", m] = $6 / $2 / 1000
	}
	END {
		print "| record | operation | crypto API µs/record | lib µs/record | lib ÷ API (time) | crypto API MiB/s | lib MiB/s |"
		print "|---|---|---|---|---|---|---|"
		for (ri = 1; ri <= 2; ri++) {
			rb = ri == 1 ? 16384 : 1024; m = cnt[rb]
			if (!m) continue
			for (oi = 1; oi <= 2; oi++) {
				op = oi == 1 ? "seal" : "open"
				for (i = 1; i <= m; i++) {
					a[i] = us[rb, op, "api", i]; l[i] = us[rb, op, "lib", i]; r[i] = l[i] / a[i]
				}
				am = sort(a, m); lm = sort(l, m); rm = sort(r, m)
				mib = rb / 1048576 * 1e6
				printf "| %d KiB | %s | %.1f (%.1f–%.1f) | %.1f (%.1f–%.1f) | %.2f (%.2f–%.2f) | %.1f | %.1f |\n",
					rb / 1024, op, am, a[1], a[m], lm, l[1], l[m], rm, r[1], r[m], mib / am, mib / lm
			}
		}
	}' "$aead"
}

if [ "${BENCH_AEAD_ONLY:-0}" = 1 ]; then
	echo "- raw AEAD only (BENCH_AEAD_ONLY=1): no streams, memory or profile"
	aead_run
	aead_table
	exit "$rc"
fi

insmod "$kdir/net/tls/tls.ko" || fail "insmod tls.ko"
mod=none
# use_mod after|base: have that ossuary.ko loaded (rmmod the other first;
# sockets of the last case may take a moment to let go of the module)
use_mod() {
	local ko i
	[ "$mod" = "$1" ] && return 0
	ko=$kmod_dir/ossuary.ko
	[ "$1" = base ] && ko=$base_dir/ossuary.ko
	if [ "$mod" != none ]; then
		for i in $(seq 100); do
			rmmod ossuary 2>/dev/null && break
			sleep 0.2
		done
		if grep -q '^ossuary ' /proc/modules; then
			fail "rmmod ossuary failed"
			return 1
		fi
		mod=none
	fi
	insmod "$ko" || { fail "insmod $ko"; return 1; }
	mod=$1
}
if [ "$oss" = 1 ]; then
	use_mod after
	[ -n "$base_dir" ] && [ ! -r "$base_dir/ossuary.ko" ] && { fail "no $base_dir/ossuary.ko"; base_dir=; }
else
	base_dir=
fi

# Two hosts in one guest: namespace a (10.77.0.1) and b (10.77.0.2).
ip netns add bench-a && ip netns add bench-b &&
	ip link add veth-a netns bench-a type veth peer name veth-b netns bench-b &&
	ip -n bench-a addr add 10.77.0.1/24 dev veth-a &&
	ip -n bench-b addr add 10.77.0.2/24 dev veth-b &&
	ip -n bench-a link set lo up && ip -n bench-b link set lo up &&
	ip -n bench-a link set veth-a up && ip -n bench-b link set veth-b up ||
	fail "veth setup"
echo "- veth: bench-a 10.77.0.1 <-> bench-b 10.77.0.2, MTU $(ip -n bench-a -o link show veth-a | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"

# Sender and receiver on their own vCPUs, and the receive path of each
# on its own side (RPS), so that the receiver's vCPU busy time is the
# receiver side's CPU: its process, the softirq that takes its packets
# in, and the workers they queue (bound workqueues run where queued).
pin=${BENCH_PIN:-}
ncpu=$(grep -c ^processor /proc/cpuinfo)
[ -z "$pin" ] && [ "$ncpu" -ge 2 ] && pin=0,1
[ "$pin" = none ] && pin=
pinargs=()
if [ -n "$pin" ]; then
	ptx=${pin%,*}
	prx=${pin#*,}
	mrx=$(printf %x $((1 << prx)))
	mtx=$(printf %x $((1 << ptx)))
	{ echo "$mrx" >/sys/class/net/lo/queues/rx-0/rps_cpus &&
		ip netns exec bench-b sh -c "echo $mrx >/sys/class/net/veth-b/queues/rx-0/rps_cpus" &&
		ip netns exec bench-a sh -c "echo $mtx >/sys/class/net/veth-a/queues/rx-0/rps_cpus"; } ||
		fail "RPS setup"
	pinargs=(--pin "$pin")
	echo "- pinned: sender on CPU $ptx, receiver on CPU $prx; RPS: lo and veth-b to CPU $prx, veth-a to CPU $ptx"
else
	echo "- not pinned ($ncpu vCPU(s)): receiver side CPU = whole guest less the sender process"
fi

sf_file=/tmp/bench-sendfile.dat
head -c "$((sf_mib << 20))" /dev/urandom >"$sf_file" || fail "make $sf_file"
echo "- sendfile source: $sf_file, $sf_mib MiB on tmpfs"
echo "- transfer per run: $mib MiB (16 KiB writes, sendfile), $((mib * 4)) MiB for plain TCP 16 KiB writes, $small MiB for 1 KiB writes; $reps runs per case"
echo

# case label, proto, op, wsize, MiB
cases=(
	"tcp-w16k tcp write 16384 $((mib * 4))"
	"tcp-w1k tcp write 1024 $small"
	"tcp-sf tcp sendfile 16384 $sf_mib"
	"ktls-w16k ktls write 16384 $mib"
	"ktls-w1k ktls write 1024 $small"
	"ktls-sf ktls sendfile 16384 $sf_mib"
)
if [ "$oss" = 1 ]; then
	for c in "w16k write 16384 $mib" "w1k write 1024 $small" "sf sendfile 16384 $sf_mib"; do
		read -r v o w m <<<"$c"
		[ -n "$base_dir" ] && cases+=("base-$v oss $o $w $m")
		cases+=("oss-$v oss $o $w $m")
	done
fi
cases+=("user-w16k user write 16384 $mib")

# /proc/net/ossuary_stat is per network namespace: over loopback both
# ends count in the root namespace, over veth the sender in bench-a and
# the receiver in bench-b. Lines: NS_SIDE NAME VALUE.
stat_snap() {
	local sides=$1 f=$2
	: >"$f"
	for sd in $sides; do
		case $sd in
		both) cat /proc/net/ossuary_stat ;;
		tx) ip netns exec bench-a cat /proc/net/ossuary_stat ;;
		rx) ip netns exec bench-b cat /proc/net/ossuary_stat ;;
		esac 2>/dev/null | awk -v sd="$sd" '{ print sd, $1, $2 }' >>"$f"
	done
}
stats=$out/stats
: >"$stats"

results=$out/results
: >"$results"
for net in $nets; do
	case $net in
	lo) nsargs=() ;;
	veth) nsargs=(--ns-tx bench-a --ns-rx bench-b --addr 10.77.0.2) ;;
	*) fail "unknown net $net"; continue ;;
	esac
	for c in "${cases[@]}"; do
		read -r label proto op wsize cmib <<<"$c"
		if [ -n "${BENCH_CASES:-}" ] && ! [[ " $BENCH_CASES " == *" $label "* ]]; then
			continue
		fi
		t0=$(date +%s)
		sides=
		case $label in
		oss-*) use_mod after || continue ;;
		base-*) use_mod base || continue ;;
		esac
		if [ "$proto" = oss ]; then
			sides=both
			[ "$net" = veth ] && sides="tx rx"
			stat_snap "$sides" "$out/stat0"
		fi
		if timeout "$case_timeout" "$bin" stream --proto "$proto" --op "$op" --wsize "$wsize" --mib "$cmib" \
			--file "$sf_file" --reps "$reps" --label "$net:$label" "${nsargs[@]}" "${pinargs[@]}" \
			>"$out/$net-$label.log" 2>&1; then
			grep '^SUM ' "$out/$net-$label.log" >>"$results"
			if [ -n "$sides" ]; then
				# counters that count bytes or records: the change per run
				stat_snap "$sides" "$out/stat1"
				awk -v net="$net" -v lab="$label" -v reps="$reps" -v mib="$cmib" '
				NR == FNR { v0[$1 " " $2] = $3; next }
				$2 ~ /(Bytes|Records)$|Records/ {
					printf "%s %s %s %s %.0f %s\n", net, lab, $1, $2, ($3 - v0[$1 " " $2]) / reps, mib
				}' "$out/stat0" "$out/stat1" >>"$stats"
			fi
		else
			fail "$net $label failed: $(tail -n 3 "$out/$net-$label.log" | tr '\n' ' ')"
		fi
		echo "guest-bench: $net $label done in $(($(date +%s) - t0))s" >&2
	done
done

# The raw AEAD limit, both paths (aead_run above).
aead_run

# Idle offloaded sockets: kernel memory per socket.
mem=$out/mem
unread=$out/unread
: >"$mem"
: >"$unread"
unread_pairs=${BENCH_UNREAD_PAIRS:-32}
unread_mib=${BENCH_UNREAD_MIB:-1}
mem_protos="tcp ktls"
[ -n "$base_dir" ] && mem_protos="$mem_protos base"
[ "$oss" = 1 ] && mem_protos="$mem_protos oss"
[ "${BENCH_MEM:-1}" = 1 ] || mem_protos=""
for p in $mem_protos; do
	t0=$(date +%s)
	bp=$p
	case $p in
	oss) use_mod after || continue ;;
	base) use_mod base || continue; bp=oss ;;
	esac
	timeout "$case_timeout" "$bin" mem --proto "$bp" --label "$p" --pairs "$pairs" >>"$mem" 2>"$out/mem-$p.log" ||
		fail "mem $p failed: $(tail -n 3 "$out/mem-$p.log" | tr '\n' ' ')"
	timeout "$case_timeout" "$bin" mem --proto "$bp" --label "$p" --pairs "$unread_pairs" --unread "$unread_mib" \
		2>"$out/unread-$p.log" | grep '^UNREAD ' >>"$unread" ||
		fail "mem --unread $p failed: $(tail -n 3 "$out/unread-$p.log" | tr '\n' ' ')"
	echo "guest-bench: mem $p done in $(($(date +%s) - t0))s" >&2
done
[ "$oss" = 1 ] && use_mod after

# ---- tables ----
echo "## Streams"
echo
echo "MiB/s and CPU seconds per GiB moved: median (min–max) of $reps runs. Sender"
echo "and receiver: user+system of each process (getrusage; softirq work counts for"
echo "whichever process it interrupts). Whole guest: busy time of all vCPUs over the"
echo "run (/proc/stat busy share of the ticks × wall time)."
if [ -n "$pin" ]; then
	echo "Receiver side: the same for the receiver's vCPU alone ($prx): the receiving"
	echo "process, the softirq that takes its packets in (RPS) and the workers queued there."
else
	echo "Receiver side: whole guest less the sender process."
fi
echo "×kTLS and ×TCP are the ratios of the median throughput to kTLS and to plain"
echo "TCP with the same operation on the same path."
[ -n "$base_dir" ] && echo "\"before\" rows: the baseline ossuary.ko, run just before the same case with the current one."
echo
awk -v aead="$aead" '
function variant(l) { sub(/^[^-]*-/, "", l); return l }
function proto(l) { sub(/-.*/, "", l); return l }
function name(p, v,    pn1, vn1) {
	pn1 = p == "tcp" ? "plain TCP" : p == "ktls" ? "kTLS" : p == "oss" ? "Ossuary kernel" : p == "base" ? "Ossuary kernel before" : "Ossuary userspace"
	vn1 = v == "w16k" ? "write 16 KiB" : v == "w1k" ? "write 1 KiB" : "sendfile"
	return pn1 ", " vn1
}
function ratio(a, b) { return (b > 0 && a != "") ? sprintf("%.2f", a / b) : "–" }
{
	split($2, nl, ":"); net = nl[1]; lab = nl[2]
	key = net ":" lab
	order[++n] = key
	med[key] = $4; mn[key] = $5; mx[key] = $6
	tx[key] = sprintf("%.2f (%.2f–%.2f)", $7, $8, $9)
	rx[key] = sprintf("%.2f (%.2f–%.2f)", $10, $11, $12)
	txm[key] = $7; rxm[key] = $10
	rs[key] = sprintf("%.1f (%.1f–%.1f)", $13, $14, $15); rsm[key] = $13
	gg[key] = sprintf("%.1f (%.1f–%.1f)", $16, $17, $18)
}
END {
	print "| path | case | MiB/s | sender CPU s/GiB | receiver CPU s/GiB | receiver side CPU s/GiB | whole guest CPU s/GiB | ×kTLS | ×TCP |"
	print "|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		k = order[i]; split(k, a, ":"); net = a[1]; lab = a[2]
		p = proto(lab); v = variant(lab)
		kt = net ":ktls-" v; tc = net ":tcp-" v
		printf "| %s | %s | %.1f (%.1f–%.1f) | %s | %s | %s | %s | %s | %s |\n", net == "lo" ? "loopback" : "veth", name(p, v),
			med[k], mn[k], mx[k], tx[k], rx[k], rs[k], gg[k], ratio(med[k], med[kt]), ratio(med[k], med[tc])
	}
	# raw AEAD
	m = 0
	# the crypto API (what ossuary.ko uses) on 16 KiB records
	while ((getline line < aead) > 0) {
		split(line, f, " ")
		if (f[1] == 16384) { records = f[2]; s[++m] = f[3]; o[m] = f[4] }
	}
	if (m > 0) {
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) {
			if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
			if (o[j] < o[i]) { t = o[i]; o[i] = o[j]; o[j] = t }
		}
		bytes = records * 16384 / 1048576
		smed = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
		omed = m % 2 ? o[(m + 1) / 2] : (o[m / 2] + o[m / 2 + 1]) / 2
		aead_seal = bytes / (smed / 1e9)
		aead_open = bytes / (omed / 1e9)
		aead_pair = 1 / (1 / aead_seal + 1 / aead_open)
		aead_seal_cpu = smed / 1e9 / (bytes / 1024)
		printf "\n## Raw AEAD limit (in-kernel, no socket)\n\n"
		printf "| operation | MiB/s | CPU s/GiB |\n|---|---|---|\n"
		printf "| seal 16 KiB records | %.1f (%.1f–%.1f) | %.2f |\n", aead_seal, bytes / (s[m] / 1e9), bytes / (s[1] / 1e9), smed / 1e9 / (bytes / 1024)
		printf "| open 16 KiB records | %.1f (%.1f–%.1f) | %.2f |\n", bytes / (omed / 1e9), bytes / (o[m] / 1e9), bytes / (o[1] / 1e9), omed / 1e9 / (bytes / 1024)
		printf "| seal + open on one CPU (the limit of one stream on one vCPU) | %.1f | %.2f |\n", aead_pair, (smed + omed) / 1e9 / (bytes / 1024)
	}
	printf "\n## Goals (ratios of medians; not tests)\n\n"
	print "| path | goal | measured | met? |"
	print "|---|---|---|---|"
	for (ni = 1; ni <= 2; ni++) {
		net = ni == 1 ? "lo" : "veth"; pn = ni == 1 ? "loopback" : "veth"
		if (!((net ":oss-w16k") in med)) continue
		g(pn, "Ossuary kernel 16 KiB writes ≥ 1.1× kTLS (throughput)", med[net ":oss-w16k"], med[net ":ktls-w16k"], 1.1, 0)
		g(pn, "Ossuary kernel 16 KiB writes ≥ 1.1× kTLS (sender CPU/GiB, kTLS ÷ Ossuary)", txm[net ":ktls-w16k"], txm[net ":oss-w16k"], 1.1, 0)
		g(pn, "Ossuary kernel sendfile ≥ 1.1× kTLS sendfile (throughput)", med[net ":oss-sf"], med[net ":ktls-sf"], 1.1, 0)
		g(pn, "Ossuary kernel sendfile ≥ 1.1× kTLS sendfile (sender CPU/GiB, kTLS ÷ Ossuary)", txm[net ":ktls-sf"], txm[net ":oss-sf"], 1.1, 0)
		if (m > 0) {
			g(pn, "Ossuary kernel 16 KiB writes ≥ 0.8× raw AEAD (seal alone)", med[net ":oss-w16k"], aead_seal, 0.8, 0)
			g(pn, "Ossuary kernel 16 KiB writes ≥ 0.8× raw AEAD (seal + open on one CPU: 1/(1/seal + 1/open))", med[net ":oss-w16k"], aead_pair, 0.8, 0)
			g(pn, "Ossuary sender CPU/GiB vs raw seal CPU/GiB (seal ÷ sender; 0.8 = the seal is 80% of the sender CPU)", aead_seal_cpu, txm[net ":oss-w16k"], 0.8, 0)
		}
		g(pn, "Ossuary kernel 16 KiB writes ≥ 1.5× userspace library (throughput)", med[net ":oss-w16k"], med[net ":user-w16k"], 1.5, 0)
		g(pn, "receiver side CPU/GiB, 16 KiB writes: Ossuary ÷ kTLS ≤ 0.9", rsm[net ":oss-w16k"], rsm[net ":ktls-w16k"], 0.9, 1)
		if ((net ":base-w16k") in med) {
			g(pn, "before: Ossuary kernel 16 KiB writes ≥ 1.1× kTLS (throughput)", med[net ":base-w16k"], med[net ":ktls-w16k"], 1.1, 0)
			g(pn, "before: receiver side CPU/GiB, 16 KiB writes: Ossuary ÷ kTLS ≤ 0.9", rsm[net ":base-w16k"], rsm[net ":ktls-w16k"], 0.9, 1)
			g(pn, "after ÷ before: 16 KiB writes (throughput)", med[net ":oss-w16k"], med[net ":base-w16k"], 1.0, 0)
		}
	}
}
function g(pn, what, a, b, goal, le) {
	if (a == "" || b == "" || b == 0) { printf "| %s | %s | – | not measured |\n", pn, what; return }
	printf "| %s | %s | %.2f× | %s |\n", pn, what, a / b, ((le ? a / b <= goal : a / b >= goal) ? "yes" : "no")
}
' "$results"
[ -n "$driver" ] && { echo; echo "AEAD implementation picked by the crypto API: \`$driver\` ($aead_records records of 16 KiB per run, $reps runs)."; }
aead_table

echo
echo "## Kernel memory per idle offloaded socket"
echo
echo "$pairs connected pairs over loopback ($((pairs * 2)) sockets), idle. \"ULP + keys\" is the"
echo "growth after attaching the ULP and installing TX and RX on every socket;"
echo "\"TCP socket\" is the cost of the plain socket before that (for scale)."
echo "Slab is /proc/meminfo Slab; total is MemTotal − MemFree (slab and pages)."
echo
echo "| ULP | ULP + keys: slab B/socket | ULP + keys: total B/socket | TCP socket: slab B/socket | TCP socket: total B/socket |"
echo "|---|---|---|---|---|"
awk '{ n = $2 == "tcp" ? "none (plain TCP)" : $2 == "ktls" ? "kTLS" : $2 == "base" ? "Ossuary before" : "Ossuary"; printf "| %s | %d | %d | %d | %d |\n", n, $4, $5, $6, $7
	s[$2] = $4; t[$2] = $5 }
END {
	if (s["ktls"] > 0 && ("oss" in s))
		printf "\nGoal: memory per idle socket ≤ 0.25× kTLS. Ossuary ÷ kTLS: slab %.2f×, total %.2f× (%s).\n",
			s["oss"] / s["ktls"], t["oss"] / t["ktls"], t["oss"] <= 0.25 * t["ktls"] && s["oss"] <= 0.25 * s["ktls"] ? "met" : "missed"
	if (s["ktls"] > 0 && ("base" in s))
		printf "Before: slab %.2f×, total %.2f×.\n", s["base"] / s["ktls"], t["base"] / t["ktls"]
}' "$mem"

if [ -s "$unread" ]; then
	echo
	echo "## Kernel memory per connection with unread bytes in flight"
	echo
	echo "$unread_pairs connected pairs over loopback, keys installed (Ossuary TX+RX, kTLS TLS_TX+TLS_RX)"
	echo "on both ends; then one end of each writes $unread_mib MiB (non-blocking, SO_SNDBUF and SO_RCVBUF"
	echo "forced to $((unread_mib * 4)) MiB first so that it fits) and the other does not read. Growth"
	echo "from the idle keyed pairs, per pair (writer + reader socket), in KiB: MemAvailable's fall,"
	echo "MemTotal − MemFree, Slab, and /proc/net/sockstat \"TCP: mem\" (what TCP charged itself)."
	echo "Still queued at the end: SIOCOUTQ at the writer, SIOCINQ at the reader."
	echo
	echo "| ULP | unread KiB/pair | MemAvailable fall KiB/pair | total KiB/pair | slab KiB/pair | TCP mem KiB/pair | writer outq KiB | reader inq KiB |"
	echo "|---|---|---|---|---|---|---|---|"
	awk '{ n = $2 == "tcp" ? "none (plain TCP)" : $2 == "ktls" ? "kTLS" : $2 == "base" ? "Ossuary before" : "Ossuary"
		printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", n, $4 / 1024, $6 / 1024, $7 / 1024, $5 / 1024, $8 / 1024, $9 / 1024, $10 / 1024
		a[$2] = $6 }
	END {
		if (a["ktls"] > 0 && ("oss" in a))
			printf "\nGoal: ≤ kTLS. Ossuary ÷ kTLS (MemAvailable fall): %.2f× (%s)%s.\n", a["oss"] / a["ktls"],
				a["oss"] <= a["ktls"] ? "met" : "missed", ("base" in a) ? sprintf("; before %.2f×", a["base"] / a["ktls"]) : ""
	}' "$unread"
fi

if [ -s "$stats" ]; then
	echo
	echo "## Bytes copied (/proc/net/ossuary_stat)"
	echo
	echo "Change of every ossuary_stat counter that counts bytes or records, per run"
	echo "(the case's change ÷ $reps runs); Bytes in MiB, Records as counts. The counters"
	echo "are per network namespace: over loopback both ends count together (\"both\"),"
	echo "over veth the sender (\"tx\", bench-a) and the receiver (\"rx\", bench-b) apart."
	echo
	awk '
	{
		row = $1 " " $2 " " $3
		if (!(row in seen)) { seen[row] = 1; rows[++nr] = row; mib[row] = $6 }
		if (!($4 in cseen)) { cseen[$4] = 1; cols[++nc] = $4 }
		v[row, $4] = $5
	}
	END {
		printf "| path | case | side | MiB/run |"
		for (c = 1; c <= nc; c++) { h = cols[c]; sub(/^Ossuary/, "", h); printf " %s |", h }
		printf "\n|---|---|---|---|"
		for (c = 1; c <= nc; c++) printf "---|"
		printf "\n"
		for (r = 1; r <= nr; r++) {
			split(rows[r], f, " ")
			lab = f[2]; sub(/^oss-/, "after ", lab); sub(/^base-/, "before ", lab)
			printf "| %s | %s | %s | %s |", f[1] == "lo" ? "loopback" : "veth", lab, f[3], mib[rows[r]]
			for (c = 1; c <= nc; c++) {
				x = v[rows[r], cols[c]]
				if (x == "") printf " – |"
				else if (cols[c] ~ /Bytes$/) printf " %.2f |", x / 1048576
				else printf " %d |", x
			}
			printf "\n"
		}
	}' "$stats"
fi

if [ "$profile" = 1 ] && command -v perf >/dev/null; then
	echo
	echo "## Where the time goes (perf, cpu-clock, 16 KiB writes, whole guest)"
	profs="lo:ktls lo:oss lo:user veth:ktls veth:oss"
	[ "$oss" = 1 ] || profs="lo:ktls lo:user veth:ktls"
	[ "$oss" = 1 ] && use_mod after
	echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
	echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
	for pp in $profs; do
		net=${pp%%:*}
		p=${pp#*:}
		[[ " $nets " == *" $net "* ]] || continue
		nsargs=()
		[ "$net" = veth ] && nsargs=(--ns-tx bench-a --ns-rx bench-b --addr 10.77.0.2)
		echo
		echo "### $p, $([ "$net" = lo ] && echo loopback || echo veth)"
		echo
		echo '```'
		if timeout 300 perf record -q -e cpu-clock -a -o "$out/perf-$net-$p.data" -- \
			"$bin" stream --proto "$p" --mib "$((mib * 2))" --reps 1 "${nsargs[@]}" \
			>/dev/null 2>"$out/perf-$net-$p.log"; then
			perf report -q -i "$out/perf-$net-$p.data" --stdio --sort dso,sym 2>/dev/null |
				grep -v '^$' | head -n 25
		else
			echo "perf record failed: $(tail -n 2 "$out/perf-$net-$p.log" | tr '\n' ' ')"
		fi
		echo '```'
	done
fi

[ "$oss" = 1 ] && [ -r /proc/net/ossuary_stat ] && {
	echo
	echo "ossuary_stat (root namespace) at the end, since the last module load:"
	echo '```'
	cat /proc/net/ossuary_stat
	echo '```'
}

# raw figures for bench.sh (which combines the boots and drops these lines)
sed 's/^/DATA /' "$results"
[ -s "$aead" ] && sed 's/^/DATA AEAD /' "$aead"
sed 's/^/DATA /' "$mem" "$unread"
sed 's/^/DATA STAT /' "$stats"
exit "$rc"
