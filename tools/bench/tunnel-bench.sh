#!/usr/bin/env bash
# tunnel-bench.sh [--release|--debug] [--mib N] [--conns N] [--reqs N]
#                 [--conn-reqs N] [--reps N] [--no-profile] [--out FILE]
# tunnel-bench.sh --guest BIN_DIR OSSUARY_KO [the same options]
#
# Tunnels side by side in one guest, through two network namespaces
# joined by a veth pair, as tools/demo/tunnel-tests.sh sets them up: a
# client one (tb-c, 10.78.0.1) with the client and the encrypting end, a
# server one (tb-s, 10.78.0.2) with the decrypting end and redis-server.
#
#   tcp             no tunnel: the client straight to redis-server
#   spiped          Debian's spiped -e / -d (AES-256-CTR + HMAC-SHA256)
#   stunnel         Debian's stunnel4, TLS 1.3 with a pre-shared key
#                   (OpenSSL picks TLS_AES_128_GCM_SHA256)
#   ossuary-splice  ossuary-tunnel --mode splice (records in ossuary.ko,
#                   bytes moved with splice(2))
#   ossuary-user    ossuary-tunnel --mode user (the library's record layer)
#
# Three loads for each tunnel, in REPS rounds (default 3, the order of
# the tunnels rotating from round to round); medians, and min-max:
#   bulk  one GET of an N MiB value (default 16) from redis-server, by a
#         small client that reads it into one buffer: MiB/s, and CPU
#         seconds per GiB of the tunnel processes (user + system), of the
#         whole guest (every CPU's busy time), and "tunnel + kernel": the
#         whole guest's less plain TCP's in the same round, i.e. all that
#         the tunnel adds (its processes, softirq, workers, crypto,
#         wherever the kernel charged it)
#   rr    redis-benchmark -c CONNS (100) -n REQS (3000) -t ping_inline on
#         kept-alive connections: requests/s (the CONNS handshakes in it)
#   conn  redis-benchmark -c 10 -n CONN_REQS (60) -k 0 -t ping_inline: a
#         new connection, so a handshake, per request: connections/s
# The defaults are sized for a 2-core host shared with other emulated
# guests (under TCG a tunnel moves 1-10 MiB/s and a few hundred requests/s).
# Ratios are against the better of spiped and stunnel, number by number.
# Then (unless --no-profile) a perf cpu-clock profile of the whole guest
# during one GET of N/4 MiB through each tunnel.
#
# Without --guest: builds the tools and a copy of ossuary.ko for the VM's
# kernel in build/tunnel-bench/, runs itself with --guest under
# tools/testing/vm/run (--release by default, as `make bench`; --debug
# measures the debug kernel, whose numbers mean little), and writes the
# Markdown report to FILE (default build/tunnel-bench/results.md) and to
# stdout. Not a test: it fails only when a case cannot run.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
mib=16
conns=100
reqs=3000
creqs=60
reps=3
profile=1
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
	--conn-reqs) creqs=$2; shift ;;
	--reps) reps=$2; shift ;;
	--no-profile) profile=0 ;;
	--out) out=$2; shift ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "tunnel-bench: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
opts=(--mib "$mib" --conns "$conns" --reqs "$reqs" --conn-reqs "$creqs" --reps "$reps")
[ "$profile" = 1 ] || opts+=(--no-profile)

if [ "$guest" = 0 ]; then
	set -e
	cd "$top"
	build=$top/build/tunnel-bench
	out=${out:-$build/results.md}
	mkdir -p "$build"
	for t in redis-server redis-cli redis-benchmark spiped stunnel4 python3; do
		command -v "$t" >/dev/null || { echo "tunnel-bench: $t is missing (tools/install-deps)" >&2; exit 1; }
	done
	echo "tunnel-bench: building the tools and ossuary.ko in $build" >&2
	nice make -s -C user O="$build/user" lib tools >"$build/build.log" 2>&1 ||
		{ tail -n 30 "$build/build.log" >&2; exit 1; }
	kdir=$(tools/testing/vm/build-kernel "$variant")
	# The module from a copy of the sources only, so that nothing built
	# for another kernel in kernel/ is picked up or overwritten.
	rm -rf "$build/kmod"
	mkdir -p "$build/kmod/kernel" "$build/kmod/include/uapi/linux"
	cp -p Kbuild "$build/kmod/"
	cp -p kernel/Kbuild kernel/*.c kernel/*.h "$build/kmod/kernel/"
	rm -f "$build/kmod/kernel/"*.mod.c
	cp -p include/uapi/linux/ossuary.h "$build/kmod/include/uapi/linux/"
	env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES nice make -s -C "$kdir" M="$build/kmod" modules \
		>>"$build/build.log" 2>&1 || { tail -n 30 "$build/build.log" >&2; exit 1; }
	cpu=qemu64
	[ "$variant" = release ] && cpu=max
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s)
	echo "tunnel-bench: booting the $variant kernel (-cpu $cpu); this takes minutes under TCG" >&2
	set +e
	tools/testing/vm/run "--$variant" --cpu "$cpu" --timeout 3000 -- \
		tools/bench/tunnel-bench.sh --guest "$build/user/bin" "$build/kmod/kernel/ossuary.ko" \
		"${opts[@]}" >"$build/guest.out"
	vm_rc=$?
	set -e
	grep '^tunnel-bench:' "$build/guest.out" >&2 || true
	{
		echo "# ossuary-tunnel against spiped and stunnel4"
		echo
		echo "- \`tools/bench/tunnel-bench.sh --$variant ${opts[*]}\`," \
			"$(date -u '+%Y-%m-%d %H:%M UTC'), guest run $(( $(date +%s) - t0 ))s"
		echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //');" \
			"load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
		echo "- $(qemu-system-x86_64 --version | head -n 1), TCG (no KVM), -cpu $cpu -smp 2, the $variant test kernel"
		echo "- tree: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
		# kernel messages share the guest console with the tables
		klog='^\[ *[0-9]+\.[0-9]+\] '
		grep -Ev "^tunnel-bench:|$klog" "$build/guest.out"
		if grep -Eq "$klog" "$build/guest.out"; then
			echo
			echo "Kernel messages on the guest console during the run:"
			echo
			echo '```'
			grep -E "$klog" "$build/guest.out"
			echo '```'
		fi
	} >"$out"
	cat "$out"
	[ "$vm_rc" = 0 ] || echo "tunnel-bench: the guest run failed (exit $vm_rc); report so far in $out" >&2
	exit "$vm_rc"
fi

# ---- in the guest ----
bin=$(cd "$bin" && pwd)
tun=$bin/ossuary-tunnel
work=$(mktemp -d /tmp/tunnel-bench.XXXXXX)
cd "$work" || exit 1
pids=()
tpids=()
rc=0
say() { echo "tunnel-bench: $*" >&2; }
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del tb-c 2>/dev/null
	ip netns del tb-s 2>/dev/null
	cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
kernel=1
grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || insmod "$ko" 2>/dev/null ||
	{ say "cannot load $ko: ossuary-splice skipped"; kernel=0; }

ip netns del tb-c 2>/dev/null	# left by a run that was killed
ip netns del tb-s 2>/dev/null
ip netns add tb-c && ip netns add tb-s || exit 1
ip link add tbc type veth peer name tbs
ip link set tbc netns tb-c
ip link set tbs netns tb-s
ip -n tb-c addr add 10.78.0.1/24 dev tbc
ip -n tb-s addr add 10.78.0.2/24 dev tbs
for n in tb-c tb-s; do ip -n "$n" link set lo up; done
ip -n tb-c link set tbc up
ip -n tb-s link set tbs up
C=(ip netns exec tb-c)
S=(ip netns exec tb-s)

bg() { "$@" >>"${bglog:-bg.log}" 2>&1 & last=$!; pids+=("$last"); }
# listening NS_ARRAY_NAME PORT: until something listens on PORT there
# (asked of the kernel: a test connection would start a handshake)
listening() {
	local -n nsx=$1
	for _ in $(seq 1 300); do
		[ -n "$("${nsx[@]}" ss -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	return 1
}

bg "${S[@]}" redis-server --port 6379 --bind 0.0.0.0 --save "" --appendonly no \
	--protected-mode no --dir "$work"
listening S 6379 || { say "redis-server did not start"; exit 1; }
bytes=$((mib * 1024 * 1024))
pmib=$(( mib / 4 > 0 ? mib / 4 : 1 ))
head -c "$bytes" /dev/urandom >big.bin
head -c $((pmib * 1024 * 1024)) /dev/urandom >prof.bin
"${S[@]}" redis-cli -x set big <big.bin >/dev/null
"${S[@]}" redis-cli -x set prof <prof.bin >/dev/null
rm -f big.bin prof.bin

# The bulk client: GET KEY, the reply read into one 1 MiB buffer over
# and over (no copy, no parsing but the header), timed from the request
# to the last byte. Prints: bytes seconds tunnel_ticks guest_busy_ticks.
cat >bulk.py <<'EOF'
import socket, sys, time
host, port, key, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
pids = sys.argv[5:]
def ticks():
    t = 0
    for p in pids:
        try:
            f = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t
def busy():
    f = open("/proc/stat").readline().split()
    return int(f[1]) + int(f[2]) + int(f[3]) + int(f[6]) + int(f[7])
head = b"$%d\r\n" % size
want = len(head) + size + 2
s = socket.create_connection((host, port))
buf = bytearray(1 << 20)
c0, g0, t0 = ticks(), busy(), time.monotonic()
s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
got = 0
first = b""
while got < want:
    n = s.recv_into(buf)
    if n == 0:
        break
    if len(first) < len(head):
        first += bytes(buf[:len(head) - len(first)])
    got += n
t1, c1, g1 = time.monotonic(), ticks(), busy()
ok = got == want and first == head
print("%d %.6f %d %d" % (got - len(head) - 2 if ok else -1, t1 - t0, c1 - c0, g1 - g0))
EOF

"$bin/ossuary-keygen" -f s.key >/dev/null 2>&1
"$bin/ossuary-keygen" -f c.key >/dev/null 2>&1
head -c 32 /dev/urandom >spiped.key
echo "bench:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >psk.txt
chmod 600 psk.txt
for side in c s; do
	{
		echo "foreground = yes"
		echo "pid ="
		echo "syslog = no"
		echo "debug = 3"
		echo "[b]"
		if [ "$side" = c ]; then
			echo "client = yes"
			echo "accept = 127.0.0.1:16379"
			echo "connect = 10.78.0.2:17379"
		else
			echo "accept = 17379"
			echo "connect = 127.0.0.1:6379"
		fi
		echo "PSKsecrets = $work/psk.txt"
	} >"st-$side.conf"
done

# start NAME: both ends of a tunnel; the client reaches redis at
# 127.0.0.1:16379 in tb-c, the decrypting end listens on 17379 in tb-s
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
	listening S 17379 && listening C 16379
}
stop() {
	local p
	for p in "${tpids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	tpids=()
}
endpoint() {	# endpoint NAME: sets host and port the client uses
	if [ "$1" = tcp ]; then host=10.78.0.2; port=6379; else host=127.0.0.1; port=16379; fi
}
rb() {	# rb ARGS...: redis-benchmark -q through the tunnel; prints requests/s
	"${C[@]}" timeout 900 redis-benchmark -h "$host" -p "$port" -t ping_inline -q "$@" 2>&1 |
		tr '\r' '\n' | sed -n 's/^PING_INLINE: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1
}
hz=$(getconf CLK_TCK)

names=(tcp spiped stunnel ossuary-splice ossuary-user)
[ "$kernel" = 1 ] || names=(tcp spiped stunnel ossuary-user)
nn=${#names[@]}
results=$work/results
: >"$results"
for rep in $(seq 1 "$reps"); do
	for i in $(seq 0 $((nn - 1))); do
		name=${names[$(( (i + rep - 1) % nn ))]}
		t0=$(date +%s)
		if ! start "$name"; then
			say "$name did not start: $(tail -n 3 bg.log | tr '\n' ' ')"
			stop
			rc=1
			continue
		fi
		endpoint "$name"
		"${C[@]}" timeout 300 redis-cli -h "$host" -p "$port" ping >/dev/null	# one handshake, not timed
		# (no "< <(...)": the guest's /dev has no fd directory)
		line=$("${C[@]}" timeout 900 python3 bulk.py "$host" "$port" big "$bytes" "${tpids[@]}")
		read -r got secs tt gt <<<"$line"
		if [ "${got:-}" != "$bytes" ]; then
			say "$name: bulk GET returned ${got:-nothing} of $bytes bytes"
			rc=1
			mb=- tc=- gc=-
		else
			mb=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.3f", b / 1048576 / s }')
			tc=$(awk -v t="$tt" -v hz="$hz" -v b="$bytes" 'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')
			gc=$(awk -v t="$gt" -v hz="$hz" -v b="$bytes" 'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')
		fi
		r=$(rb -c "$conns" -n "$reqs")
		k=$(rb -c 10 -n "$creqs" -k 0)
		[ -n "$r" ] && [ -n "$k" ] || { say "$name: redis-benchmark failed"; rc=1; }
		echo "$name $rep $mb $tc $gc ${r:--} ${k:--}" >>"$results"
		stop
		say "round $rep: $name done in $(( $(date +%s) - t0 ))s ($mb MiB/s, ${r:--} req/s, ${k:--} conn/s)"
	done
done

# ---- the report ----
echo
echo "## Guest"
echo
echo "- kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs online, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
flags=""
for f in aes pclmulqdq avx avx2 sha_ni; do
	grep -m1 '^flags' /proc/cpuinfo | grep -qw "$f" && flags="$flags $f"
done
echo "- CPU flags that the ciphers use:${flags:- none}"
echo "- $(spiped -v 2>&1 | head -n 1), $(stunnel4 -version 2>&1 | grep -m1 '^stunnel'), $(stunnel4 -version 2>&1 | grep -m1 '^Running' | sed 's/^Running  *//'), $(redis-server --version | cut -d' ' -f1-3)"
echo "- veth MTU $(ip -n tb-c -o link show tbc | sed -n 's/.* mtu \([0-9]*\).*/\1/p'), tcp_rmem $(cat /proc/sys/net/ipv4/tcp_rmem | tr '\t' ' '), tcp_wmem $(cat /proc/sys/net/ipv4/tcp_wmem | tr '\t' ' ')"
echo
echo "## Results"
echo
echo "Median (min–max) of $reps rounds. Bulk: one GET of a $mib MiB value."
echo "CPU in seconds per GiB moved; \"tunnel + kernel\" is the whole guest's"
echo "CPU less plain TCP's in the same round. rr: redis-benchmark -c $conns"
echo "-n $reqs PING_INLINE; conn: -c 10 -n $creqs -k 0 (a handshake per request)."
echo
awk -v names="${names[*]}" '
function med(k, n,    i, j, t, a) {
	m = 0
	for (i = 1; i <= n; i++) if (val[k, i] != "-" && val[k, i] != "") a[++m] = val[k, i] + 0
	if (m == 0) { lo = hi = ""; return "" }
	for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	lo = a[1]; hi = a[m]
	return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function cell(k, n, fmt,    v) {
	v = med(k, n)
	if (v == "") return "–"
	if (lo == hi) return sprintf(fmt, v)
	return sprintf(fmt " (" fmt "–" fmt ")", v, lo, hi)
}
{
	# name rep mib/s tunnel_s/GiB guest_s/GiB req/s conn/s
	r = $2; if (r > reps) reps = r
	val[$1 ":mb", r] = $3; val[$1 ":tc", r] = $4; val[$1 ":gc", r] = $5
	val[$1 ":rr", r] = $6; val[$1 ":cn", r] = $7
}
END {
	n = split(names, nm, " ")
	# tunnel + kernel: guest CPU less plain TCP guest CPU, round by round
	for (i = 1; i <= n; i++) for (r = 1; r <= reps; r++) {
		g = val[nm[i] ":gc", r]; b = val["tcp:gc", r]
		val[nm[i] ":tk", r] = (g == "-" || g == "" || b == "-" || b == "") ? "-" : g - b
	}
	print "| tunnel | bulk MiB/s | tunnel processes CPU s/GiB | whole guest CPU s/GiB | tunnel + kernel CPU s/GiB | MiB per tunnel + kernel CPU-second | requests/s (" conns " conns) | new connections/s |"
	print "|---|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= n; i++) {
		t = nm[i]
		tk = med(t ":tk", reps)
		per = (t != "tcp" && tk != "" && tk > 0) ? sprintf("%.1f", 1024 / tk) : "–"
		printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", t, cell(t ":mb", reps, "%.1f"),
			cell(t ":tc", reps, "%.1f"), cell(t ":gc", reps, "%.1f"),
			t == "tcp" ? "0 (the baseline)" : cell(t ":tk", reps, "%.1f"), per,
			cell(t ":rr", reps, "%.0f"), cell(t ":cn", reps, "%.1f")
		M[t, "mb"] = med(t ":mb", reps); M[t, "tk"] = tk; M[t, "gc"] = med(t ":gc", reps)
		M[t, "rr"] = med(t ":rr", reps); M[t, "cn"] = med(t ":cn", reps)
	}
	# the better of spiped and stunnel, number by number
	split("mb rr cn", up, " "); split("tk gc", down, " ")
	for (i in up) { k = up[i]; a = M["spiped", k]; b = M["stunnel", k]
		best[k] = (a != "" && (b == "" || a + 0 >= b + 0)) ? a : b; who[k] = best[k] == a ? "spiped" : "stunnel" }
	for (i in down) { k = down[i]; a = M["spiped", k]; b = M["stunnel", k]
		best[k] = (a != "" && (b == "" || a + 0 <= b + 0)) ? a : b; who[k] = best[k] == a ? "spiped" : "stunnel" }
	print ""
	print "Against the better of spiped and stunnel for each number (which one in"
	print "brackets); per CPU is the better one'\''s tunnel + kernel CPU per GiB"
	print "divided by this one'\''s. Goal: per CPU ≥ 2×, requests/s > 1×."
	print ""
	print "| ossuary-tunnel | bulk MiB/s | bulk per CPU (tunnel + kernel) | bulk per CPU (whole guest) | requests/s | new connections/s | goal met? |"
	print "|---|---:|---:|---:|---:|---:|---|"
	for (i = 1; i <= n; i++) {
		t = nm[i]
		if (t !~ /^ossuary-/) continue
		x1 = ratio(M[t, "mb"], best["mb"]); x2 = ratio(best["tk"], M[t, "tk"])
		x3 = ratio(best["gc"], M[t, "gc"]); x4 = ratio(M[t, "rr"], best["rr"]); x5 = ratio(M[t, "cn"], best["cn"])
		goal = (x2 != "" && x2 >= 2 ? "per CPU yes" : "per CPU no") ", " (x4 != "" && x4 > 1 ? "requests/s yes" : "requests/s no")
		printf "| %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s |\n", t,
			fx(x1), who["mb"], fx(x2), who["tk"], fx(x3), who["gc"], fx(x4), who["rr"], fx(x5), who["cn"], goal
	}
}
function ratio(a, b) { return (a != "" && b != "" && a + 0 > 0 && b + 0 > 0) ? a / b : "" }
function fx(x) { return x == "" ? "–" : sprintf("%.2f×", x) }
' conns="$conns" reps="$reps" "$results"
echo
echo "Raw rounds (tunnel round MiB/s tunnel-CPU guest-CPU req/s conn/s):"
echo
echo '```'
cat "$results"
echo '```'

if [ "$profile" = 1 ] && command -v perf >/dev/null; then
	echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
	echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
	echo
	echo "## Where the time goes: perf cpu-clock, whole guest, one GET of $pmib MiB"
	for name in "${names[@]}"; do
		[ "$name" = tcp ] && continue
		start "$name" || { say "$name did not start for the profile"; stop; continue; }
		endpoint "$name"
		"${C[@]}" timeout 300 redis-cli -h "$host" -p "$port" ping >/dev/null
		echo
		echo "### $name"
		echo
		echo '```'
		if timeout 600 perf record -q -e cpu-clock -a -o "perf-$name.data" -- \
			"${C[@]}" python3 bulk.py "$host" "$port" prof $((pmib * 1024 * 1024)) >/dev/null 2>"perf-$name.log"; then
			echo "by process and object:"
			perf report -q -i "perf-$name.data" --stdio --sort comm,dso 2>/dev/null | grep -v '^$' | head -n 12
			echo "by function:"
			perf report -q -i "perf-$name.data" --stdio --sort dso,sym 2>/dev/null | grep -v '^$' | head -n 22
		else
			echo "perf record failed: $(tail -n 2 "perf-$name.log" | tr '\n' ' ')"
		fi
		echo '```'
		stop
	done
fi
exit "$rc"
