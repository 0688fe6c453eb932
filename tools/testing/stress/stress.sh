#!/usr/bin/env bash
# stress.sh: `make stress`. Builds (or reuses) the KERNEL variant's test
# kernel (default kcsan: KCSAN + lockdep + fault injection; faults: the
# debug kernel, KASAN and kmemleak, + fault injection; debug), builds
# ossuary.ko against it out of the tree's way (build/stress-KERNEL; the
# tree's kernel/*.ko stay make check's) and the selftests, and boots it to
# run the concurrency suites (guest-stress): stress.c, faults.c, mutate.c,
# then the module unloaded under load.
#
# Big by default; every figure can be changed from the environment:
#   OSSUARY_STRESS_SOCKETS (10000)  OSSUARY_STRESS_BYTES (4096)
#   OSSUARY_STRESS_PAIRS (16)       OSSUARY_STRESS_MIB (8)
#   OSSUARY_STRESS_ROUNDS (30)      OSSUARY_STRESS_TRUNCATE_SECONDS (30)
#   OSSUARY_STRESS_SECONDS (3000)   OSSUARY_FAULTS_MAX_NTH (400)
#   OSSUARY_FAULTS_SECONDS (60)     OSSUARY_MUTATE_ITERS (20000)
#   OSSUARY_MUTATE_SECONDS (1800)   OSSUARY_MUTATE_SEED (time)
#   OSSUARY_KCSAN_SKIP_WATCH (1000: KCSAN watches 1 access in N)
#   STRESS_SUITES ("stress faults mutate")  STRESS_TIMEOUT (VM, 14400 s)
# KCSAN reports that involve ossuary fail the run (tools/testing/vm/run);
# the guest's reports and log stay in the exchange directory it prints.
set -euo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$top"
variant=${KERNEL:-kcsan}
out=$top/build/stress-$variant

export OSSUARY_STRESS_SOCKETS=${OSSUARY_STRESS_SOCKETS:-10000}
export OSSUARY_STRESS_BYTES=${OSSUARY_STRESS_BYTES:-4096}
export OSSUARY_STRESS_PAIRS=${OSSUARY_STRESS_PAIRS:-16}
export OSSUARY_STRESS_MIB=${OSSUARY_STRESS_MIB:-8}
export OSSUARY_STRESS_ROUNDS=${OSSUARY_STRESS_ROUNDS:-30}
export OSSUARY_STRESS_TRUNCATE_SECONDS=${OSSUARY_STRESS_TRUNCATE_SECONDS:-30}
export OSSUARY_STRESS_SECONDS=${OSSUARY_STRESS_SECONDS:-3000}
export OSSUARY_FAULTS_MAX_NTH=${OSSUARY_FAULTS_MAX_NTH:-400}
export OSSUARY_FAULTS_SECONDS=${OSSUARY_FAULTS_SECONDS:-60}
export OSSUARY_MUTATE_ITERS=${OSSUARY_MUTATE_ITERS:-20000}
export OSSUARY_MUTATE_SECONDS=${OSSUARY_MUTATE_SECONDS:-1800}
[ -z "${OSSUARY_MUTATE_SEED:-}" ] || export OSSUARY_MUTATE_SEED
# shellcheck disable=SC2206
suites=(${STRESS_SUITES:-stress faults mutate})

echo "== stress: $variant kernel" >&2
kdir=$(tools/testing/vm/build-kernel "$variant")
ksrc=$(. tools/testing/vm/kernel-env.sh && kernel_src_dir)

echo "== stress: ossuary.ko for it in $out/module" >&2
mkdir -p "$out/module"
rm -rf "$out/module/kernel" "$out/module/include"
cp -a Kbuild "$out/module/"
cp -a kernel include "$out/module/"
find "$out/module" \( -name '*.o' -o -name '*.ko' -o -name '.*.cmd' -o -name '*.mod*' \) -delete
make -s -C "$kdir" M="$out/module" modules >"$out/module.build.log" 2>&1 ||
	{ cat "$out/module.build.log" >&2; exit 1; }

echo "== stress: selftests in $out/selftests" >&2
make -s -C tools/testing/selftests/net/ossuary KSRC="$ksrc" O="$out/selftests" \
	>"$out/selftests.build.log" 2>&1 ||
	{ cat "$out/selftests.build.log" >&2; exit 1; }

echo "== stress: the VM (sockets $OSSUARY_STRESS_SOCKETS, pairs $OSSUARY_STRESS_PAIRS x 8 threads, suites ${suites[*]})" >&2
t0=$(date +%s)
set +e
# the guest does not inherit this environment: the parameters go on the command
mapfile -t params < <(env | grep -E '^OSSUARY_(STRESS|FAULTS|MUTATE|KCSAN)_' | sort)
OSSUARY_VM_KEEP=1 tools/testing/vm/run "--$variant" --timeout "${STRESS_TIMEOUT:-14400}" -- \
	env "${params[@]}" tools/testing/stress/guest-stress "$out/module" "$out/selftests" "${suites[@]}" |
	tee "$out/stress.tap"
rc=${PIPESTATUS[0]}
set -e
echo "== stress: $(( $(date +%s) - t0 ))s, exit $rc (TAP in $out/stress.tap)" >&2
exit "$rc"
