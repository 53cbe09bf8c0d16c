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
    spec = WindowSpec(category, check_key("shard", args.shard), args.window_size, args.sample_fraction)
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
    p.add_argument("--model", default=None, help="model whose tokenizer is used (default: embedded)")
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--shard", default="00000", help="shard name written in the shard column")
    p.set_defaults(func=_window)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longattn", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_window(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
