#!/usr/bin/env bash
# Every check that needs a CPU with the VNNI instructions, in one run sized for a lent machine's
# 10-minute command limit (a Sapphire/Emerald Rapids Xeon: 16 cores, avx512_vnni and avx_vnni),
# leaving the checkout's files as they are:
#   1. the tests' cases of each VNNI ISA (FPROP, BPROP, WTGRAD, overflow, layouts, plans, JIT), the
#      tests that run the host's best ISA (PyTorch cross-checks, general shapes, nn layers), and
#      oneDNN's conformance lists on each VNNI ISA, side by side on the cores;
#   2. then, on the quiet machine, the FPROP benchmark of issue 3's bar (res2a/res3a/res4a_branch2b,
#      bits 16 and 13, 1 and all threads, % of the measured peak of the kernel's instruction).
# Usage, from the repository root:   PYTHONPATH=. tools/vnni_check.sh [OUTDIR]
# OUTDIR (default $OUT, else vnni-check/) receives at most 6 files: summary.txt, tests.log,
# conformance.log, bench.log and the benchmark's conv_<cpu>.md/.json. Exit status 0 only when
# every test and conformance problem passed and the benchmark ran.
# Knobs (environment): ISAS (default "avx512_vnni avx_vnni"; ISAS=avx2 is a dry run on any AVX2
# host), TESTS_SECONDS (per parallel job, default 330), BENCH_SECONDS (default 200), THREADS_ALL
# (the benchmark's "all", default every core).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-vnni-check}}
isas=${ISAS:-"avx512_vnni avx_vnni"}
tests_seconds=${TESTS_SECONDS:-330}
bench_seconds=${BENCH_SECONDS:-200}
mkdir -p "$out"
rm -f "$out"/tests.log "$out"/conformance.log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

note "vnni_check $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$isas" <<'EOF' | tee -a "$summary" || exit 2
import sys
from dfpgen.core.target import host
h = host()
print(f"host {h.cpu}, dfp isas {', '.join(h.isas('dfp16'))}")
missing = [i for i in sys.argv[1].split() if not h.supports(i)]
if missing:
    print(f"this host lacks {', '.join(missing)}: nothing to check (ISAS=avx2 runs a dry run)")
    sys.exit(1)
EOF

# Phase 1: tests and conformance, every job in the background under its own time limit. Each job
# runs at most 2 kernel threads: two ISAs x 4 jobs + 1 host job fit 16 cores (9 jobs, 18 threads
# at worst, most of them compiling on one).
job() {  # job NAME COMMAND...: run in the background, log to $work/NAME.log, status to $work/NAME.rc
    local name=$1; shift
    ( timeout "$tests_seconds" "$@" >"$work/$name.log" 2>&1; echo $? >"$work/$name.rc" ) &
}
for isa in $isas; do
    select="$isa and not fp32"
    job "tests-$isa-fprop" python3 -m pytest -q -p no:cacheprovider tests/test_fprop.py tests/test_overflow.py -k "$select"
    job "tests-$isa-bprop" python3 -m pytest -q -p no:cacheprovider tests/test_bprop.py tests/test_wtgrad.py -k "$select"
    job "tests-$isa-other" python3 -m pytest -q -p no:cacheprovider tests/test_jit.py tests/test_layout.py \
        tests/test_plan.py tests/test_emit.py -k "$select"
    job "conformance-$isa" python3 -m dfpgen.frontends.cli conformance --isa "$isa" --max-spatial 16 --threads 2
done
# These files run on the host's best ISA (avx512_vnni on the Xeon) rather than per ISA.
best=$(python3 -c "from dfpgen.core.target import host; print(host().best_isa('dfp16'))")
if [[ " $isas " == *" $best "* ]]; then
    job "tests-$best-host" python3 -m pytest -q -p no:cacheprovider tests/test_torch.py tests/test_general_shapes.py \
        tests/test_nn_layers.py
fi
wait

failed=0
for log in "$work"/tests-*.log "$work"/conformance-*.log; do
    name=$(basename "$log" .log)
    rc=$(cat "$work/$name.rc")
    case $rc in
        0) verdict="ok" ;;
        124) verdict="TIMED OUT after ${tests_seconds}s"; failed=1 ;;
        5) verdict="no tests selected"; failed=1 ;;
        *) verdict="FAILED (exit $rc)"; failed=1 ;;
    esac
    last=$(grep -E "passed|failed|error|^total" "$log" | tail -n 1)
    note "$name: $verdict -- ${last:-no summary line}"
    kind=${name%%-*}
    { echo "===== $name (exit $rc)"; cat "$log"; } >>"$out/$kind.log"
done

# Phase 2: the benchmark alone on the machine, so the timings see no other load.
threads_all=${THREADS_ALL:-all}
first_isa=${isas%% *}
timeout "$bench_seconds" python3 benchmarks/bench_conv.py --passes fprop --isa "$first_isa" \
    --layers resnet50:res2a_branch2b,resnet50:res3a_branch2b,resnet50:res4a_branch2b \
    --bits 16,13 --threads "1,$threads_all" --rounds 5 --seconds 1 --results-dir "$out" >"$out/bench.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
    note "benchmark: ok -- $(tail -n 1 "$out/bench.log")"
else
    note "benchmark: $([ $rc -eq 124 ] && echo "TIMED OUT after ${bench_seconds}s" || echo "FAILED (exit $rc)")"
    failed=1
fi
note "overall: $([ $failed -eq 0 ] && echo ok || echo FAILED)"
exit $failed
