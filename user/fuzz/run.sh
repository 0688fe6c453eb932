#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# run.sh OUTDIR SECONDS
#
# Runs every fuzz target already built in OUTDIR/fuzz/ for SECONDS each
# (libFuzzer -max_total_time), on its corpus OUTDIR/fuzz/corpus/NAME/
# (made by make-corpus.sh, which runs first if OUTDIR/fuzz/corpus is
# missing; new inputs are added to it). Builds nothing. Prints TAP:
#
#   ok N - fuzz_X (E execs)
#   not ok N - fuzz_X
#
# Crash inputs land in OUTDIR/fuzz/artifacts/, full logs in
# OUTDIR/fuzz/logs/. Exit status: nonzero if any target crashed, leaked,
# timed out on an input or was missing.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 OUTDIR SECONDS" >&2
	exit 2
fi
fz=$1/fuzz
secs=$2
case $secs in
'' | *[!0-9]*) echo "$0: SECONDS must be a number" >&2; exit 2 ;;
esac

targets=
for t in "$fz"/fuzz_*; do
	[ -f "$t" ] && [ -x "$t" ] && targets="$targets $t"
done
if [ -z "$targets" ]; then
	echo "1..0 # no fuzz targets built in $fz"
	exit 1
fi
mkdir -p "$fz/artifacts" "$fz/logs"
# First run: seed the corpora from the vectors (not a build; just data).
if [ ! -d "$fz/corpus" ]; then
	"$(dirname "$0")/make-corpus.sh" "$1" >"$fz/logs/make-corpus.log" 2>&1 ||
		echo "# make-corpus.sh failed (see $fz/logs/make-corpus.log); empty corpora" >&2
fi

n=0
for t in $targets; do n=$((n + 1)); done
echo "TAP version 13"
echo "1..$n"

i=0 rc=0
for t in $targets; do
	i=$((i + 1))
	name=$(basename "$t")
	corpus=$fz/corpus/$name
	log=$fz/logs/$name.log
	mkdir -p "$corpus"
	# -timeout: one input taking this long is a hang, reported as a failure.
	"$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$fz/artifacts/$name-" \
		"$corpus" >"$log" 2>&1
	status=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ $status -eq 0 ] && [ -n "$execs" ]; then
		echo "ok $i - $name (${execs} execs)"
	else
		echo "not ok $i - $name"
		echo "# exit status $status; log: $log"
		grep -E 'ERROR|SUMMARY|Test unit written|^side|split changed|never sent' "$log" |
			head -n 10 | sed 's/^/# /'
		rc=1
	fi
done
exit $rc
