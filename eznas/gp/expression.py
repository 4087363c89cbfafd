"""A program compiled to Python: the expressions an exported file (``best_proxy.py``) evaluates.

:func:`program_expression` is a per-network program (or a pool program's part) as one expression over a
model's units and features, evaluated as ``Program.value`` does; :func:`pool_expression` is a pool program's
combination of its parts' columns, evaluated as ``Program.pool_scores`` does. Each names the functions of
eznas the file carries (the primitives, ``aggregate_units``, ``checked``, ``each``, ``statistic``).
"""
from __future__ import annotations

from deap import gp

from eznas.gp.program import Program
from eznas.gp.pset import is_aggregator, is_pool_op
from eznas.primitives import PRIMITIVES


def program_expression(program: Program, units: str = "units", features: str = "features") -> str:
    """The program as one Python expression over the list ``units`` of each unit's named tensors and the
    dict ``features``, evaluated as ``Program.value`` does: statistics as float32, per-unit constants as
    0-d tensors, each aggregator through ``aggregate_units``, each network-level result checked finite."""
    tree = program.tree

    def unit(i: int) -> tuple[str, int]:
        node = tree[i]
        if isinstance(node, gp.Primitive):
            args, j = [], i + 1
            for _ in node.args:
                text, j = unit(j)
                args.append(text)
            return f"{PRIMITIVES.get(node.name).fn.__name__}({', '.join(args)})", j
        if isinstance(node.value, str):
            return f"statistic(t[{node.name!r}])", i + 1
        return f"torch.tensor({float(node.value)!r})", i + 1

    def net(i: int) -> str:
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return f"{features}[{node.name!r}]" if isinstance(node.value, str) else repr(float(node.value))
        spec = PRIMITIVES.get(node.name)
        if is_aggregator(node):
            agg = spec.fn
            return (f"aggregate_units({units}, lambda i, t: {unit(i + 1)[0]}, {agg.unit.__name__}, "
                    f"{agg.combine.__name__}, {node.name!r})")
        args, j = [], i + 1
        for _ in node.args:
            args.append(net(j))
            j = program.stops[j]
        return f"checked({spec.fn.__name__}({', '.join(args)}), {node.name!r})"

    return net(0)


def pool_expression(program: Program, columns: str = "columns", n: str = "n") -> str:
    """A pool program's combination as one Python expression over ``columns`` (each frontier part's values on
    the ``n`` networks of the pool where every part is defined), evaluated as ``Program.pool_scores`` does:
    pool ops on whole columns, the other ops network by network (``each``), NaN where not defined."""
    tree, parts = program.tree, set(program.frontier())

    def pool(i: int) -> str:
        node = tree[i]
        if isinstance(node, gp.Terminal) and not isinstance(node.value, str):
            return f"[{float(node.value)!r}] * {n}"
        if program.key(i) in parts:
            return f"{columns}[{program.key(i)!r}]"
        args, j = [], i + 1
        for _ in node.args:
            args.append(pool(j))
            j = program.stops[j]
        fn = PRIMITIVES.get(node.name).fn
        if is_pool_op(node):
            return f"{fn.fn.__name__}({', '.join(args)})"
        return f"each({fn.__name__}, {node.name!r}, {', '.join(args)})"

    return pool(0)
