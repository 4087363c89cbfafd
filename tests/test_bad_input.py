"""Bad input to every command: exit code 2, exactly one ``error:`` line naming the culprit, and nothing a user
already has (a finished run folder, all_tests.csv, an evolution checkpoint) changed. The Python CLIs run
in-process with scoring and evolution replaced by a tripwire, so no bad input scores anything."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eznas.cli import evolve_main, verify_main
from eznas.fetch import cli as fetch_cli, downloads
from tests.conftest import REPO, tiny

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def root(data_root, tmp_path_factory):
    """A folder of things a user has: a finished verify run, all_tests.csv, an evolution run, input files."""
    root = tmp_path_factory.mktemp("user")
    code = verify_main(["--data-root", str(data_root), "--n_samples", "3", "--quiet", "--bootstrap", "5",
                        "--proxy", "params", "--out", str(root / "run"), "--results-csv", str(root / "all_tests.csv")])
    assert code == 0 and (root / "run" / "summary.json").is_file()
    evo = root / "evo"
    evo.mkdir()
    (evo / "config.json").write_text(json.dumps(dataclasses.asdict(tiny(data_root))))
    (evo / "checkpoint.pkl").write_bytes(b"a checkpoint: never read by a bad command")
    (root / "afile").write_text("a file, not a folder\n")
    (root / "header_only.csv").write_text("index,arch_str,cifar10_test\n")
    (root / "bad_arch.csv").write_text(f"index,arch_str,cifar10_test\n0,{NB201},90.0\n1,{NB201.replace('skip_connect~2', 'conv~2')},91.0\n")
    (root / "bad_header.csv").write_text("when,what\n1,2\n")
    (root / "bad_darts.csv").write_text('genotype,valid_acc\n"Genotype(normal=[(\'sep_conv_9x9\', 0)])",90.0\n')
    (root / "c.toml").write_text("population = 12\n")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expand(args, root: Path, fresh: Path, data_root: Path) -> list[str]:
    return [a.format(root=root, fresh=fresh, data=data_root) for a in args]


def check(code: int, err: str, culprits: tuple[str, ...], before: dict, root: Path, fresh: Path) -> None:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    assert snapshot(root) == before
    assert not fresh.exists()


VERIFY = [  # (args, culprits the error line names); {root} holds the user's things, {fresh} is a new folder
    (["--out", "{root}/run"], ("--out", "/run", "already holds a run")),
    (["--out", "{root}/run", "--resume", "--n_samples", "3", "--seed", "1"], ("--seed", "0 there, 1 now")),
    (["--out", "{root}/run", "--resume", "--n_samples", "3", "--proxy", "synflow"], ("--proxy", "synflow")),
    (["--out", "{root}/run", "--resume", "--n_samples", "3", "--batch_size", "8"], ("--batch_size", "16 there")),
    (["--out", "{root}/run", "--resume", "--n_samples", "3", "--program", "mean_units(fro(pre_D))"], ("--program",)),
    (["--out", "{root}/run", "--resume"], ("--n_samples", "3 there, 1000 now")),  # the default: 1000 archs
    (["--proxy", "sweetimator:low=-1"], ("--proxy", "sweetimator:low=-1", "low must be >= 0")),
    (["--proxy", "sweetimator:low=1e-3:high=1e-4"], ("low < high", "low=0.001")),
    (["--proxy", "swap:repeats=0"], ("repeats must be >= 1, got 0",)),
    (["--proxy", "reg_swap:sigma=0"], ("sigma must be > 0",)),
    (["--proxy", "zico:splits=1"], ("splits must be >= 2",)),
    (["--proxy", "zico:splits=64"], ("splits <= --batch_size", "batch_size=16")),
    (["--proxy", "meco:resolution=10"], ("resolution must be a multiple of 4",)),
    (["--proxy", "jacov:k=0"], ("k must be > 0",)),
    (["--proxy", "sweetimator:high=nan"], ("high must be a finite number",)),
    (["--proxy", "swap:repats=4"], ("bad option 'repats=4'",)),
    (["--proxy", "synflw"], ("unknown proxy 'synflw'",)),
    (["--n_samples", "0"], ("--n_samples must be >= 1, or -1 (all), got 0",)),
    (["--n_samples", "-2"], ("--n_samples", "got -2")),
    (["--n_samples", "many"], ("--n_samples", "'many'")),
    (["--batch_size", "0"], ("--batch_size must be >= 1",)),
    (["--batch_size", "1000000"], ("--batch_size 1000000 is out of range",)),
    (["--bootstrap", "0"], ("--bootstrap must be >= 1",)),
    (["--program-file", "{root}/afile", "--program_top", "0"], ("--program_top must be >= 1",)),
    (["--program-file", "{root}/nothing.json"], ("--program-file", "does not exist")),
    (["--program", "mean_units(fro(pre_X))"], ("--program", "unknown name 'pre_X'")),
    (["--search_space", "DARTS", "--width", "0"], ("--width must be >= 1",)),
    (["--cells", "4"], ("--cells applies to", "NASBench201")),
    (["--search_space", "NASBench101", "--cells", "4"], ("--cells applies to", "not NASBench101")),
    (["--nds_space", "darts"], ("--nds_space applies to",)),
    (["--probe", "swap"], ("--probe applies to", "DARTS or NASBench301 only", "NASBench201")),
    (["--search_space", "DARTS", "--probe", "tiny"], ("--probe", "invalid choice: 'tiny'")),
    (["--fresh_batch", "--first_batch"], ("--fresh_batch and --first_batch exclude each other",)),
    (["--set", "bootstrp=5"], ("--set bootstrp", "unknown key 'bootstrp'", "bootstrap")),
    (["--set", "bootstrap=many"], ("--set bootstrap", "expected int", "'many'")),
    (["--set", "bootstrap=0"], ("--bootstrap must be >= 1",)),
    (["--search_space", "NDS", "--nds_space", "foo"], ("unknown nds_space 'foo'",)),
    (["--seed", "-1"], ("--seed must be >= 0",)),
    (["--benchmark-path", "{root}/header_only.csv"], ("header_only.csv", "no architectures")),
    (["--benchmark-path", "{root}/bad_arch.csv"], ("bad_arch.csv", "row 1", "'conv~2'")),
    (["--search_space", "DARTS", "--benchmark-path", "{root}/bad_darts.csv"], ("bad_darts.csv", "row 0", "sep_conv_9x9")),
    (["--out", "{root}/afile/run"], ("--out", "afile is a file")),
    (["--results-csv", "{root}/afile/t.csv"], ("--results_csv", "afile is a file")),
    (["--results-csv", "{root}/bad_header.csv"], ("bad_header.csv", "unexpected header")),
    (["--program-file", "{root}/bad_header.csv"], ("--program-file", "not a hall_of_fame.json")),
    (["--search_space", "NB101"], ("--search_space", "'NB101'")),
    (["--dataset", "ImageNet16-120"], ("imagenet16_120_test",)),
    (["--bogus"], ("unrecognized arguments: --bogus",)),
]


@pytest.mark.parametrize("args, culprits", VERIFY, ids=[" ".join(a) for a, _ in VERIFY])
def test_verify(args, culprits, root, data_root, tmp_path, capsys, monkeypatch):
    import eznas.verify.run

    monkeypatch.setattr(eznas.verify.run, "score_archs", lambda *a, **k: pytest.fail("a bad input was scored"))
    fresh, before = tmp_path / "fresh", snapshot(root)
    argv = ["--data-root", str(data_root), "--quiet", "--proxy", "params", "--out", str(fresh),
            "--results-csv", str(root / "all_tests.csv"), *expand(args, root, fresh, data_root)]
    code = verify_main(argv)
    check(code, capsys.readouterr().err, culprits, before, root, fresh)


EVOLVE = [
    (["--population", "1"], ("--population must be >= 2, got 1",)),
    (["--config", "{root}/c.toml", "--population", "0"], ("--population",)),
    (["--generations", "0"], ("--generations must be >= 1",)),
    (["--test_networks", "-1"], ("--test_networks must be >= 0",)),
    (["--seed", "-1"], ("--seed must be >= 0",)),
    (["--population", "x"], ("--population", "'x'")),
    (["--tasks", "NASBench201:cifar1000"], ("--tasks", "'cifar1000'", "NASBench201:cifar100")),
    (["--tasks", "NB201:cifar10"], ("--tasks", "'NB201'", "DARTS:cifar10")),
    (["--tasks", "DARTS:cifar100"], ("--tasks", "'cifar100' for DARTS")),
    (["--tasks", "NASBench301:cifar100"], ("--tasks", "'cifar100' for NASBench301")),
    (["--tasks", "NASBench101:cifar10@width=0"], ("--tasks", "'width=0'", "@width=N")),
    (["--tasks", "NASBench101:cifar10@depth=3"], ("--tasks", "'depth=3'", "@cells=N")),
    (["--probe", "tiny"], ("--probe", "invalid choice: 'tiny'")),
    (["--space", "DARTS", "--tasks", "DARTS:cifar10"], ("--space and --tasks",)),
    (["--search_space", "DARTS", "--dataset", "cifar100"], ("--search_space/--dataset", "'cifar100' for DARTS")),
    (["--dataset", "cifar100"], ("--dataset cifar100 needs --search_space",)),
    (["--set", "fitness.selectio=300"], ("--set fitness.selectio", "unknown key", "fitness.selection")),
    (["--set", "populaton=20"], ("unknown key 'populaton'", "population", "fitness.*")),
    (["--set", "fitness.selection=many"], ("--set fitness.selection", "expected int", "'many'")),
    (["--set", "fitness.metric=pearson"], ("--set fitness.metric=pearson", "kendall or spearman")),
    (["--set", "population=1"], ("--set population must be >= 2, got 1",)),
    (["--set", "population"], ("--set 'population'", "KEY=VALUE")),
    (["--config", "{root}/nothing.toml"], ("config file not found",)),
    (["--resume", "{root}/evo", "--population", "99"], ("--population", "8 there, 99 now")),
    (["--resume", "{root}/evo", "--seed", "5"], ("--seed", "0 there, 5 now")),
    (["--resume", "{root}/evo", "--tasks", "DARTS:cifar10"], ("--tasks", "fitness.tasks")),
    (["--resume", "{root}/evo", "--space", "DARTS"], ("--search_space", "fitness.tasks")),
    (["--resume", "{root}/evo", "--set", "fitness.selection=300"], ("--set fitness.selection=300",
                                                                    "fitness.selection (12 there, 300 now)")),
    (["--resume", "{root}/evo", "--device", "cpu"], ("--device", "fitness.device ('auto' there, 'cpu' now)")),
    (["--resume", "{root}/evo", "--config", "{root}/c.toml"], ("--config", "population (8 there, 12 now)")),
    (["--resume", "{root}/evo", "--data_root", "/elsewhere"], ("--data_root", "fitness.data_root")),
    (["--resume", "{root}/evo", "--probe", "none"], ("--probe", "fitness.probe (None there, 'none' now)")),
    (["--resume", "{root}/evo", "--out", "{fresh}"], ("--out", "stays in")),
    (["--resume", "{root}/run"], ("config.json: unknown key 'search_space'",)),  # a verify run's config.json
    (["--out", "{root}/evo"], ("already holds a run",)),
    (["--out", "{root}/evo", "--resume", "--population", "9"], ("--resume", "population (8 there, 9 now)")),
    (["--out", "{root}/evo", "--resume", "--device", "cpu"], ("--device", "fitness.device ('auto' there, 'cpu' now)")),
]


@pytest.mark.parametrize("args, culprits", EVOLVE, ids=[" ".join(a) for a, _ in EVOLVE])
def test_evolve(args, culprits, root, data_root, tmp_path, capsys, monkeypatch):
    import eznas.gp.run

    monkeypatch.setattr(eznas.gp.run, "run_evolution", lambda *a, **k: pytest.fail("a bad input was evolved"))
    fresh, before = tmp_path / "fresh", snapshot(root)
    argv = expand(args, root, fresh, data_root)
    if "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(fresh)]
    code = evolve_main(["--quiet", "--data-root", str(data_root), *argv] if "--data_root" not in argv else
                       ["--quiet", *argv])
    check(code, capsys.readouterr().err, culprits, before, root, fresh)


FETCH = [
    (["--data-root", "{root}/afile"], {}, ("--data-root", "is a file")),
    (["--data-root", "{fresh}", "--mirror", "{root}/nowhere"], {}, ("mirror", "/nowhere", "is not a folder")),
    (["--data-root", "{fresh}"], {"EZNAS_SOURCE_BASE": "nowhere"}, ("$EZNAS_SOURCE_BASE", "'nowhere'")),
    (["--data-root", "{fresh}", "--bogus"], {}, ("unrecognized arguments: --bogus",)),
]


@pytest.mark.parametrize("args, env, culprits", FETCH, ids=[" ".join(a) for a, _, _ in FETCH])
def test_fetch(args, env, culprits, root, data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EZNAS_MIRROR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(downloads, "download", lambda *a, **k: pytest.fail("a bad input downloaded"))
    fresh, before = tmp_path / "fresh", snapshot(root)
    code = fetch_cli.main(expand(args, root, fresh, data_root))
    check(code, capsys.readouterr().err, culprits, before, root, fresh)


SHELL = [  # (script, args, extra environment, culprits)
    ("runjob.sh", [], {}, ("no command to submit",)),
    ("runjob.sh", ["--cpus", "0", "python", "evolve.py"], {}, ("--cpus", "'0'")),
    ("runjob.sh", ["python", "evolve.py"], {"EZNAS_SLURM_GPUS": "two"}, ("$EZNAS_SLURM_GPUS", "'two'")),
    ("runjob.sh", ["--mem", "lots", "python", "evolve.py"], {}, ("--mem", "'lots'")),
    ("runjob.sh", ["--job-name", "a/b", "python", "evolve.py"], {}, ("--job-name", "'a/b'")),
    ("runjob.sh", ["--partition", "gpu\n#SBATCH --x", "python", "evolve.py"], {}, ("--partition",)),
    ("runjob.sh", ["--time", "1h", "python", "evolve.py"], {}, ("--time", "'1h'")),
    ("runjob.sh", ["--account", "--requeue", "python", "evolve.py"], {}, ("--account needs a value",)),
    ("runjob.sh", ["--bogus", "python", "evolve.py"], {}, ("unknown option --bogus",)),
    ("reproduce.sh", ["--backend", "spark", "--out", "{fresh}"], {}, ("--backend", "'spark'")),
    ("reproduce.sh", ["--workers", "0", "--out", "{fresh}"], {}, ("--workers", "'0'")),
    ("reproduce.sh", ["--device", "gpu", "--out", "{fresh}"], {}, ("--device", "'gpu'")),
    ("reproduce.sh", ["--data-root", "{root}/nowhere", "--out", "{fresh}"], {}, ("--data-root", "nowhere")),
    ("reproduce.sh", ["--out", "{root}/afile"], {}, ("--out", "afile", "is a file")),
    ("reproduce.sh", ["--quick", "--bogus", "--out", "{fresh}"], {}, ("unknown option --bogus",)),
]


@pytest.mark.parametrize("script, args, env, culprits", SHELL, ids=[f"{s} {' '.join(a)}" for s, a, _, _ in SHELL])
def test_shell_scripts(script, args, env, culprits, root, data_root, tmp_path):
    fresh, before = tmp_path / "fresh", snapshot(root)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EZNAS_SLURM_")}
    r = subprocess.run(["bash", str(REPO / script), *expand(args, root, fresh, data_root)], capture_output=True,
                       text=True, cwd=tmp_path, env={**environ, **env, "PATH": "/usr/bin:/bin"}, timeout=60)
    check(r.returncode, r.stderr, culprits, before, root, fresh)


@pytest.mark.parametrize("script, args, culprits", [
    ("verify_scores.py", ["--out", "{root}/run", "--results-csv", "{root}/all_tests.csv"], ("already holds a run",)),
    ("evolve.py", ["--resume", "{root}/evo", "--population", "99"], ("--population",)),
])
def test_end_to_end(script, args, culprits, root, data_root, tmp_path):
    fresh, before = tmp_path / "fresh", snapshot(root)
    r = subprocess.run([sys.executable, str(REPO / script), "--quiet", "--data-root", str(data_root),
                        *expand(args, root, fresh, data_root)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    check(r.returncode, r.stderr, culprits, before, root, fresh)
