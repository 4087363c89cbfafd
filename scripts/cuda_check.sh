#!/usr/bin/env bash
# The GPU checks, in one command for a lent CUDA machine (issue 13: the default run with --device cuda):
#   1. the default evolve.py, cold, --device cuda, timed by bench_discovery (wall, peak RSS, cache), killed at
#      EVOLVE_LIMIT seconds; PROGRESS records every 10 s how many logbook rows (generations) are written, so a
#      run cut short still says how far it got;
#   2. every registered proxy on 12 NB-201 archs and the default proxies on 12 DARTS archs on the GPU (each
#      one's CUDA path).
# Missing Python packages travel as wheels in .whl/ (cuda_env.sh). Logs go to $OUT (default
# results/benchmarks/cuda_check, git-ignored), with a copy of benchmarks/results/discovery.{json,md} whose section
# `cuda` the run is recorded into (the other sections as committed): copy those two back over the committed ones
# to keep the figures (a run killed at EVOLVE_LIMIT records nothing).
set -u
OUT=${OUT:-results/benchmarks/cuda_check}; mkdir -p "$OUT"
cp benchmarks/results/discovery.json "$OUT/"
source scripts/cuda_env.sh
RUNS=${RUNS:-/tmp/eznas_cuda}; rm -rf "$RUNS"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
start=$(date +%s)
( while sleep 10; do echo "$(( $(date +%s) - start )) $(wc -l < "$RUNS/seed0/logbook.csv" 2>/dev/null || echo 0)"; done ) \
    > "$OUT/progress.txt" &
timeout -k 10 "${EVOLVE_LIMIT:-470}" python3 benchmarks/bench_discovery.py --part evolve --seeds 0 --runs "$RUNS" \
    --evolve-args "--device cuda" --section cuda --out "$OUT/discovery.json" 2>&1 | grep -v "warn" | tee "$OUT/evolve.log"
echo "bench_discovery rc=${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
kill %1 2>/dev/null; sleep 2  # timeout ended its process group (the evolve.py it started too)
cp "$RUNS/seed0/logbook.csv" "$OUT/" 2>/dev/null
P=az_nas,eznas,fisher,flops,grad_norm,grasp,jacov,meco,naswot,params,reg_swap,snip,swap,sweetimator,synflow,zico
timeout 60 python3 verify_scores.py --device cuda --proxy $P --n_samples 12 --out /tmp/cuda_v1 --results_csv /tmp/cuda_v.csv 2>&1 | grep "proxy="
timeout 40 python3 verify_scores.py --device cuda --search_space DARTS --n_samples 12 --out /tmp/cuda_v2 --results_csv /tmp/cuda_v.csv 2>&1 | grep "proxy="
