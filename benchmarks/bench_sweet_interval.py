"""Find Sweetimator's gradient interval without training, as Sweet Gradient does, and compare it with the
published NB-201 choice [1e-4, 5e-4).

    python benchmarks/bench_sweet_interval.py            # paper protocol: NB-201 archs 0-99, batch 64, CE

For each network, each cell's share of weights per |gradient| bin (21 bins, 0, 5e-10, 1e-9, ..., 1, 5);
per bin the mean over consecutive cells of sign(share increase); the bin with the highest mean over
networks wins. Writes benchmarks/results/sweet_interval.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eznas.data import BatchSource, resolve_data_root
from eznas.io import write_json
from eznas.proxies.sweet import GRID, cell_shares, find_sweet_interval
from eznas.networks import build_network
from eznas.spaces import get_space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_archs", type=int, default=100, help="the first N archs by index (paper: 100)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sweet_interval.json"))
    args = p.parse_args()
    root = resolve_data_root(args.data_root)
    space = get_space("NASBench201")
    archs = space.load(space.default_benchmark(root, args.dataset), args.dataset)[: args.n_archs]
    batches = BatchSource(root, args.dataset, args.batch_size, args.seed)
    shares = []
    for arch in archs:
        net = build_network(space, arch, batches.spec.num_classes, args.seed)
        shares.append(cell_shares(net, batches.batch()))
    low, high, scores = find_sweet_interval(shares)
    order = np.argsort(-np.nan_to_num(scores, nan=-9))
    print(f"NB-201 {args.dataset}, archs 0-{len(archs) - 1}, batch {args.batch_size}, seed {args.seed}")
    print("top bins by monotonicity (mean sign of the share's rise from cell to cell):")
    for i in order[:5]:
        print(f"  [{GRID[i]:g}, {GRID[i + 1]:g})  {scores[i]:+.3f}")
    published = GRID.index(1e-4)
    print(f"found [{low:g}, {high:g}); published NB-201 choice [1e-4, 5e-4) scores {scores[published]:+.3f} "
          f"(rank {int(np.where(order == published)[0][0]) + 1} of {len(scores)})")
    write_json(args.out, {"n_archs": len(archs), "batch_size": args.batch_size, "dataset": args.dataset,
                          "seed": args.seed, "found": [low, high], "published": [1e-4, 5e-4],
                          "bins": [[GRID[i], GRID[i + 1], float(scores[i])] for i in range(len(scores))]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
