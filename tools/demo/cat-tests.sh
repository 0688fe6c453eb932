#!/usr/bin/env bash
# cat-tests.sh [BIN_DIR]: ossuary-cat end to end over loopback, as TAP.
#
# Pairs of ossuary-cat processes on 127.0.0.1 and ::1: transfers, and
# every documented exit status (refused, untrusted, changed key, no
# module, connection lost, truncation, usage). Runs on the host (the
# userspace record layer; the no-module statuses) and in the test VM
# with ossuary.ko loaded, where the same cases also run with the kernel
# record layer on one or both sides.
#
#   BIN_DIR  where ossuary-cat and ossuary-keygen are
#            (default: REPO/build/user/bin)
# Environment: CAT_TESTS_KIB, size of the file sent (default 1024).
# Exit status: 0 when every case passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$repo/build/user/bin}" && pwd) || { echo "not ok 1 - ossuary-cat: no tools directory ${1:-}"; exit 1; }
cat=$bin/ossuary-cat
keygen=$bin/ossuary-keygen
work=$(mktemp -d /tmp/ossuary-cat-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n - ossuary-cat: $2"
	else
		echo "not ok $n - ossuary-cat: $2"
		failed=$((failed + 1))
		for f in srv.err cli.err; do
			[ -s "$f" ] && sed "s/^/# $f: /" "$f"
		done
	fi
}

kernel=0
grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && kernel=1
"$keygen" -f a.key >/dev/null 2>&1 && "$keygen" -f b.key >/dev/null 2>&1 &&
	"$keygen" -f c.key >/dev/null 2>&1 || { echo "not ok 1 - ossuary-keygen failed"; exit 1; }
# 1 MiB: 64 records, enough to cross record and segment boundaries, and
# quick under emulation with the debug kernel (CAT_TESTS_KIB to change it).
head -c $((${CAT_TESTS_KIB:-1024} * 1024)) /dev/urandom >f.bin

# serve HOST ARGS...: an ossuary-cat listener in the background (pid in
# sp, standard error in srv.err) on the port in FIXED_PORT, or else on
# one the kernel picks (port 0: no clash with anything else running on
# this machine); sets port once it listens. A listener that gives up
# before listening leaves port=1, where nothing listens.
serve() {
	local host=$1 want=${FIXED_PORT:-0}
	shift
	: >srv.err
	# <&0: a command put in the background would otherwise read /dev/null
	"$cat" -l "$host" "$want" "$@" <&0 2>srv.err &
	sp=$!
	for _ in $(seq 1 300); do	# until it listens (or has given up)
		port=$(sed -n 's/.*listening on \[.*\]:\([0-9]*\)$/\1/p' srv.err | head -n 1)
		[ -n "$port" ] && return 0
		kill -0 "$sp" 2>/dev/null || break
		sleep 0.1
	done
	port=1
}

# pair HOST SERVER_ARGS CLIENT_ARGS: runs both, sets src and crc
pair() {
	# shellcheck disable=SC2086
	serve "$1" -v $2 </dev/null >srv.out
	# shellcheck disable=SC2086
	timeout 120 "$cat" "$1" "$port" $3 </dev/null >cli.out 2>cli.err
	crc=$?
	wait "$sp"
	src=$?
}
is() { [ "$src" = "$1" ] && [ "$crc" = "$2" ] && echo 1 || echo 0; }

# Record layer per side: u(serspace) or k(ernel); kernel ones need the module.
modes=(uu)
[ "$kernel" = 1 ] && modes+=(kk ku uk)
for m in "${modes[@]}"; do
	sm=; cm=
	[ "${m:0:1}" = u ] && sm=--userspace
	[ "${m:1:1}" = u ] && cm=--userspace
	label="server ${sm:---kernel}, client ${cm:---kernel}"
	rm -f o.bin
	pair 127.0.0.1 "--key b.key --authorized a.key.pub --recv o.bin $sm" \
		"-v --key a.key --authorized b.key.pub --send f.bin $cm"
	ok "$( [ "$(is 0 0)" = 1 ] && cmp -s f.bin o.bin && echo 1 || echo 0)" \
		"mutual authentication, --send/--recv, file intact ($label; got $src/$crc)"
	# A client whose key the server refuses learns it was refused (4), in
	# either mode: userspace reads DISCONNECT(2), the kernel hands it over as a cmsg.
	pair 127.0.0.1 "--key b.key --authorized a.key.pub --recv o.bin $sm" \
		"--key c.key --authorized b.key.pub --send f.bin $cm"
	ok "$(is 5 4)" "client key not authorized: server 5, client 4 ($label; got $src/$crc)"
done

pair 127.0.0.1 "--key b.key --recv o.bin --userspace" "--key a.key --authorized c.key.pub --send f.bin --userspace"
ok "$(is 4 5)" "server key not in the client's --authorized: server 4, client 5 (got $src/$crc)"
pair 127.0.0.1 "--key b.key --recv o.bin --userspace" "--known-hosts kh --send f.bin --userspace"
ok "$(is 4 5)" "new host key, no terminal, no --accept-new: refused, server 4, client 5 (got $src/$crc)"
pair 127.0.0.1 "--key b.key --recv o.bin --userspace" "--known-hosts kh --accept-new --send f.bin --userspace"
ok "$( [ "$(is 0 0)" = 1 ] && grep -q "^127.0.0.1:$port " kh && echo 1 || echo 0)" \
	"--accept-new trusts a new host and records it in --known-hosts (got $src/$crc)"
# known_hosts names host and port: the next listeners take the same port
FIXED_PORT=$port
pair 127.0.0.1 "--key b.key --recv o.bin --userspace" "--known-hosts kh --send f.bin --userspace"
ok "$(is 0 0)" "a known host is accepted without --accept-new (got $src/$crc)"
pair 127.0.0.1 "--key c.key --recv o.bin --userspace" "--known-hosts kh --accept-new --send f.bin --userspace"
ok "$( [ "$(is 4 6)" = 1 ] && grep -q "HAS CHANGED" cli.err && echo 1 || echo 0)" \
	"a changed host key is refused even with --accept-new: server 4, client 6 (got $src/$crc)"
unset FIXED_PORT

if [ "$kernel" = 0 ]; then
	pair 127.0.0.1 "--recv o.bin" "--accept-new --send f.bin"
	ok "$( [ "$(is 3 3)" = 1 ] && grep -q "module is not loaded" cli.err && echo 1 || echo 0)" \
		"no module, no --userspace: both exit 3 with a clear message (got $src/$crc)"
	pair 127.0.0.1 "--recv o.bin" "--accept-new --send f.bin --userspace"
	ok "$(is 3 7)" "no module at the server: server 3, the userspace client sees the connection lost, 7 (got $src/$crc)"
fi

# Truncation: the sender dies in the middle; the receiver must not call it an end.
mkfifo feed drain
for sm in --userspace ""; do
	[ -z "$sm" ] && [ "$kernel" = 0 ] && continue
	rm -f o.bin
	# shellcheck disable=SC2086
	serve 127.0.0.1 --recv o.bin $sm
	(head -c 100000 f.bin; exec sleep 60) >feed &
	feeder=$!
	# shellcheck disable=SC2086
	"$cat" 127.0.0.1 "$port" --accept-new $sm <feed 2>/dev/null &
	cp=$!
	# Killed once the receiver holds some of the data: mid-stream, not
	# mid-handshake, however slow the machine.
	for _ in $(seq 1 600); do
		[ -s o.bin ] && break
		sleep 0.1
	done
	kill -KILL "$cp"
	wait "$cp" 2>/dev/null
	wait "$sp"
	src=$?
	kill "$feeder" 2>/dev/null
	wait 2>/dev/null
	# A killed userspace sender leaves a FIN without DISCONNECT(0): truncated
	# (8). A killed kernel-mode sender resets the connection (ossuary-cat
	# closes abortively until it has finished): connection lost (7).
	want=8
	[ -z "$sm" ] && want=7
	ok "$([ "$src" = "$want" ] && echo 1 || echo 0)" \
		"sender killed mid-stream: the receiver never reports success, exits $want (${sm:---kernel}; got $src)"
done

# Connection lost: the receiver dies in the middle.
rm -f got1000
(head -c 1000 >/dev/null; : >got1000; exec sleep 60) <drain &
reader=$!
serve 127.0.0.1 --userspace >drain
yes | "$cat" 127.0.0.1 "$port" --accept-new --userspace >/dev/null 2>cli.err &
cp=$!
for _ in $(seq 1 600); do	# killed once data flows, however slow the machine
	[ -e got1000 ] && break
	sleep 0.1
done
kill -KILL "$sp"; wait "$sp" 2>/dev/null
wait "$cp"
crc=$?
kill "$reader" 2>/dev/null
wait 2>/dev/null
ok "$([ "$crc" = 7 ] && echo 1 || echo 0)" "receiver killed mid-stream: the sender exits 7, connection lost (got $crc)"

"$cat" 127.0.0.1 1 --userspace </dev/null 2>cli.err
crc=$?
ok "$([ "$crc" = 7 ] && echo 1 || echo 0)" "nothing listening: exit 7 (got $crc)"
"$cat" --no-such-option 2>/dev/null
crc=$?
ok "$([ "$crc" = 2 ] && echo 1 || echo 0)" "bad option: exit 2 (got $crc)"
"$cat" --help | grep -q "Exit status"
ok "$((1 - $?))" "--help documents the exit statuses"

# ---- usability: ports, --version, the module check, foreign peers ----

# now_ms: milliseconds since the epoch
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

for p in 70000 abc 0 -1 65536 " 80" 8080x; do
	"$cat" --userspace -- 127.0.0.1 "$p" </dev/null 2>cli.err
	crc=$?
	ok "$( [ "$crc" = 2 ] && grep -q "bad port" cli.err && echo 1 || echo 0)" \
		"port '$p' to connect to: a usage error, exit 2 (got $crc)"
done
"$cat" --userspace -l 127.0.0.1 70000 </dev/null 2>srv.err
src=$?
ok "$( [ "$src" = 2 ] && grep -q "bad port" srv.err && echo 1 || echo 0)" \
	"listening port 70000: a usage error, exit 2 (got $src)"

want_version=$(sed -n 's/^VERSION := //p' "$repo/user/Makefile")
got_version=$("$cat" --version 2>/dev/null)
ok "$( [ $? = 0 ] && [ -n "$want_version" ] && [ "$got_version" = "ossuary-cat $want_version" ] &&
	echo 1 || echo 0)" "--version prints 'ossuary-cat $want_version' (got '$got_version')"
"$cat" --help | grep -q -- "--version"
ok "$((1 - $?))" "--help lists --version"

# Port 0: the listener says which port it got, without -v, and it works.
: >srv.err
echo from-client-0 >in0
"$cat" --userspace -l 127.0.0.1 0 </dev/null >s0.out 2>srv.err &
sp=$!
p0=
for _ in $(seq 1 50); do
	p0=$(sed -n 's/.*listening on \[127\.0\.0\.1\]:\([0-9]*\)$/\1/p' srv.err)
	[ -n "$p0" ] && break
	sleep 0.1
done
crc=99
[ -n "$p0" ] && { timeout 60 "$cat" --userspace --accept-new 127.0.0.1 "$p0" <in0 >/dev/null 2>cli.err; crc=$?; }
[ -z "$p0" ] && kill "$sp" 2>/dev/null
wait "$sp"
src=$?
ok "$( [ -n "$p0" ] && [ "$p0" != 0 ] && [ "$(is 0 0)" = 1 ] && [ "$(cat s0.out)" = from-client-0 ] &&
	echo 1 || echo 0)" "listener on port 0 prints the port it got without -v, a client uses it (port ${p0:-none}; got $src/$crc)"

if [ "$kernel" = 0 ]; then
	# No module: a kernel-mode listener refuses before it listens, a
	# kernel-mode client before it connects (nothing listens there: 3, not 7).
	t0=$(now_ms)
	timeout 20 "$cat" -l 127.0.0.1 0 </dev/null >/dev/null 2>srv.err
	src=$?
	dt=$(( $(now_ms) - t0 ))
	ok "$( [ "$src" = 3 ] && ! grep -q "listening on" srv.err && grep -q "module is not loaded" srv.err &&
		[ "$dt" -lt 5000 ] && echo 1 || echo 0)" \
		"no module: the listener exits 3 at once, without listening (got $src in $dt ms)"
	"$cat" 127.0.0.1 1 </dev/null 2>cli.err
	crc=$?
	ok "$( [ "$crc" = 3 ] && grep -q "module is not loaded" cli.err && echo 1 || echo 0)" \
		"no module: the client exits 3 before connecting (got $crc)"
fi

# Fake peers that are no Ossuary endpoints (python3): an echo service, an
# HTTP server, an HTTP client, a client that says nothing.
# fake_peer MODE PORT: in the background (pid in fp). A client connects to
# PORT; a server listens on a port the kernel picks, prints "ready PORT"
# in fake.out and sets port to it.
fake_peer() {
	python3 - "$1" "$2" >fake.out 2>fake.err <<'PY' &
import socket, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
def drain(c):
    c.settimeout(30)
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
if mode in ("echo", "http-server"):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    print("ready", l.getsockname()[1], flush=True)
    c, _ = l.accept()
    c.settimeout(30)
    if mode == "echo":
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    else:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        drain(c)
else:
    for _ in range(100):
        try:
            c = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.1)
    print("ready", flush=True)
    if mode == "http-client":
        c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    drain(c)
PY
	fp=$!
	if [ "${1%-client}" = "$1" ]; then
		port=
		for _ in $(seq 1 300); do
			port=$(sed -n 's/^ready \([0-9]*\)$/\1/p' fake.out 2>/dev/null)
			[ -n "$port" ] && break
			sleep 0.1
		done
		port=${port:-1}
	fi
}

# "At once": well within the -w limit of 120 s (a wait for the timeout
# would take all of it); 5 s on the host, 60 s under emulation in the VM.
quick_ms=5000
[ -n "${OSSUARY_VM:-}" ] && quick_ms=60000
if command -v python3 >/dev/null; then
	for peer in echo http-server; do
		fake_peer "$peer" 0
		t0=$(now_ms)
		timeout 200 "$cat" --userspace --accept-new -w 120 127.0.0.1 "$port" </dev/null >/dev/null 2>cli.err
		crc=$?
		dt=$(( $(now_ms) - t0 ))
		kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
		ok "$( [ "$crc" = 7 ] && grep -q "does not speak Ossuary (wrong port?)" cli.err &&
			[ "$dt" -lt "$quick_ms" ] && echo 1 || echo 0)" \
			"client against an $peer, not an Ossuary peer: said at once, exit 7 (got $crc in $dt ms)"
	done
	serve 127.0.0.1 --userspace -w 120 </dev/null >/dev/null
	t0=$(now_ms)
	fake_peer http-client "$port"
	wait "$sp"
	src=$?
	dt=$(( $(now_ms) - t0 ))
	kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
	ok "$( [ "$src" = 7 ] && grep -q "does not speak Ossuary (wrong port?)" srv.err &&
		[ "$dt" -lt "$quick_ms" ] && echo 1 || echo 0)" \
		"listener hit by an HTTP client: said at once, exit 7 (got $src in $dt ms)"
	# A peer that says nothing cannot be judged: the timeout, with a hint.
	serve 127.0.0.1 --userspace -w 1 </dev/null >/dev/null
	fake_peer silent-client "$port"
	wait "$sp"
	src=$?
	kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null
	ok "$( [ "$src" = 7 ] && grep -q "timed out.*wrong port" srv.err && echo 1 || echo 0)" \
		"listener hit by a silent client: -w timeout, exit 7, with a hint (got $src)"
else
	echo "# python3 not found: fake-peer cases skipped"
fi

# Both directions at once over IPv6, standard input and output.
echo from-server >s.in
serve ::1 --userspace <s.in >s.out
echo from-client | timeout 60 "$cat" ::1 "$port" --accept-new --userspace >c.out 2>cli.err
crc=$?
wait "$sp"
src=$?
ok "$( [ "$(is 0 0)" = 1 ] && [ "$(cat s.out)" = from-client ] && [ "$(cat c.out)" = from-server ] &&
	echo 1 || echo 0)" "IPv6 ::1, both directions over stdin/stdout (got $src/$crc)"

echo "1..$n"
[ "$failed" = 0 ]
