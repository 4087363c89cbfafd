"""runjob.sh against a fake sbatch on PATH that records what it was given; reproduce.sh's argument handling
(its --quick run takes minutes: it is measured in the README, not run here)."""
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

FAKE_SBATCH = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SBATCH_LOG/args"
cp "$1" "$SBATCH_LOG/script"
echo "Submitted batch job 4242"
"""


@pytest.fixture
def fake_sbatch(tmp_path):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EZNAS_SLURM_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", SBATCH_LOG=str(log))
    return env, log


def runjob(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "runjob.sh"), *args], env=env, capture_output=True, text=True,
                          cwd=REPO)


def test_submits_a_batch_script_with_the_flags(fake_sbatch):
    env, log = fake_sbatch
    env = {**env, "EZNAS_SLURM_ACCOUNT": "nas-lab", "EZNAS_SLURM_MEM": "32G"}
    r = runjob("--partition", "gpu", "--time", "02:00:00", "--gpus", "2", "--cpus", "8",
               "python", "verify_scores.py", "--proxy", "swap", "--out", "results/a b", env=env)
    assert r.returncode == 0, r.stderr
    assert "Submitted batch job 4242" in r.stdout
    script_file = Path((log / "args").read_text().strip())
    assert script_file.parent == REPO / "results" / "slurm" and script_file.is_file()
    script = (log / "script").read_text()
    script_file.unlink()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=nas-lab", "#SBATCH --time=02:00:00",
                 "#SBATCH --mem=32G", "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:2", "#SBATCH --no-requeue",
                 f"cd {REPO}", "python verify_scores.py --proxy swap --out results/a\\ b"):
        assert line in script, line
    assert "--resume" not in script


def test_requeue_makes_an_evolve_run_resume_from_its_checkpoint(fake_sbatch):
    env, _ = fake_sbatch
    r = runjob("--dry-run", "--requeue", "python", "evolve.py", "--space", "NASBench201", env=env)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --requeue" in r.stdout
    assert 'python evolve.py --space NASBench201 --out "results/evolve/slurm-${SLURM_JOB_ID}" --resume' in r.stdout
    r = runjob("--dry-run", "--requeue", "python", "evolve.py", "--out", "results/evolve/mine", env=env)
    assert r.stdout.rstrip().endswith("python evolve.py --out results/evolve/mine --resume")


def test_dry_run_submits_nothing_and_the_script_runs_the_command_verbatim(fake_sbatch, tmp_path):
    env, log = fake_sbatch
    r = runjob("--dry-run", "python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME", "x,y", env=env)
    assert r.returncode == 0 and not (log / "args").exists()
    (tmp_path / "job.sh").write_text(r.stdout)
    ran = subprocess.run(["bash", str(tmp_path / "job.sh")], env={**env, "SLURM_JOB_ID": "7"},
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "['a b', '$HOME', 'x,y']"


@pytest.mark.parametrize("args, message", [
    ([], "no command to submit"),
    (["--partition"], "--partition needs a value"),
    (["--cpus", "two", "python", "evolve.py"], "--cpus (or $EZNAS_SLURM_CPUS) must be a positive integer, got 'two'"),
    (["--time", "soon", "python", "evolve.py"], "--time (or $EZNAS_SLURM_TIME) must be like [D-]HH:MM:SS"),
    (["--bogus", "python", "evolve.py"], "unknown option --bogus"),
])
def test_bad_input_is_one_clear_line(fake_sbatch, args, message):
    env, log = fake_sbatch
    r = runjob(*args, env=env)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and message in r.stderr
    assert not (log / "args").exists()


def test_without_sbatch_it_says_so(fake_sbatch, tmp_path):
    env, _ = fake_sbatch
    env = {**env, "PATH": "/usr/bin:/bin"}
    r = runjob("python", "evolve.py", env=env)
    assert r.returncode == 2 and "sbatch not found" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option --bogus"),
    (["--out"], "--out needs a value"),
])
def test_reproduce_rejects_bad_options(args, message):
    r = subprocess.run(["bash", str(REPO / "reproduce.sh"), *args], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and message in r.stderr


def test_reproduce_help_names_its_steps():
    r = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--help"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "--quick" in r.stdout and "skipped when its output is already complete" in r.stdout
