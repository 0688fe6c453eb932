#!/usr/bin/env bash
# ktls-paths.sh [--mib N] [--reps N] [--cpu MODEL] [--out FILE]
# ktls-paths.sh --guest BENCH_BIN [--mib N] [--reps N]
#
# Why does kTLS move more over the veth pair than over loopback in
# `make bench`? Runs plain TCP and kTLS 16 KiB writes (ossuary-bench
# stream, as guest-bench.sh does) in the release VM over five paths:
#
#   lo          the root namespace's loopback (MTU 65536), as guest-bench.sh
#   lo-ns       loopback in a fresh namespace (MTU 65536): the same, minus
#               anything else the root namespace holds
#   lo-1500     loopback in a fresh namespace set to MTU 1500
#   veth        two namespaces over a veth pair (MTU 1500), as guest-bench.sh
#   veth-64k    the same pair set to MTU 65535
#
# and prints per path: MiB/s and CPU s/GiB (median of REPS), the mean
# data bytes per TCP segment the receiver took in (skbs as TCP built
# them: neither lo nor veth splits a GSO skb), and delayed ACKs; then a perf profile of one kTLS run on lo and on veth, and
# the guest's /proc/crypto entries for ChaCha20 and Poly1305.
# Without --guest: builds tools/bench/ossuary-bench into build/bench and
# runs itself in tools/testing/vm/run --release --cpu MODEL (default max).
# Not a test.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
mib=16
reps=5
cpu=max
guest=0
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--guest) guest=1; bin=$2; shift ;;
	--mib) mib=$2; shift ;;
	--reps) reps=$2; shift ;;
	--cpu) cpu=$2; shift ;;
	--out) out=$2; shift ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "ktls-paths: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ "$guest" = 0 ]; then
	set -e
	cd "$top"
	build=$top/build/bench
	out=${out:-$build/ktls-paths.md}
	mkdir -p "$build"
	make -s -C user O="$build/user" lib >"$build/ktls-paths-build.log" 2>&1 &&
		make -s -C tools/bench O="$build" LIBO="$build/user" >>"$build/ktls-paths-build.log" 2>&1 ||
		{ tail -n 30 "$build/ktls-paths-build.log" >&2; exit 1; }
	tools/testing/vm/build-kernel release >/dev/null
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	set +e
	tools/testing/vm/run --release --cpu "$cpu" --timeout 2400 -- \
		tools/bench/ktls-paths.sh --guest "$build/ossuary-bench" --mib "$mib" --reps "$reps" \
		>"$build/ktls-paths.out"
	vm_rc=$?
	set -e
	{
		echo "# kTLS over loopback and over veth"
		echo
		echo "- \`tools/bench/ktls-paths.sh --mib $mib --reps $reps --cpu $cpu\`, $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "- host load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
		grep -Ev '^ktls-paths:|^\[ *[0-9]+\.[0-9]+\] ' "$build/ktls-paths.out"
	} >"$out"
	cat "$out"
	exit "$vm_rc"
fi

# ---- in the guest ----
kdir=${OSSUARY_KDIR:?run me through tools/testing/vm/run}
insmod "$kdir/net/tls/tls.ko" || { echo "ktls-paths: insmod tls.ko failed" >&2; exit 1; }
work=/tmp/ktls-paths
mkdir -p "$work"
say() { echo "ktls-paths: $*" >&2; }

ip netns add kp-l
ip netns add kp-m
ip -n kp-l link set lo up
ip -n kp-m link set lo up
ip -n kp-m link set lo mtu 1500
ip netns add kp-a
ip netns add kp-b
ip netns add kp-c
ip netns add kp-d
for p in "kp-a kp-b 10.79.0" "kp-c kp-d 10.79.1"; do
	read -r x y net <<<"$p"
	ip link add "v-$x" netns "$x" type veth peer name "v-$y" netns "$y"
	ip -n "$x" addr add "$net.1/24" dev "v-$x"
	ip -n "$y" addr add "$net.2/24" dev "v-$y"
	for n in "$x" "$y"; do ip -n "$n" link set lo up; done
	ip -n "$x" link set "v-$x" up
	ip -n "$y" link set "v-$y" up
done
ip -n kp-c link set v-kp-c mtu 65535
ip -n kp-d link set v-kp-d mtu 65535

# path: ns-tx ns-rx addr
paths=(
	"lo - - 127.0.0.1"
	"lo-ns kp-l kp-l 127.0.0.1"
	"lo-1500 kp-m kp-m 127.0.0.1"
	"veth kp-a kp-b 10.79.0.2"
	"veth-64k kp-c kp-d 10.79.1.2"
)
inns() { if [ "$1" = - ]; then shift; "$@"; else ip netns exec "$@"; fi; }
# counters NS: InSegs, pure ACKs received (TCPPureAcks + TCPHPAcks), DelayedACKs
counters() {
	inns "$1" python3 - <<'EOF'
def table(path):
    lines = open(path).read().split("\n")
    d = {}
    for a, b in zip(lines[0::2], lines[1::2]):
        k, v = a.split(), b.split()
        for i in range(1, len(k)):
            d[k[0] + k[i]] = int(v[i])
    return d
s = table("/proc/net/snmp")
x = table("/proc/net/netstat")
print(s["Tcp:InSegs"], x["TcpExt:TCPPureAcks"] + x["TcpExt:TCPHPAcks"], x["TcpExt:DelayedACKs"])
EOF
}

res=$work/res
: >"$res"
for p in "${paths[@]}"; do
	read -r name ntx nrx addr <<<"$p"
	nsargs=()
	[ "$ntx" = - ] || nsargs=(--ns-tx "$ntx" --ns-rx "$nrx" --addr "$addr")
	for proto in tcp ktls; do
		m=$mib
		[ "$proto" = tcp ] && m=$((mib * 4))
		# (no "< <(...)": the guest's /dev has no fd directory)
		read -r i0 a0 d0 <<<"$(counters "$nrx")"
		if ! timeout 900 "$bin" stream --proto "$proto" --op write --wsize 16384 --mib "$m" \
			--reps "$reps" --label "$name:$proto" "${nsargs[@]}" >"$work/$name-$proto.log" 2>&1; then
			say "$name $proto failed: $(tail -n 2 "$work/$name-$proto.log" | tr '\n' ' ')"
			continue
		fi
		read -r i1 a1 d1 <<<"$(counters "$nrx")"
		# SUM label reps med min max txmed txmin txmax rxmed rxmin rxmax
		read -r _ _ _ med mn mx tx _ _ rx _ _ <<<"$(grep '^SUM ' "$work/$name-$proto.log")"
		# Segments that carried data into the receiver's namespace: all
		# in, less the pure ACKs (on loopback the sender shares the
		# namespace, and its ACKs come in too); one per skb, as TCP
		# built it (GSO skbs are not split on lo or veth).
		segs=$(( (i1 - i0) - (a1 - a0) ))
		[ "$segs" -gt 0 ] || segs=1
		echo "$name $proto $med $mn $mx $tx $rx $(( m * 1048576 * reps / segs )) $(( segs / reps )) $(( (d1 - d0) / reps ))" >>"$res"
		say "$name $proto: $med MiB/s"
	done
done

echo
echo "## Guest"
echo
echo "- kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs online; $mib MiB per kTLS run (TCP: $((mib * 4))), $reps runs per case"
echo "- tcp_rmem $(tr '\t' ' ' </proc/sys/net/ipv4/tcp_rmem), tcp_wmem $(tr '\t' ' ' </proc/sys/net/ipv4/tcp_wmem) (every namespace starts with these)"
for d in "kp-b v-kp-b" "kp-d v-kp-d"; do
	read -r n dv <<<"$d"
	echo "- $dv: $(ip -n "$n" -d link show "$dv" | grep -oE '(^| )(mtu|gso_max_size|gro_max_size|tso_max_size) [0-9]+' | tr '\n' ' ')"
done
echo "- lo: $(ip -d link show lo | grep -oE '(^| )(mtu|gso_max_size|tso_max_size) [0-9]+' | tr '\n' ' ')"
echo
echo "## Paths"
echo
echo "| path | case | MiB/s | sender CPU s/GiB | receiver CPU s/GiB | data bytes per TCP segment received | data segments per run | delayed ACKs per run |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
awk '{ printf "| %s | %s | %.1f (%.1f–%.1f) | %.1f | %.1f | %d | %d | %d |\n", $1, $2 == "tcp" ? "plain TCP" : "kTLS", $3, $4, $5, $6, $7, $8, $9, $10 }' "$res"

echo
echo "## /proc/crypto (ChaCha20 and Poly1305 entries)"
echo
echo '```'
awk '/^name/ { n = $3 } /^driver/ { d = $3 } /^priority/ { p = $3 } /^type/ { t = $3 }
	/^$/ { if (n ~ /chacha|poly1305|rfc7539/) printf "%-40s %-40s priority %s %s\n", n, d, p, t; n = "" }' /proc/crypto
echo '```'

if command -v perf >/dev/null; then
	echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
	echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
	for p in "lo - - 127.0.0.1" "veth kp-a kp-b 10.79.0.2"; do
		read -r name ntx nrx addr <<<"$p"
		nsargs=()
		[ "$ntx" = - ] || nsargs=(--ns-tx "$ntx" --ns-rx "$nrx" --addr "$addr")
		echo
		echo "## perf: kTLS 16 KiB writes over $name, whole guest"
		echo
		echo '```'
		if timeout 600 perf record -q -e cpu-clock -a -o "$work/perf-$name.data" -- \
			"$bin" stream --proto ktls --wsize 16384 --mib "$mib" --reps 1 "${nsargs[@]}" >/dev/null 2>&1; then
			perf report -q -i "$work/perf-$name.data" --stdio --sort sym 2>/dev/null | grep -v '^$' | head -n 30
			echo "tls_strp and copies:"
			perf report -q -i "$work/perf-$name.data" --stdio --sort sym 2>/dev/null |
				grep -E 'tls_strp|skb_copy_bits|copy_page|memcpy|rep_movs|tcp_read_sock|__alloc_pages|tls_decrypt|tls_rx' | head -n 12
		else
			echo "perf record failed"
		fi
		echo '```'
	done
fi
cat /proc/net/tls_stat 2>/dev/null | sed 's/^/tls_stat: /' >&2
exit 0
