"""What Celery's Redis transport does with the task of a worker killed mid-task.

With ``task_acks_late`` a task is acknowledged when it ends, so a worker killed
with SIGKILL leaves it unacknowledged, in the transport's ``unacked`` hash. Redis
has no consumer leases: another worker puts it back in the queue only once it is
older than ``visibility_timeout`` (an hour by default), and only when it scans for
such tasks (``restore_visible``): when its connection starts, and then every
``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds (10 x 10). This
measures the delay from the SIGKILL to the task starting again on another worker,
for a few ``visibility_timeout`` values, with that worker already running or
started after the kill. (Workers do not wait for this: their takeover sweep queues
a dead worker's runs within ``--takeover-after``; a late redelivery then finds the
run running elsewhere or ended, and does nothing.)

    python -m benchmarks.visibility_timeout [--visibility 5 20] [--max-wait 240]
                                            [--modes stock mirograph]

``stock``: the transport's own scan (every 10 x 10 s); ``mirograph``: as ``mirograph
worker`` configures it (every quarter of the timeout, at most 10 s).

The workers are real ``celery worker`` processes (threads pool) of this module's
app, configured as ``mirograph worker`` configures its own; Redis is a
``redis-server`` of the benchmark's own on a free port.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

from mirograph.flows.workers.app import configure
from mirograph.flows.workers.timing import restore_every

ROOT = Path(__file__).resolve().parents[1]

app = Celery("visibility-bench")
if os.environ.get("VT_BROKER"):
    configure(app, os.environ["VT_BROKER"], visibility_timeout_s=float(os.environ["VT_VISIBILITY"]))
    if os.environ.get("VT_MODE") == "stock":  # the transport's own defaults
        app.conf.broker_transport_options.update(
            unacked_restore_interval=10, unacked_restore_throttle=10
        )


@app.task(name="bench.hold")
def hold(marks: str) -> None:
    """Say where and when it started; the victim then holds it until killed."""
    Path(marks, f"{os.environ['VT_ROLE']}-{os.getpid()}").write_text(str(time.time()))
    if os.environ["VT_ROLE"] == "victim":
        time.sleep(3600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def worker(role: str, broker: str, visibility: float, mode: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "VT_BROKER": broker,
        "VT_VISIBILITY": str(visibility),
        "VT_ROLE": role,
        "VT_MODE": mode,
    }
    command = [
        sys.executable, "-m", "celery", "-A", "benchmarks.visibility_timeout", "worker",
        "--pool=threads", "--concurrency=1", "--without-gossip", "--without-mingle",
        "--loglevel=WARNING", f"--hostname={role}-{time.monotonic_ns()}@%h",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def measure(
    broker: str, marks: Path, visibility: float, *, started_after: bool, mode: str,
    max_wait: float,
) -> tuple[float, float] | None:  # fmt: skip
    """Seconds from the victim's SIGKILL, and from the victim's start of the task, to the
    task starting on the rescuer (None: not within ``max_wait``). Redis counts the
    visibility timeout from the delivery, not from the death."""
    for old in marks.iterdir():
        old.unlink()
    victim = worker("victim", broker, visibility, mode)
    rescuer = None
    try:
        configure(app, broker, visibility_timeout_s=visibility)
        hold.apply_async(args=[str(marks)])
        if not wait(lambda: any(marks.glob("victim-*")), 60):
            raise SystemExit("the victim worker never started the task")
        if not started_after:
            rescuer = worker("rescuer", broker, visibility, mode)
            time.sleep(3)  # the rescuer connects (it may scan once, finding nothing old yet)
        os.killpg(victim.pid, signal.SIGKILL)
        killed = time.time()
        if started_after:
            rescuer = worker("rescuer", broker, visibility, mode)
        if not wait(lambda: any(marks.glob("rescuer-*")), max_wait):
            return None
        again = float(next(marks.glob("rescuer-*")).read_text())
        return again - killed, again - float(next(marks.glob("victim-*")).read_text())
    finally:
        for proc in (victim, rescuer):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visibility", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--max-wait", type=float, default=240.0)
    parser.add_argument(
        "--modes", nargs="+", choices=["stock", "mirograph"], default=["stock", "mirograph"]
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vt-bench-"))
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    broker = f"redis://127.0.0.1:{port}/0"
    marks = folder / "marks"
    marks.mkdir()
    try:
        time.sleep(0.5)
        print(f"{'visibility_timeout':>18}  {'other worker':<22} {'scan every':<12} redelivered")
        for mode in args.modes:
            for visibility in args.visibility:
                scan = "10 x 10 s" if mode == "stock" else f"{restore_every(visibility):g} s"
                for started_after in (False, True):
                    delay = measure(
                        broker, marks, visibility, started_after=started_after, mode=mode,
                        max_wait=args.max_wait,
                    )  # fmt: skip
                    when = "started after the kill" if started_after else "running already"
                    shown = (
                        f"{delay[0]:.1f} s after the kill, {delay[1]:.1f} s after delivery"
                        if delay
                        else f"not within {args.max_wait:g} s"
                    )
                    print(f"{visibility:>16g} s  {when:<22} {scan:<12} {shown}", flush=True)
    finally:
        redis.kill()
        redis.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
