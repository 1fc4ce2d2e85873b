"""Child processes for the benchmark: start in their own process group, read CPU time and
memory from /proc (no psutil needed), stop the whole group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Every process started here, so an interrupted run still stops them all.
_RUNNING: list[Child] = []


class Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], output: Path):
        self.name = name
        self.output = output
        self.started = time.time()
        with output.open("ab") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, *args],
                env=env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        #: The tree's peak PSS in MiB, as far as :meth:`sample_memory` has seen.
        self.peak_pss_mb: float | None = None
        _RUNNING.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """The process and its descendants (beat forks publisher processes)."""
        pids, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    queue += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        return pids

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process and its descendants (all their threads)."""
        total = None
        for pid in self.tree():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        return total

    def sample_memory(self) -> None:
        """Note the tree's proportional set size now (shared pages split between the
        processes sharing them, so forked children are not counted twice)."""
        pss = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
        self.peak_pss_mb = max(self.peak_pss_mb or 0.0, pss / 1024)

    def memory_mb(self) -> tuple[float | None, float | None]:
        """(peak resident set, current resident set) in MiB, summed over the tree: each
        process's own peak, so pages a forked child shares with beat count twice (an upper
        bound; see ``peak_pss_mb`` for the shared-fairly figure)."""
        peak = current = None
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = (peak or 0.0) + int(line.split()[1]) / 1024
                    elif line.startswith("VmRSS:"):
                        current = (current or 0.0) + int(line.split()[1]) / 1024
            except OSError:
                continue
        return peak, current

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait()
        else:
            self._signal(signal.SIGKILL)  # anything it left behind in its group
        if self in _RUNNING:
            _RUNNING.remove(self)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.output.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def host_cpu() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks, all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def host_busy(start: tuple[int, int], end: tuple[int, int]) -> float | None:
    """Percent of the machine's CPU capacity (all cores) busy between two host_cpu()."""
    total = end[1] - start[1]
    return round((end[0] - start[0]) / total * 100, 1) if total > 0 else None


def stop_all() -> None:
    for child in list(_RUNNING):
        child.stop(timeout=5.0)
