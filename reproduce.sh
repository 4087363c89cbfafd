#!/usr/bin/env bash
# Reproduce the README's tables from scratch: the baseline table (every proxy on NB-201 CIFAR-10/100 and
# the DARTS CSV), the default evolution, and the verification of its hall of fame on held-out archs.
#
#   bash reproduce.sh                      # full scale (hours on 2 CPU cores; use a GPU or a cluster)
#   bash reproduce.sh --quick              # a small version of every step: minutes on 2 cores
#   bash reproduce.sh --workers 2 --backend loky --out results/my-reproduction
#
# Options: --quick, --out DIR (default results/reproduce, or results/reproduce-quick), --data-root DIR,
# --backend serial|loky|dask and --workers N (for the evolution), --device auto|cpu|cuda.
# Every step writes under the output folder and is skipped when its output is already complete, so a
# killed reproduction continues where it stopped (the evolution itself resumes from its checkpoint).
# The tables end up in OUT/tables.md. Run setup_script.sh first (it creates .venv and the data root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
say() { printf 'reproduce: %s\n' "$*"; }

QUICK=0 OUT="" DATA_ROOT="" BACKEND="" WORKERS="" DEVICE="auto"
need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --data-root) need_value "$@"; DATA_ROOT=$2; shift 2 ;;
        --backend) need_value "$@"; BACKEND=$2; shift 2 ;;
        --workers) need_value "$@"; WORKERS=$2; shift 2 ;;
        --device) need_value "$@"; DEVICE=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see bash reproduce.sh --help)" ;;
    esac
done
[[ -z "$BACKEND" || "$BACKEND" =~ ^(serial|loky|dask)$ ]] || die "--backend must be serial, loky or dask, got '$BACKEND'"
[[ -z "$WORKERS" || "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer, got '$WORKERS'"
[[ "$DEVICE" =~ ^(auto|cpu|cuda)$ ]] || die "--device must be auto, cpu or cuda, got '$DEVICE'"
[[ -z "$DATA_ROOT" || -d "$DATA_ROOT" ]] || die "--data-root $DATA_ROOT is not a folder (run setup_script.sh first)"
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
OUT=${OUT:-results/reproduce$([[ $QUICK -eq 1 ]] && echo -quick)}
[[ ! -e "$OUT" || -d "$OUT" ]] || die "--out $OUT is a file, not a folder"
mkdir -p "$OUT" 2>/dev/null || die "--out $OUT: cannot create the folder"
DATA=()
[[ -n "$DATA_ROOT" ]] && DATA=(--data-root "$DATA_ROOT")
WHERE=()
[[ -n "$BACKEND" ]] && WHERE+=(--backend "$BACKEND")
[[ -n "$WORKERS" ]] && WHERE+=(--workers "$WORKERS")

# step NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT exists; it must exist afterwards.
step() {
    local name=$1 output=$2
    shift 2
    if [[ -f "$output" ]]; then
        say "$name: already complete ($output), skipped"
        return
    fi
    say "$name: $*"
    local start=$SECONDS
    "$@"
    [[ -f "$output" ]] || die "$name ended without writing $output"
    say "$name: done in $((SECONDS - start)) s"
}

if [[ $QUICK -eq 1 ]]; then
    BASELINES=(--n_archs 40 --darts_archs 30 --nbsz_archs 30 --nb301_archs 20 --nb101_archs 10 --proxies params,flops,synflow,naswot,grad_norm,snip,jacov,sweetimator,eznas)
    EVOLVE=(--quick --test-networks 20)  # evolve.py's own small first try
    VERIFY_N=40
else
    BASELINES=()
    EVOLVE=()
    VERIFY_N=1000
fi

step "baselines" "$OUT/baselines.md" \
    "$PY" benchmarks/bench_baselines.py "${DATA[@]}" --out "$OUT/baselines" --runs "$OUT/baselines-runs" "${BASELINES[@]}"

step "evolution" "$OUT/evolve/test_scores.csv" \
    "$PY" evolve.py --quiet "${DATA[@]}" --device "$DEVICE" --out "$OUT/evolve" --resume \
    --cache-dir "$OUT/cache/values" "${EVOLVE[@]}" "${WHERE[@]}"

for task in NASBench201:cifar10 NASBench201:cifar100 DARTS:cifar10; do
    space=${task%%:*} dataset=${task##*:}
    n=$VERIFY_N
    [[ $space == DARTS && $QUICK -eq 0 ]] && n=-1
    step "verify hall of fame on $task" "$OUT/verify-$space-$dataset/summary.json" \
        "$PY" verify_scores.py --quiet "${DATA[@]}" --device "$DEVICE" --search_space "$space" --dataset "$dataset" \
        --n_samples "$n" --seed 0 --program-file "$OUT/evolve/hall_of_fame.json" \
        --out "$OUT/verify-$space-$dataset" --results-csv "$OUT/all_tests.csv"
done

"$PY" benchmarks/reproduce_tables.py "$OUT"
say "tables: $OUT/tables.md"
