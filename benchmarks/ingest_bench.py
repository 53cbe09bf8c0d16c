"""raw_corpus at scale: wall time, MB/s, peak memory against the budget, speed-up from workers.

    python benchmarks/ingest_bench.py                      # 0.2, 0.8 and 3.2 GB
    python benchmarks/ingest_bench.py --sizes 0.2 0.8      # quicker
    python benchmarks/ingest_bench.py --sizes 0.2 0.8 3.2 12.8 --allow-variants   # larger

The corpus is real text this machine holds, never generated filler: Python sources of the
wheels in the local package mirror and of every installed Python, C headers, manuals,
changelogs, licences and package documentation (gzip files decompressed). Each source file
is used once (identical files are skipped); documents are consecutive files joined to a
random size of 20k-200k characters (large files cut), written as JSON lines in files of
32 MB under ``--work``. Sizes are prefixes of one corpus, built once and kept for reruns.
When the machine holds less distinct text than asked, ``--allow-variants`` goes on with
the same documents under a first line naming the pass (new exact texts; the corpus line
says how many bytes are variants); without it the benchmark stops and says how much there
is. ``--distinct-gb`` stops the distinct text early (building it reads every source file).

Each run materializes ``raw_corpus`` through Dagster (an ephemeral instance) in a fresh
process with a fresh data root. The memory of a run is the highest sum over that process
and all of its children (the worker processes and their fork server), sampled every 100 ms
(a peak shorter than that can be missed; sampling every 20 ms took a third of a core): of RSS, which counts a page shared by several
processes (libraries, the fork server's imports) once in each, and of PSS (proportional set
size, /proc/PID/smaps_rollup), which splits it between them, so the PSS sum is what the
tree really holds. *base* is the process's RSS just before ingest starts (Python, Dagster,
pyarrow); the budget bounds what ingest adds to it: peak PSS - base. At each size the same input runs with 1 worker and with ``--workers``
(default: the CPUs available) at 8 shards; at the largest size also at 2 and 32 shards.
``--one-file`` gives each run its input as one JSON-lines file (the same bytes), which the
workers read in line ranges.

``--against PYTHON`` compares two versions of the code instead: each size runs
``--repeats`` times with this checkout's interpreter and with PYTHON (e.g. the ``main``
branch's ``.venv/bin/python``, whose editable install is that branch's code), alternating
which goes first, at 8 shards with ``--workers``; it prints every run and the ratio of
the medians, with the load average beside them (the cost of hashing the inputs while
reading them, issue 23):

    python benchmarks/ingest_bench.py --sizes 0.2 --against /work/main/.venv/bin/python --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

GB = 1e9
FILE_BYTES = 32 << 20
SAMPLE_S = 0.1
TEXT_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".h", ".hpp", ".c", ".cc", ".cpp", ".md", ".rst", ".txt", ".tex", ".pl", ".pm", ".el")
TREES = [
    Path("/usr/share/doc"),
    Path("/usr/share/man"),
    Path("/usr/share/common-licenses"),
    Path("/usr/include"),
    Path("/usr/share/perl"),
    Path("/usr/share/perl5"),
    Path("/usr/lib/python3"),
    Path("/usr/lib/python3.11"),
    Path(sysconfig.get_paths()["stdlib"]),
    Path(sysconfig.get_paths()["purelib"]),
    Path.home() / ".pyenv" / "versions",
]
WHEEL_DIRS = [Path("/opt/pypi"), Path("/opt/pypi-more"), Path("/opt/wheels")]


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.strip() and "\x00" not in text else None


def _tree_texts(tree: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(tree.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        name = path.name.lower()
        try:
            if name.endswith(".gz") and not name.endswith(".tar.gz"):
                yield str(path), gzip.decompress(path.read_bytes())
            elif name.endswith(TEXT_SUFFIXES) or name in ("copyright", "changelog", "readme") or tree.name == "common-licenses":
                yield str(path), path.read_bytes()
        except (OSError, EOFError, gzip.BadGzipFile):
            continue


def _wheel_texts(wheel: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if info.filename.lower().endswith(TEXT_SUFFIXES) and info.file_size < 64 << 20:
                    yield f"{wheel.name}/{info.filename}", archive.read(info)
    except (OSError, zipfile.BadZipFile):
        return


def source_texts() -> Iterator[str]:
    """Every distinct text file of the machine, in a fixed order."""
    seen: set[bytes] = set()
    wheels = sorted(w for d in WHEEL_DIRS if d.is_dir() for w in d.rglob("*.whl"))
    streams = [_tree_texts(t) for t in TREES if t.is_dir()] + [_wheel_texts(w) for w in wheels]
    for stream in streams:
        for _, data in stream:
            key = hashlib.blake2b(data, digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            if (text := _text(data)) is not None:
                yield text


def documents(rng: random.Random) -> Iterator[str]:
    """Consecutive texts joined (or cut) to 20k-200k characters each."""
    parts: list[str] = []
    size, target = 0, rng.randint(20_000, 200_000)
    for text in source_texts():
        while text:
            take = text[: target - size]
            parts.append(take)
            size += len(take)
            text = text[len(take) :]
            if size >= target:
                yield "\n".join(parts)
                parts, size, target = [], 0, rng.randint(20_000, 200_000)
    if parts:
        yield "\n".join(parts)


class _PartWriter:
    """JSON lines into numbered files of about FILE_BYTES each."""

    def __init__(self, folder: Path, first: int):
        self.folder, self.index, self.written = folder, first, 0
        self.out = None

    def write(self, text: str) -> int:
        if self.out is None or self.out.tell() >= FILE_BYTES:
            self.close()
            self.out = open(self.folder / f"part-{self.index:05d}.jsonl", "w", encoding="utf-8")
            self.index += 1
        line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
        self.out.write(line)
        size = len(line.encode("utf-8"))
        self.written += size
        return size

    def close(self) -> None:
        if self.out:
            self.out.close()
            self.out = None


def build_corpus(
    folder: Path, total_bytes: float, allow_variants: bool, distinct_cap: float = float("inf")
) -> tuple[list[Path], dict]:
    """JSONL files in ``folder`` holding ``total_bytes``; reuses and extends what exists.

    First the distinct documents of the machine (at most ``distinct_cap`` bytes); past them
    (with ``allow_variants``), the same documents again under a first line naming the pass.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files = sorted(folder.glob("part-*.jsonl"))
    if sum(p.stat().st_size for p in files) >= total_bytes:
        return files, manifest
    if not manifest.get("distinct_files"):  # distinct pass never finished: redo it
        for stale in files:
            stale.unlink()
        writer = _PartWriter(folder, 0)
        for text in documents(random.Random(2502_16860)):
            writer.write(text)
            if writer.written >= min(total_bytes, distinct_cap):
                break
        writer.close()
        distinct = sorted(folder.glob("part-*.jsonl"))
        manifest = {"distinct_bytes": writer.written, "variant_bytes": 0}
        if writer.written < total_bytes:  # the machine's text is all used, or the cap reached
            manifest["distinct_files"] = len(distinct)
        manifest_path.write_text(json.dumps(manifest))
        if writer.written >= total_bytes:
            return distinct, manifest
    if not allow_variants:
        raise SystemExit(
            f"this machine holds {manifest['distinct_bytes'] / GB:.2f} GB of distinct text, less than "
            f"the {total_bytes / GB:.2f} GB asked: use smaller sizes or --allow-variants"
        )
    distinct = sorted(folder.glob("part-*.jsonl"))[: manifest["distinct_files"]]
    writer = _PartWriter(folder, len(sorted(folder.glob("part-*.jsonl"))))
    done = sum(p.stat().st_size for p in folder.glob("part-*.jsonl"))
    variant = done // manifest["distinct_bytes"]
    while done + writer.written < total_bytes:
        for part in distinct:
            with open(part, encoding="utf-8") as handle:
                for line in handle:
                    writer.write(f"variant {variant} of this document\n" + json.loads(line)["text"])
            if done + writer.written >= total_bytes:
                break
        variant += 1
    writer.close()
    manifest["variant_bytes"] += writer.written
    manifest_path.write_text(json.dumps(manifest))
    return sorted(folder.glob("part-*.jsonl")), manifest


def prefix_input(corpus: list[Path], size: float, target: Path, one_file: bool = False) -> int:
    """The first corpus files making up ``size`` bytes, as category ``book``: hard links to
    them, or (``one_file``) one JSON-lines file holding them one after another."""
    folder = target / "book"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in corpus:
        if total >= size:
            break
        if one_file:
            with open(path, "rb") as source, open(folder / "all.jsonl", "ab") as sink:
                shutil.copyfileobj(source, sink, 8 << 20)
        else:
            os.link(path, folder / path.name)
        total += path.stat().st_size
    return total


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: pages shared by n processes count 1/n in each."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int | None:
    """User + system CPU ticks of a process so far (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                kids = [int(k) for k in handle.read().split()]
        except OSError:
            kids = []
        found += kids
        stack += kids
    return found


def run_once(input_dir: Path, root: Path, shards: int, workers: int, budget: str, python: str = sys.executable) -> dict:
    """Materialize raw_corpus in a child process (run by ``python``); sample the RSS of its process tree."""
    env = os.environ | {"LONGATTN_NUM_SHARDS": str(shards), "LONGATTN_CATEGORIES": "book"}
    command = [python, __file__, "--child", str(input_dir), str(root), str(workers), budget]
    # run from the case's folder: ingest's fork server puts the working directory first on its
    # path, so a checkout as working directory would lend its code to another version's workers
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, cwd=root.parent)
    peak_rss = peak_pss = 0
    at_peak: dict = {}
    cpu_seen: dict[int, int] = {}  # CPU ticks of each process of the tree, last seen
    started = time.perf_counter()
    while child.poll() is None:
        tree = [child.pid, *_children(child.pid)]
        peak_rss = max(peak_rss, sum(_rss(p) for p in tree))
        pss = {p: _pss(p) for p in tree}
        cpu_seen.update({p: t for p in tree if (t := _cpu_ticks(p)) is not None})
        if sum(pss.values()) > peak_pss:
            peak_pss = sum(pss.values())
            at_peak = {"seconds": round(time.perf_counter() - started, 1), "pss_mb": [round(v / 2**20) for v in pss.values()]}
        time.sleep(SAMPLE_S)
    out = child.stdout.read()
    if child.returncode != 0:
        raise SystemExit(f"run failed ({child.returncode}): {out[-2000:]}")
    # where the peak was: seconds into the run and the PSS of each process (step first)
    print(f"  peak of the tree: {at_peak}", file=sys.stderr, flush=True)
    cpu = sum(cpu_seen.values()) / os.sysconf("SC_CLK_TCK")
    return json.loads(out.strip().splitlines()[-1]) | {"peak_rss": peak_rss, "peak_pss": peak_pss, "cpu_s": cpu}


def child(input_dir: str, root: str, workers: str, budget: str) -> None:
    import dagster as dg

    from longattn_assets.assets.corpus import raw_corpus
    from longattn_assets.resources import CorpusInput, DataRoot

    base = _rss(os.getpid())
    resources = {"data_root": DataRoot(root=root), "corpus_input": CorpusInput(input_dir=input_dir, workers=int(workers), memory_budget=budget)}
    result = dg.materialize([raw_corpus], partition_key="book", resources=resources)
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    print(json.dumps({"base_rss": base, "seconds": meta["seconds"].value, "input_mb": meta["input_mb"].value,
                      "workers": meta["workers"].value, "documents": meta["documents"].value}))  # fmt: skip


def compare(args: argparse.Namespace, corpus: list[Path]) -> None:
    """This checkout's code and ``args.against``'s, interleaved on the same inputs.

    Besides wall time, the CPU seconds of the whole process tree: on a loaded machine they
    move far less than wall time, which waits for the cores."""
    pythons = {"new": sys.executable, "old": args.against}
    print("| input GB | shards | workers | run | code | wall s | CPU s (tree) | MB/s | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        seconds: dict[str, list[float]] = {"new": [], "old": []}
        cpu: dict[str, list[float]] = {"new": [], "old": []}
        for repeat in range(args.repeats):
            for name in ("new", "old") if repeat % 2 == 0 else ("old", "new"):
                case = args.work / f"compare-{size}-{name}"
                subprocess.run(["rm", "-rf", str(case)], check=True)
                actual = prefix_input(corpus, size * GB, case / "input", args.one_file)
                result = run_once(case / "input", case / "root", 8, args.workers, args.budget, pythons[name])
                subprocess.run(["rm", "-rf", str(case)], check=True)
                seconds[name].append(result["seconds"])
                cpu[name].append(result["cpu_s"])
                print(
                    f"| {actual / GB:.2f} | 8 | {result['workers']} | {repeat + 1} | {name} | {result['seconds']:.1f} "
                    f"| {result['cpu_s']:.1f} | {actual / 1e6 / result['seconds']:.1f} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        for label, values in (("wall s", seconds), ("CPU s", cpu)):
            median = {name: sorted(times)[len(times) // 2] for name, times in values.items()}
            print(
                f"size {size} GB, median {label}: new {median['new']:.1f}, old {median['old']:.1f}: "
                f"new/old = {median['new'] / median['old']:.3f}"
            )
    print(f"load average at the end: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.2, 0.8, 3.2], help="input sizes in GB")
    parser.add_argument("--shards", type=int, nargs="+", default=[2, 8, 32], help="shard counts at the largest size")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--single-worker-sizes", type=float, nargs="*", help="sizes also run with 1 worker (default: all)")
    parser.add_argument("--budget", default="1GB")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ingest-bench"))
    parser.add_argument("--allow-variants", action="store_true")
    parser.add_argument("--distinct-gb", type=float, default=float("inf"), help="stop the distinct text at this size (then variants)")
    parser.add_argument("--keep-corpus", action="store_true", help="keep the built corpus for the next run")
    parser.add_argument("--one-file", action="store_true", help="each input is one JSON-lines file (read in ranges)")
    parser.add_argument("--against", help="another interpreter (another version of the code) to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each version with --against")
    args = parser.parse_args()
    from longattn_assets.corpus.budget import parse_size

    budget = parse_size(args.budget)
    corpus, manifest = build_corpus(args.work / "corpus", max(args.sizes) * GB, args.allow_variants, args.distinct_gb * GB)
    print(f"corpus: {len(corpus)} files under {args.work / 'corpus'}; {manifest}; load average {os.getloadavg()}", flush=True)
    if args.against:
        compare(args, corpus)
        if not args.keep_corpus:
            subprocess.run(["rm", "-rf", str(args.work / "corpus")], check=True)
        return
    header = (
        "| input GB | shards | workers | wall s | s per GB | MB/s | speed-up | CPU s (tree) | peak RSS MB (tree sum) "
        "| peak PSS MB (tree sum) | base MB | peak PSS - base MB | budget MB | within budget | load avg |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in args.sizes:
        one_worker = [(8, 1)] if args.single_worker_sizes is None or size in args.single_worker_sizes else []
        runs = one_worker + [(8, args.workers)] + ([(s, args.workers) for s in args.shards if s != 8] if size == max(args.sizes) else [])
        single = None
        for shards, workers in runs:
            case = args.work / f"run-{size}-{shards}-{workers}"
            subprocess.run(["rm", "-rf", str(case)], check=True)
            actual = prefix_input(corpus, size * GB, case / "input", args.one_file)
            result = run_once(case / "input", case / "root", shards, workers, args.budget)
            subprocess.run(["rm", "-rf", str(case)], check=True)
            seconds = result["seconds"]
            rate = actual / 1e6 / seconds
            single = rate if workers == 1 and shards == 8 else single
            speedup = f"{rate / single:.2f}x" if single and workers != 1 else "-"
            added = result["peak_pss"] - result["base_rss"]
            print(
                f"| {actual / GB:.2f} | {shards} | {result['workers']} | {seconds:.1f} | {seconds / (actual / GB):.1f} | {rate:.1f} | {speedup} | {result['cpu_s']:.1f} "
                f"| {result['peak_rss'] / 2**20:,.0f} | {result['peak_pss'] / 2**20:,.0f} | {result['base_rss'] / 2**20:,.0f} "
                f"| {added / 2**20:,.0f} | {budget / 2**20:,.0f} "
                f"| {'yes' if added <= budget else 'NO'} | {os.getloadavg()[0]:.1f} |",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()}")
    if not args.keep_corpus:
        subprocess.run(["rm", "-rf", str(args.work / "corpus")], check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
