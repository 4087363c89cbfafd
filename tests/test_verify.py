"""verify_scores.py end to end on a small real sample: output files, stdout lines, errors."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eznas import report
from eznas.cli import verify_main

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^proxy=(\w+) kendall=-?\d\.\d{4} spearman=-?\d\.\d{4} pearson=-?\d\.\d{4} n=\d+ seconds=\d+\.\d$")


def run(args, capsys):
    code = verify_main(args)
    out, err = capsys.readouterr()
    return code, out, err


def proxy_lines(out):
    """The ``proxy=`` lines of verify's stdout, in the order requested."""
    return [line for line in out.splitlines() if line.startswith("proxy=")]


def table_rows(out):
    """The rows of the ranked table stdout ends with, as lists of cells."""
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


@pytest.fixture(scope="module")
def nb201_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    args = ["--data-root", str(data_root), "--n_samples", "24", "--seed", "1", "--quiet", "--bootstrap", "50",
            "--proxy", "params,flops,synflow,naswot,grad_norm,snip", "--out", str(out / "run"),
            "--results-csv", str(out / "all_tests.csv")]
    proc = subprocess.run([sys.executable, str(REPO / "verify_scores.py"), *args], capture_output=True, text=True,
                          cwd=out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_stdout_has_one_line_per_proxy_and_ends_with_the_table_ranked_by_rho(nb201_run):
    out, stdout = nb201_run
    assert [LINE.match(line).group(1) for line in proxy_lines(stdout)] == ["params", "flops", "synflow", "naswot",
                                                                           "grad_norm", "snip"]
    rows = table_rows(stdout)
    assert stdout.strip().splitlines()[-1].startswith("| 6 ") and [r[0] for r in rows] == list("123456")
    rho = [float(r[2]) for r in rows]
    assert rho == sorted(rho, reverse=True) and {r[1] for r in rows} == {"params", "flops", "synflow", "naswot",
                                                                          "grad_norm", "snip"}
    for row, value in zip(rows, rho):
        low, high = map(float, row[3].strip("[]").split(","))
        assert low <= value <= high and row[8] == "24"
        assert re.fullmatch(r"\d\.\d\d \(3\)", row[5])  # k = ceil(24 / 10)
    md = (out / "run" / "summary.md").read_text()
    assert md.startswith("# NASBench201 cifar10: 24 archs") and "\n".join(stdout.strip().splitlines()[-8:]) in md


def test_run_folder_files(nb201_run):
    out, _ = nb201_run
    run_dir = out / "run"
    scores = pd.read_csv(run_dir / "scores.csv")
    assert len(scores) == 24 and {"uid", "arch", "accuracy", "synflow", "naswot"} <= set(scores.columns)
    summary = json.loads((run_dir / "summary.json").read_text())
    m = summary["proxies"]["params"]
    for key in ("kendall", "spearman", "pearson", "n", "ci95", "seconds", "seconds_per_arch",
                "excluded_non_finite", "precision_top10pct", "top_k", "top_scored_accuracy", "best_accuracy"):
        assert key in m
    assert m["short_name"] == "params" and m["top_k"] == 3 and m["best_accuracy"] == scores.accuracy.max()
    assert m["ci95"]["spearman"][0] <= m["spearman"] <= m["ci95"]["spearman"][1]
    assert summary["config"]["batch_size"] == 16 and summary["config"]["seed"] == 1
    assert summary["config"]["proxies"] == ["params", "flops", "synflow", "naswot", "grad_norm", "snip"]
    config = json.loads((run_dir / "config.json").read_text())  # the frozen config, as evolve and search write
    assert {k: config[k] for k in summary["settings"]} == summary["settings"] and config["bootstrap"] == 50
    assert (run_dir / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = pd.read_csv(out / "all_tests.csv")
    assert list(rows.proxy) == ["params", "flops", "synflow", "naswot", "grad_norm", "snip"]
    assert set(rows.search_space) == {"NASBench201"} and set(rows.n_samples) == {24}


def test_same_seed_same_scores(nb201_run, data_root, tmp_path, capsys):
    out, _ = nb201_run
    code, _, _ = run(["--data-root", str(data_root), "--n_samples", "24", "--seed", "1", "--quiet",
                      "--bootstrap", "10", "--proxy", "synflow,naswot", "--out", str(tmp_path / "again"),
                      "--results-csv", str(tmp_path / "t.csv")], capsys)
    assert code == 0
    first = pd.read_csv(out / "run" / "scores.csv")
    again = pd.read_csv(tmp_path / "again" / "scores.csv")
    assert list(first.uid) == list(again.uid)
    assert (first.synflow == again.synflow).all() and first.naswot.equals(again.naswot)


def test_results_csv_appends(data_root, tmp_path, capsys):
    common = ["--data-root", str(data_root), "--n_samples", "3", "--quiet", "--bootstrap", "5", "--proxy", "params",
              "--results-csv", str(tmp_path / "all.csv")]
    assert run([*common, "--out", str(tmp_path / "a")], capsys)[0] == 0
    assert run([*common, "--out", str(tmp_path / "b"), "--seed", "2"], capsys)[0] == 0
    rows = pd.read_csv(tmp_path / "all.csv")
    assert list(rows.seed) == [0, 2]


@pytest.mark.parametrize("args, message", [
    (["--proxy", "synflw"], "unknown proxy 'synflw' (did you mean synflow?)"),
    (["--accuracy-key", "imagenet16_120_test"], "missing column 'imagenet16_120_test'"),
    (["--dataset", "ImageNet16-120"], "missing column 'imagenet16_120_test'"),
    (["--benchmark-path", "/nonexistent/table.csv"], "benchmark file not found: /nonexistent/table.csv"),
    (["--batch_size", "0"], "--batch_size must be >= 1"),
    (["--search_space", "NDS"], "nds_space"),
])
def test_bad_input_is_one_clear_line(args, message, data_root, tmp_path, capsys):
    code, out, err = run(["--data-root", str(data_root), "--n_samples", "2", "--quiet", "--out",
                          str(tmp_path / "x"), "--results-csv", str(tmp_path / "t.csv"), *args], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "t.csv").exists()


def test_missing_data_root_names_it(tmp_path, capsys):
    code, _, err = run(["--data-root", str(tmp_path / "empty"), "--quiet"], capsys)
    assert code == 2 and str(tmp_path / "empty") in err


def test_imagenet_with_user_supplied_column(data_root, tmp_path, capsys):
    table = pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv").head(6)
    table["imagenet16_120_test"] = [10.0, 20.0, 30.0, 40.0, 35.0, 25.0]
    path = tmp_path / "full.csv"
    table.to_csv(path, index=False)
    code, out, err = run(["--data-root", str(data_root), "--dataset", "ImageNet16-120", "--benchmark-path",
                          str(path), "--proxy", "params", "--quiet", "--bootstrap", "5", "--out",
                          str(tmp_path / "in16"), "--results-csv", str(tmp_path / "t.csv")], capsys)
    assert code == 0, err
    assert LINE.match(proxy_lines(out)[-1]).group(1) == "params"


def test_non_finite_scores_are_counted_and_excluded(data_root, tmp_path, capsys):
    table = pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv")
    # the all-'none' cell cuts every path: its ReLU codes are identical, so NASWOT's K is singular
    dead = table[table.arch_str == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    path = tmp_path / "t.csv"
    pd.concat([dead, table.head(5)]).to_csv(path, index=False)
    code, out, err = run(["--data-root", str(data_root), "--benchmark-path", str(path), "--proxy", "naswot",
                          "--quiet", "--bootstrap", "5", "--out", str(tmp_path / "nf"),
                          "--results-csv", str(tmp_path / "r.csv")], capsys)
    assert code == 0
    assert "note: naswot: 1 archs with a non-finite score were excluded" in out
    assert proxy_lines(out)[-1].startswith("proxy=naswot") and " n=5 " in proxy_lines(out)[-1]
    summary = json.loads((tmp_path / "nf" / "summary.json").read_text())
    assert summary["proxies"]["naswot"]["excluded_non_finite"] == 1


def test_resume_after_a_kill_scores_only_the_rest_and_matches(data_root, tmp_path, capsys, monkeypatch, caplog):
    import eznas.verify.run as verify

    common = ["--data-root", str(data_root), "--n_samples", "10", "--seed", "3", "--fresh_batch", "--quiet",
              "--bootstrap", "5", "--proxy", "synflow,naswot", "--results-csv", str(tmp_path / "t.csv")]
    assert run([*common, "--out", str(tmp_path / "whole")], capsys)[0] == 0
    real, scored = verify.score_archs, []

    def dying(*args, **kwargs):
        for r in real(*args, **kwargs):
            if len(scored) == 6:
                raise KeyboardInterrupt  # killed after 6 archs
            scored.append(r.arch.uid)
            yield r

    monkeypatch.setattr(verify, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(verify, "score_archs", dying)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        verify_main([*common, "--out", str(part)])
    assert not (part / "scores.csv").exists() and len(pd.read_csv(part / "partial_scores.csv")) == 6
    code, _, err = run([*common[:-2], "--proxy", "synflow", "--results-csv", str(tmp_path / "t.csv"),
                        "--out", str(part), "--resume"], capsys)
    assert code == 2 and "--proxy would change the run's proxies (['synflow', 'naswot'] there" in err
    scored.clear()
    monkeypatch.setattr(verify, "score_archs", lambda *a, **k: (scored.append(r.arch.uid) or r for r in real(*a, **k)))
    loud = [a for a in common if a != "--quiet"]  # stderr no terminal: progress lines, from the 6 done before
    with caplog.at_level("INFO", logger="eznas.cli"):
        assert run([*loud, "--out", str(part), "--resume"], capsys)[0] == 0
    shown = [r.getMessage().split(",")[0] for r in caplog.records if r.name == "eznas.cli"]
    assert shown == [f"scoring: {n}/10 archs ({n}0%)" for n in (7, 8, 9, 10)]
    assert len(scored) == 4 and not (part / "partial_scores.csv").exists()
    whole, resumed = pd.read_csv(tmp_path / "whole" / "scores.csv"), pd.read_csv(part / "scores.csv")
    assert list(whole.uid) == list(resumed.uid)
    assert whole.synflow.equals(resumed.synflow) and whole.naswot.equals(resumed.naswot)
    scored.clear()  # finished: --resume again scores nothing and reports the same figures
    code, out, _ = run([*common, "--out", str(part), "--resume"], capsys)
    assert code == 0 and scored == [] and "proxy=synflow" in out
    monkeypatch.chdir(data_root.parent)  # the same data root named relative to here: the same run
    code, out, err = run([*common[:1], data_root.name, *common[2:], "--out", str(part), "--resume"], capsys)
    assert code == 0 and scored == [] and "proxy=synflow" in out, err
    assert run([*common, "--resume"], capsys)[2].count("--resume needs --out") == 1


APPENDER = """
import sys
from pathlib import Path
from eznas.report import ALL_TESTS_COLUMNS, append_all_tests
path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    append_all_tests(path, [{**dict.fromkeys(ALL_TESTS_COLUMNS, ""), "proxy": who, "seed": i}])
"""


def test_concurrent_appends_to_all_tests_keep_every_row(tmp_path):
    path = tmp_path / "all_tests.csv"
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), who, "300"], cwd=REPO) for who in "ab"]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    rows = pd.read_csv(path)
    assert list(rows.columns) == report.ALL_TESTS_COLUMNS and len(rows) == 600
    for who in "ab":  # each writer's rows all there, in its order
        assert list(rows[rows.proxy == who].seed) == list(range(300))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".all_tests.csv.lock", "all_tests.csv"]  # no temp left


def test_a_proxy_that_fails_on_every_arch_is_reported_with_its_reasons_and_gets_no_row(
        data_root, tmp_path, capsys, monkeypatch):
    from eznas.proxies import PROXIES, Proxy

    def broken(probe) -> float:
        raise ValueError(f"cannot score a net with {sum(1 for _ in probe.net.modules()) % 1} modules\nmore detail")

    monkeypatch.setitem(PROXIES._items, "broken", Proxy("broken", broken, frozenset(), "always fails"))
    monkeypatch.setitem(PROXIES._items, "nan", Proxy("nan", lambda probe: float("nan"), frozenset(), "NaN"))
    code, out, err = run(["--data-root", str(data_root), "--n_samples", "3", "--proxy", "params,broken,nan", "--quiet",
                          "--bootstrap", "5", "--out", str(tmp_path / "r"), "--results-csv", str(tmp_path / "t.csv")],
                         capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    m = summary["proxies"]
    assert m["broken"]["all_non_finite"] and m["broken"]["failures"] == {"ValueError: cannot score a net with 0 modules": 3}
    assert m["nan"]["all_non_finite"] and m["nan"]["failures"] == {"returned nan": 3} and m["nan"]["n"] == 0
    assert not m["params"]["all_non_finite"] and m["params"]["failures"] == {}
    assert ("warning: broken: no finite score on any of the 3 archs (ValueError: cannot score a net with 0 modules: 3); "
            f"no row appended to {tmp_path / 't.csv'}") in out.splitlines()
    assert "warning: nan: no finite score on any of the 3 archs (returned nan: 3)" in out
    assert list(pd.read_csv(tmp_path / "t.csv").proxy) == ["params"]
    last = proxy_lines(out)
    assert [r[1] for r in table_rows(out)] == ["params", "broken", "nan"]  # no rho: last, in the order requested
    assert LINE.match(last[0]) and [line.split()[0] for line in last] == ["proxy=params", "proxy=broken", "proxy=nan"]
    assert " kendall=nan spearman=nan pearson=nan n=0 " in last[1]


def test_no_rows_leave_all_tests_alone(tmp_path):
    report.append_all_tests(tmp_path / "t.csv", [])
    assert not (tmp_path / "t.csv").exists()


def test_a_finished_run_is_never_scored_again(data_root, tmp_path, capsys, monkeypatch):
    import eznas.verify.run as verify

    common = ["--data-root", str(data_root), "--n_samples", "2", "--quiet", "--bootstrap", "5", "--proxy", "params",
              "--out", str(tmp_path / "r"), "--results-csv", str(tmp_path / "t.csv")]
    assert run(common, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    monkeypatch.setattr(verify, "score_archs", lambda *a, **k: pytest.fail("scored again"))
    code, out, _ = run([*common, "--resume", "--bootstrap", "7", "--results-csv", str(tmp_path / "u.csv")], capsys)
    assert code == 0 and "proxy=params" in out and not (tmp_path / "u.csv").exists()
    for args, flag in ((["--seed", "4"], "--seed"), (["--fresh_batch"], "--fresh_batch"), (["--init", "kaiming"], "--init")):
        code, _, err = run([*common, "--resume", *args], capsys)
        assert code == 2 and f"{flag} would change the run's" in err
    code, _, err = run(common, capsys)
    assert code == 2 and "already holds a run (summary.json)" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_a_network_that_cannot_be_built_or_run_fails_only_its_own_scores(data_root):
    import math

    import torch.nn as nn

    from eznas.data import BatchSource
    from eznas.errors import ArchError
    from eznas.scoring import score_archs
    from eznas.spaces import Arch

    class Explodes(nn.Module):
        def forward(self, x):
            raise RuntimeError("forward exploded")

    class Space:
        def build(self, spec, num_classes):
            if spec == "unbuildable":
                raise ArchError("no such cell")
            body = [Explodes()] if spec == "unrunnable" else []
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), *body, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, num_classes))

    archs = [Arch(str(i), spec, 50.0) for i, spec in enumerate(["fine", "unbuildable", "unrunnable", "fine"])]
    results = list(score_archs(Space(), archs, ["params", "grad_norm"], BatchSource(data_root, "cifar10", 4, 0)))
    assert [r.arch.uid for r in results] == ["0", "1", "2", "3"]
    fine, unbuildable, unrunnable, again = results
    assert all(math.isfinite(v) for v in (*fine.scores.values(), *again.scores.values())) and not fine.errors
    assert math.isnan(unbuildable.scores["params"]) and math.isnan(unbuildable.scores["grad_norm"])
    assert unbuildable.errors == dict.fromkeys(["params", "grad_norm"], "building the network: no such cell")
    assert unrunnable.scores["params"] == fine.scores["params"] and math.isnan(unrunnable.scores["grad_norm"])
    assert unrunnable.errors == {"grad_norm": "the shared pass: RuntimeError: forward exploded"}


def test_darts_probe_network_and_first_batch_are_what_is_scored(data_root, tmp_path, capsys):
    """--probe swap scores SWAP's stem-less one-cell network (params ~1e-3 M); the config records both options."""
    from eznas.spaces import SpaceOptions, get_space

    code, _, err = run(["--data-root", str(data_root), "--search_space", "DARTS", "--probe", "swap", "--first_batch",
                        "--n_samples", "4", "--quiet", "--bootstrap", "5", "--proxy", "params,swap:repeats=2",
                        "--out", str(tmp_path / "run"), "--results-csv", str(tmp_path / "t.csv")], capsys)
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    space = get_space("DARTS", SpaceOptions(probe="swap"))
    built = [sum(p.numel() for p in space.build(spec, 10).parameters()) / 1e6 for spec in scores.arch]
    assert scores.params.tolist() == pytest.approx(built) and max(built) < 0.003
    config = json.loads((tmp_path / "run" / "summary.json").read_text())["config"]
    assert config["probe"] == "swap" and config["first_batch"] is True


def test_a_darts_run_from_before_the_probe_option_resumes_only_on_its_standard_network(data_root, tmp_path, capsys):
    common = ["--data-root", str(data_root), "--search_space", "DARTS", "--n_samples", "2", "--quiet",
              "--bootstrap", "5", "--proxy", "params", "--out", str(tmp_path / "run"),
              "--results-csv", str(tmp_path / "t.csv")]
    assert run([*common, "--probe", "none"], capsys)[0] == 0
    summary_path = tmp_path / "run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    for key in ("probe", "first_batch"):  # as a run made before these options were written it
        del summary["settings"][key]
    summary_path.write_text(json.dumps(summary))
    (tmp_path / "run" / "config.json").unlink()  # nor did verify write its config.json then
    assert run([*common, "--probe", "none", "--resume"], capsys)[0] == 0  # finished: reported as it is
    code, _, err = run([*common, "--resume"], capsys)  # the default is now SWAP's probe network
    assert code == 2 and "--probe would change the run's probe" in err and "'none' there, 'swap' now" in err


def test_a_run_folder_holds_its_frozen_config_and_one_from_before_config_json_still_resumes(
        data_root, tmp_path, capsys, monkeypatch):
    """config.json (the resolved config) is written before anything is scored and read back on --resume; a
    folder made before verify wrote one resumes from its partial run's settings, and gets one."""
    import dataclasses

    import eznas.verify.run as verify
    from eznas.verify import VerifyConfig

    part = tmp_path / "part"
    common = ["--data-root", str(data_root), "--n_samples", "4", "--quiet", "--bootstrap", "5", "--proxy", "params",
              "--out", str(part), "--results-csv", str(tmp_path / "t.csv")]
    real = verify.score_archs

    def dying(*args, **kwargs):
        for k, r in enumerate(real(*args, **kwargs)):
            if k == 2:
                raise KeyboardInterrupt  # killed after 2 archs, checkpointed
            yield r

    monkeypatch.setattr(verify, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(verify, "score_archs", dying)
    with pytest.raises(KeyboardInterrupt):
        verify_main(common)
    config = json.loads((part / "config.json").read_text())
    assert set(config) == {f.name for f in dataclasses.fields(VerifyConfig)}
    assert (config["n_samples"], config["proxies"], config["out"], config["init"]) == (4, ["params"], str(part),
                                                                                       "default")
    (part / "config.json").unlink()  # as a folder made before verify wrote one
    monkeypatch.setattr(verify, "score_archs", real)
    code, _, err = run([*common, "--resume", "--seed", "1"], capsys)  # its partial run's settings are checked
    assert code == 2 and "--seed would change the run's seed (0 there, 1 now)" in err
    assert run([*common, "--resume"], capsys)[0] == 0
    assert json.loads((part / "config.json").read_text()) == config and not (part / "partial_state.json").exists()
    (part / "config.json").write_text(json.dumps({**config, "seed": 9}))  # config.json is what a resume reads
    code, _, err = run([*common, "--resume"], capsys)
    assert code == 2 and "--seed would change the run's seed (9 there, 0 now)" in err


def test_scores_spanning_many_decades_are_plotted_by_rank(tmp_path, monkeypatch):
    """synflow-like scores (1e2 .. 1e40) get a rank axis with few ticks; ordinary scores keep their values."""
    import matplotlib.axes

    from eznas import report

    assert report.spans_decades(pd.Series([1e2, 1e10, 1e40])) and not report.spans_decades(pd.Series([1.0, 50.0, 0.0]))
    drawn = {}
    real_scatter = matplotlib.axes.Axes.scatter

    def spy(ax, x, y, **kw):
        drawn.setdefault(ax, list(x))  # the panel's points (then its top 10% circled)
        return real_scatter(ax, x, y, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", spy)
    table = pd.DataFrame({"synflow": [1e2, 1e10, 1e40, float("inf")], "params": [1.0, 2.0, 3.0, 4.0],
                          "accuracy": [80.0, 85.0, 90.0, 91.0]})
    summary = {"proxies": {n: {"kendall": 1.0, "spearman": 1.0} for n in ("synflow", "params")}}
    report.plot_scatter(tmp_path / "s.png", table, ["synflow", "params"], summary, "t")
    synflow, params = drawn.values()
    assert synflow == pytest.approx([1 / 3, 2 / 3, 1.0]) and params == [1.0, 2.0, 3.0, 4.0]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_merge_rows_replaces_measured_rows_keeps_the_rest_and_groups_by_dataset():
    from eznas.report import merge_rows

    before = [{"dataset": "c10", "name": "a", "v": 1}, {"dataset": "c100", "name": "a", "v": 2},
              {"dataset": "c10", "name": "b", "v": 3}]
    now = [{"dataset": "c10", "name": "b", "v": 30}, {"dataset": "c10", "name": "c", "v": 40},
           {"dataset": "in16", "name": "a", "v": 50}]
    rows = merge_rows(before, now, key=lambda r: (r["dataset"], r["name"]))
    assert [(r["dataset"], r["name"], r["v"]) for r in rows] == [
        ("c10", "a", 1), ("c10", "b", 30), ("c10", "c", 40), ("c100", "a", 2), ("in16", "a", 50)]
    assert merge_rows([], now, key=lambda r: (r["dataset"], r["name"])) == [now[0], now[1], now[2]]


def test_write_results_writes_the_json_and_its_table_beside_it(tmp_path):
    from eznas.report import write_results

    assert write_results(tmp_path / "bench.json", {"rows": [1]}, "| a |\n") == "| a |\n"
    assert json.loads((tmp_path / "bench.json").read_text()) == {"rows": [1]}
    assert (tmp_path / "bench.md").read_text() == "| a |\n"


def test_paired_difference_ci_is_narrower_than_two_intervals_and_signs_the_better_ranking():
    """Two rankings that share most of their errors: the paired interval of their difference excludes 0
    where the two separate intervals overlap; swapped, the difference changes sign; too few archs: NaN."""
    import numpy as np

    from eznas.metrics import bootstrap_ci, correlations, paired_difference_ci

    rng = np.random.default_rng(0)
    acc = rng.normal(size=300)
    shared = rng.normal(size=300)  # the errors both rankings make
    good = acc + 0.6 * shared + 0.2 * rng.normal(size=300)
    worse = acc + 0.6 * shared + 0.45 * rng.normal(size=300)
    d = paired_difference_ci(good, worse, acc)
    assert d["n"] == 300 and d["diff"] == pytest.approx(correlations(good, acc)["spearman"] - correlations(worse, acc)["spearman"])
    assert 0 < d["ci"][0] < d["diff"] < d["ci"][1]
    a, b = bootstrap_ci(good, acc)["spearman"], bootstrap_ci(worse, acc)["spearman"]
    assert a[0] < b[1]  # the separate intervals overlap: only the paired one tells them apart
    r = paired_difference_ci(worse, good, acc)
    assert r["diff"] == pytest.approx(-d["diff"]) and r["ci"][1] < 0
    worse[:298] = np.inf  # non-finite scores are left out, for both rankings
    assert paired_difference_ci(good, worse, acc)["n"] == 2 and np.isnan(paired_difference_ci(good, worse, acc)["diff"])


def test_top_of_ranking_precision_and_top_scored_accuracy_on_a_hand_made_example():
    """k = ceil(n/10); ties count as their expectation over random tie-breaks (a constant score: chance)."""
    from eznas.metrics import top_count, top_of_ranking

    assert [top_count(n) for n in (1, 5, 10, 11, 20, 30, 1000)] == [1, 1, 1, 2, 2, 3, 100]
    acc = np.arange(20.0)  # arch 19 the most accurate, then 18
    scores = acc.copy()
    scores[[19, 0]] = scores[[0, 19]]  # the most accurate arch scored worst
    m = top_of_ranking(scores, acc)
    assert m == {"precision_top10pct": 0.5, "top_k": 2, "top_scored_accuracy": 0.0, "best_accuracy": 19.0}
    tied = acc.copy()
    tied[[17, 18, 19]] = 30.0, 20.0, 20.0  # arch 17 first, then 18 and 19 tied for the last top place
    assert top_of_ranking(tied, acc)["precision_top10pct"] == 0.5  # (0 + 0.5 + 0.5) / 2
    assert top_of_ranking(np.ones(20), acc)["precision_top10pct"] == pytest.approx(2 / 20)
    both = top_of_ranking(np.array([5.0, 5.0, 1.0]), np.array([1.0, 3.0, 3.0]))  # k = 1, ties on both sides
    assert both["precision_top10pct"] == 0.25 and both["top_scored_accuracy"] == 2.0
    assert top_of_ranking(np.array([]), np.array([]))["top_k"] == 0


def summary_of(**rhos):
    return {"proxies": {name: {"spearman": rho, "kendall": rho / 2, "n": 10, "ci95": {"spearman": [rho - .1, rho + .1]},
                               "short_name": "program 1" if name.startswith("mean") else name}
                        for name, rho in rhos.items()}}


def test_programs_get_short_names_in_the_table_and_the_scatter_with_their_text_beside(tmp_path, monkeypatch):
    import matplotlib.axes
    import matplotlib.figure

    from eznas.verify.config import VerifyConfig, proxy_calls
    from eznas.verify.summary import short_names

    program = "mean_units(fro(pre_D))"
    calls = proxy_calls(VerifyConfig(proxies=("params",), programs=(program, "mean_units(fro(weight))")))
    assert list(short_names(calls).values()) == ["params", "program 1", "program 2"]
    summary = summary_of(params=0.2, **{program: 0.5})
    assert report.program_texts(summary) == {"program 1": program}
    table = report.summary_table(summary)
    assert table.splitlines()[-1] == f"program 1: {program}" and "| 1    | program 1 |" in table
    titles, texts = [], []
    real_title, real_text = matplotlib.axes.Axes.set_title, matplotlib.figure.Figure.text
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda ax, t, **kw: titles.append(t) or real_title(ax, t, **kw))
    monkeypatch.setattr(matplotlib.figure.Figure, "text",
                        lambda f, x, y, t, **kw: texts.append(t) or real_text(f, x, y, t, **kw))
    scores = pd.DataFrame({"params": np.arange(10.0), program: -np.arange(10.0), "accuracy": np.arange(10.0)})
    report.plot_scatter(tmp_path / "s.png", scores, ["params", program], summary, "t")
    assert titles[0].startswith("params (n=10)\n") and titles[1].startswith("program 1 (n=10)\n")
    assert "[0.40, 0.60]" in titles[1] and texts[-1] == f"program 1: {program}"  # the footnote


def test_progress_is_logged_outside_a_terminal_every_tenth_or_minute(caplog, capsys):
    from eznas.cli import LogProgress, progress_bar

    now = [0.0]
    bar = LogProgress(100, "scoring", "arch", initial=20, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="eznas.cli"):
        for i in range(30):  # 2 s per arch: a line every 10 archs (before the minute is up)
            now[0] += 2.0 if i < 25 else 70.0  # then a minute per arch: a line each
            bar.update(1)
        bar.set_postfix(best="1.5")
        bar.update(1)  # neither a minute nor a tenth since the last line: none
        bar.close()  # the end: a line
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["scoring: 30/100 archs (30%), elapsed 0:00:20, ETA 0:02:20",
                         "scoring: 40/100 archs (40%), elapsed 0:00:40, ETA 0:02:00"]
    assert len(lines) == 2 + 6 and lines[-2].startswith("scoring: 50/100 archs (50%), elapsed 0:06:40, ETA ")
    assert lines[-1].startswith("scoring: 51/100 archs (51%), elapsed 0:06:40") and lines[-1].endswith(", best=1.5")
    assert isinstance(progress_bar(5, "s", "arch", quiet=False), LogProgress)  # pytest's stderr: no terminal
    assert not isinstance(progress_bar(5, "s", "arch", quiet=True), LogProgress)
