#!/usr/bin/env bash
# tunnel-bench.sh [--release|--debug] [--mib N] [--conns N] [--reqs N] [--out FILE]
# tunnel-bench.sh --guest BIN_DIR OSSUARY_KO [--mib N] [--conns N] [--reqs N]
#
# Tunnels side by side, through the same two network namespaces joined by
# a veth pair (a client one and a server one, as tools/demo/tunnel-tests.sh):
#
#   tcp           no tunnel: redis-cli straight to redis-server over the veth
#   spiped        Debian's spiped -e / -d (userspace AES-256-CTR + HMAC)
#   stunnel       Debian's stunnel4, TLS 1.3 with a pre-shared key (OpenSSL)
#   ossuary-splice  ossuary-tunnel --mode splice (kernel records, splice(2))
#   ossuary-user  ossuary-tunnel --mode user (the library's record layer)
#
# Two loads, each with every tunnel:
#   bulk  one stream: GET of a value of N MiB (default 64) from redis-server;
#         MiB/s, and CPU seconds per GiB: the tunnel processes (user +
#         system, all of their threads) and the whole guest (every CPU's
#         busy time: tunnels, redis, softirq, the kernel's crypto)
#   rr    redis-benchmark -c CONNS (default 100) PING_INLINE, REQS requests
#         (default 20000): small requests and answers on many connections
#         at once; requests/s
# Ratios are against ossuary-splice. Without --guest: builds a copy of
# ossuary.ko for the VM's kernel (build/tunnel-bench/kmod) and runs itself
# with --guest in tools/testing/vm/run (--release by default, as `make
# bench`; --debug measures the debug kernel, whose numbers mean little).
# Writes a Markdown table to FILE (default build/tunnel-bench/results.md)
# and to stdout. Not a test: it fails only when a case cannot run.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
mib=64
conns=100
reqs=20000
variant=release
guest=0
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--guest) guest=1; bin=$2; ko=$3; shift 2 ;;
	--release|--debug) variant=${1#--} ;;
	--mib) mib=$2; shift ;;
	--conns) conns=$2; shift ;;
	--reqs) reqs=$2; shift ;;
	--out) out=$2; shift ;;
	-h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "tunnel-bench: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

if [ "$guest" = 0 ]; then
	set -e
	cd "$top"
	build=$top/build/tunnel-bench
	out=${out:-$build/results.md}
	mkdir -p "$build"
	for t in redis-server redis-benchmark spiped stunnel4; do
		command -v "$t" >/dev/null || { echo "tunnel-bench: $t is missing (tools/install-deps)" >&2; exit 1; }
	done
	nice make -s -C user O="$build/user" lib tools >"$build/build.log" 2>&1 ||
		{ tail -n 30 "$build/build.log" >&2; exit 1; }
	kdir=$(tools/testing/vm/build-kernel "$variant")
	rm -rf "$build/kmod"
	mkdir -p "$build/kmod"
	cp -r Kbuild kernel include "$build/kmod/"
	rm -f "$build/kmod/kernel/"*.o "$build/kmod/kernel/"*.ko
	nice make -s -C "$kdir" M="$build/kmod" modules >>"$build/build.log" 2>&1 ||
		{ tail -n 30 "$build/build.log" >&2; exit 1; }
	cpu=qemu64
	[ "$variant" = release ] && cpu=max
	t0=$(date +%s)
	tools/testing/vm/run "--$variant" --cpu "$cpu" --timeout 3000 -- \
		tools/bench/tunnel-bench.sh --guest "$build/user/bin" "$build/kmod/kernel/ossuary.ko" \
		--mib "$mib" --conns "$conns" --reqs "$reqs" >"$build/guest.out"
	{
		echo "# ossuary-tunnel against spiped and stunnel4"
		echo
		echo "- \`tools/bench/tunnel-bench.sh --$variant --mib $mib --conns $conns --reqs $reqs\`," \
			"$(date -u '+%Y-%m-%d %H:%M UTC'), guest run $(( $(date +%s) - t0 ))s"
		echo "- host: $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg);" \
			"QEMU TCG -cpu $cpu -smp 2, the $variant test kernel"
		echo
		grep -v '^tunnel-bench:' "$build/guest.out"
	} >"$out"
	cat "$out"
	exit 0
fi

# ---- in the guest ----
bin=$(cd "$bin" && pwd)
tun=$bin/ossuary-tunnel
work=$(mktemp -d /tmp/tunnel-bench.XXXXXX)
cd "$work" || exit 1
pids=()
say() { echo "tunnel-bench: $*" >&2; }
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del tb-c 2>/dev/null
	ip netns del tb-s 2>/dev/null
}
trap cleanup EXIT
kernel=1
grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp || insmod "$ko" 2>/dev/null ||
	{ say "cannot load $ko: ossuary-splice skipped"; kernel=0; }

ip netns add tb-c && ip netns add tb-s || exit 1
ip link add tbc type veth peer name tbs
ip link set tbc netns tb-c
ip link set tbs netns tb-s
ip -n tb-c addr add 10.78.0.1/24 dev tbc
ip -n tb-s addr add 10.78.0.2/24 dev tbs
for ns in tb-c tb-s; do ip -n "$ns" link set lo up; done
ip -n tb-c link set tbc up
ip -n tb-s link set tbs up
C=(ip netns exec tb-c)
S=(ip netns exec tb-s)

bg() { "$@" >>bg.log 2>&1 & last=$!; pids+=("$last"); }
wait_port() {	# wait_port NS_ARRAY_NAME PORT
	local -n ns=$1
	for _ in $(seq 1 200); do
		"${ns[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

bg "${S[@]}" redis-server --port 6379 --bind 0.0.0.0 --save "" --appendonly no --protected-mode no
wait_port S 6379 || { say "redis-server did not start"; exit 1; }
head -c $((mib * 1024 * 1024)) /dev/urandom >big.bin
"${S[@]}" redis-cli -x set big <big.bin >/dev/null

"$bin/ossuary-keygen" -f s.key >/dev/null 2>&1
"$bin/ossuary-keygen" -f c.key >/dev/null 2>&1
head -c 32 /dev/urandom >spiped.key
echo "bench:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >psk.txt
chmod 600 psk.txt
cat >st-c.conf <<EOF
foreground = yes
pid =
syslog = no
debug = 3
[b]
client = yes
accept = 127.0.0.1:16379
connect = 10.78.0.2:17379
PSKsecrets = $work/psk.txt
EOF
cat >st-s.conf <<EOF
foreground = yes
pid =
syslog = no
debug = 3
[b]
accept = 17379
connect = 127.0.0.1:6379
PSKsecrets = $work/psk.txt
EOF

# start NAME: the two ends of a tunnel; the client reaches redis at 127.0.0.1:16379
start() {
	tpids=()
	case "$1" in
	tcp) return 0 ;;
	spiped)
		bg "${S[@]}" spiped -F -d -s '[0.0.0.0]:17379' -t '[127.0.0.1]:6379' -k spiped.key -n 1000
		tpids+=("$last")
		bg "${C[@]}" spiped -F -e -s '[127.0.0.1]:16379' -t '[10.78.0.2]:17379' -k spiped.key -n 1000
		tpids+=("$last") ;;
	stunnel)
		bg "${S[@]}" stunnel4 st-s.conf
		tpids+=("$last")
		bg "${C[@]}" stunnel4 st-c.conf
		tpids+=("$last") ;;
	ossuary-*)
		bg "${S[@]}" "$tun" -d -s :17379 -t 127.0.0.1:6379 --key s.key --authorized c.key.pub \
			--mode "${1#ossuary-}" --handshake-timeout 120
		tpids+=("$last")
		bg "${C[@]}" "$tun" -e -s 127.0.0.1:16379 -t 10.78.0.2:17379 --key c.key \
			--authorized s.key.pub --mode "${1#ossuary-}" --handshake-timeout 120
		tpids+=("$last") ;;
	esac
	wait_port S 17379 && wait_port C 16379
}
stop() {
	for p in "${tpids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	tpids=()
}
# CPU seconds (user + system) of the tunnel processes, and of the guest
proc_cpu() {
	local t=0 p
	for p in "${tpids[@]}"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$t"
}
guest_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
hz=$(getconf CLK_TCK)

declare -A mbs cpu_t cpu_all rps
names=(tcp spiped stunnel ossuary-splice ossuary-user)
for name in "${names[@]}"; do
	[ "$name" = ossuary-splice ] && [ "$kernel" = 0 ] && continue
	say "$name"
	start "$name" || { say "$name did not start"; stop; continue; }
	port=16379
	host=127.0.0.1
	if [ "$name" = tcp ]; then host=10.78.0.2; port=6379; fi
	"${C[@]}" redis-cli -h "$host" -p "$port" ping >/dev/null	# warm up
	c0=$(proc_cpu); g0=$(guest_busy); t0=$(date +%s%N)
	got=$("${C[@]}" redis-cli -h "$host" -p "$port" --raw get big | head -c $((mib * 1024 * 1024)) | wc -c)
	t1=$(date +%s%N); c1=$(proc_cpu); g1=$(guest_busy)
	if [ "$got" != $((mib * 1024 * 1024)) ]; then
		say "$name: bulk GET returned $got bytes"
		mbs[$name]=fail
	else
		dt=$(( (t1 - t0) / 1000 ))
		mbs[$name]=$(awk -v m="$mib" -v us="$dt" 'BEGIN { printf "%.1f", m / (us / 1e6) }')
		cpu_t[$name]=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v m="$mib" 'BEGIN { printf "%.2f", c / hz / (m / 1024) }')
		cpu_all[$name]=$(awk -v c=$((g1 - g0)) -v hz="$hz" -v m="$mib" 'BEGIN { printf "%.2f", c / hz / (m / 1024) }')
	fi
	r=$("${C[@]}" redis-benchmark -h "$host" -p "$port" -c "$conns" -n "$reqs" -t ping_inline -q 2>&1 |
		tr '\r' '\n' | sed -n 's/^PING_INLINE: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
	rps[$name]=${r:-fail}
	stop
done

ratio() {	# ratio VALUE BASE
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'
}
base=ossuary-splice
echo "| tunnel | bulk MiB/s | vs splice | tunnel CPU s/GiB | guest CPU s/GiB | requests/s ($conns conns) | vs splice |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for name in "${names[@]}"; do
	echo "| $name | ${mbs[$name]:-fail} | $(ratio "${mbs[$name]:-0}" "${mbs[$base]:-0}") |" \
		"${cpu_t[$name]:--} | ${cpu_all[$name]:--} | ${rps[$name]:-fail} |" \
		"$(ratio "${rps[$name]:-0}" "${rps[$base]:-0}") |"
done
echo
echo "Bulk: one redis-cli GET of a $mib MiB value through the tunnel (client and"
echo "server in two network namespaces over veth). Tunnel CPU: user + system time"
echo "of both tunnel processes; guest CPU: every guest CPU's busy time (redis,"
echo "redis-cli, softirq and the kernel's crypto included). rr: redis-benchmark"
echo "-c $conns -n $reqs -t ping_inline. tcp is no tunnel at all: the ceiling."
