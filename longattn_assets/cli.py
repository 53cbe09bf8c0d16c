"""The `longattn` command line: the pipeline's pure parts without Dagster, and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import settings


def _window(args: argparse.Namespace) -> int:
    from .corpus.records import Reject, read_file
    from .corpus.sharding import write_rejects
    from .model.tokenizer import load_tokenizer
    from .storage import check_key
    from .windows.chunking import WindowSpec
    from .windows.files import document_batches, write_windows

    category = check_key("category", args.category)
    tokenizer = load_tokenizer(args.model)
    rejects: list[Reject] = []
    records = (item for path in args.inputs for item in read_file(Path(path), source=str(path)))
    spec = WindowSpec(
        category, check_key("shard", args.shard), args.window_size, args.sample_fraction
    )
    stats = write_windows(document_batches(records, rejects), tokenizer, spec, Path(args.output))
    summary = stats.as_metadata() | {"rejects": len(rejects), "output": str(args.output)}
    if rejects:
        rejects_path = Path(str(args.output) + ".rejects.jsonl")
        write_rejects(rejects, rejects_path)
        summary["rejects_file"] = str(rejects_path)
    print(json.dumps(summary, indent=2))
    return 0


def _add_window(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("window", help="cut documents into token windows (Algorithm 1)")
    p.add_argument("inputs", nargs="+", help="JSONL(.gz/.zst) or Parquet files")
    p.add_argument("--category", required=True)
    p.add_argument("--output", required=True, help="Parquet file to write")
    p.add_argument("--window-size", type=int, default=settings.window_size())
    p.add_argument(
        "--model", default=None, help="model whose tokenizer is used (default: embedded)"
    )
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--shard", default="00000", help="shard name written in the shard column")
    p.set_defaults(func=_window)


def _score(args: argparse.Namespace) -> int:
    from .scoring.factory import build_scorer
    from .scoring.windows_file import score_windows_file

    scorer = build_scorer(
        args.model,
        device=args.device,
        dtype=args.dtype,
        batch_tokens=args.batch_tokens,
        block_size=args.block_size,
        add_bos=not args.no_bos,
        rope_theta=args.rope_theta,
        rope_scaling=json.loads(args.rope_scaling) if args.rope_scaling else None,
        kernel=args.kernel,
    )

    def progress(done: int, total: int) -> None:
        print(f"scored {done:,}/{total:,} windows", file=sys.stderr, flush=True)

    stats = score_windows_file(args.windows, args.output, scorer=scorer, progress=progress)
    print(json.dumps(stats, indent=2))
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="layer-0 attention scores (ds, du) of a windows file")
    p.add_argument("windows", help="windowed_chunks Parquet file")
    p.add_argument("--output", required=True, help="scored_chunks Parquet file to write")
    p.add_argument(
        "--model", default=None, help="embedded name, GGUF file, model dir or cached hub id"
    )
    p.add_argument("--device", default=settings.device(), help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--batch-tokens", type=int, default=65536)
    p.add_argument("--block-size", type=int, default=512)
    p.add_argument("--kernel", default="auto", choices=["auto", "torch", "triton"])
    p.add_argument("--rope-theta", type=float, default=None, help="override the model's rope_theta")
    p.add_argument("--rope-scaling", default=None, help='override rope scaling, JSON: {"rope_type": "linear", "factor": 4}')
    p.add_argument("--no-bos", action="store_true", help="do not prepend the BOS token")
    p.set_defaults(func=_score)


def _select(args: argparse.Namespace) -> int:
    from .report.html import render_report, write_report
    from .selection.exports import export_category
    from .selection.rules import SelectionSettings
    from .selection.select import select_category

    chosen = SelectionSettings.from_options(
        normalize=args.normalize,
        alpha=args.alpha,
        keep_fraction=args.keep_fraction,
        token_budget=args.token_budget,
        threshold=args.threshold,
        heads=args.heads,
    )
    out = Path(args.output)
    summary = export_category(
        args.windows, args.scores, out, category=args.category, settings=chosen
    )
    if args.report:
        result = select_category(args.windows, args.scores, **chosen.options())
        write_report(render_report(args.category, result, args.windows), out / "report.html")
    print(json.dumps(summary.as_dict(), indent=2, default=str))
    return 0


def _head_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"heads must be comma-separated integers, not {text!r}") from None


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="select the top windows of one category by LDS")
    p.add_argument("--windows", required=True, help="glob of windowed_chunks Parquet files")
    p.add_argument("--scores", required=True, help="glob of scored_chunks Parquet files")
    p.add_argument(
        "--output", required=True, help="folder for selected.parquet, longabc.jsonl, hf/"
    )
    p.add_argument("--category", default="all", help="name written into the outputs")
    p.add_argument("--normalize", default="zscore", choices=["zscore", "minmax"])
    p.add_argument("--alpha", type=float, default=0.5)
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--keep-fraction", type=float, default=None, help="default 0.5")
    rule.add_argument("--token-budget", type=int, default=None)
    rule.add_argument("--threshold", type=float, default=None)
    p.add_argument(
        "--heads", type=_head_list, default=None, help="query heads averaged into ds and du, e.g. 0,4,7 (default: all)"
    )
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.set_defaults(func=_select)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(
        f"LongAttn demo: bundled sample corpus, embedded SmolLM2, windows of {args.window_size} tokens"
    )
    print(f"data root: {Path(args.data_root).absolute()}")
    categories = [c.strip() for c in args.categories.split(",")] if args.categories else None
    reports = run_demo(
        Path(args.data_root),
        window_size=args.window_size,
        input_dir=Path(args.input_dir),
        device=args.device,
        categories=categories,
    )
    print("\nreports (open in a browser):")
    for category, path in reports.items():
        print(f"  {category}: {path}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline through Dagster on the bundled sample")
    p.add_argument("--data-root", default="longattn-demo")
    p.add_argument("--window-size", type=int, default=settings.DEMO_WINDOW_SIZE)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--input-dir", default=str(settings.SAMPLE_CORPUS_DIR), help="default: the bundled sample"
    )
    p.add_argument(
        "--categories", default=None, help="comma-separated subset of the configured categories"
    )
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longattn", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_window(sub)
    _add_score(sub)
    _add_select(sub)
    _add_demo(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input or set-up: said in one line, not as a traceback."""
    from .corpus.ingest import MissingInputError
    from .model.source import ModelFileError, ModelNotFoundError
    from .scoring.windows_file import TokenizerMismatchError
    from .storage import UnsafeKeyError

    return (MissingInputError, ModelFileError, ModelNotFoundError, TokenizerMismatchError, UnsafeKeyError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except _expected_errors() as exc:
        if args.verbose:
            raise
        print(f"longattn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
