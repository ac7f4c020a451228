"""What the benchmarks say about the machine: Python, CPU, pinning and how busy it was.

The machine is shared, so a figure means little without knowing whether something
else was running. Two signals are reported:

* the 1-minute load average when the run started (before our own work shows in it);
* the share of the machine's CPU time that *other* processes used during the run:
  the busy time of all CPUs in ``/proc/stat`` minus the time of the processes we
  started (ourselves and any helper, from ``/proc/PID/stat``). This one is the
  better signal: it covers exactly the measured interval.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# Other processes using more than this share of all CPUs during the run, or a
# load average above this many runnable tasks per CPU at the start, and the
# machine "looked loaded": on 2 cores, 10% is a fifth of a core taken from us.
BUSY_SHARE = 0.10
BUSY_LOAD_PER_CPU = 0.5

# /proc/stat and /proc/PID/stat count clock ticks; os.times() counts seconds.
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _process_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(after_name[11]) + int(after_name[12])  # fields 14 and 15 of stat(5)


def choose_cpus() -> tuple[int | None, int | None]:
    """(CPU for the measuring thread, another CPU for a helper process), where possible."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1], (cpus[0] if len(cpus) > 1 else None)


def pin(cpu: int | None) -> int | None:
    """Pin the calling thread (and the threads it starts later) to ``cpu``; None if not done."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


@dataclass
class Machine:
    python: str = field(default_factory=lambda: sys.version.split()[0])
    implementation: str = field(default_factory=platform.python_implementation)
    cpu_model: str = field(default_factory=cpu_model)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    pinned_cpu: int | None = None
    helper_cpu: int | None = None
    load_at_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_at_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    others_cpu_share: float | None = None  # of all CPUs, during the run
    looked_loaded: bool = False


class Watch:
    """Measures how much CPU others used between start() and stop().

    ``children=True`` also counts as ours the CPU of every child process this one
    has waited for, and of theirs (``os.times()``): for a benchmark whose work runs
    in processes it starts and reaps, which ``add_pids`` cannot name in advance
    (a fleet of clients inside a private namespace, for one).
    """

    def __init__(self, machine: Machine, *, children: bool = False) -> None:
        self.machine = machine
        self._pids: set[int] = {os.getpid()}
        self._children = children
        self._start: tuple[int, int] | None = None
        self._ours_start = 0

    def add_pids(self, pids: Iterable[int | None]) -> None:
        """Count these processes as ours (call before start())."""
        self._pids.update(pid for pid in pids if pid is not None)

    def _ours(self) -> int:
        ticks = sum(_process_ticks(pid) for pid in self._pids)
        if self._children:
            reaped = os.times()
            ticks += round((reaped.children_user + reaped.children_system) * _TICKS_PER_SECOND)
        return ticks

    def start(self) -> None:
        self.machine.load_at_start = os.getloadavg()
        self._start = _machine_ticks()
        self._ours_start = self._ours()
        self._t0 = time.monotonic()

    def stop(self) -> Machine:
        m = self.machine
        m.load_at_end = os.getloadavg()
        end = _machine_ticks()
        ours = self._ours() - self._ours_start
        if self._start is not None and end is not None and end[1] > self._start[1]:
            busy = end[0] - self._start[0] - ours
            m.others_cpu_share = max(0.0, busy / (end[1] - self._start[1]))
        m.looked_loaded = m.load_at_start[0] > BUSY_LOAD_PER_CPU * m.cpus or (
            m.others_cpu_share is not None and m.others_cpu_share > BUSY_SHARE
        )
        return m


def describe(m: Machine) -> list[str]:
    """The machine lines every benchmark prints above its table."""
    share = "n/a" if m.others_cpu_share is None else f"{m.others_cpu_share:.1%} of all CPUs"
    pin = "not pinned" if m.pinned_cpu is None else f"main thread pinned to CPU {m.pinned_cpu}"
    if m.helper_cpu is not None:
        pin += f", DNS server process pinned to CPU {m.helper_cpu}"
    loads = " ".join(f"{x:.2f}" for x in m.load_at_start)
    return [
        f"Python {m.python} ({m.implementation}) on {m.cpu_model}, {m.cpus} CPUs; {pin}",
        f"load average at start: {loads}; other processes used {share} during the run"
        f" -> machine {'LOOKED LOADED' if m.looked_loaded else 'looked quiet'}",
    ]


def as_dict(m: Machine) -> dict[str, Any]:
    return asdict(m)
