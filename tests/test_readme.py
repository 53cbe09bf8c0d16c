"""Every command in the README and the docs runs as pasted from the checkout's folder.

Each fenced code block of every Markdown file of the project is read; in shell blocks
(``bash``, ``sh``, ``console`` or unlabeled) every command a line holds (after ``&&``,
``;``, ``|``, past ``VAR=value`` assignments) is checked: a program the install puts in
``.venv`` is called as ``.venv/bin/<program>`` (nothing is activated on a fresh machine);
``longattn`` lines parse with the real argument parser and its option rules, ``dagster``
lines name a real subcommand with real options (its own click parser), ``python`` lines
name an existing script or an importable module. A new section is covered by being there.
The cheap commands that change an instance's settings (``dagster instance ...``) also run,
exactly as written, in a fresh copy of the checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|", "&"}
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Documents that describe the project to its users.
DOCUMENTS = sorted(
    path.relative_to(REPO).as_posix()
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "benchmarks").glob("*.md")]
)


@dataclass(frozen=True)
class Command:
    document: str
    line: int
    text: str  # the whole line, as pasted
    argv: tuple[str, ...]  # one command of it, without its VAR=value assignments

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {self.text}"


def _joined_lines(body: str) -> Iterator[tuple[int, str]]:
    """(offset, line) with backslash continuations joined."""
    pending, start = "", 0
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def _commands(words: list[str]) -> Iterator[list[str]]:
    """The simple commands of a tokenized line, without leading assignments and ``export``."""
    current: list[str] = []
    for word in [*words, ";"]:
        if word in SEPARATORS:
            while current and ASSIGNMENT.match(current[0]):
                current.pop(0)
            if current and current[0] not in ("export", "cd"):
                yield current
            current = []
        else:
            current.append(word)


def _venv_program(word: str) -> str | None:
    """The program's name when it is one the install puts in .venv/bin (with or without the prefix)."""
    name = word.removeprefix(".venv/bin/")
    return name if "/" not in name and (BIN / name).exists() else None


def commands_in(document: str) -> Iterator[Command]:
    text = (REPO / document).read_text(encoding="utf-8")
    for block in FENCE.finditer(text):
        if block.group("lang") not in SHELL_LANGUAGES:
            continue
        first_line = text.count("\n", 0, block.start("body")) + 1
        for offset, line in _joined_lines(block.group("body")):
            try:
                lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
                lexer.whitespace_split, lexer.commenters = True, "#"
                words = list(lexer)
            except ValueError:
                if block.group("lang"):
                    raise AssertionError(f"{document}:{first_line + offset}: not a shell line: {line}") from None
                continue  # a diagram or a listing in an unlabeled block
            for argv in _commands(words):
                if block.group("lang") or _venv_program(argv[0]):  # unlabeled: only commands
                    yield Command(document, first_line + offset, line.strip(), tuple(argv))


ALL = [command for document in DOCUMENTS for command in commands_in(document)]


def test_the_documents_hold_the_commands_this_test_checks():
    programs = {_venv_program(c.argv[0]) for c in ALL}
    assert {"longattn", "dagster", "python"} <= programs, programs
    assert "README.md" in {c.document for c in ALL}


@pytest.mark.parametrize("command", [c for c in ALL if _venv_program(c.argv[0])], ids=str)
def test_programs_of_the_install_are_called_from_the_venv(command: Command):
    assert command.argv[0].startswith(".venv/bin/"), (
        f"{command}: write .venv/bin/{command.argv[0]} (nothing is activated on a fresh machine)"
    )
    assert (REPO / command.argv[0]).resolve().exists() or (BIN / _venv_program(command.argv[0])).exists()


def _longattn(argv: tuple[str, ...]) -> None:
    from longattn_assets.cli import _check_options, build_parser

    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:
        raise AssertionError(f"longattn refuses {list(argv)} (exit {exc.code})") from None
    _check_options(args)  # every option value within validation.py's rules


def _dagster(argv: tuple[str, ...]) -> None:
    from dagster._cli import cli

    context = cli.make_context("dagster", list(argv))
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*context._protected_args, *context.args]
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)


def _python(argv: tuple[str, ...]) -> None:
    args = [a for a in argv if a not in ("-u", "-X", "-B")]
    if args[:1] == ["-m"]:
        assert find_spec(args[1]) is not None, f"no module {args[1]}"
    elif args[:1] == ["-c"]:
        compile(args[1], "<README>", "exec")  # a SyntaxError fails the test
    elif args:
        assert (REPO / args[0]).is_file(), f"no script {args[0]}"


CHECKS = {"longattn": _longattn, "dagster": _dagster, "python": _python}


@pytest.mark.parametrize(
    "command", [c for c in ALL if _venv_program(c.argv[0]) in CHECKS], ids=str
)
def test_each_command_parses_with_its_real_parser(command: Command, monkeypatch):
    monkeypatch.chdir(REPO)  # paths such as workspace.yaml are the checkout's
    try:
        CHECKS[_venv_program(command.argv[0])](command.argv[1:])
    except click.ClickException as exc:
        raise AssertionError(f"{command}: {exc.format_message()}") from None
    except AssertionError as exc:
        raise AssertionError(f"{command}: {exc}") from None


def _changes_the_instance(command: Command) -> bool:
    return _venv_program(command.argv[0]) == "dagster" and command.argv[1:2] == ("instance",)


@pytest.mark.parametrize("command", [c for c in ALL if _changes_the_instance(c)], ids=str)
def test_instance_commands_run_as_pasted_in_a_fresh_checkout(command: Command, tmp_path: Path):
    """`dagster instance` does not read .env (unlike dev, asset materialize, job execute)."""
    from tests.ui.test_newcomer_path import fresh_checkout

    checkout = fresh_checkout(tmp_path / "checkout")
    (checkout / ".venv").symlink_to(BIN.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LONGATTN_"))}
    done = subprocess.run(
        ["bash", "-c", command.text], cwd=checkout, env={**env, "PWD": str(checkout)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"{command}\n{done.stderr[-3000:]}"
    if command.argv[1:4] == ("instance", "concurrency", "set"):
        import dagster as dg

        key, limit = command.argv[4], int(command.argv[5])
        with dg.DagsterInstance.from_config(str(checkout)) as instance:  # the checkout's own instance
            assert instance.event_log_storage.get_concurrency_info(key).slot_count == limit
