"""A Runway home has one supervisor at a time, and a new one cleans up after a dead one.

A supervisor (here a small Python process standing in for ``runway up``) claims a home,
starts a component in a session of its own and records it, as ``AirflowProcesses.spawn``
does, then is SIGKILLed. Its component is not under a watchdog here, so it outlives it,
as a component could when its watchdog was killed too. The next claim of the home must
stop that component, and must not touch a process it did not start: an unrelated
process in a session of its own, and one whose recorded pid no longer matches its start
time (the pid was reused).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runway_mlops.orchestration import lifecycle

SUPERVISOR = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    from runway_mlops.orchestration import lifecycle

    home = Path(sys.argv[1])
    claim = lifecycle.claim_home(home)
    component = subprocess.Popen(["sleep", "600"], start_new_session=True)
    claim.record("component", component.pid)
    print(component.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_new_claim_stops_what_a_dead_supervisor_left_and_nothing_else(tmp_path) -> None:
    home = tmp_path / "home"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(home)], stdout=subprocess.PIPE, text=True
    )
    strangers = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    try:
        assert supervisor.stdout is not None
        component = int(supervisor.stdout.readline())
        # While the first supervisor lives, the home is refused to anyone else.
        with pytest.raises(
            lifecycle.HomeBusyError,
            match=f"in use by another Runway process \\(pid {supervisor.pid}",
        ):
            lifecycle.claim_home(home)
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(10)
        assert _alive(component)  # left behind
        # A recorded session whose leader's start time differs is a reused pid: not ours.
        state = json.loads((home / "supervisor.json").read_text())
        state["sessions"]["reused:1"] = {"sid": strangers[1].pid, "start": 1}
        (home / "supervisor.json").write_text(json.dumps(state))

        lifecycle.claim_home(home)

        deadline = time.monotonic() + 30
        while _alive(component) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(component)
        assert all(stranger.poll() is None for stranger in strangers)
    finally:
        lifecycle.release_home(home)
        for proc in [supervisor, *strangers]:
            proc.kill()
            proc.wait(10)
        if "component" in locals() and _alive(component):
            os.kill(component, signal.SIGKILL)
