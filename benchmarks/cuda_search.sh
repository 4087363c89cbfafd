#!/usr/bin/env bash
# Issue 16's slow rows on a lent CUDA machine: the 10 REA searches of bench_search.py --lazy for one proxy
# (default reg_swap, SWAP's 32 initialisations per cell: ~3.8 s per NB-201 cell on 2 CPU cores), run side by
# side on the GPU and sharing one score cache as they go, in the folders bench_search --lazy reads. What
# comes back ($OUT/search_runs.tar.gz) is unpacked here and tabulated with
#   tar xzf search_runs.tar.gz && python benchmarks/bench_search.py --lazy --strategies rea \
#       --datasets $DATASET --proxies $PROXY --runs $RUNS --out benchmarks/results/search_lazy.json
# (finished searches are read, not run again; the cache holds device "cuda", so an unfinished one can only
# be continued on a GPU). Missing packages travel as wheels in .whl/ (cuda_env.sh).
set -u
PROXY=${PROXY:-reg_swap}; DATASET=${DATASET:-cifar10}; LIMIT=${LIMIT:-480}
RUNS=${RUNS:-results/benchmarks/search_lazy}; OUT=${OUT:-/tmp/cuda_search}; mkdir -p "$OUT"
source benchmarks/cuda_env.sh
export OMP_NUM_THREADS=1
start=$(date +%s)
for seed in 0 1 2 3 4 5 6 7 8 9; do
    run=$RUNS/runs/$DATASET-$PROXY-lazy-rea-b1000-s$seed
    resume=(); [ -f "$run/config.json" ] && resume=(--resume)
    timeout -k 10 "$LIMIT" python3 search.py --proxy "$PROXY" --dataset "$DATASET" --strategy rea --budget 1000 \
        --seed $seed --score_seed 0 --data_root "$EZNAS_DATA" --score_cache "$RUNS/cache/$DATASET-$PROXY.jsonl" \
        --out "$run" --quiet "${resume[@]}" > "$OUT/search-s$seed.log" 2>&1 &
done
wait
echo "searches ended after $(( $(date +%s) - start )) s; cached archs: $(( $(wc -l < "$RUNS/cache/$DATASET-$PROXY.jsonl") - 1 ))"
for f in "$RUNS"/runs/$DATASET-$PROXY-lazy-rea-b1000-s*/; do
    echo "$f $(python3 -c "import json,sys; r=json.load(open('$f/result.json')); print(r['found']['accuracy'], round(r['seconds']))" 2>/dev/null || echo unfinished)"
done
tar czf "$OUT/search_runs.tar.gz" "$RUNS/cache/$DATASET-$PROXY.jsonl" "$RUNS"/runs/$DATASET-$PROXY-lazy-rea-b1000-s*
