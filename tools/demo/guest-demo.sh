#!/usr/bin/env bash
# guest-demo.sh [--userspace] [BIN_DIR]: the Ossuary demo, inside the test VM.
#
# Two hosts, alice (10.99.0.1) and bob (10.99.0.2), each in its own
# network namespace, joined by a veth pair. Each has a key pair and the
# other's public key. bob listens with `ossuary-cat -l --recv`; alice
# sends a file of DEMO_MIB MiB (default 64) with `ossuary-cat --send`:
# mutual authentication, kernel offload, sendfile(2). tcpdump records
# the veth traffic. Then it checks that the plaintext marker never
# appears on the wire and that bob's SHA-256 equals alice's, and prints
# a report.
#
# Every check prints a TAP line (`ok N - ...` / `not ok N - ...`), so the
# script runs as is inside the VM's test run (guest-check). Exit status:
# 0 when every check passed, 1 otherwise.
#
#   BIN_DIR      where ossuary-cat and ossuary-keygen are
#                (default: REPO/build/user/bin)
#   --userspace  both sides keep the record layer in userspace: tests the
#                demo's mechanics without the module; the kernel checks
#                are then reported as skipped, never as passed
# Environment: DEMO_MIB (size of the file), OSSUARY_KO (the module to
# load when it is not loaded yet; default REPO/kernel/ossuary.ko),
# DEMO_PORT (default 7000), DEMO_KEEP=1 keeps the work directory.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
userspace=0
while [ $# -gt 0 ]; do
	case "$1" in
	--userspace) userspace=1 ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	-*) echo "guest-demo: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
bin=$(cd "${1:-$repo/build/user/bin}" 2>/dev/null && pwd) || bin=${1:-$repo/build/user/bin}
ko=${OSSUARY_KO:-$repo/kernel/ossuary.ko}
mib=${DEMO_MIB:-64}
port=${DEMO_PORT:-7000}
cat=$bin/ossuary-cat
keygen=$bin/ossuary-keygen
marker="OSSUARY-DEMO-PLAINTEXT-MARKER-e1b2"

n=0
failed=0
skipped=0
# check OK DESCRIPTION: one TAP line
check() {
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n - demo: $2"
	else
		echo "not ok $n - demo: $2"
		failed=$((failed + 1))
	fi
}
skip() {
	n=$((n + 1))
	skipped=$((skipped + 1))
	echo "ok $n - demo: $1 # SKIP $2"
}
# kernel_check OK DESCRIPTION: a check that only means something in kernel mode
kernel_check() {
	if [ "$userspace" = 1 ]; then
		skip "$2" "--userspace: the kernel module is not exercised"
	else
		check "$1" "$2"
	fi
}
note() { echo "# $*"; }
bail() {
	check 0 "$1"
	echo "1..$n"
	echo "DEMO FAILED: $1" >&2
	exit 1
}

work=$(mktemp -d /tmp/ossuary-demo.XXXXXX)
pids=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	ip netns del alice 2>/dev/null
	ip netns del bob 2>/dev/null
	[ -n "${DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

note "Ossuary demo: alice sends $mib MiB to bob ($([ "$userspace" = 1 ] && echo userspace record layer || echo kernel offload, sendfile))"

# ---- tools and module ----
for t in "$cat" "$keygen"; do
	[ -x "$t" ] || bail "tool $t is missing (make -C user O=... lib tools)"
done
for t in ip tcpdump sha256sum seq grep; do
	command -v "$t" >/dev/null || bail "$t is not installed (tools/install-deps)"
done

if [ "$userspace" = 1 ]; then
	skip "ossuary.ko loaded, ULP registered" "--userspace"
else
	if [ ! -d /sys/module/ossuary ]; then
		if [ ! -f "$ko" ]; then
			bail "module $ko not built"
		fi
		insmod "$ko" || bail "insmod $ko failed"
	fi
	grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null
	check $((1 - $?)) "ossuary.ko loaded, ULP registered ($(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null))"
fi

# ---- two hosts on a wire ----
ip netns del alice 2>/dev/null
ip netns del bob 2>/dev/null
net_ok=0
if ip netns add alice && ip netns add bob &&
	ip link add veth-alice netns alice type veth peer name veth-bob netns bob &&
	ip -n alice addr add 10.99.0.1/24 dev veth-alice &&
	ip -n bob addr add 10.99.0.2/24 dev veth-bob &&
	ip -n alice link set lo up && ip -n bob link set lo up &&
	ip -n alice link set veth-alice up && ip -n bob link set veth-bob up; then
	net_ok=1
fi
check "$net_ok" "namespaces alice (10.99.0.1) and bob (10.99.0.2) joined by a veth pair"
[ "$net_ok" = 1 ] || bail "cannot set up the network namespaces"
# bash's /dev/tcp probes need no extra tool; wait for the link (DAD-free on IPv4)
sleep 1

# ---- keys ----
keys_ok=1
"$keygen" -f "$work/alice.key" >"$work/alice.hex" 2>"$work/keygen.log" || keys_ok=0
"$keygen" -f "$work/bob.key" >"$work/bob.hex" 2>>"$work/keygen.log" || keys_ok=0
check "$keys_ok" "key pairs for alice and bob (ossuary-keygen)"
[ "$keys_ok" = 1 ] || { cat "$work/keygen.log" >&2; bail "ossuary-keygen failed"; }
alice_hex=$(cat "$work/alice.hex")
bob_hex=$(cat "$work/bob.hex")

# ---- the secret file: every line carries the marker, and a line number ----
bytes=$((mib * 1024 * 1024))
seq -f "$marker line %.0f of the plaintext alice sends to bob" 1 $((bytes / 40 + 1)) |
	head -c "$bytes" >"$work/secret.bin"
size=$(stat -c %s "$work/secret.bin")
markers_in_file=$(grep -c -a -F "$marker" "$work/secret.bin")
check "$([ "$size" = "$bytes" ] && [ "$markers_in_file" -gt 0 ] && echo 1 || echo 0)" \
	"a $mib MiB file with the marker on each of its $markers_in_file lines"
sum_file=$(sha256sum "$work/secret.bin" | cut -d' ' -f1)

# ---- capture, then bob listens, then alice sends ----
ip netns exec alice tcpdump -i veth-alice -n -s 0 -B 32768 -Z root \
	-w "$work/wire.pcap" "tcp port $port" 2>"$work/tcpdump.log" &
tcpdump_pid=$!
pids+=("$tcpdump_pid")
for _ in $(seq 1 100); do
	grep -q "listening on" "$work/tcpdump.log" && break
	sleep 0.2
done

mode_flag=()
[ "$userspace" = 1 ] && mode_flag=(--userspace)
ip netns exec bob "$cat" -v -l 10.99.0.2 "$port" --key "$work/bob.key" \
	--authorized "$work/alice.key.pub" --recv "$work/received.bin" "${mode_flag[@]}" \
	2>"$work/bob.log" &
bob_pid=$!
pids+=("$bob_pid")
for _ in $(seq 1 100); do
	grep -q "listening on" "$work/bob.log" && break
	sleep 0.2
done
grep -q "listening on" "$work/bob.log"
check $((1 - $?)) "bob listens on 10.99.0.2 port $port (ossuary-cat -l --recv)"

# A hung transfer is a failed check, not a hung VM: at least ~0.1 MiB/s.
limit=${DEMO_TIMEOUT:-$((120 + mib * 10))}
t0=$(date +%s.%N)
timeout "$limit" ip netns exec alice "$cat" -v 10.99.0.2 "$port" --key "$work/alice.key" \
	--authorized "$work/bob.key.pub" --send "$work/secret.bin" "${mode_flag[@]}" \
	</dev/null 2>"$work/alice.log"
alice_rc=$?
# bob ends when alice's data has ended; if alice failed, give bob a moment.
bob_wait=10
[ "$alice_rc" = 0 ] && bob_wait=$limit
for _ in $(seq 1 "$bob_wait"); do
	kill -0 "$bob_pid" 2>/dev/null || break
	sleep 1
done
kill "$bob_pid" 2>/dev/null
wait "$bob_pid"
bob_rc=$?
t1=$(date +%s.%N)
sleep 1	# let tcpdump write the last packets
kill -INT "$tcpdump_pid" 2>/dev/null
wait "$tcpdump_pid" 2>/dev/null

check "$([ "$alice_rc" = 0 ] && echo 1 || echo 0)" "alice's ossuary-cat --send exited 0 (got $alice_rc)"
check "$([ "$bob_rc" = 0 ] && echo 1 || echo 0)" "bob's ossuary-cat --recv exited 0 (got $bob_rc)"
if [ "$alice_rc" != 0 ] || [ "$bob_rc" != 0 ]; then
	echo "--- alice's ossuary-cat said:"; sed 's/^/  /' "$work/alice.log"
	echo "--- bob's ossuary-cat said:"; sed 's/^/  /' "$work/bob.log"
fi

# ---- what each side said (ossuary-cat -v) ----
field() {	# field LOG REGEX: the first capture group of the first matching line
	sed -n -E "s/^ossuary-cat: $2.*/\\1/p" "$1" | head -n 1
}
alice_fpr=$(field "$work/alice.log" 'our key (SHA256:[^ ]+)')
bob_fpr=$(field "$work/bob.log" 'our key (SHA256:[^ ]+)')
alice_saw=$(sed -e "s|$work/||g" "$work/alice.log" | sed -n -E 's/^ossuary-cat: peer key (SHA256:[^ ]+) \(([0-9a-f]+)\): (.*)/\1 \2 \3/p')
bob_saw=$(sed -e "s|$work/||g" "$work/bob.log" | sed -n -E 's/^ossuary-cat: peer key (SHA256:[^ ]+) \(([0-9a-f]+)\): (.*)/\1 \2 \3/p')
alice_mode=$(field "$work/alice.log" 'mode ([a-z]+( \(sendfile\))?)')
bob_mode=$(field "$work/bob.log" 'mode ([a-z]+)')
sent_line=$(sed -n 's/^ossuary-cat: sent //p' "$work/alice.log")
recv_line=$(sed -n 's/^ossuary-cat: received //p' "$work/bob.log")
sent_bytes=$(echo "$sent_line" | sed -n -E 's/^([0-9]+) bytes.*/\1/p')
recv_bytes=$(echo "$recv_line" | sed -n -E 's/^([0-9]+) bytes.*/\1/p')
sent_sum=$(echo "$sent_line" | sed -n -E 's/.*sha256 ([0-9a-f]+).*/\1/p')
recv_sum=$(echo "$recv_line" | sed -n -E 's/.*sha256 ([0-9a-f]+).*/\1/p')
sent_rate=$(echo "$sent_line" | sed -n -E 's/.*\(([0-9.]+ MiB\/s)\).*/\1/p')
recv_rate=$(echo "$recv_line" | sed -n -E 's/.*\(([0-9.]+ MiB\/s)\).*/\1/p')
sum_received=$(sha256sum "$work/received.bin" 2>/dev/null | cut -d' ' -f1)

# bob authenticated alice: the key bob checked is alice's, found in alice.key.pub
# shellcheck disable=SC2086 # split "FINGERPRINT HEX HOW..." into words
set -- $bob_saw
check "$([ -n "$alice_fpr" ] && [ "${1:-}" = "$alice_fpr" ] && [ "${2:-}" = "$alice_hex" ] &&
	[ "${3:-}" = authorized ] && echo 1 || echo 0)" \
	"bob authenticated alice: key ${1:-none} is alice's, authorized by alice.key.pub"
# shellcheck disable=SC2086
set -- $alice_saw
check "$([ -n "$bob_fpr" ] && [ "${1:-}" = "$bob_fpr" ] && [ "${2:-}" = "$bob_hex" ] &&
	[ "${3:-}" = authorized ] && echo 1 || echo 0)" \
	"alice authenticated bob: key ${1:-none} is bob's, authorized by bob.key.pub"

kernel_check "$([ "$alice_mode" = "kernel (sendfile)" ] && [ "$bob_mode" = kernel ] && echo 1 || echo 0)" \
	"record layer offloaded to the kernel on both sides, alice used sendfile (alice: ${alice_mode:-?}, bob: ${bob_mode:-?})"

check "$([ "$sent_bytes" = "$size" ] && [ "$recv_bytes" = "$size" ] &&
	[ "$(stat -c %s "$work/received.bin" 2>/dev/null)" = "$size" ] && echo 1 || echo 0)" \
	"bytes: alice sent ${sent_bytes:-?}, bob received ${recv_bytes:-?}, file size $size"
check "$([ -n "$recv_sum" ] && [ "$recv_sum" = "$sent_sum" ] && [ "$recv_sum" = "$sum_file" ] &&
	[ "$sum_received" = "$sum_file" ] && echo 1 || echo 0)" \
	"SHA-256 at bob equals alice's (${recv_sum:0:16}... vs ${sent_sum:0:16}...; sha256sum ${sum_file:0:16}...)"

# ---- the wire ----
pcap_size=$(stat -c %s "$work/wire.pcap" 2>/dev/null || echo 0)
dropped=$(sed -n -E 's/^([0-9]+) packets dropped by kernel.*/\1/p' "$work/tcpdump.log")
captured=$(sed -n -E 's/^([0-9]+) packets captured.*/\1/p' "$work/tcpdump.log")
on_wire=$(grep -c -a -F "$marker" "$work/wire.pcap" 2>/dev/null)
on_wire=${on_wire:-0}
# The capture must hold at least the whole stream's size, or its silence
# proves nothing (ciphertext is larger than the plaintext it carries).
check "$([ "$pcap_size" -gt "$size" ] && echo 1 || echo 0)" \
	"tcpdump captured the whole transfer (${captured:-?} packets, $pcap_size bytes, ${dropped:-?} dropped)"
check "$([ "$on_wire" = 0 ] && [ "$pcap_size" -gt "$size" ] && echo 1 || echo 0)" \
	"the marker never appears on the wire ($on_wire of $markers_in_file lines found in the capture)"

# ---- the module's counters, per namespace ----
stat_alice=$(ip netns exec alice cat /proc/net/ossuary_stat 2>/dev/null)
stat_bob=$(ip netns exec bob cat /proc/net/ossuary_stat 2>/dev/null)
statv() { echo "$1" | awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'; }
records=$(( (size + 16383) / 16384 ))
sealed=$(statv "$stat_alice" OssuaryRecordsSealed)
opened=$(statv "$stat_bob" OssuaryRecordsOpened)
errs=0
for ns_stat in "$stat_alice" "$stat_bob"; do
	for k in OssuaryDecryptErrors OssuaryProtocolErrors OssuaryTruncations; do
		errs=$((errs + $(statv "$ns_stat" "$k")))
	done
done
[ -n "$stat_alice" ] || sealed=
[ -n "$stat_bob" ] || opened=
kernel_check "$([ -n "$sealed" ] && [ -n "$opened" ] && [ "$sealed" -ge "$records" ] &&
	[ "$opened" -ge "$records" ] && [ "$errs" = 0 ] && echo 1 || echo 0)" \
	"/proc/net/ossuary_stat: alice sealed ${sealed:-?} and bob opened ${opened:-?} records (>= $records), $errs errors"

# ---- nothing left behind: the sockets are gone, so nothing holds the module ----
ip netns del alice 2>/dev/null
ip netns del bob 2>/dev/null
if [ "$userspace" = 0 ] && [ -r /sys/module/ossuary/refcnt ]; then
	# A dying namespace releases its sockets from a work queue: give it time.
	for _ in $(seq 1 60); do
		[ "$(cat /sys/module/ossuary/refcnt)" = 0 ] && break
		sleep 0.5
	done
	refcnt=$(cat /sys/module/ossuary/refcnt)
	check "$([ "$refcnt" = 0 ] && echo 1 || echo 0)" \
		"no socket holds ossuary.ko once both namespaces are gone (refcnt $refcnt)"
fi

# ---- the report ----
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo
echo "================ Ossuary demo report ================"
echo "alice  10.99.0.1  key ${alice_fpr:-?}"
echo "bob    10.99.0.2  key ${bob_fpr:-?}"
# shellcheck disable=SC2086 # split "FINGERPRINT HEX HOW..." into words
set -- $bob_saw
echo "bob authenticated alice:  saw ${1:-no key}, ${*:3}"
# shellcheck disable=SC2086
set -- $alice_saw
echo "alice authenticated bob:  saw ${1:-no key}, ${*:3}"
echo "mode:        alice ${alice_mode:-?}, bob ${bob_mode:-?}"
echo "bytes:       sent ${sent_bytes:-?}, received ${recv_bytes:-?} ($mib MiB)"
echo "throughput:  alice ${sent_rate:-?}, bob ${recv_rate:-?} (emulated CPU; whole run ${elapsed}s)"
echo "SHA-256:     alice ${sent_sum:-?}"
echo "             bob   ${recv_sum:-?}  $([ -n "$recv_sum" ] && [ "$recv_sum" = "$sent_sum" ] && echo MATCH || echo MISMATCH)"
echo "ciphertext:  marker \"$marker\" on $markers_in_file lines of the file,"
echo "             $on_wire times in the $pcap_size-byte capture of the veth"
echo "/proc/net/ossuary_stat (alice):"
echo "${stat_alice:-  (none: module not loaded?)}" | sed 's/^/    /'
echo "/proc/net/ossuary_stat (bob):"
echo "${stat_bob:-  (none: module not loaded?)}" | sed 's/^/    /'
echo "====================================================="
echo "1..$n"
if [ "$failed" != 0 ]; then
	echo "DEMO FAILED: $failed of $n checks failed (see the 'not ok' lines above)"
	exit 1
fi
if [ "$userspace" = 1 ]; then
	echo "demo mechanics passed in USERSPACE mode ($skipped kernel checks skipped):" \
		"kernel offload was NOT demonstrated"
else
	echo "DEMO PASSED: all $n checks"
fi
exit 0
