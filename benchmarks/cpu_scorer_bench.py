"""CPU benchmark of the exact scorer against the float32 streaming path it replaced, side by side.

    python benchmarks/cpu_scorer_bench.py [--lengths 2048 8192 32768] [--cores 1 2] [--rounds 3]
                                          [--materialized-max 8192] [--old-exact REV]
                                          [--batch N | --batch-tokens T]

On the embedded SmolLM2-135M (9 query heads, 3 kv heads, head_dim 64) and real text (stdlib
module sources tokenized by its tokenizer), per window of L tokens (BOS + L - 1), it times:

- **exact**: ``Layer0Scorer.score([window])`` with 1 and 2 workers (``--cores``): the scorer
  as the CLI, the assets and Slurm run it; bit-reproducible; ATen pinned to AVX2.
- **float32**: the float32 streaming path the scorer had before its scores were made
  bit-reproducible (commit e6eb392, kept below as the reference): one float32 matmul for
  the window's q/k projection, RoPE, then the streaming statistics in float32 blocks of
  the three kv heads at once, with 1 and 2 torch threads, at the CPU's own ATen capability
  (AVX-512 where there is one), as it ran then.
- **materialized**: the same float32 projections + ``materialized_statistics`` (the full
  L x L softmax per head, as the authors' code computes it), 2 threads, up to
  ``--materialized-max`` (32,768 would need ~24 GB).
- **old exact** (``--old-exact REV``): ``Layer0Scorer.score`` of the package as it was at a
  git revision, with 1 and 2 workers, or torch threads before the scorer had workers (how
  that scorer used cores).

Each configuration runs in a process of its own, started once per length, warmed on
another window of the same length (so caches are as in a long scoring run, not filled by
the timed window itself); then the processes time one call each in turn, ``--rounds``
times, so every configuration sees the same machine load; a time is the best of its
rounds. The load average is printed with each round. Peak RSS is each process's
``ru_maxrss``: Python, torch, the weights and the token table included.

``--batch-tokens T`` makes a call the batch the scorer gets in a scoring run with that token
budget (its ``batch_tokens``, default 65,536): T // L windows of L tokens (32 at 2,048, 8
at 8,192, 2 at 32,768). ``--batch N`` (default 1) makes a call N windows of the same length, one after another in
the text, and every time is per window (the call's time / N): the exact scorer gets the N
windows in one ``score`` call, as it gets a batch from a windows file (its workers then
take whole windows side by side); the float32 and materialized paths score them one after
another, as that path did, each with its torch threads inside.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = (
    "inspect", "typing", "argparse", "dataclasses", "pathlib", "subprocess", "tarfile", "ast",
    "collections", "enum", "functools", "logging", "threading", "email.message", "difflib",
)  # fmt: skip


def real_windows(tokenizer, n_tokens: int, count: int = 2) -> list[list[int]]:
    """``count`` windows of ``n_tokens`` of real text, one after another in the sources."""
    import importlib

    ids: list[int] = []
    for name in MODULES:
        ids.extend(tokenizer.encode_batch([inspect.getsource(importlib.import_module(name))])[0])
        if len(ids) >= count * n_tokens:
            return [ids[i * n_tokens : (i + 1) * n_tokens] for i in range(count)]
    raise RuntimeError(f"only {len(ids)} tokens of text available, {count * n_tokens} needed")


# --- the float32 streaming path before bit-reproducibility (e6eb392), the reference -------


def float32_project(projector, window: list[int]):
    """q, k of one window as e6eb392 projected them: float32 RMSNorm and one float32 matmul."""
    import torch

    ids = torch.tensor([projector.bos_token_id, *window])
    hidden = projector.embed[ids].float()
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + projector.eps)
    qk = (projector.norm_weight * hidden) @ projector.qk_weight.T
    if projector.qk_bias is not None:
        qk = qk + projector.qk_bias
    length, q_width = qk.shape[0], projector.num_heads * projector.head_dim
    q = qk[:, :q_width].reshape(length, projector.num_heads, projector.head_dim).transpose(0, 1)
    k = qk[:, q_width:].reshape(length, projector.num_kv_heads, projector.head_dim).transpose(0, 1)
    cos, sin = projector.rotary.cos_sin(length, projector.device)
    return float32_rotary(q, cos, sin).contiguous(), float32_rotary(k, cos, sin).contiguous()


def float32_rotary(x, cos, sin):
    """e6eb392's RoPE: Llama's ``x * cos + rotate_half(x) * sin``, as it computed it."""
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def float32_statistics(q, k, block_size: int = 512):
    """e6eb392's ``long_range_statistics``: float32 blocks over all kv heads, online softmax."""
    import torch

    hq, length, dim = q.shape
    hkv = k.shape[0]
    group = hq // hkv
    offset = length - 3 * (length // 4)
    total = torch.zeros(hkv, group, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    scale = math.log2(math.e) / math.sqrt(dim)
    rows_q = (q.float() * scale).reshape(hkv, group, length, dim)[:, :, offset:]
    keys = k.float()
    buffer = torch.empty(hkv * group * block_size * block_size)
    key_index = torch.arange(block_size)
    for r0 in range(offset, length, block_size):
        b = min(block_size, length - r0)
        q_block = rows_q[:, :, r0 - offset : r0 - offset + b].reshape(hkv, group * b, dim)
        row_index = torch.arange(r0, r0 + b)
        run_max = torch.full((hkv, group * b), -math.inf)
        norm = torch.zeros_like(run_max)
        mass = torch.zeros_like(run_max)
        mass_sq = torch.zeros_like(run_max)
        for c0 in range(0, r0 + b, block_size):
            kb = min(block_size, r0 + b - c0)
            scores = buffer[: hkv * group * b * kb].view(hkv, group * b, kb)
            torch.bmm(q_block, keys[:, c0 : c0 + kb].transpose(1, 2), out=scores)
            cols = key_index[:kb] + c0
            if c0 + kb - 1 > r0:
                scores.view(hkv, group, b, kb).masked_fill_(cols[None, :] > row_index[:, None], -math.inf)
            new_max = torch.maximum(run_max, scores.amax(-1))
            alpha = torch.exp2(run_max - new_max)
            run_max = new_max
            scores.sub_(new_max[..., None]).exp2_()
            block_sum = scores.sum(-1)
            norm.mul_(alpha).add_(block_sum)
            mass.mul_(alpha)
            mass_sq.mul_(alpha * alpha)
            if c0 > r0 + b - 1 - offset:
                continue
            if c0 + kb - 1 > r0 - offset:
                scores.view(hkv, group, b, kb).mul_(cols[None, :] <= (row_index - offset)[:, None])
                block_sum = scores.sum(-1)
            mass.add_(block_sum)
            mass_sq.add_(torch.linalg.vector_norm(scores, dim=-1).square_())
        norm = norm.double()
        total += (mass.double() / norm).view(hkv, group, b).sum(-1)
        total_sq += (mass_sq.double() / (norm * norm)).view(hkv, group, b).sum(-1)
    n = length * length
    return (total / length).reshape(hq), ((total_sq - total * total / n) / (n - 1)).reshape(hq)


# --- one configuration, in a process of its own ---------------------------------------------


def child(kind: str, length: int, cores: int, batch: int = 1) -> None:
    """Warm up, say ready, then time one call per line read from stdin until it is closed."""
    if kind in ("float32", "materialized"):
        import longattn_assets  # noqa: F401 - pins AVX2 for the scorer; the reference ran unpinned

        os.environ.pop("ATEN_CPU_CAPABILITY", None)
    import torch

    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.model.tokenizer import load_tokenizer
    from longattn_assets.scoring.projections import Layer0Projector
    from longattn_assets.scoring.scorer import Layer0Scorer
    from longattn_assets.scoring.statistics import materialized_statistics

    torch.set_num_threads(cores)
    tokenizer = load_tokenizer("smollm2-135m")
    weights = load_layer0("smollm2-135m")
    *timed, warm = real_windows(tokenizer, length - 1, count=batch + 1)
    if kind in ("exact", "old-exact"):
        # an old revision with workers gets as many as cores; one without used torch threads
        takes_workers = "workers" in inspect.signature(Layer0Scorer).parameters
        options = {"workers": cores} if takes_workers else {}
        scorer = Layer0Scorer(weights, device="cpu", bos_token_id=tokenizer.bos_token_id, **options)
    else:
        projector = Layer0Projector(weights, bos_token_id=tokenizer.bos_token_id)

    def call(windows):
        if kind in ("exact", "old-exact"):
            return scorer.score(windows)
        with torch.inference_mode():
            for window in windows:
                q, k = float32_project(projector, window)
                if kind == "float32":
                    float32_statistics(q, k)
                else:
                    materialized_statistics(q, k)

    call([warm])
    print(json.dumps({"ready": True, "capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
    for _ in sys.stdin:
        start, cpu = time.perf_counter(), time.process_time()
        call(timed)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(json.dumps({"seconds": seconds / batch, "cpu": cpu / batch}), flush=True)
    print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)


class Config:
    def __init__(self, kind: str, length: int, cores: int, package_root: Path | None = None, batch: int = 1):
        self.kind, self.length, self.cores = kind, length, cores
        env = dict(os.environ)
        if package_root is not None:
            env["PYTHONPATH"] = str(package_root)
            # the old package's converted-model cache in its own folder: formats differ
            env["LONGATTN_CACHE_DIR"] = str(package_root / "cache")
        command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(length), str(cores), str(batch)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            cwd=package_root or REPO,
        )  # fmt: skip
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.capability = ""
        self.peak_rss = 0

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"{self.kind} L={self.length} cores={self.cores} exited with {self.process.wait()}")
        return json.loads(line)

    def wait_ready(self) -> None:
        self.capability = self._read()["capability"]

    def time_once(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        measured = self._read()
        self.times.append(measured["seconds"])
        self.cpu.append(measured["cpu"])

    def close(self) -> None:
        self.process.stdin.close()
        self.peak_rss = self._read()["peak_rss"]
        self.process.wait()

    @property
    def best(self) -> float:
        return min(self.times)


def _old_package(rev: str, folder: str) -> Path:
    archive = Path(folder) / "old.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev, "longattn_assets"], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return Path(folder)


def _batch(length: int, args) -> int:
    return max(1, args.batch_tokens // length) if args.batch_tokens else args.batch


def measure(length: int, args, old_root: Path | None) -> dict[tuple[str, int], Config]:
    kinds = [("float32", c) for c in args.cores] + [("exact", c) for c in args.cores]
    if old_root is not None:
        kinds += [("old-exact", c) for c in args.cores]
    if length <= args.materialized_max:
        kinds.append(("materialized", max(args.cores)))
    configs = {}
    for kind, cores in kinds:  # one at a time: warming up in parallel would skew nothing but memory
        root = old_root if kind == "old-exact" else None
        configs[kind, cores] = Config(kind, length, cores, root, _batch(length, args))
        configs[kind, cores].wait_ready()
    order = list(configs.values())
    for round_ in range(args.rounds):
        shift = round_ % len(order)
        for config in order[shift:] + order[:shift]:
            config.time_once()
        print(f"L={length} round {round_ + 1}/{args.rounds}: load average {os.getloadavg()[0]:.2f}", flush=True)
    for config in order:
        config.close()
    return configs


def _ratios(length: int, configs: dict[tuple[str, int], Config], cores: list[int]) -> str:
    def t(kind: str, c: int) -> float:
        return configs[kind, c].best

    low, high = cores[0], cores[-1]
    cells = [str(length)]
    cells += [f"{t('exact', c) / t('float32', c):.2f}" for c in cores]
    cells.append(f"{t('exact', low) / t('exact', high):.2f}x")
    cells.append(f"{t('float32', low) / t('float32', high):.2f}x")
    cells.append(f"{min(configs['exact', low].cpu) / min(configs['float32', low].cpu):.2f}")
    if ("materialized", high) in configs:
        cells.append(f"{t('materialized', high) / t('exact', high):.1f}x")
    else:
        cells.append("-")
    if ("old-exact", high) in configs:
        cells.append(f"{t('old-exact', high) / t('exact', high):.2f}x")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--materialized-max", type=int, default=8192)
    parser.add_argument("--old-exact", metavar="REV", help="also time the scorer of this git revision")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--batch", type=int, default=1, help="windows per call; times are per window")
    sizes.add_argument("--batch-tokens", type=int, help="windows per call: this budget // L, as a scoring run")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, length, cores, batch = args.child
        child(kind, int(length), int(cores), int(batch))
        return
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    if args.batch_tokens is not None and args.batch_tokens < 1:
        parser.error(f"--batch-tokens must be at least 1, got {args.batch_tokens}")

    cores = sorted(set(args.cores))
    args.cores = cores
    low, high = cores[0], cores[-1]
    header = ["L"] + [f"exact / float32, {c} core{'s' * (c > 1)}" for c in cores]
    header += [f"exact {high} vs {low} cores", f"float32 {high} vs {low} cores",
               f"exact / float32 CPU s, {low} core", f"exact speed-up over materialized, {high} cores"]  # fmt: skip
    if args.old_exact:
        header.append(f"speed-up over old exact, {high} cores")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        old_root = _old_package(args.old_exact, folder) if args.old_exact else None
        for length in args.lengths:  # each length's tables as soon as it is measured
            configs = measure(length, args, old_root)
            results.append((length, configs))
            print(f"\nL={length}; CPUs: {len(os.sched_getaffinity(0))}; best of {args.rounds} rounds; "
                  f"{_batch(length, args)} window{'s' * (_batch(length, args) > 1)} per call, times per window; CPU s: "
                  "the process's CPU time during that call (all its threads)")  # fmt: skip
            print("| L | path | cores | ATen | best s | CPU s | core use | peak RSS GB |")
            print("|---|---|---|---|---|---|---|---|")
            for (kind, c), config in configs.items():
                use = min(config.cpu) / (config.best * c)
                print(f"| {length} | {kind} | {c} | {config.capability} | {config.best:.3f} | "
                      f"{min(config.cpu):.3f} | {use:.0%} | {config.peak_rss / 2**30:.2f} |", flush=True)  # fmt: skip
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for length, configs in results:
        print(_ratios(length, configs, cores))


if __name__ == "__main__":
    main()
