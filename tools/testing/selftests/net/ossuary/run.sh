#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run the ossuary kselftests (built by this directory's Makefile) inside
# the test VM, after ossuary.ko is loaded:
#
#   run.sh [--allow-skip] [--timeout S] BUILD_DIR [TEST...]
#
# Each binary prints TAP. Every test counts; a skip counts as a failure
# (the only skips the tests make mean "module not loaded") unless its
# reason starts with "optional:" or --allow-skip is given (host dry runs).
# Exit status: 0 if nothing failed, 1 otherwise.
set -u

allow_skip=0
# the kselftest runner's limit per binary, from this directory's settings
per_binary_timeout=$(sed -n 's/^timeout=//p' "$(dirname "$0")/settings" 2>/dev/null)
per_binary_timeout=${per_binary_timeout:-1500}
while [ $# -gt 0 ]; do
	case "$1" in
	--allow-skip) allow_skip=1; shift ;;
	--timeout) per_binary_timeout=$2; shift 2 ;;
	--) shift; break ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: run.sh [--allow-skip] [--timeout S] BUILD_DIR [TEST...]" >&2; exit 2; }
build=$1
shift
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(ulp records vectors splice rekey memory rxpath)

# The VM may come up with lo down; IPv6 variants need ::1.
if command -v ip >/dev/null 2>&1; then
	ip link set lo up 2>/dev/null || true
fi

if grep -qw ossuary /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null; then
	echo "# ossuary ULP registered: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
else
	echo "# WARNING: ossuary ULP not registered (tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null))"
fi

# Copy TAP through, adding each test's wall time as a comment line.
stamp() {
	local line start=${EPOCHREALTIME/./}
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		"#  RUN "*) start=${EPOCHREALTIME/./} ;;
		"ok "*|"not ok "*)
			local us=$(( ${EPOCHREALTIME/./} - start ))
			printf '#   time: %d.%01ds\n' $((us / 1000000)) $((us % 1000000 / 100000))
			;;
		esac
	done
}

total_pass=0 total_fail=0 total_skip=0 total_optskip=0
failed_names=()
for t in "${tests[@]}"; do
	bin=$build/$t
	echo "# ==== $t"
	if [ ! -x "$bin" ]; then
		echo "not ok 1 - $t: binary $bin missing"
		total_fail=$((total_fail + 1))
		failed_names+=("$t(missing)")
		continue
	fi
	out=$(mktemp)
	start=$(date +%s)
	timeout -k 10 "$per_binary_timeout" "$bin" 2>&1 | stamp | tee "$out"
	rc=${PIPESTATUS[0]}
	pass=0 fail=0 skip=0 optskip=0 planned=
	while IFS= read -r line; do
		case "$line" in
		1..*) planned=${line#1..} ;;
		"ok "*"# SKIP optional:"*) optskip=$((optskip + 1)) ;;
		"ok "*"# SKIP"*)
			skip=$((skip + 1))
			name=${line#ok }; name=${name#* }; name=${name%% # SKIP*}
			[ $allow_skip = 1 ] || failed_names+=("$t:$name(skip)")
			;;
		"ok "*) pass=$((pass + 1)) ;;
		"not ok "*)
			fail=$((fail + 1))
			name=${line#not ok }; name=${name#* }
			failed_names+=("$t:$name")
			;;
		esac
	done < "$out"
	rm -f "$out"
	seen=$((pass + fail + skip + optskip))
	if [ -z "$planned" ] || [ "$seen" -ne "$planned" ]; then
		echo "not ok 1 - $t: planned ${planned:-?} tests, saw $seen results (exit $rc; a crash or timeout): the rest count as failed"
		missing=$(( ${planned:-0} - seen ))
		[ $missing -gt 0 ] || missing=1
		fail=$((fail + missing))
		failed_names+=("$t(incomplete)")
	elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		echo "not ok 1 - $t: exit status $rc with no failed test"
		fail=$((fail + 1))
		failed_names+=("$t(exit $rc)")
	fi
	echo "# $t: $pass passed, $fail failed, $skip skipped, $optskip optional skips ($(( $(date +%s) - start ))s)"
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	total_skip=$((total_skip + skip))
	total_optskip=$((total_optskip + optskip))
done

if [ $allow_skip = 1 ]; then
	counted_fail=$total_fail
else
	counted_fail=$((total_fail + total_skip))
fi
if [ $allow_skip = 0 ] && [ $total_skip -gt 0 ]; then
	# so that a TAP counter sees the skips as the failures they are here
	echo "not ok 1 - ossuary selftests: $total_skip tests skipped (ossuary module not loaded?)"
fi
for n in "${failed_names[@]+"${failed_names[@]}"}"; do
	echo "# FAILED: $n"
done
echo "ossuary selftests: $total_pass passed, $counted_fail failed ($total_skip skipped$([ $allow_skip = 1 ] || echo ' and counted as failed'), $total_optskip optional skips)"
[ "$counted_fail" -eq 0 ]
