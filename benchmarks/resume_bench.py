"""Kill a scoring run mid-way, rerun it, and count the windows scored twice, per chunk size.

    python benchmarks/resume_bench.py [--windows-file F] [--chunks 8 32 128] [--kill-at 0.6]

Without ``--windows-file`` a windows file is made from the Python standard library's
sources (real code, the embedded SmolLM2 tokenizer, 256-token windows). For each chunk
size a child process scores the file with ``score_windows_file(chunk_windows=n)`` and
prints its progress; it is SIGKILLed once ``--kill-at`` of the windows are scored. The
rerun reports how many windows it resumed; windows redone = scored before the kill -
resumed, at most one chunk. The resumed output is checked byte for byte against an
uninterrupted run.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from longattn_assets.scoring.factory import build_scorer
from longattn_assets.scoring.windows_file import score_windows_file
scorer = build_scorer(None, device="cpu")
def progress(done, total):
    print(done, flush=True)
stats = score_windows_file(sys.argv[1], sys.argv[2], scorer=scorer, chunk_windows=int(sys.argv[3]), progress=progress)
print("resumed", stats["windows_resumed"], flush=True)
"""


def make_windows(path: Path, count: int, window: int) -> None:
    from longattn_assets.corpus.records import Document
    from longattn_assets.model.tokenizer import load_tokenizer
    from longattn_assets.windows.chunking import WindowSpec
    from longattn_assets.windows.files import document_batches, write_windows

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 20_000)
    docs = [Document(p.read_text(encoding="utf-8"), p.name, "stdlib", i) for i, p in enumerate(files)]
    write_windows(document_batches(docs, []), load_tokenizer(), WindowSpec("code", "00000", window), path)
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.slice(0, count), path)


def score(windows: Path, out: Path, chunk: int, kill_at: int | None) -> tuple[int, int, float]:
    """(last progress before the kill or the end, windows resumed, seconds)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(windows), str(out), str(chunk)], stdout=subprocess.PIPE, text=True
    )
    last, resumed = 0, 0
    for line in child.stdout:
        if line.startswith("resumed"):
            resumed = int(line.split()[1])
            continue
        last = int(line)
        if kill_at is not None and last >= kill_at:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    return last, resumed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows-file", type=Path)
    parser.add_argument("--windows", type=int, default=256, help="windows to make when no file is given")
    parser.add_argument("--window-size", type=int, default=256)
    parser.add_argument("--chunks", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--kill-at", type=float, default=0.6, help="fraction of windows scored before the kill")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        windows = args.windows_file or Path(tmp) / "windows.parquet"
        if args.windows_file is None:
            make_windows(windows, args.windows, args.window_size)
        total = pq.read_metadata(windows).num_rows
        kill_at = max(1, int(total * args.kill_at))
        reference = Path(tmp) / "reference.parquet"
        _, _, full_seconds = score(windows, reference, max(args.chunks), None)
        digest = hashlib.sha256(reference.read_bytes()).hexdigest()
        print(f"{total} windows of {windows}; uninterrupted run {full_seconds:.1f}s; kill after {kill_at} scored\n")
        print("| chunk (windows) | scored before kill | resumed | redone | rerun s | same bytes |")
        print("|---:|---:|---:|---:|---:|:---:|")
        for chunk in args.chunks:
            out = Path(tmp) / f"scored-{chunk}.parquet"
            before, _, _ = score(windows, out, chunk, kill_at)
            _, resumed, seconds = score(windows, out, chunk, None)
            same = hashlib.sha256(out.read_bytes()).hexdigest() == digest
            print(f"| {chunk} | {before} | {resumed} | {before - resumed} | {seconds:.1f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
