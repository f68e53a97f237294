"""The `knowrec` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
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
    cases = [
        (["data", "inspect", root], "line 2, column 'item_id': expected an integer"),
        (["data", "inspect", tmp_path / "nope"], "no such file or directory"),
        (["data", "inspect", root, "--format", "csvish"], "unknown format 'csvish'"),
        (["data", "inspect", good, "--text", tmp_path / "missing.csv"], "file not found"),
        (["data", "inspect", good, "--map", "user_id"], "--map takes canonical=source"),
    ]
    for args, message in cases:
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
