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
        _RUNNING.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process (its own threads; beat forks no children)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def memory_mb(self) -> tuple[float | None, float | None]:
        """(peak resident set, current resident set) in MiB."""
        peak = current = None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
                elif line.startswith("VmRSS:"):
                    current = int(line.split()[1]) / 1024
        except OSError:
            pass
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
