"""What every setting and option may hold, checked in one place.

The command line (cli.py), the environment (settings.py) and the Dagster resources and
configs (resources.py, assets) check their values here by the option's name, so a bad
value gives the same one line wherever it was given: the option as the user wrote it
(``--keep-fraction``, ``LONGATTN_NUM_SHARDS``, ``windowing.window_size``), the value and
what is allowed. Nothing here imports Dagster or torch at module load (the cron and device
rules import them when they run).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .storage import check_key

# Options with a fixed set of values; config fields use these types, so Dagster's config
# schema holds them as enums and the launchpad refuses another value before launching.
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Kernel = Literal["auto", "torch", "triton"]
Normalize = Literal["zscore", "minmax"]


class InvalidSetting(ValueError):
    """A value outside what its option allows; the message is one line."""

    def __init__(self, label: str, value: object, allowed: str):
        super().__init__(f"{label}: got {value!r}, expected {allowed}")
        self.label, self.value, self.allowed = label, value, allowed


class UsageError(ValueError):
    """Options that are missing or do not go together; the message is one line."""


class NoWindowsError(ValueError):
    """Inputs and settings that give no window at all; the message is one line."""


@dataclass(frozen=True)
class Rule:
    """``convert`` returns the value in its type or raises ValueError/TypeError."""

    allowed: str
    convert: Callable[[Any], Any]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return value


def integer(minimum: int, maximum: int | None = None, why: str = "") -> Rule:
    """An integer within [minimum, maximum]; ``why`` says where the maximum comes from."""

    def convert(value: object) -> int:
        value = _not_bool(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            value = int(value)
        number = int(value.strip()) if isinstance(value, str) else value
        if not isinstance(number, int) or number < minimum or (maximum is not None and number > maximum):
            raise ValueError(value)
        return number

    if maximum is None:
        return Rule(f"an integer >= {minimum}", convert)
    return Rule(f"an integer from {minimum} to {maximum}" + (f" ({why})" if why else ""), convert)


def number(
    low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> Rule:
    """A finite float, optionally within [low, high] (or (low, high] with ``low_open``)."""

    def convert(value: object) -> float:
        value = _not_bool(value)
        if not isinstance(value, (int, float, str)):
            raise TypeError(value)
        result = float(value)
        if not math.isfinite(result):
            raise ValueError(value)
        if low is not None and (result < low or (low_open and result == low)):
            raise ValueError(value)
        if high is not None and result > high:
            raise ValueError(value)
        return result

    if low is not None and high is not None:
        allowed = f"a number within {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        allowed = "a finite number"
    return Rule(allowed, convert)


def choice(*values: str) -> Rule:
    def convert(value: object) -> str:
        if value not in values:
            raise ValueError(value)
        return str(value)

    return Rule("one of " + ", ".join(values), convert)


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _device(value: object) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value.strip()):
        raise ValueError(value)
    return value.strip()


def _key(kind: str) -> Callable[[Any], str]:
    return lambda value: check_key(kind, value)


def _keys(value: object) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list):
        raise TypeError(value)
    names = [part.strip() for part in parts if part.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(value)
    return [check_key("category", name) for name in names]


def _heads(value: object) -> list[int]:
    """Query head indices, from "0,4,7" (the CLI) or a list (a run's config)."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or not parts:
        raise TypeError(value)
    heads = [integer(0).convert(part) for part in parts]
    if len(set(heads)) != len(heads):
        raise ValueError(value)
    return heads


def _json_object(value: object) -> str:
    if not isinstance(value, str) or not isinstance(json.loads(value), dict):
        raise ValueError(value)
    return value


# Rope types the scorer computes (scoring/rope.py, with transformers' own frequency
# functions) and the parameters each needs: positive finite numbers, lists of them for
# longrope. Other keys (rope_theta, original_max_position_embeddings, beta_fast, ...) are
# optional and, when given as numbers, must be positive and finite too.
ROPE_TYPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor"),
    "longrope": ("short_factor", "long_factor"),
}
ROPE_LISTS = ("short_factor", "long_factor")


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0
    )  # fmt: skip


def rope_parameters_problem(params: dict) -> str | None:
    """What is wrong with a rope parameters object (an override or a model config's), or None."""
    rope_type = params.get("rope_type", params.get("type"))
    if rope_type not in ROPE_TYPES:
        return f"rope_type {rope_type!r} is not one of {', '.join(ROPE_TYPES)}"
    for key in ROPE_TYPES[rope_type]:
        if key not in params:
            return f"{rope_type} rope needs {key!r}"
    positive = {*ROPE_TYPES[rope_type], "factor", "rope_theta", "original_max_position_embeddings"}
    for key, value in params.items():
        if key in ROPE_LISTS:
            if not isinstance(value, list) or not value or not all(map(_positive, value)):
                return f"{key!r} must be a non-empty list of numbers > 0, not {value!r}"
        elif key in positive:
            if not _positive(value):
                return f"{key!r} must be a finite number > 0, not {value!r}"
        elif key not in ("rope_type", "type") and not (
            value is None or isinstance(value, bool)  # e.g. yarn's "truncate"
            or (isinstance(value, (int, float)) and math.isfinite(value))
        ):
            return f"{key!r} must be a finite number, not {value!r}"
    return None


def _rope_scaling(value: object) -> str:
    if rope_parameters_problem(json.loads(_json_object(value))) is not None:
        raise ValueError(value)
    return value


def _flag(value: object) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no", ""):
        return False
    raise ValueError(value)


_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def _memory(value: object) -> str:
    if not isinstance(value, str) or not _MEMORY.match(value.strip()):
        raise ValueError(value)
    return value.strip()


def _cron(value: object) -> str:
    from dagster._utils.schedules import is_valid_cron_string  # what a ScheduleDefinition accepts

    if not isinstance(value, str) or not is_valid_cron_string(value.strip()):
        raise ValueError(value)
    return value.strip()


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value.strip()


def _column(value: object) -> str:
    if not isinstance(value, str) or value != value.strip():
        raise ValueError(value)
    return value


EXPORT_FORMATS = ("mds", "megatron", "hf")


def _formats(value: object) -> tuple[str, ...]:
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)):
        raise TypeError(value)
    names = [str(part).strip() for part in parts if str(part).strip()]
    if not names or len(set(names)) != len(names) or set(names) - set(EXPORT_FORMATS):
        raise ValueError(value)
    return tuple(name for name in EXPORT_FORMATS if name in names)  # one order, however given


def _category_numbers(convert: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    """``book=3,code=1`` (or a mapping) to {category: number}, each number checked by ``convert``."""

    def parse(value: object) -> dict[str, Any]:
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(value)
            items = [(name.strip(), number) for name, number in pairs]
        elif isinstance(value, dict):
            items = list(value.items())
        else:
            raise TypeError(value)
        names = [name for name, _ in items]
        if not items or len(set(names)) != len(names):
            raise ValueError(value)
        return {check_key("category", name): convert(number) for name, number in items}

    return parse


KEY_ALLOWED = "letters, digits, '_', '-' and '.', starting with a letter or digit, no '..'"
# Dagster lists every partition key when it loads the definitions: 10,000 shards per
# category load in about a second, 10^6 take half a minute and 2.4 GB, 10^8 never finish.
MAX_SHARDS = 10_000

RULES: dict[str, Rule] = {
    # windows (DESIGN 1.1)
    "window_size": integer(1),
    "sample_fraction": number(0.0, 1.0, low_open=True),
    # partitions
    "num_shards": integer(1, MAX_SHARDS, "shards per category"),
    "categories": Rule(f"a comma-separated list of distinct names ({KEY_ALLOWED})", _keys),
    "category": Rule(f"a name of {KEY_ALLOWED}", _key("category")),
    "shard": Rule(f"a name of {KEY_ALLOWED}", _key("shard")),
    # scoring (DESIGN 1.2)
    "model": Rule("an embedded model name, a GGUF file, a model folder or a hub id", _text),
    "device": Rule("auto, cpu, cuda or cuda:N", _device),
    "dtype": choice(*get_args(Dtype)),
    "kernel": choice(*get_args(Kernel)),
    "batch_tokens": integer(1),
    "block_size": integer(1),
    "resume_chunk_windows": integer(1),
    "rope_theta": number(0.0, low_open=True),
    "rope_scaling": Rule(
        'a JSON object such as {"rope_type": "linear", "factor": 4.0}: rope_type one of '
        + ", ".join(ROPE_TYPES) + ' with its parameters as finite numbers > 0 ("factor"; llama3 also '
        '"low_freq_factor" and "high_freq_factor"; longrope "short_factor" and "long_factor" lists)',
        _rope_scaling,
    ),
    "layer": integer(0),
    # selection (DESIGN 1.3)
    "normalize": choice(*get_args(Normalize)),
    "alpha": number(),
    "keep_fraction": number(0.0, 1.0),
    "token_budget": integer(0),
    "threshold": number(),
    "heads": Rule("comma-separated distinct query head indices, e.g. 0,4,7", _heads),
    "duckdb_memory": Rule("a size such as 2GB or 512MiB", _memory),
    # training export (training/)
    "formats": Rule("a comma-separated subset of " + ", ".join(EXPORT_FORMATS), _formats),
    "seed": integer(0),
    "total_tokens": integer(1),
    "token_budgets": Rule(
        "category=tokens pairs, e.g. book=1000000,code=2000000 (integers >= 0)",
        _category_numbers(integer(0).convert),
    ),
    "weights": Rule(
        "category=weight pairs, e.g. book=1,code=2 (finite numbers > 0)",
        _category_numbers(number(0.0, low_open=True).convert),
    ),
    # ingest
    "memory_budget": Rule("a size such as 1GB or 512MiB", _memory),
    "workers": integer(1),
    "text_column": Rule("a column name (empty: content, else text)", _column),
    "cron": Rule("a cron expression of five fields, e.g. '0 3 * * *'", _cron),
    # Slurm
    "gpus_per_task": integer(0),
    "cpus_per_task": integer(1),
    "max_parallel": integer(0),
    "poll_s": number(0.0, low_open=True),
    "flag": Rule("1, true, yes, 0, false or no", _flag),
    # longattn browse
    "port": integer(0, 65535, "0 picks a free port"),
}


def check(rule: str, value: Any, label: str | None = None) -> Any:
    """``value`` converted by the rule named ``rule``; None stays None (an unset option)."""
    if value is None:
        return None
    checker = RULES[rule]
    try:
        return checker.convert(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidSetting(label or rule, value, checker.allowed) from None


def check_variable(name: str, rule: str, default: Any) -> Any:
    """Environment variable ``name`` checked by ``rule``, else ``default`` when it is unset.

    A variable set to nothing (``LONGATTN_CATEGORIES=``) is a value, checked like any other:
    it never silently means the default.
    """
    value = os.environ.get(name)
    return default if value is None else check(rule, value, label=name)


def check_fields(obj: object, owner: str, fields: Iterable[str]) -> None:
    """Check attributes of a config object whose names are rules (a pydantic validator's body)."""
    for field in fields:
        check(field, getattr(obj, field), f"{owner}.{field}")


def check_device_available(device: str, label: str = "device") -> str:
    """``cuda`` and ``cuda:N`` must find a visible accelerator; ``auto`` falls back to the CPU."""
    device = check("device", device, label)
    if device.startswith("cuda"):
        from .scoring.devices import visible_accelerators

        visible = visible_accelerators()
        if device not in visible and not (device == "cuda" and visible):
            names = ", ".join(visible) if visible else "none is visible here"
            raise InvalidSetting(label, device, f"auto, cpu or a visible CUDA device ({names})")
    return device


def check_input_file(path: str | Path, label: str, parquet: bool = False) -> Path:
    """A file a command reads: it must exist (and be Parquet when ``parquet``)."""
    file = Path(path)
    if not file.exists():
        raise InvalidSetting(label, str(path), "an existing file (no such file)")
    if file.is_dir():
        raise InvalidSetting(label, str(path), f"a file, not a folder (give its files, e.g. {file}/*.jsonl)")
    if parquet:
        try:
            with open(file, "rb") as handle:
                magic = handle.read(4) if file.is_file() else b""
        except OSError as exc:
            raise InvalidSetting(label, str(path), f"a readable Parquet file ({exc.strerror})") from None
        if magic != b"PAR1":
            raise InvalidSetting(label, str(path), "a Parquet file (it does not start with PAR1)")
    return file


def check_model_file(path: Path, label: str = "model") -> Path:
    """A model given as an existing file must be a GGUF file, whatever its name says."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise InvalidSetting(label, str(path), f"a readable GGUF file ({exc.strerror})") from None
    if magic != b"GGUF":
        raise InvalidSetting(
            label, str(path),
            "a GGUF file, a model folder with config.json, an embedded model name or a hub id "
            "in the local cache: this file is not GGUF (it does not start with the bytes GGUF)",
        )  # fmt: skip
    return path


def check_window_fits(window_size: int, model: Any, bos: bool, label: str) -> int:
    """DESIGN 1.2: scores mean something only within the positions the model was trained on,
    so a window plus its BOS (``bos``) must fit in them. ``model`` is a model.source.ModelSource."""
    from .model.context import trained_positions

    positions = trained_positions(model)
    limit = None if positions is None else positions - int(bos)
    if limit is not None and window_size > limit:
        taken = ", one of them for BOS" if bos else ""
        raise InvalidSetting(
            label, window_size,
            f"an integer from 1 to {limit}: the model {model.spec} was trained on {positions} positions{taken}",
        )  # fmt: skip
    return window_size


def check_heads_within(heads: Iterable[int] | None, n_heads: int | None, label: str = "heads") -> None:
    """Chosen query heads must exist in the scores (``n_heads`` None: no scores to check against)."""
    if heads is None or n_heads is None:
        return
    chosen = list(heads)
    if max(chosen) >= n_heads:
        shown = ",".join(str(h) for h in chosen)
        raise InvalidSetting(label, shown, f"head indices from 0 to {n_heads - 1}: the scores have {n_heads} heads")


def check_windows_made(
    stats: Any, window_size: int, window_label: str, fraction_label: str, rejects: str = ""
) -> None:
    """A setting (or input) that gives no window at all is said, not written as an empty result.

    ``stats`` is a windows.chunking.WindowStats; ``rejects`` says where rejected rows went.
    """
    if stats.windows:
        return
    if not stats.documents:
        raise NoWindowsError(f"no windows: the inputs hold no usable document{rejects}")
    if stats.too_short == stats.documents:
        longest = stats.longest_document
        raise InvalidSetting(
            window_label, window_size,
            f"at most {longest - 1} for these inputs: none of their {stats.documents} documents has "
            f"more than {window_size} tokens, which a window needs (the longest has {longest})",
        )  # fmt: skip
    raise NoWindowsError(
        f"no windows: {fraction_label} sampled out all {stats.sampled_out} windows of "
        f"{stats.documents} documents; raise it"
    )
