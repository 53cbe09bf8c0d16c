"""Device locks across processes: distinct devices, waiting when all are taken, release on death."""

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from longattn_assets.scoring.devices import claim_device

FAKE = ["cuda:0", "cuda:1"]


def hold(lock_dir: str, results, hold_s: float) -> None:
    started = time.monotonic()
    with claim_device("auto", Path(lock_dir), candidates=FAKE, poll_s=0.05, timeout_s=30) as device:
        results.put((os.getpid(), device, time.monotonic() - started))
        time.sleep(hold_s)


def test_two_processes_get_distinct_devices_and_a_third_waits(tmp_path: Path):
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    first = [ctx.Process(target=hold, args=(str(tmp_path), results, 1.5)) for _ in range(2)]
    for p in first:
        p.start()
    got = [results.get(timeout=10) for _ in range(2)]
    assert sorted(device for _, device, _ in got) == FAKE

    third = ctx.Process(target=hold, args=(str(tmp_path), results, 0.0))
    third.start()
    _, device, waited = results.get(timeout=10)
    assert device in FAKE and waited > 0.5, "the third process must wait for a free device"
    for p in [*first, third]:
        p.join(10)
        assert p.exitcode == 0


def test_a_killed_process_releases_its_device(tmp_path: Path):
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    holders = [ctx.Process(target=hold, args=(str(tmp_path), results, 60)) for _ in range(2)]
    for p in holders:
        p.start()
    held = {pid: device for pid, device, _ in (results.get(timeout=10) for _ in range(2))}
    victim = holders[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    with claim_device("auto", tmp_path, candidates=FAKE, poll_s=0.05, timeout_s=5) as device:
        assert device == held[victim.pid]
    holders[1].kill()
    holders[1].join(10)
