"""How much of the machine other processes used while a timing benchmark ran.

The load average cannot say: it counts the benchmark's own processes, and after pausing other
work it still remembers them for minutes. Busy time from /proc/stat minus the CPU time of this
process and its reaped children is what the rest of the machine took.
"""

from __future__ import annotations

import os
import resource
import time

#: Share of the machine's CPU time (all cores) others may take before a run is labelled contended.
CONTENDED_SHARE = 0.10


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


class OtherLoad:
    """start() before the timed work, stop() after; result() holds the others' CPU seconds and
    share. Also a context manager."""

    def __enter__(self) -> OtherLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> OtherLoad:
        self._wall = time.monotonic()
        self._busy = _busy_seconds()
        self._own = _own_seconds()
        self._load = os.getloadavg()
        return self

    def stop(self) -> None:
        self.wall = time.monotonic() - self._wall
        busy = _busy_seconds()
        own = _own_seconds() - self._own
        cores = os.cpu_count() or 1
        if busy is None or self._busy is None:
            self.other_seconds = None
            self.share = None
        else:
            # Children still running at the end are not counted as ours: errs toward "contended".
            self.other_seconds = max(0.0, busy - self._busy - own)
            self.share = self.other_seconds / (self.wall * cores) if self.wall > 0 else 0.0
        self.load_before, self.load_after = self._load, os.getloadavg()

    def result(self) -> dict:
        return {
            "other_cpu_seconds": self.other_seconds,
            "other_share": self.share,
            "wall_seconds": self.wall,
            "load_before": self.load_before,
            "load_after": self.load_after,
            # Without /proc/stat nothing is known: not claimed idle.
            "contended": self.share is None or self.share > CONTENDED_SHARE,
        }

    def sentence(self) -> str:
        if self.share is None:
            return "Other processes' CPU use unknown (no /proc/stat): not claimed idle."
        return (
            f"Other processes used {100 * self.share:.1f}% of the machine's CPU time during the "
            f"run ({self.other_seconds:.1f} CPU-s over {self.wall:.0f} s; load average before "
            f"{self.load_before[0]:.2f}, after {self.load_after[0]:.2f})"
            + (
                " — **contended: not a measurement of the goals**."
                if self.share > CONTENDED_SHARE
                else ": idle enough to measure the goals."
            )
        )
