#!/usr/bin/env bash
# Issue 16's slow rows on a lent CUDA machine: the 10 REA searches of bench_search.py --lazy for one proxy
# (default reg_swap, SWAP's 32 initialisations per cell: ~2-4 s per NB-201 cell on 2 CPU cores), one dataset
# of DATASETS after the other, its 10 searches side by side on the GPU sharing one score cache as they go,
# in the folders bench_search --lazy reads; all within LIMIT seconds (a dataset starts only with >= 60 s left;
# nvidia-smi's utilisation is logged every 10 s to gpu.log). What comes back ($OUT/search_runs.tar.gz) is unpacked
# here and tabulated with
#   tar xzf search_runs.tar.gz && python benchmarks/bench_search.py --lazy --strategies rea \
#       --datasets cifar10,cifar100 --proxies $PROXY --runs $RUNS   # search.json's part lazy
# (finished searches are read, not run again; the cache holds device "cuda", so an unfinished one can only
# be continued on a GPU). Missing packages travel as wheels in .whl/ (cuda_env.sh).
set -u
PROXY=${PROXY:-reg_swap}; DATASETS=${DATASETS:-cifar10 cifar100}; LIMIT=${LIMIT:-480}
BUDGET=${BUDGET:-1000}; SEEDS=${SEEDS:-10}
RUNS=${RUNS:-results/benchmarks/search_lazy}; OUT=${OUT:-/tmp/cuda_search}; mkdir -p "$OUT"
source scripts/cuda_env.sh
export OMP_NUM_THREADS=1
start=$(date +%s)
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 10 > "$OUT/gpu.log" 2>&1 &
smi=$!
for dataset in $DATASETS; do
    left=$(( LIMIT - ($(date +%s) - start) )); [ "$left" -ge 60 ] || break
    pids=()
    for seed in $(seq 0 $((SEEDS - 1))); do
        run=$RUNS/runs/$dataset-$PROXY-lazy-rea-b$BUDGET-s$seed
        resume=(); [ -f "$run/config.json" ] && resume=(--resume)
        timeout -k 10 "$left" python3 search.py --proxy "$PROXY" --dataset "$dataset" --strategy rea \
            --budget "$BUDGET" --seed "$seed" --score_seed 0 --data_root "$EZNAS_DATA" \
            --score_cache "$RUNS/cache/$dataset-$PROXY.jsonl" --out "$run" --quiet "${resume[@]}" \
            > "$OUT/search-$dataset-s$seed.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    echo "$dataset: searches ended after $(( $(date +%s) - start )) s"
done
kill $smi 2>/dev/null
echo "searches ended after $(( $(date +%s) - start )) s"
files=()
for dataset in $DATASETS; do
    cache=$RUNS/cache/$dataset-$PROXY.jsonl; [ -f "$cache" ] || continue
    echo "$dataset: cached archs $(( $(wc -l < "$cache") - 1 ))"
    for f in "$RUNS"/runs/$dataset-$PROXY-lazy-rea-b$BUDGET-s*/; do
        echo "$f $(python3 -c "import json; r=json.load(open('$f/result.json')); print(r['found']['accuracy'], round(r['seconds']))" 2>/dev/null || echo unfinished)"
    done
    files+=("$cache" "$RUNS"/runs/$dataset-$PROXY-lazy-rea-b$BUDGET-s*)
done
tar czf "$OUT/search_runs.tar.gz" "${files[@]}"
