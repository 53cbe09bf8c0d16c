"""The `longattn` command line: the pipeline's pure parts without Dagster, and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import settings
from .validation import RULES, InvalidSetting, check, check_device_available, check_input_file


def _allowed(rule: str, default: str = "") -> str:
    return RULES[rule].allowed + (f"; {default}" if default else "")

if TYPE_CHECKING:
    from .consistency import CategoryFiles


def _window(args: argparse.Namespace) -> int:
    from .corpus.records import Reject, read_file
    from .corpus.sharding import write_rejects
    from .model.tokenizer import load_tokenizer
    from .provenance import files_fingerprint
    from .windows.chunking import WindowSpec
    from .windows.files import document_batches, files_provenance, write_windows

    inputs = [check_input_file(path, "inputs") for path in args.inputs]
    window_size = settings.window_size() if args.window_size is None else args.window_size
    tokenizer = load_tokenizer(args.model)
    rejects: list[Reject] = []
    records = (item for path in inputs for item in read_file(path, source=str(path)))
    spec = WindowSpec(args.category, args.shard, window_size, args.sample_fraction)
    record = files_provenance(spec, tokenizer, files_fingerprint(inputs))
    batches = document_batches(records, rejects)
    stats = write_windows(batches, tokenizer, spec, Path(args.output), provenance=record)
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
    p.add_argument("--window-size", help=_allowed("window_size", "default: $LONGATTN_WINDOW_SIZE or 32768"))
    p.add_argument(
        "--model", default=None, help="model whose tokenizer is used (default: embedded)"
    )
    p.add_argument("--sample-fraction", default=1.0, help=_allowed("sample_fraction", "default 1"))
    p.add_argument("--shard", default="00000", help="shard name written in the shard column (default 00000)")
    p.set_defaults(func=_window)


def _score(args: argparse.Namespace) -> int:
    from .scoring.factory import build_scorer
    from .scoring.windows_file import score_windows_file

    windows = check_input_file(args.windows, "windows", parquet=True)
    device = (
        check_device_available(args.device, "--device")
        if args.device is not None
        else check_device_available(settings.device(), "LONGATTN_DEVICE")
    )
    scorer = build_scorer(
        args.model,
        device=device,
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

    stats = score_windows_file(windows, args.output, scorer=scorer, progress=progress)
    print(json.dumps(stats, indent=2))
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="layer-0 attention scores (ds, du) of a windows file")
    p.add_argument("windows", help="windowed_chunks Parquet file")
    p.add_argument("--output", required=True, help="scored_chunks Parquet file to write")
    p.add_argument(
        "--model", default=None, help="embedded name, GGUF file, model dir or cached hub id"
    )
    p.add_argument("--device", help=_allowed("device", "default: $LONGATTN_DEVICE or auto"))
    p.add_argument("--dtype", default="auto", help=_allowed("dtype"))
    p.add_argument("--batch-tokens", default=65536, help=_allowed("batch_tokens", "default 65536"))
    p.add_argument("--block-size", default=512, help=_allowed("block_size", "default 512"))
    p.add_argument("--kernel", default="auto", help=_allowed("kernel"))
    p.add_argument("--rope-theta", default=None, help="override the model's rope_theta (> 0)")
    p.add_argument("--rope-scaling", default=None, help='override rope scaling, JSON: {"rope_type": "linear", "factor": 4}')
    p.add_argument("--no-bos", action="store_true", help="do not prepend the BOS token")
    p.set_defaults(func=_score)


def _paired_files(windows: str, scores: str) -> CategoryFiles:
    """The files the globs match, paired and checked by consistency.py; ids unique across them."""
    import glob

    from .consistency import InconsistentDataError, paired_files
    from .selection.checks import data_ids_unique

    files = paired_files(glob.glob(windows), glob.glob(scores))
    unique, facts = data_ids_unique(files.windows)
    if not unique:
        raise InconsistentDataError(
            f"{facts['rows'] - facts['distinct_data_ids']} data_ids repeat in the windows files "
            f"(e.g. {', '.join(facts['duplicated'])}): window each document once"
        )
    return files


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
    )
    out = Path(args.output)
    files = _paired_files(args.windows, args.scores)
    summary = export_category(
        files.windows, files.scores, out, category=args.category, settings=chosen,
        inputs=files.as_record(),
    )  # fmt: skip
    if args.report:
        result = select_category(files.windows, files.scores, **chosen.options())
        write_report(render_report(args.category, result, files.windows), out / "report.html")
    print(json.dumps(summary.as_dict(), indent=2, default=str))
    return 0


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="select the top windows of one category by LDS")
    p.add_argument("--windows", required=True, help="glob of windowed_chunks Parquet files")
    p.add_argument("--scores", required=True, help="glob of scored_chunks Parquet files")
    p.add_argument(
        "--output", required=True, help="folder for selected.parquet, longabc.jsonl, hf/"
    )
    p.add_argument("--category", default="all", help="name written into the outputs")
    p.add_argument("--normalize", default="zscore", help=_allowed("normalize"))
    p.add_argument("--alpha", default=0.5, help=_allowed("alpha", "default 0.5"))
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--keep-fraction", help=_allowed("keep_fraction", "default 0.5"))
    rule.add_argument("--token-budget", help=_allowed("token_budget"))
    rule.add_argument("--threshold", help=_allowed("threshold"))
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.set_defaults(func=_select)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(
        f"LongAttn demo: bundled sample corpus, embedded SmolLM2, windows of {args.window_size} tokens"
    )
    print(f"data root: {Path(args.data_root).absolute()}")
    reports = run_demo(
        Path(args.data_root),
        window_size=args.window_size,
        input_dir=Path(args.input_dir),
        device=check_device_available(args.device, "--device"),
        categories=args.categories,
    )
    print("\nreports (open in a browser):")
    for category, path in reports.items():
        print(f"  {category}: {path}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline through Dagster on the bundled sample")
    p.add_argument("--data-root", default="longattn-demo")
    p.add_argument(
        "--window-size",
        default=settings.DEMO_WINDOW_SIZE,
        help=_allowed("window_size", f"default {settings.DEMO_WINDOW_SIZE}"),
    )
    p.add_argument("--device", default="auto", help=_allowed("device", "default auto"))
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
    from .consistency import InconsistentDataError
    from .corpus.ingest import MissingInputError
    from .model.source import ModelFileError, ModelNotFoundError
    from .scoring.windows_file import TokenizerMismatchError
    from .storage import UnsafeKeyError
    from .windows.files import MissingProvenanceError

    return (
        InconsistentDataError, InvalidSetting, MissingInputError, MissingProvenanceError,
        ModelFileError, ModelNotFoundError, TokenizerMismatchError, UnsafeKeyError, OSError,
    )  # fmt: skip


def _check_options(args: argparse.Namespace) -> None:
    """Every option named like a rule of validation.py, converted to its type in place."""
    for dest, value in vars(args).items():
        if dest in RULES:
            setattr(args, dest, check(dest, value, "--" + dest.replace("_", "-")))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        _check_options(args)
        return args.func(args)
    except _expected_errors() as exc:
        if args.verbose:
            raise
        print(f"longattn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
