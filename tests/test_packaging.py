"""The package as pip installs it: the wheel's contents, the ``eznas`` command (verify, evolve, search, fetch)
and ``--version`` on every command; the wheel installed into a fresh virtual environment, away from this
checkout, scores a model as the checkout does. Offline: the wheel is built without build isolation and
installed without an index; the fresh environment borrows this one's dependencies (torch, deap, ...)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import eznas
from eznas import __main__ as command
from eznas.args import package_version
from eznas.cli import evolve_main, search_main, verify_main
from eznas.fetch.cli import main as fetch_main

REPO = Path(__file__).resolve().parents[1]
VERSION = eznas.__version__
PROGRAM = "mean_units(fro(pre_D))"  # an evolved program: scored by eznas.primitives
SCORE = """
import json, sys, torch
import eznas, eznas.primitives
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
images = torch.randn(4, 3, 8, 8)
scores = eznas.score(net, images, proxies=("synflow", "params"), programs=(sys.argv[1],))
print(json.dumps({"scores": scores, "eznas": eznas.__file__, "primitives": eznas.primitives.__file__}))
"""


def run(*argv: str | Path, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------------------------- commands
@pytest.mark.parametrize("main", [command.main, verify_main, evolve_main, search_main, fetch_main])
def test_every_command_prints_its_version(main, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"eznas {VERSION}\n"


def test_the_version_is_the_packages_else_the_source_trees(monkeypatch):
    from importlib.metadata import PackageNotFoundError

    import eznas.args

    assert package_version() == VERSION  # the metadata of this checkout's install, from eznas.__version__

    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(eznas.args, "version", not_installed)
    monkeypatch.setattr(eznas, "__version__", "9.9.9")
    assert package_version() == "9.9.9"


def test_eznas_lists_its_commands_and_names_a_bad_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        command.main(["--help"])
    shown = capsys.readouterr().out
    assert exit_.value.code == 0 and all(f"    {name} " in shown for name in ("verify", "evolve", "search", "fetch"))
    assert command.main([]) == 2 and capsys.readouterr().err == \
        "error: the following arguments are required: COMMAND (see eznas --help)\n"
    assert command.main(["vrify"]) == 2 and capsys.readouterr().err.startswith("error: argument COMMAND: invalid")
    assert command.main(["verify", "--no-such-flag"]) == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --no-such-flag (see eznas verify --help)\n"


@pytest.mark.parametrize("name", ["verify", "evolve", "search", "fetch"])
def test_a_subcommand_is_the_scripts_command_under_its_own_name(name, capsys):
    with pytest.raises(SystemExit):
        command.main([name, "--help"])
    assert capsys.readouterr().out.startswith(f"usage: eznas {name} [-h]")


def test_the_scripts_print_the_version(tmp_path):
    for script in ("verify_scores.py", "evolve.py", "search.py"):
        r = run(sys.executable, REPO / script, "--version", cwd=tmp_path)
        assert (r.returncode, r.stdout) == (0, f"eznas {VERSION}\n"), r.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- the wheel
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of this checkout's package sources (a stale build/ here cannot leak into it)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "eznas", src / "eznas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    r = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
            "-w", root / "dist", src, cwd=root, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheels = list((root / "dist").glob("eznas-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_eznas_its_language_data_license_and_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = f"eznas-{VERSION}.dist-info"
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        metadata = z.read(f"{info}/METADATA").decode()
    assert {n.split("/")[0] for n in names} == {"eznas", info}  # no top-level primitives (a PyPI name)
    sources = {str(p.relative_to(REPO)) for p in (REPO / "eznas").rglob("*.py")}
    assert sources <= set(names) and "eznas/primitives/aggregate.py" in sources  # sources: export reads them
    assert {"eznas/data_sources.json", f"{info}/licenses/LICENSE"} <= set(names)
    assert "[console_scripts]\neznas = eznas.__main__:main" in entry_points
    assert f"Version: {VERSION}\n" in metadata and "License-Expression: Apache-2.0\n" in metadata


def test_the_wheel_installed_elsewhere_runs_the_command_and_scores_as_this_checkout(wheel, tmp_path):
    """The wheel in a fresh virtual environment (no pip in it: this one's pip installs into it); the
    dependencies come from this environment's site-packages, listed after the fresh one's own, as plain paths
    (their .pth files, an editable install of this checkout's among them, are not run). Run outside the
    checkout, the command and ``eznas`` are the wheel's."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    r = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    own = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=tmp_path).stdout.strip())
    borrowed = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (own / "zz_borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in borrowed))

    eznas_command = env_dir / "bin" / "eznas"
    assert eznas_command.read_text().startswith(f"#!{python}")
    version = run(eznas_command, "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"eznas {VERSION}\n"), version.stderr[-2000:]
    listed = run(python, "-m", "eznas", "--help", cwd=tmp_path)
    assert listed.returncode == 0 and "verify" in listed.stdout and "fetch" in listed.stdout, listed.stderr[-2000:]
    usage = run(eznas_command, "verify", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: eznas verify"), usage.stderr[-2000:]

    scored = run(python, "-c", SCORE, PROGRAM, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    there = json.loads(scored.stdout.splitlines()[-1])
    assert Path(there["eznas"]).is_relative_to(own) and Path(there["primitives"]).is_relative_to(own)
    here = run(sys.executable, "-c", SCORE, PROGRAM, cwd=REPO)  # the checkout's eznas, same script
    assert here.returncode == 0, here.stderr[-2000:]
    assert Path(json.loads(here.stdout.splitlines()[-1])["eznas"]).is_relative_to(REPO)
    assert there["scores"] == json.loads(here.stdout.splitlines()[-1])["scores"]
    assert set(there["scores"]) == {"synflow", "params", PROGRAM}
