"""eznas.runfolder: the one recipe of a run folder (verify, search, evolve): the guard, config.json written and
read back through a migration hook, and the resume check with its one wording."""
from __future__ import annotations

import json

import pytest

from eznas.errors import DataError, EznasError
from eznas.runfolder import CONFIG, RunFolder, as_used, flat, jsonable


def test_the_guard_refuses_a_folder_that_holds_a_run_unless_resumed(tmp_path):
    folder = RunFolder(tmp_path / "run", holds=("summary.json", "partial_state.json"))
    assert folder.guard(resume=False) is None and folder.held() is None  # absent: nothing held
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # not one of its files
    assert folder.guard(resume=False) is None
    (tmp_path / "run" / "partial_state.json").write_text("{}")
    (tmp_path / "run" / "summary.json").write_text("{}")
    with pytest.raises(EznasError) as caught:
        folder.guard(resume=False)
    assert str(caught.value) == (f"--out {tmp_path / 'run'} already holds a run (summary.json): continue it with "
                                 f"--resume {tmp_path / 'run'} (same settings), or choose another --out")
    assert folder.guard(resume=True) == "summary.json"  # the first of holds, in its order


def test_config_json_is_written_whole_and_read_back_through_the_migration_hook(tmp_path):
    folder = RunFolder(tmp_path / "run", migrate=lambda saved: {"probe": "none", **saved})
    folder.write_config({"budget": 10, "tasks": ("a", "b")})
    assert json.loads((tmp_path / "run" / CONFIG).read_text()) == {"budget": 10, "tasks": ["a", "b"]}
    assert [p.name for p in (tmp_path / "run").iterdir()] == [CONFIG]  # no temporary file left beside it
    assert folder.saved_config() == {"probe": "none", "budget": 10, "tasks": ["a", "b"]}
    assert folder.saved_config(migrated=False) == {"budget": 10, "tasks": ["a", "b"]}
    (tmp_path / "run" / CONFIG).write_text('{"probe": "swap"}')  # a saved value wins over the hook's
    assert folder.saved_config() == {"probe": "swap"}


@pytest.mark.parametrize("text, why", [('{"budget": 1', "JSONDecodeError"), ("[1, 2]", "not a JSON object"),
                                       ("", "JSONDecodeError")])
def test_an_unreadable_config_is_one_data_error_line_naming_the_file(tmp_path, text, why):
    folder = RunFolder(tmp_path)
    (tmp_path / CONFIG).write_text(text)
    with pytest.raises(DataError) as caught:
        folder.saved_config()
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(tmp_path / CONFIG) in message and why in message
    assert message.startswith(f"--resume {tmp_path}: ") and message.endswith("move it aside to start again")


def test_a_folder_without_config_json_is_not_a_run_folder(tmp_path):
    with pytest.raises(EznasError, match=r"^--resume .*: no config\.json there \(not a run folder\)$") as caught:
        RunFolder(tmp_path).saved_config()
    assert not isinstance(caught.value, DataError)
    with pytest.raises(FileNotFoundError):
        RunFolder(tmp_path).read("state.json")  # the caller decides what an absent file means


def test_the_resume_check_names_the_first_differing_setting_and_both_values(tmp_path):
    folder = RunFolder(tmp_path, may_change=("budget", "time_budget", "out"))
    before = {"proxy": "params", "seed": 0, "budget": 10, "out": "a"}
    folder.check_resumed(before, {**before, "budget": 15, "time_budget": 60.0, "out": "/abs/a"})  # may change
    with pytest.raises(EznasError) as caught:
        folder.check_resumed(before, {**before, "proxy": "flops", "seed": 1})
    assert str(caught.value) == (f"--resume {tmp_path}: --proxy would change the run's proxy ('params' there, "
                                 "'flops' now); a resumed run keeps its settings (only --budget and --time_budget "
                                 "may change)")
    with pytest.raises(EznasError, match=r"--seed would change the run's seed \(0 there, None now\)"):
        folder.check_resumed(before, {k: v for k, v in before.items() if k != "seed"})  # one side only
    with pytest.raises(EznasError, match=r": --set seed=1 would change the run's seed \(0 there, 1 now\)"):
        folder.check_resumed(before, {**before, "seed": 1}, name=lambda key: f"--set {key}=1")


def test_nested_settings_are_compared_by_dotted_key_and_tuples_equal_lists(tmp_path):
    folder = RunFolder(tmp_path, may_change=("generations", "parallel"),
                       flag=lambda key: "where tasks run" if key == "parallel" else f"--{key}")
    before = {"generations": 2, "fitness": {"tasks": ["a"], "selection": 12}, "parallel": {"workers": 1}}
    now = {"generations": 4, "fitness": {"tasks": ("a",), "selection": 12}, "parallel": {"workers": 8}}
    assert folder.changed(before, now) == []
    assert folder.changed(before, {**now, "fitness": {"tasks": ("a",), "selection": 300}}) == ["fitness.selection"]
    assert folder.rule() == "only --generations and where tasks run may change"
    with pytest.raises(EznasError, match=r"the run's fitness\.selection \(12 there, 300 now\); .*\(only "
                       r"--generations and where tasks run may change\)$"):
        folder.check_resumed(before, {**now, "fitness": {"tasks": ["a"], "selection": 300}})
    assert flat({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}
    assert jsonable({"t": ("x", 1), "p": tmp_path}) == {"t": ["x", 1], "p": str(tmp_path)}


def test_a_same_hook_lets_equal_values_differ_in_form(tmp_path):
    folder = RunFolder(tmp_path, same=lambda key, a, b: a == b or (key == "root" and str(a).rstrip("/") == b))
    folder.check_resumed({"root": "data/"}, {"root": "data"})
    with pytest.raises(EznasError, match=r"--root would change the run's root \('data/' there, 'other' now\); a "
                       r"resumed run keeps its settings$"):  # nothing may change: no "only ..." words
        folder.check_resumed({"root": "data/"}, {"root": "other"})


def test_as_used_fills_what_an_old_config_lacks_with_what_the_run_used_then_its_default_now():
    """The one migration recipe of every command: a saved value wins, then the table of what runs made before a
    setting existed used, then today's default; nested settings are filled key by key."""
    migrate = as_used({"probe": "swap", "budget": 10, "tasks": ("a",), "fitness": {"probe": "swap", "k": 1}},
                      before={"probe": "none", "fitness": {"probe": "none"}})
    assert migrate({"budget": 3, "fitness": {"k": 2}}) == {"probe": "none", "budget": 3, "tasks": ["a"],
                                                           "fitness": {"probe": "none", "k": 2}}
    assert migrate({"probe": "swap", "fitness": {"probe": "x", "k": 2}}) == {
        "probe": "swap", "budget": 10, "tasks": ["a"], "fitness": {"probe": "x", "k": 2}}
    assert as_used({"a": 1})({}) == {"a": 1}  # no table: the defaults
