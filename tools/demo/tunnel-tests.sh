#!/usr/bin/env bash
# tunnel-tests.sh [BIN_DIR]: ossuary-tunnel in front of an unmodified
# service (Debian's redis-server), end to end, as TAP.
#
#   redis-cli -> ossuary-tunnel -e ==(Ossuary)==> ossuary-tunnel -d -> redis-server
#
# On the host: loopback ports, --mode user (no module needed). In the
# test VM with ossuary.ko loaded (or TUNNEL_MODE=splice|copy): two
# network namespaces joined by a veth pair, a "client" one with redis-cli
# and the encrypting tunnel, a "server" one with the decrypting tunnel
# and redis-server, and the kernel record layer (splice by default).
#
# Cases: files both ways (SET then GET, SHA-256) over IPv4 and IPv6, the
# README's commands word for word (a config file for the encrypting end),
# half-close carried through (a service that answers after the client's
# FIN), 200 connections at once (redis-benchmark -c 200), no plaintext on
# the encrypted leg (tcpdump), an unauthorized client key refused and let
# in after SIGHUP reloads --authorized, and either tunnel end killed in
# the middle of a reply: the client sees a reset, never an end of file.
#
#   BIN_DIR  where ossuary-tunnel and ossuary-keygen are
#            (default: REPO/build/user/bin)
# Environment: TUNNEL_MODE (splice, copy or user; default splice with the
# module, user without), TUNNEL_MIB (file size, default 4),
# TUNNEL_CONNS (default 200), TUNNEL_KEEP=1 keeps the work directory.
# Under QEMU's emulation the handshakes dominate (both ends run one per
# connection in userspace): 200 of them take minutes in the debug VM, so
# a VM run may want fewer (TUNNEL_CONNS=50); the host run does 200 in
# about a second.
# Exit status: 0 when every case passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$repo/build/user/bin}" && pwd) || { echo "not ok 1 - tunnel: no tools directory ${1:-}"; exit 1; }
tun=$bin/ossuary-tunnel
keygen=$bin/ossuary-keygen
work=$(mktemp -d /tmp/ossuary-tunnel-tests.XXXXXX)
pids=()
netns=0
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$netns" = 1 ]; then
		ip netns del "$ns_c" 2>/dev/null
		ip netns del "$ns_s" 2>/dev/null
	fi
	[ -n "${TUNNEL_KEEP:-}" ] && { echo "# kept $work" >&2; return; }
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

n=0
failed=0
t_last=$(date +%s)
t_first=$t_last
ok() {
	n=$((n + 1))
	local now
	now=$(date +%s)
	if [ "$1" = 1 ]; then
		echo "ok $n - tunnel: $2 [$((now - t_last)) s]"
	else
		echo "not ok $n - tunnel: $2"
		failed=$((failed + 1))
		echo "# [$((now - t_last)) s]"
		for f in e.log d.log e2.log bad.log; do
			[ -s "$f" ] && tail -n 5 "$f" | sed "s/^/# $f: /"
		done
		[ -s bench.out ] && tr '\r' '\n' <bench.out | grep -v '^$' | tail -n 5 | sed "s/^/# bench.out: /"
	fi
	t_last=$now
}
skip_all() { echo "ok 1 - tunnel: # SKIP $1"; echo "1..1"; exit 0; }

for t in redis-server redis-cli redis-benchmark python3 tcpdump; do
	command -v "$t" >/dev/null || skip_all "$t is not installed (tools/install-deps installs it)"
done
[ -x "$tun" ] || { echo "not ok 1 - tunnel: no $tun"; exit 1; }

kernel=0
grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && kernel=1
mode=${TUNNEL_MODE:-}
[ -z "$mode" ] && { [ "$kernel" = 1 ] && mode=splice || mode=user; }
mib=${TUNNEL_MIB:-4}
nconns=${TUNNEL_CONNS:-200}
echo "# tunnel: mode $mode, files of $mib MiB, $nconns connections"

# ---- the two hosts ----
# In the VM (root, ip netns): namespaces; elsewhere loopback ports.
# Below the ephemeral range (32768 and up), where the many client
# connections below would otherwise take our listening ports first.
base=$((20000 + $$ % 12000))
ns_c=ot-client-$$
ns_s=ot-server-$$
if [ -n "${OSSUARY_VM:-}" ] && ip netns add "$ns_c" 2>/dev/null && ip netns add "$ns_s"; then
	netns=1
	ip link add otc type veth peer name ots
	ip link set otc netns "$ns_c"
	ip link set ots netns "$ns_s"
	ip -n "$ns_c" addr add 10.77.0.1/24 dev otc
	ip -n "$ns_s" addr add 10.77.0.2/24 dev ots
	ip -n "$ns_c" addr add fd77::1/64 dev otc nodad
	ip -n "$ns_s" addr add fd77::2/64 dev ots nodad
	for ns in "$ns_c" "$ns_s"; do
		ip -n "$ns" link set lo up
		# Small socket buffers: a reply of a few MiB is still in flight
		# when a tunnel end is killed.
		ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_rmem="4096 65536 262144" \
			net.ipv4.tcp_wmem="4096 65536 262144"
	done
	ip -n "$ns_c" link set otc up
	ip -n "$ns_s" link set ots up
	server=10.77.0.2
	server6=fd77::2
	dev=otc
	C=(ip netns exec "$ns_c")
	S=(ip netns exec "$ns_s")
else
	server=127.0.0.1
	server6=::1
	dev=lo
	C=()
	S=()
fi
rport=$base			# redis-server, in the server's namespace
dport=$((base + 1))		# the decrypting tunnel
eport=$((base + 2))		# the encrypting tunnel, IPv4
eport6=$((base + 3))		# ... over IPv6
bport=$((base + 4))		# an encrypting tunnel with a key not authorized
hport=$((base + 5))		# the half-close service
hdport=$((base + 6))		# its decrypting tunnel
heport=$((base + 7))		# its encrypting tunnel
echo "# tunnel: $([ "$netns" = 1 ] && echo "namespaces $ns_c, $ns_s over veth" || echo loopback), ports from $base"

# wait_log FILE PID: until the tunnel listens (or has died)
wait_log() {
	for _ in $(seq 1 100); do
		grep -q "listening on" "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
start_bg() {	# start_bg LOG CMD...: sets $last
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	last=$!
	pids+=("$last")
}

# The keys, as README.md's "Protect an existing service" makes them.
"$keygen" -f server.key >/dev/null 2>&1 && "$keygen" -f client.key >/dev/null 2>&1 &&
	"$keygen" -f other.key >/dev/null 2>&1 || { echo "not ok 1 - tunnel: ossuary-keygen failed"; exit 1; }
cp client.key.pub authorized_clients
fpr() {	# the SHA256: fingerprint the tunnel logs for a .pub file
	python3 - "$1" <<'EOF'
import base64, hashlib, sys
for line in open(sys.argv[1]):
    w = line.split()
    if w and len(w[0]) == 64:
        print("SHA256:" + base64.b64encode(hashlib.sha256(bytes.fromhex(w[0])).digest()).decode().rstrip("="))
        break
EOF
}

start_bg redis.log "${S[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
	--protected-mode no --dir "$work"
redis_pid=$last
for _ in $(seq 1 100); do
	[ "$("${S[@]}" timeout 120 redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
	sleep 0.1
done

# The decrypting end, beside the service ...
start_d() {
	: >d.log
	start_bg d.log "${S[@]}" "$tun" -d -s ":$dport" -t "127.0.0.1:$rport" --key server.key \
		--authorized authorized_clients --mode "$mode" --handshake-timeout 300
	d_pid=$last
	wait_log d.log "$d_pid"
}
# ... and the encrypting end, beside the client, from a config file.
cat >tunnel.conf <<EOF
# two tunnels to the same decrypting end, over IPv4 and IPv6
-e -s 127.0.0.1:$eport -t $server:$dport
-e -s [::1]:$eport6 -t [$server6]:$dport
EOF
start_e() {
	: >e.log
	start_bg e.log "${C[@]}" "$tun" -c tunnel.conf --key client.key --authorized server.key.pub \
		--mode "$mode" --handshake-timeout 300
	e_pid=$last
	wait_log e.log "$e_pid" && [ "$(grep -c "listening on" e.log)" = 2 ]
}
start_d
ok "$( [ $? = 0 ] && echo 1 || echo 0)" "decrypting end listens (-d, --mode $mode)"
start_e
ok "$( [ $? = 0 ] && echo 1 || echo 0)" "encrypting end listens on IPv4 and IPv6 from a config file (-c)"
ok "$( [ "$("${C[@]}" timeout 120 redis-cli -p "$eport" ping 2>&1)" = PONG ] && echo 1 || echo 0)" \
	"redis-cli PING through the tunnel: PONG"

# ---- files both ways ----
head -c $((mib * 1024 * 1024)) /dev/urandom >up.bin
head -c $((mib * 1024 * 1024 + 4321)) /dev/urandom >up6.bin
size=$(stat -c %s up.bin)
size6=$(stat -c %s up6.bin)
want=$(sha256sum <up.bin | cut -d' ' -f1)
want6=$(sha256sum <up6.bin | cut -d' ' -f1)
r=$("${C[@]}" timeout 120 redis-cli -p "$eport" -x set f <up.bin 2>&1)
# What the server stored came up through the tunnel; GET brings it down again.
stored=$("${S[@]}" timeout 120 redis-cli -p "$rport" --raw get f | head -c "$size" | sha256sum | cut -d' ' -f1)
back=$("${C[@]}" timeout 120 redis-cli -p "$eport" --raw get f | head -c "$size" | sha256sum | cut -d' ' -f1)
ok "$( [ "$r" = OK ] && [ "$stored" = "$want" ] && [ "$back" = "$want" ] && echo 1 || echo 0)" \
	"$mib MiB up (SET) and down (GET) over IPv4: SHA-256 intact both ways"
r=$("${C[@]}" timeout 120 redis-cli -h ::1 -p "$eport6" -x set f6 <up6.bin 2>&1)
back=$("${C[@]}" timeout 120 redis-cli -h ::1 -p "$eport6" --raw get f6 | head -c "$size6" | sha256sum | cut -d' ' -f1)
ok "$( [ "$r" = OK ] && [ "$back" = "$want6" ] && echo 1 || echo 0)" \
	"$mib MiB up and down over IPv6 ([::1] -> [$server6]): SHA-256 intact both ways"
sleep 0.3
# The GET over IPv6 was the last: its reply is the file and RESP's framing.
line=$(grep "encrypt .* closed cleanly" e.log | tail -n 1)
down=$(echo "$line" | sed -n 's/.* \([0-9]*\) bytes from the tunnel.*/\1/p')
ok "$(echo "$line" | grep -q "peer $(fpr server.key.pub) mode $mode: [0-9]* bytes to the tunnel" &&
	[ "${down:-0}" -gt "$size6" ] && [ "$down" -lt $((size6 + 32)) ] && echo 1 || echo 0)" \
	"one log line per connection: server key fingerprint, mode $mode, bytes each way ($down from the tunnel), 'closed cleanly'"
line=$(grep "decrypt .* closed cleanly" d.log | tail -n 1)
ok "$(echo "$line" | grep -q "peer $(fpr client.key.pub) mode $mode" && echo 1 || echo 0)" \
	"the decrypting end logs the client key's fingerprint and mode $mode"

# ---- half-close ----
# A service that reads to the end, then answers with what it got: the
# client's FIN must reach it (DISCONNECT(0) on the way), and the answer
# must come back after it.
cat >halfsvc.py <<'EOF'
import hashlib, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("listening on", sys.argv[1], flush=True)
def serve(c):
    h = hashlib.sha256(); n = 0
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b); n += len(b)
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode()); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
cat >halfcli.py <<'EOF'
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(open(sys.argv[2], "rb").read()); c.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = c.recv(65536)
    if not b: break
    out += b
print(out.decode().strip())
EOF
start_bg half.log "${S[@]}" python3 halfsvc.py "$hport"
wait_log half.log "$last"
start_bg hd.log "${S[@]}" "$tun" -d -s ":$hdport" -t "127.0.0.1:$hport" --key server.key \
	--authorized authorized_clients --mode "$mode"
wait_log hd.log "$last"
start_bg he.log "${C[@]}" "$tun" -e -s "127.0.0.1:$heport" -t "$server:$hdport" --key client.key \
	--authorized server.key.pub --mode "$mode"
wait_log he.log "$last"
got=$("${C[@]}" timeout 60 python3 halfcli.py "$heport" up.bin 2>&1)
ok "$( [ "$got" = "$size $want" ] && echo 1 || echo 0)" \
	"half-close: the client's FIN reaches the service, its answer comes back after it (got '$got')"

# ---- many at once ----
# redis-benchmark opens its connections first and keeps them all open to
# the end; when it is done it may reset some (a late reply unread), which
# the tunnel passes on as a reset. No connection may fail otherwise.
before=$(grep -c " decrypt .* mode $mode: " d.log)
t0=$(date +%s)
"${C[@]}" timeout 600 redis-benchmark -p "$eport" -c "$nconns" -n $((nconns * 2)) -t get -d 64 -q \
	>bench.out 2>&1
brc=$?
t1=$(date +%s)
# The ends log each connection as its close reaches them: give them time.
for _ in $(seq 1 60); do
	after=$(grep -c " decrypt .* mode $mode: " d.log)
	[ $((after - before)) -ge "$nconns" ] && break
	sleep 0.5
done
bad=$(grep -cE "integrity|truncated|protocol error|timed out|cannot" d.log e.log | awk -F: '{ s += $2 } END { print s }')
ok "$( [ "$brc" = 0 ] && tr '\r' '\n' <bench.out | grep -q "^GET: [0-9.]* requests per second" &&
	[ $((after - before)) -ge "$nconns" ] && [ "$bad" = 0 ] && echo 1 || echo 0)" \
	"redis-benchmark -c $nconns: $((after - before)) connections through both ends, redis-benchmark exit $brc in $((t1 - t0)) s, $bad failed ($(tr '\r' '\n' <bench.out | grep -E '^GET: [0-9.]* requests' | sed 's/, p50.*//'))"
mv bench.out bench.done

# ---- what the encrypted leg shows ----
marker=OSSUARY-TUNNEL-PLAINTEXT-MARKER-7f3a
for _ in $(seq 1 20000); do echo "$marker"; done >marker.txt
start_bg tcpdump.log "${C[@]}" tcpdump -i "$dev" -U -s 0 -w enc.pcap "tcp port $dport"
td=$last
start_bg tcpdump2.log "${S[@]}" tcpdump -i lo -U -s 0 -w plain.pcap "tcp port $rport"
td2=$last
sleep 1.5
r=$("${C[@]}" timeout 120 redis-cli -p "$eport" -x set m <marker.txt 2>&1)
back=$("${C[@]}" timeout 120 redis-cli -p "$eport" --raw get m | grep -c "$marker")
sleep 0.5
kill -INT "$td" "$td2"
wait "$td" "$td2" 2>/dev/null
enc_bytes=$(stat -c %s enc.pcap 2>/dev/null || echo 0)
ok "$( [ "$r" = OK ] && [ "$back" = 20000 ] && [ "$enc_bytes" -gt $((20000 * 37)) ] &&
	! grep -aq "$marker" enc.pcap && ! grep -aq "OSSUARY-TUNNEL" enc.pcap && echo 1 || echo 0)" \
	"tcpdump: $enc_bytes bytes captured on the encrypted leg, the marker never in them"
ok "$(grep -aq "$marker" plain.pcap && echo 1 || echo 0)" \
	"tcpdump: the marker is there on the plain leg behind the decrypting end (the capture works)"

# ---- keys ----
start_bg bad.log "${C[@]}" "$tun" -e -s "127.0.0.1:$bport" -t "$server:$dport" --key other.key \
	--authorized server.key.pub --mode "$mode"
wait_log bad.log "$last"
r=$("${C[@]}" timeout 30 redis-cli -p "$bport" ping 2>&1)
sleep 0.3
ok "$( [ "$r" != PONG ] && grep -q "refused: the peer's key is not authorized" d.log &&
	grep -q "peer $(fpr other.key.pub)" d.log && grep -q "refused by the peer" bad.log && echo 1 || echo 0)" \
	"a client key not in --authorized is refused (the decrypting end logs its fingerprint; redis-cli: '$r')"
cat other.key.pub >>authorized_clients
kill -HUP "$d_pid"
for _ in $(seq 1 30); do grep -q "reloaded 2 authorized keys" d.log && break; sleep 0.1; done
r=$("${C[@]}" timeout 30 redis-cli -p "$bport" ping 2>&1)
ok "$( [ "$r" = PONG ] && grep -q "reloaded 2 authorized keys" d.log && echo 1 || echo 0)" \
	"SIGHUP reloads --authorized: the key added is let in (redis-cli: '$r')"

# ---- killing either end mid-reply ----
# The client reads a little of a long reply, then waits for a tunnel end
# to be killed, then reads on. Redis never closes a connection after a
# reply, so an end of file here can only be a truncation the tunnel let
# through: it must be a reset.
head -c $((8 * 1024 * 1024)) /dev/urandom >big.bin
"${C[@]}" timeout 120 redis-cli -p "$eport" -x set big <big.bin >/dev/null 2>&1
cat >slowcli.py <<'EOF'
import os, socket, sys, time
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
c.connect(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
got = 0
while got < 65536:
    got += len(c.recv(65536))
open(sys.argv[2] + ".reading", "w").close()
while not os.path.exists(sys.argv[2] + ".killed"):
    time.sleep(0.05)
try:
    while True:
        b = c.recv(65536)
        if not b:
            print("eof after %d bytes" % got); break
        got += len(b)
        if got > 8 * 1024 * 1024 + 20:
            print("complete"); break
except ConnectionResetError:
    print("reset after %d bytes" % got)
EOF
kill_mid() {	# kill_mid NAME PID: sets $res
	rm -f "$1.reading" "$1.killed"
	"${C[@]}" timeout 120 python3 slowcli.py "$eport" "$1" >"$1.out" 2>&1 &
	local cp=$!
	for _ in $(seq 1 300); do [ -e "$1.reading" ] && break; sleep 0.1; done
	kill -KILL "$2"
	wait "$2" 2>/dev/null
	touch "$1.killed"
	wait "$cp"
	res=$(cat "$1.out")
}
kill_mid kill-d "$d_pid"
sleep 0.3
ok "$(echo "$res" | grep -q "^reset after" && grep -q "reset by the tunnel" e.log && echo 1 || echo 0)" \
	"decrypting end killed mid-reply: the client gets a reset, never an end of file ($res); the encrypting end logs 'reset by the tunnel'"
start_d
kill_mid kill-e "$e_pid"
ok "$(echo "$res" | grep -q "^reset after" && echo 1 || echo 0)" \
	"encrypting end killed mid-reply: the client gets a reset, never an end of file ($res)"
start_e

# ---- usage ----
"$tun" -e -s 127.0.0.1:1 2>u.err
ok "$( [ $? = 2 ] && grep -q "TARGET" u.err && echo 1 || echo 0)" "no -t: usage error, exit 2"
"$tun" -d -s :1 -t 127.0.0.1:2 --key server.key --mode user 2>u.err
ok "$( [ $? = 2 ] && grep -q -- "--authorized" u.err && echo 1 || echo 0)" \
	"-d without --authorized (or --any-client): usage error, exit 2"
if [ "$kernel" = 0 ]; then
	"$tun" -d -s 127.0.0.1:0 -t 127.0.0.1:2 --key server.key --any-client 2>u.err
	ok "$( [ $? = 3 ] && grep -q "module is not loaded" u.err && echo 1 || echo 0)" \
		"no module, no --mode user: exit 3 with a clear message"
fi

kill "${pids[@]}" 2>/dev/null
echo "# tunnel: $n cases in $(( $(date +%s) - t_first )) s"
echo "1..$n"
[ "$failed" = 0 ]
