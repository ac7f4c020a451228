"""What ``PYTHONDNSCACHE`` costs a program's start-up: milliseconds and instructions.

Issue 10 sets the budget: ``PYTHONDNSCACHE=1`` adds at most 5 ms (median of 40
runs) and at most 30 % instructions to ``python -c pass``; ``0`` (like unset)
imports nothing. A program that never imports ``socket`` pays only for the
post-import hook that waits for it; a program that does pays for the
installation inside its first ``import socket``, and the first lookup pays
for whatever the resolver loads on first use. So three programs:

* ``pass``: the interpreter and nothing else;
* ``import socket``: the installation (Config, the Resolver, the patch);
* ``first lookup``: ``import socket`` then ``socket.getaddrinfo("localhost", 80)``
  ("localhost" is in /etc/hosts: no network).

each run with ``PYTHONDNSCACHE`` unset, ``0`` and ``1``.

Method: every case is one fresh interpreter (``posix_spawn``, output to
/dev/null, ``PYTHONHASHSEED=0``, and bytecode files allowed, as pip writes them
when it installs a wheel: ``PYTHONDONTWRITEBYTECODE`` would compile every
module from source at every start), timed from spawn to exit (wall) and by the
child's own CPU time (``wait4`` rusage: user + system, less sensitive to other
processes than wall time). Rounds are interleaved: each round runs every case
once, in an order rotated from round to round; "added" is the median over
rounds of (case - unset) for the same program in the same round. Instructions
come from one ``valgrind --tool=callgrind`` run per case (``Collected`` on its
stderr); without valgrind the column says so (``apt-get install valgrind``).

Last, ``-X importtime`` of ``import socket`` with ``PYTHONDNSCACHE=1`` (median of
several runs) lists the modules the installation adds, the slowest first, with
their own (self) import time: where the milliseconds of the first ``import
socket`` go, for whoever makes the engine lighter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import _machine
from bench_hit import quartiles

PROGRAMS = {
    "pass": "pass",
    "import socket": "import socket",
    "first lookup": "import socket; socket.getaddrinfo('localhost', 80)",
}
SETTINGS: dict[str, str | None] = {"unset": None, "0": "0", "1": "1"}
BUDGET_MS = 5.0  # issue 10: added wall time for `python -c pass` with PYTHONDNSCACHE=1
BUDGET_INSTRUCTIONS = 0.30  # and added instructions
IMPORTTIME_RUNS = 7
TOP_MODULES = 25


def environment(setting: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHONDNSCACHE")
        and k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE")
    }
    env["PYTHONHASHSEED"] = "0"
    if setting is not None:
        env["PYTHONDNSCACHE"] = setting
    return env


def spawn(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, child CPU ms) of one ``python -c code``."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"python -c {code!r} failed")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def timings(runs: int) -> dict[tuple[str, str], dict[str, list[float]]]:
    cases = [(program, setting) for program in PROGRAMS for setting in SETTINGS]
    envs = {setting: environment(value) for setting, value in SETTINGS.items()}
    for program, setting in cases:  # warm the page cache and the .pyc files
        spawn(PROGRAMS[program], envs[setting])
    results: dict[tuple[str, str], dict[str, list[float]]] = {
        case: {"wall": [], "cpu": []} for case in cases
    }
    for round_ in range(runs):
        shift = round_ % len(cases)
        for program, setting in cases[shift:] + cases[:shift]:
            wall, cpu = spawn(PROGRAMS[program], envs[setting])
            results[program, setting]["wall"].append(wall)
            results[program, setting]["cpu"].append(cpu)
    return results


PYTHON_C = (sys.executable, "-c")


def instructions(code: str, env: dict[str, str]) -> int | None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    proc = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *PYTHON_C, code],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind failed: {proc.stderr[-2000:]}")
    return int(found.group(1))


def importtime(code: str, env: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """module -> (median self ms, median cumulative ms) over ``runs`` runs of -X importtime."""
    self_us: dict[str, list[int]] = defaultdict(list)
    cumulative_us: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        for line in proc.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if len(parts) != 3 or not parts[0].strip().isdigit():
                continue
            name = parts[2].strip()
            self_us[name].append(int(parts[0]))
            cumulative_us[name].append(int(parts[1]))
    return {
        name: (
            statistics.median(self_us[name]) / 1000,
            statistics.median(cumulative_us[name]) / 1000,
        )
        for name in self_us
    }


def discount_children(
    machine: _machine.Machine, ticks_before: tuple[int, int] | None, before: os.times_result
) -> None:
    """Count the interpreters we spawned as ours, not as "other processes".

    ``_machine.Watch`` knows the processes alive when it starts; ours come and go,
    so their CPU time is taken from ``os.times()``'s children fields instead.
    """
    ticks_after, after = _machine._machine_ticks(), os.times()
    if machine.others_cpu_share is None or ticks_before is None or ticks_after is None:
        return
    total = ticks_after[1] - ticks_before[1]
    if total <= 0:
        return
    children = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    share = children * os.sysconf("SC_CLK_TCK") / total
    machine.others_cpu_share = max(0.0, machine.others_cpu_share - share)
    machine.looked_loaded = machine.load_at_start[0] > _machine.BUSY_LOAD_PER_CPU * (
        machine.cpus
    ) or (machine.others_cpu_share > _machine.BUSY_SHARE)


def added_per_round(
    results: dict[tuple[str, str], dict[str, list[float]]], program: str, setting: str, kind: str
) -> tuple[float, float, float]:
    base = results[program, "unset"][kind]
    case = results[program, setting][kind]
    return quartiles([c - b for c, b in zip(case, base, strict=True)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (each runs every case once)")
    parser.add_argument("--quick", action="store_true", help="10 rounds, 3 importtime runs")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    runs = 10 if args.quick else args.runs

    machine = _machine.Machine()
    watch = _machine.Watch(machine)
    ticks_before, children_before = _machine._machine_ticks(), os.times()
    watch.start()
    results = timings(runs)
    machine = watch.stop()
    discount_children(machine, ticks_before, children_before)

    counts: dict[tuple[str, str], int | None] = {}
    for program, code in PROGRAMS.items():
        for setting, value in SETTINGS.items():
            counts[program, setting] = (
                None if args.no_callgrind else instructions(code, environment(value))
            )
    valgrind_missing = not args.no_callgrind and shutil.which("valgrind") is None

    import_runs = 3 if args.quick else IMPORTTIME_RUNS
    imports_on = importtime("import socket", environment("1"), import_runs)
    imports_off = importtime("import socket", environment(None), import_runs)
    added_modules = sorted(
        (name for name in imports_on if name not in imports_off),
        key=lambda name: -imports_on[name][0],
    )

    rows: list[dict[str, Any]] = []
    for program in PROGRAMS:
        for setting in SETTINGS:
            wall = quartiles(results[program, setting]["wall"])
            cpu = quartiles(results[program, setting]["cpu"])
            added = added_per_round(results, program, setting, "wall")
            added_cpu = added_per_round(results, program, setting, "cpu")
            count = counts[program, setting]
            base_count = counts[program, "unset"]
            rows.append(
                {
                    "program": program,
                    "PYTHONDNSCACHE": setting,
                    "wall_ms": {"p25": wall[0], "median": wall[1], "p75": wall[2]},
                    "cpu_ms": {"p25": cpu[0], "median": cpu[1], "p75": cpu[2]},
                    "added_wall_ms": {"p25": added[0], "median": added[1], "p75": added[2]},
                    "added_cpu_ms": {"p25": added_cpu[0], "median": added_cpu[1]}
                    | {"p75": added_cpu[2]},
                    "instructions": count,
                    "added_instructions": (
                        None if count is None or base_count is None else count / base_count - 1
                    ),
                }
            )
    report = {
        "machine": _machine.as_dict(machine),
        "runs": runs,
        "rows": rows,
        "valgrind": "missing" if valgrind_missing else ("skipped" if args.no_callgrind else "ok"),
        "import_socket_added_modules": [
            {"module": name, "self_ms": imports_on[name][0], "cumulative_ms": imports_on[name][1]}
            for name in added_modules
        ],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(f"PYTHONDNSCACHE start-up cost; {runs} interleaved rounds, one interpreter per case")
    for line in _machine.describe(machine):
        print(line)
    print()
    header = (
        f"{'program':<14} {'PYTHONDNSCACHE':<15} {'wall ms':>8} {'p25-p75':>11} "
        f"{'added ms':>9} {'p25-p75':>12} {'cpu ms':>7} {'added cpu':>9} "
        f"{'instructions':>14} {'added':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        w, a, c = row["wall_ms"], row["added_wall_ms"], row["cpu_ms"]
        count = row["instructions"]
        count_text = report["valgrind"] if count is None else f"{count:,}"
        share = row["added_instructions"]
        share_text = "" if share is None else f"{share:+.1%}"
        print(
            f"{row['program']:<14} {row['PYTHONDNSCACHE']:<15} {w['median']:>8.1f} "
            f"{w['p25']:>5.1f}-{w['p75']:<5.1f} {a['median']:>+9.2f} "
            f"{a['p25']:>+6.2f}/{a['p75']:<+5.2f} {c['median']:>7.1f} "
            f"{row['added_cpu_ms']['median']:>+9.2f} {count_text:>14} {share_text:>8}"
        )
    if valgrind_missing:
        print("\nvalgrind is not installed: no instruction counts (apt-get install valgrind)")
    budget = next(r for r in rows if r["program"] == "pass" and r["PYTHONDNSCACHE"] == "1")
    verdict = budget["added_wall_ms"]["median"] <= BUDGET_MS and (
        budget["added_instructions"] is None or budget["added_instructions"] <= BUDGET_INSTRUCTIONS
    )
    print(
        f"\nbudget for `python -c pass` with PYTHONDNSCACHE=1: +{BUDGET_MS:g} ms, "
        f"+{BUDGET_INSTRUCTIONS:.0%} instructions -> {'within' if verdict else 'OVER'}"
    )
    print(
        f"\nmodules `import socket` adds with PYTHONDNSCACHE=1 (median of {import_runs} "
        f"-X importtime runs; top {TOP_MODULES} by self time)"
    )
    print(f"{'module':<45} {'self ms':>8} {'cumulative ms':>14}")
    for entry in report["import_socket_added_modules"][:TOP_MODULES]:
        print(f"{entry['module']:<45} {entry['self_ms']:>8.2f} {entry['cumulative_ms']:>14.2f}")
    total = sum(e["self_ms"] for e in report["import_socket_added_modules"])
    print(f"{'all ' + str(len(added_modules)) + ' added modules':<45} {total:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
