"""The `knowrec` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_movielens import write_ml1m

KNOWREC = [sys.executable, "-m", "knowrec"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KNOWREC, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_inspect_json(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path / "ml")
    out = run("data", "inspect", root, "--format", "movielens", "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["interactions"] == 4 and stats["users_with_interactions"] == 2
    assert stats["items"] == 3 and stats["positives"] == 2
    assert stats["time_min"] == "2000-12-31 22:04:35"


def test_convert_then_inspect_canonical(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path / "ml")
    (tmp_path / "plots.csv").write_text("item_id,plot\n10,A hacker.\n")
    out = run(
        "data",
        "convert",
        root,
        "--out",
        tmp_path / "canon",
        "--text",
        tmp_path / "plots.csv",
        "--text-columns",
        "plot",
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(run("data", "inspect", tmp_path / "canon", "--json").stdout)
    assert stats["format"] == "movielens-1m"
    assert stats["text"]["items_with_text"] == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = write_ml1m(tmp_path / "ml", ratings="1::10::5::978300760\n1::x::3::978302109\n")
    good = write_ml1m(tmp_path / "good")
    log, items = tmp_path / "log.csv", tmp_path / "i.csv"
    log.write_text("user_id,item_id\nu1,a\nu1,b\n")
    items.write_text("id,title\na,A\na,B\n")
    cases = [
        (["data", "inspect", root], "line 2, column 'item_id': expected an integer"),
        (["data", "inspect", tmp_path / "nope"], "no such file or directory"),
        (["data", "inspect", root, "--format", "csvish"], "unknown format 'csvish'"),
        (["data", "inspect", good, "--text", tmp_path / "missing.csv"], "file not found"),
        (["data", "inspect", good, "--map", "user_id"], "--map takes canonical=source"),
        (["data", "inspect", good, "--items", tmp_path / "i.csv"], "apply only to a log file"),
        (["data", "inspect", log, "--item-map", "item_id=id"], "needs an items file (--items)"),
        (["data", "inspect", log, "--items", items, "--item-map", "item_id=id"], "duplicate id"),
        (["data", "inspect", log, "--text", items, "--text-columns", "title"], "missing id col"),
    ]
    for args, message in cases:
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_help_never_cuts_a_sentence_at_80_columns() -> None:
    """Each command's summary is one sentence that fits its row of the command list at 80
    columns; the paragraphs after it have no line breaks of the source (rich keeps them)."""
    import click
    from typer.main import get_command

    from knowrec.cli import app

    def walk(group: click.Group) -> None:
        width = max(len(name) for name in group.commands)
        for name, command in group.commands.items():
            first, *rest = (command.help or "").split("\n\n")
            assert "\n" not in first and len(first) <= 80 - 6 - width, (name, first)
            assert first.endswith(".") and first.count(". ") == 0, (name, first)
            assert all("\n" not in paragraph for paragraph in rest), name
            if isinstance(command, click.Group):
                walk(command)

    walk(get_command(app))  # type: ignore[arg-type]
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([*KNOWREC, "--help"], capture_output=True, text=True, env=env, timeout=60)
    rows = [line for line in out.stdout.splitlines() if re.match(r"│ [a-z]", line)]
    assert len(rows) == len(app.registered_commands) + len(app.registered_groups), out.stdout
