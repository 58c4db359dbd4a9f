"""The log servers of a running Airflow listen on loopback only (LocalExecutor profile).

Seen from the outside, as a neighbour on the network would: the sockets of the
``airflow_stack`` fixture's processes (those whose environment names its AIRFLOW_HOME) that
listen on its worker and triggerer log-server ports, read from ``/proc/net/tcp`` and
``/proc/net/tcp6``. Airflow 3.3 binds both servers to every interface; Runway binds them
to ``[logging] worker_log_server_host`` (:mod:`runway_mlops.orchestration.log_servers`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

#: How long the scheduler and triggerer may take to start their log servers.
START_TIMEOUT_S = 120


def _address(hex_address: str) -> str:
    """An address as ``/proc/net/tcp{,6}`` writes it (32-bit words, host byte order)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def _listening() -> dict[int, tuple[str, int]]:
    """Every listening TCP socket of this machine: inode -> (address, port)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A":  # TCP_LISTEN
                address, port = local.split(":")
                found[inode] = (_address(address), int(port, 16))
    return found


def _parents() -> dict[int, int]:
    """Every process of this machine: pid -> parent pid."""
    parents = {}
    for process in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            # ``pid (name) state ppid ...``: the name may hold spaces and parentheses.
            stat = (process / "stat").read_text()
            parents[int(process.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _sockets_of(airflow_home: Path) -> set[int]:
    """Inodes of the sockets held by the processes of the Airflow living in ``airflow_home``:
    those started with it as AIRFLOW_HOME, and their children (a log server renames itself,
    which overwrites what ``/proc/<pid>/environ`` shows)."""
    wanted = f"AIRFLOW_HOME={airflow_home}".encode()
    parents = _parents()
    ours = set()
    for pid in parents:
        with contextlib.suppress(OSError):
            if wanted in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                ours.add(pid)
    while grown := {pid for pid, parent in parents.items() if parent in ours} - ours:
        ours |= grown
    inodes = set()
    for pid in ours:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(int(link[len("socket:[") : -1]))
    return inodes


def test_the_log_servers_listen_on_loopback_only(airflow_stack) -> None:
    env = airflow_stack.procs.env
    ports = {
        "worker": int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
        "triggerer": int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]),
    }
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        ours = _sockets_of(airflow_stack.settings.airflow_home)
        listening = _listening()
        bound = {
            name: {
                address for inode, (address, p) in listening.items() if p == port and inode in ours
            }
            for name, port in ports.items()
        }
        if all(bound.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    # Both servers run (the stack's scheduler and triggerer started them) ...
    assert all(bound.values()), f"no log server listens on {ports}: {bound}"
    # ... and only this machine can reach them.
    assert bound == {name: {"127.0.0.1"} for name in ports}, bound
