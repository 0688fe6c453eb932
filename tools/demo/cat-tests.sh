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
port=$((20000 + $$ % 20000))

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

# pair HOST SERVER_ARGS CLIENT_ARGS: runs both, sets src and crc
pair() {
	port=$((port + 1))
	[ -n "${FIXED_PORT:-}" ] && port=$FIXED_PORT
	# shellcheck disable=SC2086
	"$cat" -v -l "$1" "$port" $2 </dev/null >srv.out 2>srv.err &
	local sp=$!
	for _ in $(seq 1 50); do	# until it listens
		grep -q "listening on" srv.err 2>/dev/null && break
		sleep 0.1
	done
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
FIXED_PORT=$((port + 1))
pair 127.0.0.1 "--key b.key --recv o.bin --userspace" "--known-hosts kh --accept-new --send f.bin --userspace"
ok "$( [ "$(is 0 0)" = 1 ] && grep -q "^127.0.0.1:$FIXED_PORT " kh && echo 1 || echo 0)" \
	"--accept-new trusts a new host and records it in --known-hosts (got $src/$crc)"
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
	port=$((port + 1))
	# shellcheck disable=SC2086
	"$cat" -l 127.0.0.1 "$port" --recv o.bin $sm 2>srv.err &
	sp=$!
	sleep 0.5
	(head -c 100000 f.bin; exec sleep 60) >feed &
	feeder=$!
	# shellcheck disable=SC2086
	"$cat" 127.0.0.1 "$port" --accept-new $sm <feed 2>/dev/null &
	cp=$!
	sleep 2
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
port=$((port + 1))
"$cat" -l 127.0.0.1 "$port" --userspace >drain 2>/dev/null &
sp=$!
(head -c 1000 >/dev/null; exec sleep 60) <drain &
reader=$!
sleep 0.5
yes | "$cat" 127.0.0.1 "$port" --accept-new --userspace >/dev/null 2>cli.err &
cp=$!
sleep 2
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

# Both directions at once over IPv6, standard input and output.
port=$((port + 1))
(echo from-server | "$cat" -l ::1 "$port" --userspace >s.out 2>srv.err) &
sp=$!
sleep 0.5
echo from-client | timeout 60 "$cat" ::1 "$port" --accept-new --userspace >c.out 2>cli.err
crc=$?
wait "$sp"
src=$?
ok "$( [ "$(is 0 0)" = 1 ] && [ "$(cat s.out)" = from-client ] && [ "$(cat c.out)" = from-server ] &&
	echo 1 || echo 0)" "IPv6 ::1, both directions over stdin/stdout (got $src/$crc)"

echo "1..$n"
[ "$failed" = 0 ]
