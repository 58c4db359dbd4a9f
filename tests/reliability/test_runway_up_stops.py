"""``runway up`` stops everything it started, however it is stopped.

The real CLI runs as a subprocess in its own process group (as under a terminal, a
service manager or a test harness), on a private home and a free port, with the default
local profile: the embedded PostgreSQL, then Airflow's api-server, scheduler,
dag-processor and triggerer, each in a session of its own under a watchdog. It is then
stopped one way per test — SIGINT to its group (Ctrl-C), SIGTERM to its group, SIGKILL
of it alone, the death of its parent — and within ``GONE_SECONDS`` no process of any
session it started may remain, the embedded PostgreSQL must have stopped, and the API
and log-server ports must be free.

The processes are found from what ``runway up`` records in ``<home>/supervisor.json``
(read while it runs): each component's session, and the postmaster's pid from
``<home>/pgdata/postmaster.pid``. (Airflow's processes rename themselves with
setproctitle, which overwrites ``/proc/<pid>/environ``: their environment cannot be
relied on to find them.)

One home serves the whole module, so only the first start creates the PostgreSQL
cluster and Airflow's schema; each test costs one ``runway up`` start (two for SIGKILL,
which also starts again on the same home, and is refused a second concurrent start).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, _free_port, postgres_data_dir

RUNWAY = str(Path(sys.executable).parent / "runway")
#: How long everything may take to go once ``runway up`` is stopped.
GONE_SECONDS = 90
UP_SECONDS = 420
COMPONENTS = {"postgres", "api-server", "scheduler", "dag-processor", "triggerer"}


#: RUNWAY_POSTGRES_DATA_DIR of the module's home, when it must be outside pytest's folders.
EXTRA: dict[str, str] = {}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    with postgres_data_dir(migrated=True) as extra:
        EXTRA.update(extra)
        try:
            yield tmp_path_factory.mktemp("runway-up") / "runway"
        finally:
            EXTRA.clear()


class Up:
    """One ``runway up`` on ``home``: its process, port, and what it started."""

    def __init__(self, home: Path, *, via_parent: bool = False) -> None:
        self.home = home
        self.port = _free_port()
        self.log = home.parent / f"up-{self.port}.log"
        env = {
            **os.environ,
            **EXTRA,
            "RUNWAY_HOME": str(home),
            "RUNWAY_AIRFLOW_URL": f"http://localhost:{self.port}",
        }
        command = [RUNWAY, "up"]
        if via_parent:
            # A parent that only waits: when it dies, `runway up` is orphaned.
            command = ["bash", "-c", f"{RUNWAY} up & echo $! > {home.parent}/up.pid; wait"]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.sessions: set[int] = set()
        self.postmaster: int | None = None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self) -> None:
        """Until the API answers and every component runs; record their sessions."""
        deadline = time.monotonic() + UP_SECONDS
        while "is up:" not in self.text():
            assert self.proc.poll() is None, f"runway up exited:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"runway up not up:\n{self.text()[-3000:]}"
            time.sleep(1)
        state = json.loads((self.home / "supervisor.json").read_text())
        names = {key.split(":")[0] for key in state["sessions"]}
        assert names == COMPONENTS, names
        self.sessions = {int(info["sid"]) for info in state["sessions"].values()}
        pgdata = Path(EXTRA.get("RUNWAY_POSTGRES_DATA_DIR", self.home / "pgdata"))
        pidfile = pgdata / "postmaster.pid"
        self.postmaster = int(pidfile.read_text().split()[0])
        assert self.remaining(), "nothing found running: the test would prove nothing"

    def remaining(self) -> list[str]:
        """What is still running of what this ``runway up`` started."""
        left = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                command = Path(f"/proc/{entry}/cmdline").read_bytes()[:100].replace(b"\0", b" ")
            except OSError:
                continue
            if stat[0] != "Z" and int(stat[3]) in self.sessions:
                left.append(f"{entry} {command.decode(errors='replace')}")
        if self.postmaster and Path(f"/proc/{self.postmaster}").exists():
            left.append(f"{self.postmaster} postgres (postmaster)")
        for port in (self.port, self.port + 1, self.port + 2):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    left.append(f"port {port} still listening")
        return left

    def assert_all_gone(self) -> None:
        deadline = time.monotonic() + GONE_SECONDS
        while self.remaining():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{GONE_SECONDS}s after the stop, still running: {self.remaining()}\n"
                    f"runway up's output:\n{self.text()[-2000:]}"
                )
            time.sleep(1)

    def kill_all(self) -> None:
        """Leave nothing behind if a test failed half-way."""
        for sid in self.sessions:
            try:
                os.killpg(sid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status waits for its new parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _run(home: Path, stop) -> Up:
    up = Up(home)
    try:
        up.wait_up()
        stop(up)
        up.assert_all_gone()
        return up
    finally:
        up.kill_all()


def test_sigint_to_its_group_stops_everything(home) -> None:
    up = _run(home, lambda up: os.killpg(up.proc.pid, signal.SIGINT))
    assert up.proc.returncode == 0
    assert "SIGINT received; stopping everything" in up.text()


def test_sigterm_to_its_group_stops_everything(home) -> None:
    up = _run(home, lambda up: os.killpg(up.proc.pid, signal.SIGTERM))
    assert up.proc.returncode == 0
    assert "SIGTERM received; stopping everything" in up.text()


def test_sigkill_leaves_nothing_and_the_next_up_starts_cleanly(home) -> None:
    up = _run(home, lambda up: os.kill(up.proc.pid, signal.SIGKILL))
    assert up.proc.returncode == -signal.SIGKILL
    # The same home again: it starts, and a second concurrent start is refused.
    again = Up(home)
    try:
        again.wait_up()
        refused = subprocess.run(
            [RUNWAY, "up"],
            cwd=ROOT,
            env={
                **os.environ,
                "RUNWAY_HOME": str(home),
                "RUNWAY_AIRFLOW_URL": "http://localhost:9",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 1
        assert "is in use by another Runway process" in refused.stderr
        assert again.proc.poll() is None
        # A closed terminal (SIGHUP) stops it too.
        os.killpg(again.proc.pid, signal.SIGHUP)
        again.assert_all_gone()
        assert "SIGHUP received; stopping everything" in again.text()
    finally:
        again.kill_all()


def test_death_of_its_parent_stops_everything(home) -> None:
    parent = Up(home, via_parent=True)
    try:
        parent.wait_up()
        runway_pid = int((home.parent / "up.pid").read_text())
        os.kill(parent.proc.pid, signal.SIGKILL)  # the parent dies; runway up is orphaned
        parent.proc.wait(10)
        parent.assert_all_gone()
        deadline = time.monotonic() + 30
        while _running(runway_pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _running(runway_pid)  # it stopped by itself, after the rest
        assert "the process that started `runway up` is gone" in parent.text()
    finally:
        parent.kill_all()
