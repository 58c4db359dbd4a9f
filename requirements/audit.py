"""Audit the pinned lock for known vulnerabilities: pip-audit, then PyPI's project JSON.

    python requirements/audit.py requirements/dev.txt [--strict]

1. pip-audit (run by uv in its own tool environment, so its dependencies stay out of the
   lock) asks PyPI's per-version JSON API about each pin.
2. A pin pip-audit could not look up (the per-version API unreachable, as from the
   development machines) is checked against the project JSON
   (``https://pypi.org/pypi/<name>/json``), whose ``vulnerabilities`` are those of the
   latest release: exact for a pin *at* the latest release, silent about older ones.
   Those older pins are listed as not audited.

Exit status: 1 if any pin has a known vulnerability; with ``--strict``, also 1 if any
pin could not be audited; 0 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

PIP_AUDIT = "pip-audit==2.10.1"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def pip_audit(lock: Path, uv: str) -> dict[str, dict]:
    """pip-audit's verdict per package: {"vulns": [...]} or {"skip": reason}."""
    proc = subprocess.run(
        [
            uv,
            "tool",
            "run",
            "-q",
            "--from",
            PIP_AUDIT,
            "pip-audit",
            "-r",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pip-audit gave no report (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    verdicts = {}
    for dep in report.get("dependencies", []):
        name = dep["name"].lower()
        if "skip_reason" in dep:
            verdicts[name] = {"skip": dep["skip_reason"]}
        else:
            verdicts[name] = {"vulns": [v["id"] for v in dep.get("vulns", [])]}
    return verdicts


def latest_release(name: str) -> tuple[str | None, list[str], str | None]:
    """(latest version, vulnerability ids of that version, error)."""
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as resp:
            data = json.load(resp)
    except OSError as exc:
        return None, [], str(exc)
    ids = [v.get("id", "?") for v in data.get("vulnerabilities") or []]
    return data["info"]["version"], ids, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--strict", action="store_true", help="fail if a pin was not audited")
    parser.add_argument("--uv", default=str(Path(sys.executable).with_name("uv")))
    args = parser.parse_args(argv)

    pinned = pins(args.lock)
    verdicts = pip_audit(args.lock, args.uv)
    vulnerable: dict[str, list[str]] = {}
    unaudited: dict[str, str] = {}
    by_pip_audit = 0
    skipped = []
    for name, version in pinned.items():
        verdict = verdicts.get(name, {"skip": "not in pip-audit's report"})
        if "vulns" in verdict:
            by_pip_audit += 1
            if verdict["vulns"]:
                vulnerable[f"{name}=={version}"] = verdict["vulns"]
        else:
            skipped.append(name)
    by_latest = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for name, (latest, ids, error) in zip(
            skipped, pool.map(latest_release, skipped), strict=True
        ):
            version = pinned[name]
            if error:
                unaudited[f"{name}=={version}"] = f"PyPI unreachable: {error}"
            elif latest == version:
                by_latest += 1
                if ids:
                    vulnerable[f"{name}=={version}"] = ids
            else:
                unaudited[f"{name}=={version}"] = (
                    f"behind the latest release {latest}; PyPI's per-version API unreachable"
                )

    print(
        f"{args.lock}: {len(pinned)} pins; audited {by_pip_audit} with pip-audit and "
        f"{by_latest} (at their latest release) from PyPI's project JSON; "
        f"{len(unaudited)} not audited; {len(vulnerable)} with known vulnerabilities"
    )
    for pin, ids in sorted(vulnerable.items()):
        print(f"  VULNERABLE {pin}: {', '.join(ids)}")
    for pin, reason in sorted(unaudited.items()):
        print(f"  not audited {pin}: {reason}")
    if vulnerable:
        return 1
    return 1 if args.strict and unaudited else 0


if __name__ == "__main__":
    sys.exit(main())
