"""Nothing Runway starts outlives it: a watchdog per component, a claim per home.

Every component Runway starts (Airflow's, MLflow, Spark, the embedded PostgreSQL's
holder) runs in a session of its own, under a watchdog::

    python -m runway_mlops.orchestration.lifecycle <fd> -- airflow scheduler

The watchdog is the session's leader and runs the component as its child. It ends the
whole session — the component, its process group, and the groups Airflow makes for each
task runner (which a signal to the component's group never reaches) — when

* the component exits (its log servers, executor workers and tasks go with it), or
* its supervisor is gone: ``fd`` is the read end of a pipe whose write end only the
  supervising process holds, so the kernel closes it when that process dies, even by
  SIGKILL. The watchdog then stops the session (SIGTERM, then SIGKILL after
  ``GRACE_SECONDS``) within a second or two.

Should the watchdog itself be killed, its component gets SIGTERM (``PR_SET_PDEATHSIG``).

A supervisor also claims its home (:func:`claim_home`): an exclusive ``flock`` on
``<home>/supervisor.lock`` for as long as it lives, and ``<home>/supervisor.json``
listing the sessions it started. A second supervisor of the same home is refused while
the first lives; once it is dead, the next one stops whatever it left behind (sessions
whose leader is still the process recorded) before starting anew. Nothing else is
touched: only sessions recorded in that home's file, checked by pid and start time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runway_mlops.errors import HomeBusyError

#: How long a stopped session gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 20.0


# ------------------------------------------------------------------------ processes


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is [0])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def session_members(sid: int) -> list[int]:
    """Pids of the live processes of session ``sid`` (zombies left out)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry))
    return members


def signal_session(sid: int, signum: int, *, spare: Iterable[int] = ()) -> list[int]:
    """Send ``signum`` to every process of session ``sid``; return who got it."""
    spared = set(spare)
    hit = []
    for pid in session_members(sid):
        if pid in spared:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            hit.append(pid)
    return hit


def end_session(sid: int, grace: float = GRACE_SECONDS, *, spare: Iterable[int] = ()) -> None:
    """SIGTERM every process of session ``sid``, SIGKILL whoever is left after ``grace``."""
    spared = set(spare)
    if not signal_session(sid, signal.SIGTERM, spare=spared):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not [p for p in session_members(sid) if p not in spared]:
            return
        time.sleep(0.2)
    signal_session(sid, signal.SIGKILL, spare=spared)
    deadline = time.monotonic() + 10
    while [p for p in session_members(sid) if p not in spared] and time.monotonic() < deadline:
        time.sleep(0.1)


# ------------------------------------------------------------------------- watchdog

_pipe: tuple[int, int] | None = None


def supervisor_fd() -> int:
    """Read end of this process's supervisor pipe (its write end dies with us)."""
    global _pipe
    if _pipe is None:
        _pipe = os.pipe()  # both ends close-on-exec: only pass_fds hands the read end on
    return _pipe[0]


def guarded(command: list[str]) -> tuple[list[str], int]:
    """``command`` under a watchdog of this process; (argv, the fd to pass to Popen)."""
    fd = supervisor_fd()
    return [
        sys.executable,
        "-m",
        "runway_mlops.orchestration.lifecycle",
        str(fd),
        "--",
        *command,
    ], fd


def _die_with_parent() -> None:
    """In the component, before exec: SIGTERM when the watchdog dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def watch(fd: int, command: list[str]) -> int:
    """Run ``command``; end this session when it exits or when the supervisor is gone.

    A signal sent to the watchdog (how :meth:`AirflowProcesses.stop` stops a component)
    is passed on once to its process group, i.e. to the component and what it started
    in its own group; the watchdog ignores its own copy.
    """
    sid = os.getsid(0)
    passed_on: set[int] = set()

    def _pass_on(signum: int, frame: object) -> None:
        if signum not in passed_on:
            passed_on.add(signum)
            os.killpg(0, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _pass_on)
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    orphaned = False
    while child.poll() is None:
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([fd], [], [], 0.5)
            if readable and not os.read(fd, 1):
                orphaned = True
                break
    if orphaned:
        print(
            f"runway watchdog: the supervisor of `{' '.join(command[:3])}` is gone; "
            "stopping its session",
            file=sys.stderr,
            flush=True,
        )
    # Whatever is left in the session (log servers, workers, task runners) goes too.
    end_session(sid, spare={os.getpid()})
    code = child.wait()
    return code if code >= 0 else 128 - code


# ----------------------------------------------------------------------- home claim


@dataclass
class HomeClaim:
    """This process supervises ``home``: holds its lock, records what it started."""

    home: Path
    lock_fd: int
    sessions: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.home / "supervisor.json"

    def record(self, name: str, pid: int) -> None:
        """Remember the session of a component just started (its leader is ``pid``)."""
        self.sessions[f"{name}:{pid}"] = {"sid": pid, "start": start_time(pid) or 0}
        self._write()

    def forget(self, name: str, pid: int) -> None:
        self.sessions.pop(f"{name}:{pid}", None)
        self._write()

    def _write(self) -> None:
        state = {"pid": os.getpid(), "start": start_time(os.getpid()), "sessions": self.sessions}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        tmp.replace(self.state_file)


_claims: dict[Path, HomeClaim] = {}


def claim_home(home: Path, what: str = "runway") -> HomeClaim:
    """Take ``home`` for this process (again, if it already has it).

    Refuses if another live process holds it; stops what a dead one left behind.
    """
    home = home.resolve()
    if home in _claims:
        return _claims[home]
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _recorded(home).get("pid", "?")
        raise HomeBusyError(
            f"{home} is in use by another Runway process (pid {holder}: `runway up`, "
            f"`runway demo` or a test): stop it first, or give {what} another home "
            "(RUNWAY_HOME)"
        ) from None
    stop_leftovers(home)
    claim = HomeClaim(home=home, lock_fd=fd)
    claim._write()
    _claims[home] = claim
    return claim


def release_home(home: Path) -> None:
    """Give up this process's claim of ``home`` (the lock goes with the process anyway)."""
    claim = _claims.pop(home.resolve(), None)
    if claim is not None:
        os.close(claim.lock_fd)


def _recorded(home: Path) -> dict[str, object]:
    try:
        return dict(json.loads((home / "supervisor.json").read_text()))
    except (OSError, ValueError):
        return {}


def stop_leftovers(home: Path) -> list[int]:
    """End the sessions a dead supervisor of ``home`` recorded; return their ids.

    A session counts as left over when a process of it still runs and its leader is
    either gone or still the process recorded (same start time): a pid reused by an
    unrelated process is never signalled.
    """
    state = _recorded(home)
    sessions = state.get("sessions")
    ended: list[int] = []
    if not isinstance(sessions, dict):
        return ended
    for info in sessions.values():
        sid, started = int(info["sid"]), int(info.get("start", 0))
        leader = start_time(sid)
        if leader is not None and leader != started:
            continue  # the pid now belongs to someone else
        if session_members(sid):
            print(
                f"runway: stopping what an earlier run left in {home} (session {sid})",
                flush=True,
            )
            end_session(sid)
            ended.append(sid)
    return ended


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m runway_mlops.orchestration.lifecycle FD -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    return watch(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
