#!/usr/bin/env bash
# key-tests.sh [BIN_DIR]: ossuary-keygen and ossuary-cat with mixed-up
# key files, on the host over loopback, as TAP.
#
# Every way a key file goes to the wrong place: a public key as --key, a
# secret key as --authorized or --known-hosts, a secret key others can
# read, files from before the type line (with and without a .pub name,
# mode 0600 and 0644), a fingerprint pasted into an authorized-keys
# file, directories that do not exist yet. Each refusal must happen
# before any connection (exit 1, not 7), name the file, and say what to
# pass instead; what should work must carry a real transfer. Userspace
# record layer only: no module needed.
#
#   BIN_DIR  where ossuary-cat and ossuary-keygen are
#            (default: REPO/build/user/bin)
# Exit status: 0 when every case passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$repo/build/user/bin}" && pwd) || { echo "not ok 1 - key files: no tools directory ${1:-}"; exit 1; }
cat=$bin/ossuary-cat
keygen=$bin/ossuary-keygen
work=$(mktemp -d /tmp/ossuary-key-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n - key files: $2"
	else
		echo "not ok $n - key files: $2"
		failed=$((failed + 1))
		for f in srv.err cli.err out.err; do
			[ -s "$f" ] && sed "s/^/# $f: /" "$f"
		done
	fi
	rm -f srv.err cli.err out.err
}
# has FILE TEXT: FILE holds TEXT (fixed string)
has() { grep -qF -- "$2" "$1" 2>/dev/null; }
mode() { stat -c %a "$1" 2>/dev/null; }

# pair SERVER_ARGS CLIENT_ARGS: both ends over 127.0.0.1, userspace; sets
# src, crc. The listener takes FIXED_PORT, or else a port the kernel picks
# (port 0: no clash with anything else running here); port is set to it
# (1, where nothing listens, when the listener gave up first).
pair() {
	rm -f o.bin
	: >srv.err
	# shellcheck disable=SC2086
	"$cat" -v --userspace -l 127.0.0.1 "${FIXED_PORT:-0}" --recv o.bin $1 </dev/null >/dev/null 2>srv.err &
	local sp=$!
	port=1
	for _ in $(seq 1 300); do	# until it listens (or has given up)
		p=$(sed -n 's/.*listening on \[.*\]:\([0-9]*\)$/\1/p' srv.err | head -n 1)
		[ -n "$p" ] && { port=$p; break; }
		kill -0 "$sp" 2>/dev/null || break
		sleep 0.1
	done
	# shellcheck disable=SC2086
	timeout 60 "$cat" --userspace 127.0.0.1 "$port" --send f.bin $2 </dev/null >/dev/null 2>cli.err
	crc=$?
	# A client that never connected leaves the listener waiting: end it.
	for _ in $(seq 1 50); do
		kill -0 "$sp" 2>/dev/null || break
		sleep 0.1
	done
	kill "$sp" 2>/dev/null
	wait "$sp"
	src=$?
}
is() { [ "$src" = "$1" ] && [ "$crc" = "$2" ] && echo 1 || echo 0; }
delivered() { [ "$(is 0 0)" = 1 ] && cmp -s f.bin o.bin && echo 1 || echo 0; }

# client ARGS: a connecting ossuary-cat whose key options must fail before
# it connects; nothing listens on the port, so a connection attempt would
# exit 7 instead of 1. Sets crc.
client() {
	# shellcheck disable=SC2086
	timeout 30 "$cat" --userspace 127.0.0.1 1 "$@" </dev/null >/dev/null 2>cli.err
	crc=$?
}
# listener ARGS: likewise for a listener (it would otherwise wait); sets src.
listener() {
	# shellcheck disable=SC2086
	timeout 10 "$cat" --userspace -l 127.0.0.1 0 "$@" </dev/null >/dev/null 2>srv.err
	src=$?
}

head -c 65536 /dev/urandom >f.bin

# ---- ossuary-keygen ----
"$keygen" -f dot-ossuary/bob >bob.hex 2>out.err
r=$?
ok "$( [ "$r" = 0 ] && [ "$(mode dot-ossuary)" = 700 ] && [ "$(mode dot-ossuary/bob)" = 600 ] &&
	[ "$(mode dot-ossuary/bob.pub)" = 644 ] && has out.err "made the directory dot-ossuary" &&
	echo 1 || echo 0)" "keygen -f DIR/bob makes the missing DIR with mode 0700 (got $r)"
mv dot-ossuary/bob dot-ossuary/bob.pub . && rmdir dot-ossuary
if ! "$keygen" -f alice >alice.hex 2>/dev/null || ! "$keygen" -f carol >/dev/null 2>&1; then
	echo "not ok $((n + 1)) - key files: ossuary-keygen failed"
	exit 1
fi
ok "$( [ "$(head -1 bob)" = ossuary-secret-key-v1 ] && [ "$(head -1 bob.pub)" = ossuary-public-key-v1 ] &&
	[ "$(tail -1 bob.pub)" = "$(cat bob.hex)" ] && echo 1 || echo 0)" \
	"the secret file starts ossuary-secret-key-v1, the public one ossuary-public-key-v1 and the key printed"
"$keygen" -f x/y/k >/dev/null 2>out.err
r=$?
ok "$( [ "$r" = 1 ] && [ ! -e x ] && has out.err "x/y/k: cannot make its directory" && echo 1 || echo 0)" \
	"keygen makes only the last directory: two missing ones fail, nothing made (got $r)"
"$keygen" -f bob >/dev/null 2>out.err
r=$?
ok "$( [ "$r" = 1 ] && has out.err "bob already exists; not overwriting it" && echo 1 || echo 0)" \
	"keygen never overwrites a key (got $r)"
"$keygen" --version >out.txt 2>out.err
r=$?
ok "$( [ "$r" = 0 ] && grep -qE '^ossuary-keygen [^ ]+$' out.txt && [ "$(wc -l <out.txt)" = 1 ] &&
	echo 1 || echo 0)" "keygen --version prints 'ossuary-keygen VERSION' ($(cat out.txt))"

# ---- the mix-ups ----
client --key bob.pub
ok "$( [ "$crc" = 1 ] &&
	has cli.err "--key bob.pub is a public key; pass the secret key file (without .pub: bob)" &&
	! has cli.err chmod && echo 1 || echo 0)" \
	"--key with a .pub: refused before connecting, says to pass the file without .pub (got $crc)"
chmod 600 bob.pub
client --key bob.pub
ok "$( [ "$crc" = 1 ] && has cli.err "is a public key" && ! has cli.err chmod && echo 1 || echo 0)" \
	"--key with a .pub made 0600: still refused, and no chmod advice for a public key (got $crc)"
chmod 644 bob.pub
listener --authorized alice
ok "$( [ "$src" = 1 ] && has srv.err "--authorized alice:1: a SECRET key, not a list of public keys" &&
	has srv.err "alice.pub" && echo 1 || echo 0)" \
	"--authorized with a secret key file: refused loudly, points at the .pub (got $src)"
chmod 644 alice
client --key alice
ok "$( [ "$crc" = 1 ] && has cli.err "--key alice: a secret key that others can read (mode 0644)" &&
	has cli.err "chmod 600 alice" && echo 1 || echo 0)" \
	"--key with a secret key others can read: refused, chmod 600 advised (got $crc)"
chmod 600 alice
cp alice alice.copy
client --known-hosts alice --accept-new
ok "$( [ "$crc" = 1 ] && has cli.err "alice:1: a SECRET key file, not a known-hosts file" &&
	cmp -s alice alice.copy && echo 1 || echo 0)" \
	"--known-hosts with a secret key file: refused before connecting, the file untouched (got $crc)"
printf '# bob\nSHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n' >fp
listener --authorized fp
ok "$( [ "$src" = 1 ] && has srv.err "--authorized fp:2: expected 64 hex digits of an Ed25519 public key; a SHA256: fingerprint is not a key" &&
	echo 1 || echo 0)" "a fingerprint in --authorized: file, line and what was expected (got $src)"
{ echo ossuary-secret-key-v2; tail -1 bob; } >v2 && chmod 600 v2
client --key v2
ok "$( [ "$crc" = 1 ] && has cli.err "v2:1: unknown type 'ossuary-secret-key-v2'" && echo 1 || echo 0)" \
	"an unknown type line is refused and named (got $crc)"

# ---- what works ----
pair "--key bob --authorized alice.pub" "--key alice --authorized bob.pub"
ok "$(delivered)" "typed files: mutual authentication and the file intact (got $src/$crc)"
cat alice.pub carol.pub >auth
pair "--key bob --authorized auth" "--key alice --authorized bob.pub"
ok "$(delivered)" "--authorized from whole .pub files appended (cat alice.pub carol.pub) (got $src/$crc)"

# ---- files from before the type line ----
old() { printf '# ossuary ed25519 %s\n%s\n' "$1" "$(tail -1 "$2")" >"$3"; chmod "$4" "$3"; }
old "secret key (keep private)" alice oalice 600
old "public key" alice.pub oalice.pub 644
old "secret key (keep private)" bob obob 600
old "public key" bob.pub obob.pub 644
pair "--key obob --authorized oalice.pub" "--key oalice --authorized obob.pub"
ok "$(delivered)" "old untyped files load where the kind is certain (0600 secret, .pub public) (got $src/$crc)"
client --key oalice.pub
ok "$( [ "$crc" = 1 ] && has cli.err "oalice.pub is a public key (an old file without a type line)" &&
	echo 1 || echo 0)" "an old .pub as --key: refused (got $crc)"
listener --authorized oalice
ok "$( [ "$src" = 1 ] && has srv.err "oalice:1: a SECRET key" && echo 1 || echo 0)" \
	"an old secret key as --authorized: refused, its comment gives it away (got $src)"
tail -1 alice >bare && chmod 644 bare
client --key bare
hint=$(sed -n "s/.*if it is your secret key: //p" cli.err)
ok "$( [ "$crc" = 1 ] && has cli.err "--key bare: no type line" &&
	has cli.err "chmod 600 bare && sed -i '1i ossuary-secret-key-v1' bare" && echo 1 || echo 0)" \
	"an untyped 0644 file as --key: kind uncertain, refused with a one-line conversion hint (got $crc)"
(eval "$hint") 2>/dev/null
pair "--key bob --authorized alice.pub" "--key bare --authorized bob.pub"
ok "$( [ "$(delivered)" = 1 ] && [ "$(head -1 bare)" = ossuary-secret-key-v1 ] && echo 1 || echo 0)" \
	"the conversion hint, run as printed, makes it load (got $src/$crc)"
tail -1 alice.pub >bare.pub && chmod 600 bare.pub
client --key bare.pub
ok "$( [ "$crc" = 1 ] && has cli.err "bare.pub is a public key" && echo 1 || echo 0)" \
	"an untyped 0600 .pub as --key: refused by its name (got $crc)"

# ---- known hosts ----
pair "--key bob" "--known-hosts kh/known_hosts --accept-new"
ok "$( [ "$(is 0 0)" = 1 ] && [ "$(mode kh)" = 700 ] && [ "$(mode kh/known_hosts)" = 600 ] &&
	grep -q "^127.0.0.1:$port $(cat bob.hex)\$" kh/known_hosts && echo 1 || echo 0)" \
	"--known-hosts into a missing directory: made 0700, the host remembered (got $src/$crc)"
# known_hosts names host and port: the next listeners take the same port
FIXED_PORT=$port
pair "--key bob" "--known-hosts kh/known_hosts"
ok "$(is 0 0)" "... and known the next time, without --accept-new (got $src/$crc)"
pair "--key carol" "--known-hosts kh/known_hosts --accept-new"
ok "$( [ "$(is 4 6)" = 1 ] && has cli.err "HAS CHANGED" && has cli.err "kh/known_hosts:1: lists another key" &&
	echo 1 || echo 0)" "a changed host key: refused, the offending line named (got $src/$crc)"
unset FIXED_PORT
pair "--key bob" "--known-hosts a/b/known_hosts --accept-new"
ok "$( [ "$crc" = 1 ] && [ "$src" = 4 ] && [ ! -e a ] && has cli.err "cannot remember" &&
	echo 1 || echo 0)" \
	"--known-hosts two directories deep into nothing: an error, not a silent success (got $src/$crc)"

echo "1..$n"
[ "$failed" = 0 ]
