"""`longattn demo` killed at random moments, then run to the end: are its files the same bytes?

    python benchmarks/demo_kill_bench.py [--trials 5] [--kills 2] [--seed 1] [--workdir DIR] [--small]

One uninterrupted demo (bundled sample, windows of 2,048 tokens, CPU) gives the reference;
``--small`` runs the demo on the kill tests' input instead (16 stdlib modules, category
code, 256-token windows: seconds instead of a minute per run).
Each trial starts from an empty data root and an empty model cache (so a kill can land
while the tokenizer and layer 0 are converted and cached), SIGKILLs `longattn demo` at
``--kills`` uniformly random moments of the reference's duration, each run on top of what
the previous kill left, then runs it to the end and compares every file under the data
root (sha256; Dagster's hidden instance folder aside) with the reference. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.corpus_fixtures import stdlib_sources, write_jsonl  # noqa: E402
from tests.reliability.pipeline import snapshot  # noqa: E402


def _small_input(folder: Path) -> list[str]:
    """The kill tests' input (tests/reliability/conftest.py) and the demo options it needs."""
    rows = [{"id": n, "text": t[:6_000]} for n, t in stdlib_sources(16, min_chars=3_000, offset=5)]
    write_jsonl(folder / "code" / "part-0.jsonl", rows[:8])
    write_jsonl(folder / "code" / "part-1.jsonl", rows[8:])
    return ["--input-dir", str(folder), "--categories", "code", "--window-size", "256"]


def _demo(
    root: Path, cache: Path, kill_after: float | None, options: list[str]
) -> tuple[bool, float]:
    """Run `longattn demo`; True when the kill landed before it finished."""
    env = dict(os.environ, LONGATTN_CACHE_DIR=str(cache), LONGATTN_DEVICE="cpu")
    command = [sys.executable, "-m", "longattn_assets.cli", "demo", "--data-root", str(root)]
    command += options
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        child.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return True, time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(
            f"demo failed ({child.returncode}): {child.stderr.read().decode()[-2000:]}"
        )
    return False, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--small", action="store_true", help="the kill tests' small input")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="demo-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    options = _small_input(work / "input") if args.small else []

    _, seconds = _demo(work / "reference", work / "reference-cache", None, options)
    expected = snapshot(work / "reference")
    print(f"reference: {len(expected)} files, {seconds:.0f} s")
    print("| trial | kill moments (s) | kills landed | files | same bytes as the reference |")
    print("|---|---|---:|---:|---|")
    same_count = 0
    for trial in range(1, args.trials + 1):
        root, cache = work / f"trial-{trial}", work / f"trial-{trial}-cache"
        moments = [rng.uniform(0.05, 0.95) * seconds for _ in range(args.kills)]
        landed = sum(_demo(root, cache, moment, options)[0] for moment in moments)
        _demo(root, cache, None, options)
        got = snapshot(root)
        differing = sorted(p for p in set(got) | set(expected) if got.get(p) != expected.get(p))
        same_count += not differing
        verdict = "yes" if not differing else f"NO: {', '.join(differing[:3])}"
        shown = ", ".join(f"{m:.1f}" for m in moments)
        print(f"| {trial} | {shown} | {landed} | {len(got)} | {verdict} |", flush=True)
        shutil.rmtree(root)
        shutil.rmtree(cache)
    print(f"{same_count} of {args.trials} trials byte-identical to the uninterrupted run")


if __name__ == "__main__":
    main()
