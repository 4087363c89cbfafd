"""``bench_discovery.py --part profile``: where the default run's time goes (issue 41). The default evolve.py
from an empty value cache (cold, the first seed), then a second GP seed on the cache it filled (warm); each
run's ``profile.json`` (eznas/gp/profile.py) read into one table, checked against the issue's targets, and
recorded as section ``profile`` of bench_discovery's results file, keyed by the cold run's GP seed (the
other sections kept)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from _common import record, saved
from eznas.gp.profile import PROFILE

SECTION = "profile"  # the section of bench_discovery's results file the profiles are recorded under

# the targets: (what, the figure's key in a run's entry, the limit, the figure's unit)
TARGETS = (("cold default run (wall, the process)", "cold", "wall_seconds", 15 * 60),
           ("second GP seed on the warm cache (wall, the process)", "warm", "wall_seconds", 4 * 60),
           ("GP bookkeeping, cold run (share of its wall time)", "cold", "bookkeeping_share", 0.10),
           ("GP bookkeeping, warm run (share of its wall time)", "warm", "bookkeeping_share", 0.10))


def read_profile(run: Path) -> dict | None:
    path = run / PROFILE
    return json.loads(path.read_text()) if path.is_file() else None


def measure(runs: Path, seeds: tuple[int, int], extra: list[str], before: dict,
            run_evolve: Callable[[int, Path, Path, list[str]], dict]) -> dict[str, dict]:
    """The cold and the warm run, ``{"cold": entry, "warm": entry}``. A run measured before (in ``before``,
    its folder's profile.json still the one recorded) is reused; else it runs again from scratch, and a cold
    run again first empties the value cache and drops the warm run (which its cache made warm)."""
    cache, out = runs / "values", {}
    for label, seed in zip(("cold", "warm"), seeds):
        run = runs / f"{label}-seed{seed}"
        entry, profile = before.get(label), read_profile(run)
        if not (entry and profile and entry["run"] == str(run) and entry["profile"] == profile):
            if label == "cold":
                shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(runs / f"warm-seed{seeds[1]}", ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)
            cost = run_evolve(seed, run, cache, extra)
            profile = read_profile(run)
            if profile is None:
                raise SystemExit(f"error: --part profile: {run} has no {PROFILE} after its run")
            entry = {"seed": seed, "run": str(run), "wall_seconds": cost["wall_seconds"],
                     "peak_rss_gb": cost["peak_rss_gb"], "profile": profile}
        out[label] = {**entry, "bookkeeping_share": entry["profile"]["groups"]["GP bookkeeping"]["share"]}
    return out


def targets(entries: dict[str, dict]) -> list[dict]:
    return [{"target": what, "run": run, "figure": entries[run][key], "limit": limit,
             "met": entries[run][key] <= limit} for what, run, key, limit in TARGETS]


def markdown(entries: dict[str, dict], checks: list[dict], command: str) -> str:
    """The driver's phases, the workers' phases and the proxy terminals of both runs side by side, then the
    networks computed, the workers' idle share and the targets."""
    cold, warm = (entries[k]["profile"] for k in ("cold", "warm"))
    heads = [f"cold (seed {entries['cold']['seed']})", f"warm (seed {entries['warm']['seed']})"]

    def both(section: str, fmt: Callable[[dict | None], str]) -> list[str]:
        names = list(dict.fromkeys([*cold[section], *warm[section]]))
        return [f"| {n} | {fmt(cold[section].get(n))} | {fmt(warm[section].get(n))} |" for n in names]

    def share(row: dict | None) -> str:
        return f"{row['seconds']:.1f} s ({100 * row['share']:.1f}%)" if row else "—"

    def worker(row: dict | None) -> str:
        if not row:
            return "—"
        return f"{row['seconds']:.1f} s ({100 * row['share_of_busy']:.1f}%; {row['per_network']:.3f} s/net)"

    def terminal(row: dict | None) -> str:
        return f"{row['seconds_per_network']:.3f} s/net on {row['networks']}" if row else "—"

    head = f"| {{}} | {heads[0]} | {heads[1]} |\n|---|---|---|"
    lines = [f"`{command}`", "", "| | " + " | ".join(heads) + " |", "|---|---|---|"]
    for label, get in (("wall (the process)", lambda e: f"{e['wall_seconds']:.1f} s"),
                       ("wall (profile.json: the run)", lambda e: f"{e['profile']['wall_seconds']:.1f} s"),
                       ("peak RSS", lambda e: f"{e['peak_rss_gb']:.2f} GB"),
                       ("networks computed / looked up", lambda e: "{computed} / {looked_up}".format(
                           **e["profile"]["networks"])),
                       ("workers, idle share", lambda e: f"{e['profile']['workers']}, "
                                                         f"{100 * e['profile']['idle']['idle_share']:.1f}%")):
        lines.append(f"| {label} | {get(entries['cold'])} | {get(entries['warm'])} |")
    lines += ["", head.format("driver phase (exclusive; share of the run's wall)"), *both("phases", share)]
    lines += ["", head.format("group"), *both("groups", share)]
    lines += ["", head.format("worker phase (summed over networks; share of the workers' busy time)"),
              *both("worker_phases", worker)]
    if cold["terminals"] or warm["terminals"]:
        lines += ["", head.format("proxy terminal"), *both("terminals", terminal)]
    lines += ["", "| target | figure | limit | |", "|---|---|---|---|"]
    for c in checks:
        fig, lim = ((f"{c['figure'] / 60:.1f} min", f"{c['limit'] / 60:.0f} min") if c["limit"] > 1
                    else (f"{100 * c['figure']:.1f}%", f"{100 * c['limit']:.0f}%"))
        lines.append(f"| {c['target']} | {fig} | {lim} | {'met' if c['met'] else 'missed'} |")
    return "\n".join(lines) + "\n"


def sections_markdown(profiles: dict[str, dict]) -> str:
    """The results file's ``profile`` section as markdown: each recorded pair's table under its seeds."""
    return "\n".join(f"## profile: cold seed {seed}, warm seed {p['runs']['warm']['seed']}\n\n"
                     f"{markdown(p['runs'], p['targets'], p['command'])}" for seed, p in profiles.items())


def profile_part(runs: Path, seeds: list[int], extra: list[str], out: Path,
                 run_evolve: Callable[[int, Path, Path, list[str]], dict]) -> dict:
    """Measure (or reuse: the pair recorded under the cold seed) both runs, record them into ``out``'s
    ``profile`` section under the cold seed, print each target; returns the results file's content after."""
    if len(seeds) < 2:
        raise SystemExit("error: --part profile needs two --seeds: the cold run's and the warm run's")
    key = str(seeds[0])
    before = saved(out).get(SECTION, {}).get(key, {}).get("runs", {})
    entries = measure(runs, (seeds[0], seeds[1]), extra, before, run_evolve)
    checks = targets(entries)
    command = " ".join(["evolve.py", *extra]).strip()
    results = record(out, SECTION, key, {"command": command, "runs": entries, "targets": checks})
    for c in checks:
        print(f"{'met' if c['met'] else 'MISSED'}: {c['target']}: {c['figure']:.3f} (limit {c['limit']})")
    return results
