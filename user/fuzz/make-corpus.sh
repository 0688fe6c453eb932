#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# make-corpus.sh BUILD_DIR
#
# Builds the seed corpus of every fuzz target under BUILD_DIR/fuzz/corpus/
# (one directory per target) from the test vectors, so nothing derived
# from the vectors is ever committed. The vectors are read from
# $OSSUARY_VECTORS, or the repository's vectors/ relative to this script.
#
#   fuzz_record        records of an established channel: sealed DATA,
#                      KEY_UPDATE, DISCONNECT, RESET, cleartext control
#                      records, recorded streams, negative and bit-flip streams
#   fuzz_client_hello  CLIENT_HELLO records and whole client-to-server streams
#   fuzz_server_hello  SERVER_HELLO records and whole server-to-client streams
#   fuzz_client_auth   CLIENT_AUTH records
#   fuzz_keyfile       key, authorized-keys and known-hosts files of vector keys
#   fuzz_channel       a few hand-written scripts (see fuzz_channel.c)
#
# The records will not open under the fuzzers' own keys; they are seeds for
# the framing, and the mutator's starting shapes.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
vectors=${OSSUARY_VECTORS:-$here/../../vectors}
for f in handshake records negative streams; do
	if [ ! -r "$vectors/$f.json" ]; then
		echo "$0: $vectors/$f.json not found (set OSSUARY_VECTORS)" >&2
		exit 1
	fi
done
command -v jq >/dev/null || { echo "$0: jq is required" >&2; exit 1; }
out=$1/fuzz/corpus
mkdir -p "$out"

# hex on stdin -> bytes on stdout
hex2bin() {
	if command -v xxd >/dev/null; then
		xxd -r -p
	else
		perl -ne 's/\s+//g; print pack("H*", $_)'
	fi
}

# emit TARGET NAME < hex-lines: one corpus file per non-empty line
emit() {
	target=$1 name=$2 i=0
	mkdir -p "$out/$target"
	while IFS= read -r line; do
		[ -n "$line" ] && [ "$line" != null ] || continue
		printf '%s' "$line" | hex2bin >"$out/$target/$name-$i"
		i=$((i + 1))
	done
}

V=$vectors
# Established channel: the client is the receiver in fuzz_record.
jq -r '.records[].record' "$V/records.json" | emit fuzz_record records
jq -r '.cleartext_records[].record' "$V/records.json" | emit fuzz_record cleartext
jq -r '.stream.stream' "$V/records.json" | emit fuzz_record stream
jq -r '.handshakes[].application_records[].record' "$V/handshake.json" | emit fuzz_record app
jq -r '.contexts as $c | .vectors[] | select($c[.context].stage == "established") | .stream' \
	"$V/negative.json" | emit fuzz_record negative
jq -r '.bitflips.flips[] | .stream' "$V/negative.json" | emit fuzz_record bitflip
jq -r '.streams[].steps[] | select(.action == "receive" and .side == "client") | .input' \
	"$V/streams.json" | emit fuzz_record stream-step

# Handshake messages, alone and in the streams they start.
jq -r '.handshakes[].wire.client_hello, .handshakes[].wire_client_to_server' \
	"$V/handshake.json" | emit fuzz_client_hello wire
jq -r '.streams[].handshakes[]?.wire.client_hello' "$V/streams.json" | emit fuzz_client_hello streams
jq -r '.contexts as $c | .vectors[] | select($c[.context].stage == "handshake" and
	$c[.context].role != "client") | .stream' "$V/negative.json" | emit fuzz_client_hello negative
jq -r '.handshakes[].wire.server_hello, .handshakes[].wire_server_to_client' \
	"$V/handshake.json" | emit fuzz_server_hello wire
jq -r '.streams[].handshakes[]?.wire.server_hello' "$V/streams.json" | emit fuzz_server_hello streams
jq -r '.contexts as $c | .vectors[] | select($c[.context].stage == "handshake" and
	$c[.context].role == "client") | .stream' "$V/negative.json" | emit fuzz_server_hello negative
jq -r '.handshakes[].wire.client_auth' "$V/handshake.json" | emit fuzz_client_auth wire
jq -r '.streams[].handshakes[]?.wire.client_auth' "$V/streams.json" | emit fuzz_client_auth streams
for t in fuzz_client_hello fuzz_server_hello fuzz_client_auth; do
	jq -r '.cleartext_records[].record' "$V/records.json" | emit $t cleartext
done

# Key files: the vectors' public keys in every file shape the loaders read.
mkdir -p "$out/fuzz_keyfile"
keys=$(jq -r '[.handshakes[] | .client.auth_pub, .server.auth_pub] | map(select(. != null)) |
	unique | .[]' "$V/handshake.json")
i=0
for k in $keys; do
	printf '# ossuary ed25519 public key\n%s\n' "$k" >"$out/fuzz_keyfile/public-$i"
	printf 'ossuary-public-key-v1\n%s\n' "$k" >"$out/fuzz_keyfile/typed-public-$i"
	printf 'ossuary-secret-key-v1\n# keep private\n%s\n' "$k" >"$out/fuzz_keyfile/typed-secret-$i"
	printf '%s laptop\r\n' "$k" >"$out/fuzz_keyfile/comment-$i"
	printf 'host.example %s\n' "$k" >"$out/fuzz_keyfile/known-hosts-$i"
	i=$((i + 1))
done
{
	printf '# authorized keys\n\n'
	for k in $keys; do printf '%s\n' "$k"; done
} >"$out/fuzz_keyfile/authorized"
jq -r '[.handshakes[] | .server.auth_secret | select(. != null)][0]' "$V/handshake.json" |
	sed 's/^/# ossuary ed25519 secret key (keep private)\n/' >"$out/fuzz_keyfile/secret"

# Channel scripts: config byte, then opcodes (fuzz_channel.c). 0x06/0x86:
# client/server reads all in flight; 0x00/0x80 LEN: send LEN bytes;
# 0x03/0x13: key update; 0x05: reset; 0x04: DISCONNECT(0); 0x0b: bit flip.
mkdir -p "$out/fuzz_channel"
ch() { printf "$2" >"$out/fuzz_channel/$1"; }
ch plain        '\000\206\006\206\000\100\206\200\040\006'
ch mutual       '\037\206\006\206\000\100\206\200\040\006'
ch tofu-refuse  '\044\206\006\206\006'
ch key-update   '\000\206\006\206\023\206\006\003\000\010\206'
ch reset        '\000\206\006\206\005\206\006\206\006\206\000\020\206'
ch half-close   '\000\206\006\206\004\206\200\020\006\204\006'
ch bit-flip     '\000\206\006\206\000\100\213\000\010\001\206\006\206'
# Revision 2.1: a SERVER_HELLO damaged in flight (the client's one-way
# RESET and fresh CLIENT_HELLO), and a damaged CLIENT_AUTH (the server's
# cleartext DISCONNECT(1), the client's failed handshake).
ch hello-reset  '\000\206\013\000\277\000\006\206\006\206\000\020\206'
ch auth-failed  '\000\206\006\213\000\144\000\206\006\000\010'

for d in "$out"/*/; do
	echo "$(basename "$d"): $(ls "$d" | wc -l) seeds"
done
