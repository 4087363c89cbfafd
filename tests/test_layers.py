"""The layering contract: a module of eznas imports only from its own layer or those below it, at the top of
the file or inside a function alike (issue 40). The bare package ``eznas`` (its ``__version__`` and the lazy
``eznas.score``) may be imported from anywhere."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eznas"
# bottom to top; a module or package is named once, by its dotted name under eznas
LAYERS = (
    ("errors", "io", "registry", "config", "args", "threads", "kernels", "hooks", "activations", "data", "metrics",
     "parallel", "inits", "runfolder"),
    ("primitives", "spaces"),
    ("stats", "features", "networks"),
    ("proxies",),
    ("gp", "rankers", "scoring"),  # gp.as_proxy: an evolved program used as a proxy
    ("search", "verify", "api", "report"),
    ("cli", "fetch", "__main__"),
)
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """The layer entry of ``eznas.<unit>[.<rest>]``."""
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[int, str]]:
    """Every ``eznas.*`` module the file imports (line, dotted name), relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("eznas.")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            if base == "eznas":  # from eznas import api: the submodules named
                found += [(node.lineno, f"eznas.{a.name}") for a in node.names if a.name in LEVEL]
            elif base.startswith("eznas."):
                found.append((node.lineno, base))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_has_a_layer():
    missing = sorted({unit("eznas." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in modules()}
                     - set(LEVEL))
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_imports_point_down():
    upward = []
    for path in modules():
        own = unit("eznas." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for line, target in imports(path):
            if LEVEL[unit(target)] > LEVEL[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} "
                              f"(layer {LEVEL[unit(target)]} above {own}'s {LEVEL[own]})")
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_the_contract_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "eznas"
    (fake / "proxies").mkdir(parents=True)
    (fake / "proxies" / "x.py").write_text("def f():\n    from eznas.gp.program import parse_program\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert imports(fake / "proxies" / "x.py") == [(2, "eznas.gp.program")]
    try:
        test_imports_point_down()
    except AssertionError as exc:
        assert "eznas/proxies/x.py:2 imports eznas.gp.program (layer 4 above proxies's 3)" in str(exc)
    else:
        raise AssertionError("an upward import went unnoticed")
