"""The command-line layer (issue 40, issue 39 item 6): shared flags defined once with one default, help that
shows each flag's spellings, choices and default once, ``--set KEY=VALUE`` over the frozen configs,
evolve's ``--search_space``/``--dataset``, and ``--test_networks`` recorded in a run's config.json."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from eznas.cli import SHARED, evolve_main, evolve_parser, search_parser, verify_config, verify_parser
from eznas.cli.evolve import FIELDS, evolve_setup, new_run_config
from eznas.cli.search import search_config
from eznas.config import get_field, override
from eznas.errors import EznasError
from eznas.gp.config import DEFAULT_TASKS, EvolutionConfig
from eznas.gp.presets import QUICK, default_tasks

PARSERS = {"verify": verify_parser, "evolve": evolve_parser, "search": search_parser}
# flags that several commands take with a meaning (and so a default) of their own
OWN = {
    ("evolve", "search_space"): "the tasks: a space's, or SPACE:DATASET with --dataset (default: the config's tasks)",
    ("evolve", "dataset"): "with --search_space, the one task SPACE:DATASET",
    ("evolve", "population"): "the GP's population, not REA's",
    ("search", "population"): "REA's population",
    ("verify", "program"): "repeatable",
    ("search", "program"): "the one fitness",
    ("verify", "proxy"): "a comma-separated list",
    ("search", "proxy"): "the one fitness",
}


def actions(command: str) -> dict:
    return {a.dest: a for a in PARSERS[command]()._actions if a.dest not in ("help", "version")}


def test_every_shared_flag_has_its_one_default_in_every_command_that_takes_it():
    flags = {command: actions(command) for command in PARSERS}
    for name, (_, kw) in SHARED.items():
        takers = [c for c in PARSERS if name in flags[c] and (c, name) not in OWN]
        assert takers, name
        for command in takers:
            assert flags[command][name].default == kw.get("default", False), (command, name)
    for command in PARSERS:
        assert flags[command]["device"].default == "auto", command
    seen: dict[str, list[str]] = {}
    for command, by_dest in flags.items():
        for dest in by_dest:
            seen.setdefault(dest, []).append(command)
    for dest, commands in seen.items():  # a flag of several commands is shared, or declared their own
        if len(commands) > 1 and dest not in SHARED:
            assert all((c, dest) in OWN for c in commands), (dest, commands)


def test_evolve_shows_its_configs_defaults():
    """A FIELDS flag's default (what --help shows) is the config field's: the shared ones' too."""
    default = EvolutionConfig()
    flags = actions("evolve")
    for name, field in FIELDS.items():
        assert field.to_config(flags[name].default) == get_field(default, field.key), name
    assert default.fitness.device == "auto" and default.test_networks == 100


def test_help_lists_each_spelling_choice_and_default_once():
    help_text = verify_parser().format_help()
    options = help_text.split("\n\n", 1)[1]  # after the usage
    line = next(line for line in options.splitlines() if "--search_space" in line)
    assert line.strip().startswith("--search_space, --search-space, --space {") and line.count("{") == 1
    assert options.count("{DARTS,") == 1 and "(default: 1000)" in options and "(default: None)" not in options
    evolve_help = evolve_parser().format_help()
    assert "(default: auto)" in evolve_help and "(default: 100)" in evolve_help
    assert "(default: NASBench201:cifar10," in " ".join(evolve_help.split())  # a tuple shown as the flag's text
    assert "population=12" in evolve_help  # --quick's sizes, from the preset


def test_the_parser_knows_what_the_command_line_gave():
    args = evolve_parser().parse_args(["--population", "50", "--quiet", "--set", "seed=1"])
    assert args.given == {"population", "quiet", "set"} and args.device == "auto"


# ---------------------------------------------------------------------------------------------- --set
def test_set_reads_the_field_type_and_names_a_bad_key_or_value():
    cfg = EvolutionConfig()
    assert override(cfg, "population=20").population == 20
    nested = override(cfg, "fitness.selection=300")
    assert nested.fitness.selection == 300 and nested.fitness.validation == cfg.fitness.validation
    assert override(cfg, "fitness.tasks=DARTS:cifar10, NASBench201:cifar10").fitness.tasks == \
        ("DARTS:cifar10", "NASBench201:cifar10")
    assert override(cfg, "fitness.promote_margin=0.2").fitness.promote_margin == 0.2
    assert override(cfg, "pool_ops=off").pool_ops is False and override(cfg, "parallel.queue=gpu").parallel.queue == "gpu"
    assert override(cfg, "fitness.width=32").fitness.width == 32 and override(cfg, "fitness.width=null").fitness.width is None
    assert override(cfg, "fitness.probe=none").fitness.probe == "none"  # a value "none", not None
    with pytest.raises(EznasError, match=r"^--set fitness\.selectio: unknown key 'fitness\.selectio'; valid: "
                       r"fitness\.tasks, fitness\.validation_tasks, fitness\.selection, "):
        override(cfg, "fitness.selectio=3")
    with pytest.raises(EznasError, match=r"unknown key 'populaton'; valid: population, .*fitness\.\*, parallel\.\*$"):
        override(cfg, "populaton=3")
    with pytest.raises(EznasError, match=r"^--set population: expected int, got 'abc'$"):
        override(cfg, "population=abc")
    with pytest.raises(EznasError, match=r"^--set fitness\.promote_margin: expected float, got 'wide'$"):
        override(cfg, "fitness.promote_margin=wide")
    with pytest.raises(EznasError, match=r"^--set fitness\.width: expected int or null, got '3\.5'$"):
        override(cfg, "fitness.width=3.5")
    with pytest.raises(EznasError, match=r"^--set pool_ops: expected bool \(true or false\), got 'maybe'$"):
        override(cfg, "pool_ops=maybe")
    with pytest.raises(EznasError, match=r"^--set fitness\.metric=pearson: fitness\.metric must be kendall or spearman"):
        override(cfg, "fitness.metric=pearson")  # the dataclass's own check, named
    with pytest.raises(EznasError, match=r"^--set fitness: a table; set its keys, e\.g\. --set fitness\.tasks="):
        override(cfg, "fitness=1")


@pytest.mark.parametrize("argv, message", [
    (["--set", "fitness.selectio=300"], "--set fitness.selectio: unknown key 'fitness.selectio'; valid: fitness.tasks"),
    (["--set", "population=lots"], "--set population: expected int, got 'lots'"),
    (["--set", "population=1"], "--set population must be >= 2, got 1"),
])
def test_evolve_set_errors_are_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("eznas.gp.run.run_evolution", lambda *a, **k: pytest.fail("a bad input was evolved"))
    assert evolve_main(["--quiet", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and not (tmp_path / "run").exists()


def test_set_comes_after_the_flags_and_in_every_command():
    args = evolve_parser().parse_args(["--quick", "--population", "30", "--set", "population=20",
                                       "--set", "fitness.selection=300", "--set", "tournament=3"])
    cfg = new_run_config(args)
    assert (cfg.population, cfg.fitness.selection, cfg.tournament) == (20, 300, 3)
    assert cfg.fitness.validation == QUICK["fitness.validation"]
    verify = verify_config(verify_parser().parse_args(["--set", "bootstrap=200", "--set", "proxies=meco,synflow"]))
    assert verify.bootstrap == 200 and verify.proxies == ("meco", "synflow")
    search = search_config(search_parser().parse_args(["--set", "sample_size=10", "--set", "time_budget=60"]))
    assert search.sample_size == 10 and search.time_budget == 60.0


# ---------------------------------------------------------------------------------------------- evolve
@pytest.mark.parametrize("argv, tasks", [
    (["--search_space", "NASBench201", "--dataset", "cifar100"], ("NASBench201:cifar100",)),
    (["--search_space", "NATSBenchSSS"], default_tasks()["NATSBenchSSS"]),
    (["--space", "DARTS"], ("DARTS:cifar10",)),
    (["--tasks", "NASBench201:cifar10,DARTS:cifar10"], ("NASBench201:cifar10", "DARTS:cifar10")),
    ([], DEFAULT_TASKS),
])
def test_evolve_takes_eznas_names_for_its_tasks(argv, tasks, tmp_path):
    cfg, run_dir, resumed = evolve_setup(evolve_parser().parse_args([*argv, "--out", str(tmp_path / "r")]))
    assert cfg.fitness.tasks == tasks and not resumed


@pytest.mark.parametrize("command, config", [("verify", verify_config), ("search", search_config)])
def test_resume_dir_is_out_dir_and_a_bare_resume(command, config, tmp_path):
    """One --resume shape in every command: --resume DIR continues DIR, as --out DIR --resume does."""
    run = str(tmp_path / "run")
    parse = PARSERS[command]().parse_args
    assert config(parse(["--resume", run])) == config(parse(["--out", run, "--resume"])) == \
        config(parse(["--out", run, "--resume", run]))
    assert config(parse(["--resume", run])).out == run
    assert parse(["--out", run]).resume is False and parse(["--out", run, "--resume"]).resume is True
    with pytest.raises(EznasError, match=rf"^--out {tmp_path}/b: a run resumed with --resume {run} stays in {run}$"):
        config(parse(["--resume", run, "--out", str(tmp_path / "b")]))
    with pytest.raises(EznasError, match=r"^bare --resume needs --out DIR: the run folder to continue \(or give "
                       r"--resume DIR\)$"):
        config(parse(["--resume"]))


def test_evolve_takes_the_same_resume_shape(tmp_path):
    """--resume DIR continues the run in DIR with its saved config; a bare --resume with --out DIR continues it if
    it holds this run, else starts it there; --out another folder, or a bare --resume without --out, is an error."""
    run = tmp_path / "run"
    cfg, run_dir, resumed = evolve_setup(evolve_parser().parse_args(["--out", str(run), "--resume"]))
    assert (run_dir, resumed) == (run, False) and cfg == new_run_config(evolve_parser().parse_args([]))
    with pytest.raises(EznasError, match=rf"^--resume {run}: no config\.json there \(not a run folder\)$"):
        evolve_setup(evolve_parser().parse_args(["--resume", str(run)]))
    with pytest.raises(EznasError, match=r"stays in"):
        evolve_setup(evolve_parser().parse_args(["--resume", str(run), "--out", str(tmp_path / "b")]))
    with pytest.raises(EznasError, match=r"^bare --resume needs --out DIR"):
        evolve_setup(evolve_parser().parse_args(["--resume"]))


def test_verify_samples_1000_archs_unless_told():
    assert verify_config(verify_parser().parse_args([])).n_samples == 1000
    assert verify_config(verify_parser().parse_args(["--n_samples", "all"])).n_samples == -1


def test_test_networks_is_recorded_in_config_json(two_generations, data_root, cache_dir, tmp_path, capsys):
    """The run's config.json says on how many test networks test_scores.csv was measured; a resumed run may
    change it (a finished one is left as it is, its record with it)."""
    out, _ = two_generations
    assert json.loads((out / "config.json").read_text())["test_networks"] == 8  # run_evolution(test_networks=8)
    run = tmp_path / "run"
    tiny = ["--quiet", "--data-root", str(data_root), "--cache_dir", str(cache_dir), "--workers", "1",
            "--tasks", "NASBench201:cifar10", "--population", "8", "--generations", "2", "--batch_size", "4",
            "--proxy_terminals", "none", "--blend", "0", "--pool_ops", "off", "--winner", "best", "--novel_elites", "0",
            "--set", "offspring=8", "--set", "elites=2", "--set", "hall_of_fame=5", "--set", "fitness.selection=12",
            "--set", "fitness.validation=6", "--set", "fitness.screen=6", "--set", "fitness.promote=3"]
    assert evolve_main([*tiny, "--test_networks", "3", "--out", str(run)]) == 0, capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["test_networks"] == 3
    tests = pd.read_csv(run / "test_scores.csv")
    assert set(tests.n + tests.excluded_non_finite) == {3}
    assert (run / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()  # the tiny run
    before = (run / "config.json").read_text()
    assert evolve_main(["--quiet", "--resume", str(run), "--test_networks", "5", "--cache_dir", str(cache_dir)]) == 0
    assert (run / "config.json").read_text() == before  # finished: as it is


def test_a_requeued_run_from_before_device_auto_keeps_its_device(tmp_path):
    """A bare --resume --out DIR (runjob.sh --requeue) of a run made when evolve's device default was cpu
    continues it on the CPU; the other settings are still those the flags give."""
    from eznas.config import plain, replace_fields

    run = tmp_path / "run"
    run.mkdir()
    argv = ["--out", str(run), "--resume", "--population", "8"]
    saved = replace_fields(new_run_config(evolve_parser().parse_args(argv)), {"fitness.device": "cpu"})
    (run / "config.json").write_text(json.dumps(plain(saved)))
    (run / "checkpoint.pkl").write_bytes(b"not read here")
    cfg, run_dir, resumed = evolve_setup(evolve_parser().parse_args(argv))
    assert (cfg, run_dir, resumed) == (saved, run, True)
    with pytest.raises(EznasError, match=r"population \(8 there, 9 now\)"):
        evolve_setup(evolve_parser().parse_args([*argv[:-1], "9"]))
    default = EvolutionConfig().population  # not given: the flag at its default would change it
    with pytest.raises(EznasError, match=rf"^--resume {run}: --population would change the run's population "
                       rf"\(8 there, {default} now\); a resumed run keeps its settings \(only --generations, --winner, "
                       r"--test_networks and where tasks run may change\)$"):
        evolve_setup(evolve_parser().parse_args(argv[:-2]))
