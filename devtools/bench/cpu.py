"""CPU seconds of a process tree from /proc: the process and every descendant alive now, each with the CPU
of its children that have exited and been reaped (cutime, cstime), so a child that ends between two
readings is still counted in the difference."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def tree_cpu(pid: int) -> float:
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited since it was listed
        total += sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime
        todo += _children(current)
    return total
