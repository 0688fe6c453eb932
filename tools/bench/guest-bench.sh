#!/usr/bin/env bash
# guest-bench.sh BENCH_BIN KMOD_DIR AEAD_KO: runs inside the test VM
# (tools/testing/vm/run): loads tls.ko (from $OSSUARY_KDIR) and
# ossuary.ko, sets up two network namespaces joined by a veth pair
# (10.77.0.1 and 10.77.0.2), runs every case over loopback and over the
# veth, and prints the tables in Markdown.
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
#
# Not a test: it exits non-zero only when a case fails to run.
set -uo pipefail

bin=$1
kmod_dir=$2
aead_ko=$3
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
if [ "$oss" = 1 ]; then
	insmod "$kmod_dir/ossuary.ko" || fail "insmod ossuary.ko"
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
	cases+=(
		"oss-w16k oss write 16384 $mib"
		"oss-w1k oss write 1024 $small"
		"oss-sf oss sendfile 16384 $sf_mib"
	)
fi
cases+=("user-w16k user write 16384 $mib")

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
		if timeout "$case_timeout" "$bin" stream --proto "$proto" --op "$op" --wsize "$wsize" --mib "$cmib" \
			--file "$sf_file" --reps "$reps" --label "$net:$label" "${nsargs[@]}" \
			>"$out/$net-$label.log" 2>&1; then
			grep '^SUM ' "$out/$net-$label.log" >>"$results"
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
: >"$mem"
mem_protos="tcp ktls"
[ "$oss" = 1 ] && mem_protos="$mem_protos oss"
[ "${BENCH_MEM:-1}" = 1 ] || mem_protos=""
for p in $mem_protos; do
	t0=$(date +%s)
	timeout "$case_timeout" "$bin" mem --proto "$p" --pairs "$pairs" >>"$mem" 2>"$out/mem-$p.log" ||
		fail "mem $p failed: $(tail -n 3 "$out/mem-$p.log" | tr '\n' ' ')"
	echo "guest-bench: mem $p done in $(($(date +%s) - t0))s" >&2
done

# ---- tables ----
echo "## Streams"
echo
echo "MiB/s and CPU seconds per GiB moved (user+system of the sending and of the"
echo "receiving process): median (min–max) of $reps runs. ×kTLS and ×TCP are the"
echo "ratios of the median throughput to kTLS and to plain TCP with the same"
echo "operation (write size, or sendfile) on the same path."
echo
awk -v aead="$aead" '
function variant(l) { sub(/^[^-]*-/, "", l); return l }
function proto(l) { sub(/-.*/, "", l); return l }
function name(p, v,    pn1, vn1) {
	pn1 = p == "tcp" ? "plain TCP" : p == "ktls" ? "kTLS" : p == "oss" ? "Ossuary kernel" : "Ossuary userspace"
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
}
END {
	print "| path | case | MiB/s | sender CPU s/GiB | receiver CPU s/GiB | ×kTLS | ×TCP |"
	print "|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) {
		k = order[i]; split(k, a, ":"); net = a[1]; lab = a[2]
		p = proto(lab); v = variant(lab)
		kt = net ":ktls-" v; tc = net ":tcp-" v
		printf "| %s | %s | %.1f (%.1f–%.1f) | %s | %s | %s | %s |\n", net == "lo" ? "loopback" : "veth", name(p, v),
			med[k], mn[k], mx[k], tx[k], rx[k], ratio(med[k], med[kt]), ratio(med[k], med[tc])
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
	}
}
function g(pn, what, a, b, goal,    dummy) {
	if (a == "" || b == "" || b == 0) { printf "| %s | %s | – | not measured |\n", pn, what; return }
	printf "| %s | %s | %.2f× | %s |\n", pn, what, a / b, (a / b >= goal ? "yes" : "no")
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
awk '{ n = $2 == "tcp" ? "none (plain TCP)" : $2 == "ktls" ? "kTLS" : "Ossuary"; printf "| %s | %d | %d | %d | %d |\n", n, $4, $5, $6, $7
	s[$2] = $4; t[$2] = $5 }
END {
	if (s["ktls"] > 0 && ("oss" in s))
		printf "\nGoal: memory per socket ≤ kTLS. Ossuary ÷ kTLS: slab %.2f×, total %.2f× (%s).\n",
			s["oss"] / s["ktls"], t["oss"] / t["ktls"], t["oss"] <= t["ktls"] && s["oss"] <= s["ktls"] ? "met" : "missed"
}' "$mem"

if [ "$profile" = 1 ] && command -v perf >/dev/null; then
	echo
	echo "## Where the time goes (perf, cpu-clock, loopback, 16 KiB writes, whole guest)"
	profs="ktls user"
	[ "$oss" = 1 ] && profs="ktls oss user"
	echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
	echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
	for p in $profs; do
		echo
		echo "### $p"
		echo
		echo '```'
		if timeout 300 perf record -q -e cpu-clock -a -o "$out/perf-$p.data" -- \
			"$bin" stream --proto "$p" --mib "$((mib * 2))" --reps 1 >/dev/null 2>"$out/perf-$p.log"; then
			perf report -q -i "$out/perf-$p.data" --stdio --sort dso,sym 2>/dev/null |
				grep -v '^$' | head -n 25
		else
			echo "perf record failed: $(tail -n 2 "$out/perf-$p.log" | tr '\n' ' ')"
		fi
		echo '```'
	done
fi

[ "$oss" = 1 ] && [ -r /proc/net/ossuary_stat ] && {
	echo
	echo "ossuary_stat after the run:"
	echo '```'
	cat /proc/net/ossuary_stat
	echo '```'
}
exit "$rc"
