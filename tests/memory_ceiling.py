"""A command run under a memory ceiling, so that a blow-up fails its test instead of the
machine.

The ceiling is a memory cgroup of its own (v1 or v2) where this process may make one: the
kernel then stops the command at the ceiling. Where it may not (no root, no cgroup file
system), a watchdog samples the resident memory of the command's process tree every 20 ms
and kills the tree above the ceiling. Either way the result says which enforced it, whether
the command went over, and the peak resident memory of its process tree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.proc_tree import tree_rss_bytes

SAMPLE_SECONDS = 0.02
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Bounded:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    over_ceiling: bool
    enforced_by: str
    stdout: str
    stderr: str


def run_under_ceiling(
    command: list[str], ceiling_bytes: int, env: dict[str, str], timeout: float = 300
) -> Bounded:
    cgroup = _MemoryCgroup.create(ceiling_bytes)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=cgroup.enter if cgroup else None,  # noqa: PLW1509
    )
    watchdog = _Watchdog(process.pid, None if cgroup else ceiling_bytes)
    watchdog.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    watchdog.stop()
    over = watchdog.killed
    if cgroup:
        over = cgroup.oom_killed()
        cgroup.remove()
    return Bounded(
        returncode=process.returncode,
        seconds=seconds,
        peak_rss_bytes=watchdog.peak,
        over_ceiling=over,
        enforced_by=cgroup.kind if cgroup else "watchdog",
        stdout=stdout,
        stderr=stderr,
    )


class _MemoryCgroup:
    def __init__(self, folder: Path, kind: str):
        self.folder = folder
        self.kind = kind

    @classmethod
    def create(cls, ceiling_bytes: int) -> _MemoryCgroup | None:
        name = f"ledgerflow-test-{uuid.uuid4().hex[:12]}"
        if (CGROUP_V1 / "memory.limit_in_bytes").exists():
            candidate = cls(CGROUP_V1 / name, "cgroup v1")
            limits = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        elif "memory" in _read(CGROUP_V2 / "cgroup.subtree_control").split():
            candidate = cls(CGROUP_V2 / name, "cgroup v2")
            limits = ["memory.max", "memory.swap.max"]
        else:
            return None
        try:
            candidate.folder.mkdir()
        except OSError:
            return None
        try:
            (candidate.folder / limits[0]).write_text(str(ceiling_bytes))
        except OSError:
            candidate.remove()
            return None
        try:  # no swapping past the ceiling, where the kernel accounts for swap
            (candidate.folder / limits[1]).write_text(
                str(ceiling_bytes) if candidate.kind == "cgroup v1" else "0"
            )
        except OSError:
            pass
        return candidate

    def enter(self) -> None:
        """Run in the child between fork and exec: everything it starts stays inside."""
        (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def oom_killed(self) -> bool:
        events = _read(self.folder / "memory.oom_control") + _read(self.folder / "memory.events")
        counts = dict(line.split()[:2] for line in events.splitlines() if len(line.split()) >= 2)
        return int(counts.get("oom_kill", "0")) > 0

    def remove(self) -> None:
        for _ in range(50):
            pids = _read(self.folder / "cgroup.procs").split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.folder.rmdir()
                return
            except OSError:
                time.sleep(0.1)


class _Watchdog(threading.Thread):
    """Samples the tree's resident memory; kills it above `ceiling_bytes` if given."""

    def __init__(self, root: int, ceiling_bytes: int | None):
        super().__init__(daemon=True)
        self.root = root
        self.ceiling_bytes = ceiling_bytes
        self.peak = 0
        self.killed = False
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            if self.ceiling_bytes is not None and self.peak > self.ceiling_bytes:
                self.killed = True
                try:
                    os.killpg(self.root, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            self._done.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
