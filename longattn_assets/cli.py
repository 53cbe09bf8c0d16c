"""The `longattn` command line: the pipeline's pure parts without Dagster, and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import settings
from .validation import (
    ROPE_TYPES,
    RULES,
    InvalidSetting,
    NoWindowsError,
    UsageError,
    check,
    check_device_available,
    check_heads_within,
    check_input_file,
    check_window_fits,
    check_windows_made,
)


def _allowed(rule: str, default: str = "") -> str:
    return RULES[rule].allowed + (f"; {default}" if default else "")

if TYPE_CHECKING:
    from .consistency import CategoryFiles
    from .selection.rules import SelectionSettings
    from .storage import DataLayout


def _window(args: argparse.Namespace) -> int:
    from .consistency import input_record, inputs_fingerprint
    from .corpus.input_file import content_sha256, is_url
    from .corpus.records import Reject, read_file
    from .corpus.rejects import write_rejects
    from .corpus.sources import named_file
    from .model.source import resolve_model
    from .model.tokenizer import load_tokenizer
    from .windows.chunking import WindowSpec
    from .windows.files import document_batches, files_provenance, write_windows

    # rows name their file as typed (a URL without its secrets); the fingerprint, by its absolute path
    paths = [path if is_url(path) else check_input_file(path, "inputs") for path in args.inputs]
    inputs = [named_file(path) for path in paths]
    label = "LONGATTN_WINDOW_SIZE" if args.window_size is None else "--window-size"
    window_size = settings.window_size() if args.window_size is None else args.window_size
    model = resolve_model(args.model)
    tokenizer = load_tokenizer(model)
    # as `longattn score` scores by default: with the tokenizer's BOS in front
    check_window_fits(window_size, model, tokenizer.bos_token_id is not None, label)
    rejects: list[Reject] = []
    records = (
        item for path, file in zip(paths, inputs)
        for item in read_file(file, source=str(path) if file.is_local else file.name)
    )  # fmt: skip
    spec = WindowSpec(args.category, args.shard, window_size, args.sample_fraction)
    # the windows record their inputs by content (a pass of sha256, ~GB/s, beside tokenizing)
    hashed = [input_record(file, content_sha256(file)) for file in inputs]
    record = files_provenance(spec, tokenizer, inputs_fingerprint(hashed))
    batches = document_batches(records, rejects)
    stats = write_windows(batches, tokenizer, spec, Path(args.output), provenance=record)
    summary = stats.as_metadata() | {"rejects": len(rejects), "output": str(args.output)}
    where = ""
    if rejects:
        rejects_path = Path(str(args.output) + ".rejects.jsonl")
        write_rejects(rejects, rejects_path)
        summary["rejects_file"] = str(rejects_path)
        where = f" ({len(rejects)} rejected rows: {rejects_path})"
    if not stats.windows:
        Path(args.output).unlink()  # an empty windows file would only pass the problem on
    check_windows_made(stats, window_size, label, "--sample-fraction", where)
    print(json.dumps(summary, indent=2))
    return 0


def _add_window(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("window", help="cut documents into token windows (Algorithm 1)")
    p.add_argument("inputs", nargs="+", help="JSONL(.gz/.zst), Parquet or Arrow files: paths or URLs")
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
    from .progress import PrintedProgress, TerminalProgress, WindowCount
    from .scoring.factory import build_scorer
    from .scoring.windows_file import score_windows_file
    from .windows.files import window_totals

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
        layer=settings.layer() if args.layer is None else args.layer,
        workers=args.workers if args.workers is not None else settings.scoring_workers(),
    )

    count = WindowCount(str(windows), "scored", *window_totals(windows))
    stderr = PrintedProgress(lambda line: print(line, file=sys.stderr, flush=True), indent="")
    with stderr, TerminalProgress(count.line):  # a line every 20 s, then the last one
        stats = score_windows_file(windows, args.output, scorer=scorer, progress=lambda done, _: count.update(done))
    print(count.line(), file=sys.stderr)
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
    p.add_argument(
        "--workers", default=None,
        help=_allowed("workers", "CPU scoring workers, one core each; default: "
                      "$LONGATTN_SCORING_WORKERS, else the CPUs this process may use"),
    )  # fmt: skip
    p.add_argument("--rope-theta", default=None, help="override the model's rope_theta (> 0)")
    p.add_argument(
        "--rope-scaling", default=None,
        help='override rope scaling, JSON: {"rope_type": "linear", "factor": 4}; rope types: '
        + ", ".join(ROPE_TYPES),
    )  # fmt: skip
    p.add_argument("--no-bos", action="store_true", help="do not prepend the BOS token")
    p.add_argument(
        "--layer", default=None,
        help=_allowed("layer", "the decoder layer scored; default: $LONGATTN_LAYER or 0, the paper's first"),
    )  # fmt: skip
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
    from .consistency import InconsistentDataError
    from .report.html import render_report, write_report
    from .scoring.windows_file import model_problem
    from .selection.exports import export_category
    from .selection.select import select_category

    chosen = _selection_settings(args)
    out = Path(args.output)
    files = _paired_files(args.windows, args.scores)
    problem = model_problem(files.scores_recipe, args.model)
    if problem:
        raise InconsistentDataError(problem)
    _check_heads(chosen, files.scores)
    category = args.category or _windows_category(files.windows)
    calibration = None
    if args.calibrated:
        from .diagnostics.calibration import calibrated_settings

        chosen, calibration = calibrated_settings(_diagnostics(args, category, files.scores), chosen, category)
    summary = export_category(
        files.windows, files.scores, out, category=category, settings=chosen,
        inputs=files.as_record(), calibration=calibration,
    )  # fmt: skip
    written = {"dataset": str(out)}
    if args.report:
        result = select_category(files.windows, files.scores, **chosen.options())
        written["report"] = str(write_report(render_report(category, result, files.windows), out / "report.html"))
    print(json.dumps(summary.as_dict() | written, indent=2, default=str))
    for what, path in written.items():
        print(f"{what}: {path}", file=sys.stderr)
    return 0


def _check_heads(chosen: SelectionSettings, scores: str | list[Path]) -> None:
    """--heads must name heads the scores have, said before any selection runs."""
    if chosen.heads is None:
        return
    from .selection import duck
    from .selection.select import head_count

    with duck.connect() as con:
        check_heads_within(chosen.heads, head_count(con, scores), "--heads")


def _diagnostics(args: argparse.Namespace, category: str, score_files: list[str]) -> dict | None:
    """The diagnostics record --calibrated reads: --diagnostics, else the data root's for the
    category; refused when it was made from other score files than --scores."""
    from .diagnostics.calibration import CalibrationUnavailable
    from .diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS, read_diagnostics
    from .project_env import project_env
    from .storage import DataLayout

    if args.diagnostics:
        path = Path(args.diagnostics)
    else:
        with project_env():  # the data root the UI and the demo use
            path = DataLayout(settings.data_root()).category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
    if not path.is_file():
        return None
    record = read_diagnostics(path, score_files)
    if record is None:
        raise CalibrationUnavailable(
            f"{path} was not made from these score files (or by an older version): materialize "
            f"scorer_diagnostics {category} for them, or give --diagnostics"
        )
    return record


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="select the top windows of one category by LDS")
    p.add_argument("--windows", required=True, help="glob of windowed_chunks Parquet files")
    p.add_argument("--scores", required=True, help="glob of scored_chunks Parquet files")
    p.add_argument(
        "--output", required=True, help="folder for selected.parquet, longabc.jsonl, hf/"
    )
    p.add_argument(
        "--category", default=None,
        help="name written into the outputs (default: the category column of the windows)",
    )  # fmt: skip
    p.add_argument(
        "--model", default=None,
        help="the model the scores must come from, as given to `longattn score` (default: $LONGATTN_MODEL, else the embedded one)",
    )  # fmt: skip
    _add_selection_options(p)
    p.add_argument(
        "--calibrated", action="store_true",
        help="take heads and alpha from scorer_diagnostics' calibration (chosen on its tuning "
        "documents); recorded in selection.json and the dataset card",
    )  # fmt: skip
    p.add_argument(
        "--diagnostics", default=None,
        help="diagnostics.json for --calibrated (default: the data root's, "
        "scorer_diagnostics/category=C/diagnostics.json)",
    )  # fmt: skip
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.set_defaults(func=_select)


def _add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--normalize", default="zscore", help=_allowed("normalize"))
    p.add_argument("--alpha", default=0.5, help=_allowed("alpha", "default 0.5"))
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--keep-fraction", help=_allowed("keep_fraction", "default 0.5"))
    rule.add_argument("--token-budget", help=_allowed("token_budget"))
    rule.add_argument("--threshold", help=_allowed("threshold"))
    p.add_argument(
        "--heads", default=None, help=_allowed("heads", "averaged into ds and du (default: all)")
    )


def _selection_settings(args: argparse.Namespace) -> SelectionSettings:
    from .selection.rules import SelectionSettings

    return SelectionSettings.from_fields(args)


def _export(args: argparse.Namespace) -> int:
    from .model.tokenizer import load_tokenizer
    from .training.export import ExportSettings, export_category, export_mixture
    from .training.inputs import read_selection, require_tokenizer, vocabulary_size
    from .training.plan import MixtureSettings

    selections = [read_selection(Path(folder)) for folder in args.dataset]
    tokenizer = load_tokenizer(args.model)
    require_tokenizer(selections, tokenizer.fingerprint, args.model or settings.model_spec())
    chosen = ExportSettings.from_options(
        include_bos=not args.no_bos, formats=args.formats, memory_budget=args.memory_budget
    )
    mixture_options = {
        "token_budgets": args.token_budgets, "weights": args.weights, "total_tokens": args.total_tokens,
        "seed": args.seed,
    }  # fmt: skip
    out = Path(args.output)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    vocab_size = vocabulary_size(tokenizer)
    if len(selections) > 1 or any(value is not None for value in mixture_options.values()):
        mixture = MixtureSettings.from_options(**mixture_options)
        result = export_mixture(selections, out, chosen, mixture, vocab_size=vocab_size, say=say)
    else:
        result = export_category(selections[0], out, chosen, vocab_size=vocab_size, say=say)
    record = result.record
    summary = {key: record[key] for key in ("windows", "tokens", "categories", "vocab_size", "dtypes", "formats")}
    summary |= {"output": str(out), "reused": result.reused, "seconds": round(result.seconds, 3),
                "tokens_per_s": round(result.tokens_per_s, 1)}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    from .training.export import DEFAULT_MEMORY_BUDGET
    from .validation import EXPORT_FORMATS

    p = sub.add_parser(
        "export",
        help="write kept windows' token ids for training (MDS, Megatron .bin/.idx, HF parquet)",
        description="One --dataset: its kept windows, best LDS first. Several, or any mixture "
        "option: a mixture drawn by LDS rank within each category, shuffled with --seed.",
    )
    p.add_argument(
        "--dataset", action="append", required=True,
        help="a selection folder (longattn select --output, or data/longabc_dataset/category=C); repeat to mix",
    )  # fmt: skip
    p.add_argument("--output", required=True, help="folder to write (replaced whole)")
    p.add_argument(
        "--model", default=None,
        help="the scoring model (default: $LONGATTN_MODEL, else embedded); another tokenizer is refused",
    )  # fmt: skip
    p.add_argument("--formats", default=",".join(EXPORT_FORMATS), help=_allowed("formats", "default: all"))
    p.add_argument("--no-bos", action="store_true", help="leave out the scorer's BOS (default: included, as scored)")
    p.add_argument(
        "--memory-budget", default=DEFAULT_MEMORY_BUDGET,
        help=_allowed("memory_budget", f"default {DEFAULT_MEMORY_BUDGET}; never changes the output"),
    )  # fmt: skip
    mix = p.add_mutually_exclusive_group()
    mix.add_argument("--token-budgets", default=None, help=_allowed("token_budgets"))
    mix.add_argument("--weights", default=None, help=_allowed("weights", "default: equal"))
    p.add_argument("--total-tokens", default=None, help=_allowed("total_tokens", "with --weights; default: the most the selections allow"))
    p.add_argument("--seed", default=None, help=_allowed("seed", "seed of the mixture's shuffle; default 0"))
    p.set_defaults(func=_export)


def _browse(args: argparse.Namespace) -> int:
    from .assets.selection import LONGABC_DATASET
    from .browse.ranking import CategoryRanking
    from .browse.server import make_server
    from .consistency import recorded_files
    from .project_env import project_env
    from .selection.exports import SUMMARY_FILE
    from .selection.rules import SelectionSettings
    from .storage import DataLayout

    if bool(args.windows) != bool(args.scores):
        raise UsageError("browse: give both --windows and --scores, or neither")
    chosen = _selection_settings(args)
    if args.windows:
        windows, scores = args.windows, args.scores
        category = args.category or _windows_category(windows)
    else:
        if not args.category:
            raise UsageError("browse: give --category (or --windows and --scores)")
        with project_env():  # the data root and the categories the UI and the demo use
            layout = DataLayout(Path(args.data_root) if args.data_root else settings.data_root())
            configured = settings.categories()
        category = _browsable_category(args.category, layout, configured)
        recorded_path = layout.category_file(LONGABC_DATASET, category, SUMMARY_FILE)
        if not recorded_path.is_file():
            raise UsageError(
                f"browse: {category} has no dataset under {layout.root} yet: "
                "materialize longabc_dataset first (longattn demo does), or give --windows and --scores"
            )
        # the dataset's own files (the current shards) and, unless a rule is given, its
        # settings, so kept and dropped match longabc_dataset
        recorded = json.loads(recorded_path.read_text())
        files = recorded_files(recorded["inputs"], layout.root)
        windows, scores = files.windows, files.scores
        if not _rule_given(args):
            chosen = SelectionSettings(**recorded["settings"])
    _check_heads(chosen, scores)
    print(f"ranking the windows of {category} ({windows}) ...", flush=True)
    ranking = CategoryRanking(windows, scores, chosen)
    server = make_server(ranking, category, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"{ranking.n:,} windows; browse them at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: remove the ranking's files
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ranking.close()
    return 0


def _browsable_category(name: str, layout: DataLayout, configured: list[str]) -> str:
    """A configured category, or one with a dataset under the data root; else an unknown one."""
    from .assets.selection import LONGABC_DATASET

    category = check("category", name, "--category")
    folder = layout.root / LONGABC_DATASET
    found = sorted(p.name.removeprefix("category=") for p in folder.glob("category=*")) if folder.is_dir() else []
    known = list(dict.fromkeys([*configured, *found]))
    if category not in known:
        raise InvalidSetting("--category", category, "a known category: " + ", ".join(known))
    return category


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _rule_given(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.keep_fraction, args.token_budget, args.threshold))


def _windows_category(windows_glob: str | list[Path]) -> str:
    from .selection.select import windows_category

    return windows_category(windows_glob)


def _add_browse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "browse", help="page through a category's windows in LDS order in a browser"
    )
    p.add_argument("--category", default=None, help="category under the data root")
    p.add_argument(
        "--data-root", default=None, help="default: LONGATTN_DATA_ROOT, else ./data (as the UI)"
    )
    p.add_argument("--windows", default=None, help="glob of windowed_chunks files (instead)")
    p.add_argument("--scores", default=None, help="glob of scored_chunks files (instead)")
    _add_selection_options(p)
    p.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    p.add_argument("--port", default=8765, help=_allowed("port", "default 8765"))
    p.set_defaults(func=_browse)


def _demo(args: argparse.Namespace) -> int:
    from .corpus.input_file import location, redact
    from .demo import DAGSTER_DIR, run_demo
    from .project_env import dagster_home, project_env

    # The checkout's .env, as `dagster dev` reads it: the same instance and data root.
    with project_env() as from_file:
        configured = settings.data_root()
        data_root = Path(args.data_root).expanduser().absolute() if args.data_root else configured
        home = dagster_home()
        if home is not None and "DAGSTER_HOME" in from_file and data_root.resolve() != configured.resolve():
            # The checkout's instance describes the checkout's data root (what its UI reads);
            # the runs of another data root go to an instance of their own, beside it.
            home = None
        window_label = "--window-size" if args.window_size else "LONGATTN_WINDOW_SIZE"
        window_size = args.window_size or settings.demo_window_size()
        input_dir = location(args.input_dir) if args.input_dir else settings.input_dir()
        corpus = "bundled sample corpus" if input_dir == str(settings.SAMPLE_CORPUS_DIR) else redact(input_dir)
        instance = home or data_root / DAGSTER_DIR
        print(f"LongAttn demo: {corpus}, embedded SmolLM2, windows of {window_size} tokens")
        print(f"data root: {data_root}")
        print(f"Dagster instance: {instance}")
        categories = args.categories or None  # already a list: validation.py's "categories" rule
        reports = run_demo(
            data_root,
            window_size=window_size,
            input_dir=input_dir,
            device=check_device_available(args.device, "--device"),
            categories=categories,
            dagster_home=home,
            window_label=window_label,
        )
    print("\nreports (open in a browser):")
    for category, path in reports.items():
        print(f"  {category}: {path}")
    if home is not None and home.resolve() == Path.cwd().resolve():
        print("\nits runs in the UI: .venv/bin/dagster dev -w workspace.yaml  (Ctrl-C stops it)")
    else:
        # from the data root's folder, where no .env sets another instance or data root
        dagster = Path(sys.executable).parent / "dagster"
        print(
            f"\nits runs in the UI: cd {data_root} && DAGSTER_HOME={instance} LONGATTN_DATA_ROOT={data_root} "
            f"LONGATTN_WINDOW_SIZE={window_size} {dagster} dev -m longattn_assets.definitions"
        )
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline through Dagster on the bundled sample")
    p.add_argument(
        "--data-root", default=None, help="default: LONGATTN_DATA_ROOT, else ./data (as the UI)"
    )
    p.add_argument(
        "--window-size", default=None,
        help=_allowed("window_size", f"default: LONGATTN_WINDOW_SIZE, else {settings.DEMO_WINDOW_SIZE}"),
    )  # fmt: skip
    p.add_argument("--device", default="auto", help=_allowed("device", "default auto"))
    p.add_argument(
        "--input-dir", default=None,
        help="a folder or URL (s3://, gs://, hf://datasets/) with one sub-folder per category; "
        "default: LONGATTN_INPUT_DIR, else the bundled sample",
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
    _add_export(sub)
    _add_demo(sub)
    _add_browse(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input or set-up: said in one line, not as a traceback."""
    from .consistency import InconsistentDataError
    from .corpus.ingest import MissingInputError
    from .diagnostics.calibration import CalibrationUnavailable
    from .model.families import LocalLayerError
    from .model.source import ModelFileError, ModelNotFoundError
    from .scoring.windows_file import TokenizerMismatchError
    from .storage import UnsafeKeyError
    from .training.inputs import OtherTokenizerError
    from .training.mds import MissingLibraryError
    from .training.plan import MixtureError
    from .windows.files import MissingProvenanceError

    return (
        CalibrationUnavailable, InconsistentDataError, InvalidSetting, LocalLayerError, MissingInputError,
        MissingProvenanceError, ModelFileError, ModelNotFoundError, NoWindowsError, TokenizerMismatchError,
        UnsafeKeyError, UsageError, OSError, OtherTokenizerError, MixtureError, MissingLibraryError,
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
