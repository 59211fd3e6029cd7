"""The README's set-up works on a fresh Debian/Ubuntu machine: its first command
installs the system packages the project needs (bubblewrap, python3-venv,
redis-server, postgresql, chromium) before the virtualenv, the test command is unchanged,
and CI runs the same script."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ".ci/install-system-deps"


def setup_commands() -> list[str]:
    """The commands of the README's first bash block (comments left out)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Set up.*?```bash\n(.*?)```", readme, re.S)
    assert block, "the README has no set-up block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_the_first_command_installs_system_packages_first_and_ci_does_the_same() -> None:
    install, test = setup_commands()
    steps = [step.strip() for step in install.split("&&")]
    assert steps[0] == SCRIPT
    assert steps[1:3] == ["python3 -m venv .venv", '.venv/bin/pip install -e ".[dev]"']
    assert test == ".venv/bin/pytest"
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(SCRIPT)}\b", ci, re.M)
    assert ci.index(SCRIPT) < ci.index("python3 -m venv .venv")


def test_the_script_installs_what_a_fresh_machine_lacks(tmp_path: Path) -> None:
    """On a machine without bubblewrap, Redis, Chromium and venv support (simulated
    on PATH: no ``bwrap``, ``redis-server`` nor ``chromium``, a ``python3`` whose
    ``ensurepip`` is missing, an ``apt-get`` that records what it is asked), the
    script installs them (and
    PostgreSQL where ``/usr/lib/postgresql`` has no ``initdb``), then checks Python."""
    bin_dir, asked = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    for tool in ("bash", "env", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    fake(bin_dir / "apt-get", f'echo "apt-get $*" >> {asked}')
    fake(bin_dir / "sudo", 'exec "$@"')
    fake(
        bin_dir / "python3",
        f'case "$*" in *ensurepip*) exit 1;; *) exec {sys.executable} "$@";; esac',
    )
    result = subprocess.run(
        [str(ROOT / SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # PostgreSQL's programs are found off PATH too, where Debian puts them.
    postgresql = [] if glob.glob("/usr/lib/postgresql/*/bin/initdb") else ["postgresql"]
    assert asked.read_text().splitlines() == [
        "apt-get update -qq",
        " ".join(
            ["apt-get install -y -qq python3-venv bubblewrap redis-server", *postgresql, "chromium"]
        ),
    ]


def fake(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
