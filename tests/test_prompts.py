"""Prompt files (knowrec.llm.prompts): the ``=== part ===`` format and its errors, which
name the file and the part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowrec.errors import ConfigError
from knowrec.llm.prompts import PromptFile, placeholders

LAYOUT = PromptFile(
    "test template",
    ("system", "item"),
    allowed={"system": frozenset({"noun"}), "item": frozenset({"noun", "item"})},
    required={"item": frozenset({"item"})},
    hint=" (the item goes last)",
)


def test_parts_come_back_stripped_in_order_after_comments() -> None:
    text = "# a comment\n\n=== system ===\n  About ${noun}s.  \n===  item  ===\n$item costs $$5\n"
    assert LAYOUT.parse(text, "t.txt") == {"system": "About ${noun}s.", "item": "$item costs $$5"}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "no parts at all $item",
            "test template t.txt: needs the parts system, item in this order "
            "(as '=== name ===' lines), found none",
        ),
        (
            "=== item ===\n$item\n=== system ===\nx\n",
            "test template t.txt: needs the parts system, item in this order "
            "(as '=== name ===' lines), found ['item', 'system']",
        ),
        (
            "=== system ===\nx\n=== extra ===\ny\n=== item ===\n$item\n",
            "found ['system', 'extra', 'item']",
        ),
        (
            "hello\n=== system ===\nx\n=== item ===\n$item\n",
            "test template t.txt: text before '=== system ===' must be comments",
        ),
        (
            "=== system ===\n\n=== item ===\n$item\n",
            "test template t.txt: the system part is empty",
        ),
        (
            "=== system ===\n$item\n=== item ===\n$item\n",
            "test template t.txt: the system part may not use ['item']; allowed there: "
            "['noun'] (the item goes last)",
        ),
        (
            "=== system ===\nx\n=== item ===\n$noun only\n",
            "test template t.txt: the item part must use ['item']",
        ),
        (
            "=== system ===\ncosts $5\n=== item ===\n$item\n",
            "test template t.txt: the system part has a '$' at character 6 that starts no "
            "placeholder (write $$ for a dollar sign)",
        ),
    ],
)
def test_bad_files_name_the_file_and_the_part(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        LAYOUT.parse(text, "t.txt")


def test_read_gives_the_text_and_the_path_as_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("=== system ===\nx\n=== item ===\n$item\n", encoding="utf-8")
    text, name = LAYOUT.read(path)
    assert name == str(path) and LAYOUT.parse(text, name)["item"] == "$item"
    with pytest.raises(ConfigError, match=re.escape(f"test template {tmp_path / 'no.txt'} does")):
        LAYOUT.read(tmp_path / "no.txt")


def test_read_builtin_names_the_packaged_file() -> None:
    text, name = LAYOUT.read_builtin("knowrec.retrieval", "qprime.txt")
    assert name == "<builtin:qprime.txt>" and "=== item ===" in text
    with pytest.raises(ConfigError, match=re.escape("no built-in test template none.txt")):
        LAYOUT.read_builtin("knowrec.retrieval", "none.txt")


def test_placeholders() -> None:
    assert placeholders("$a ${b} $$c") == {"a", "b"}
    with pytest.raises(ConfigError, match="invalid '\\$' at position 2"):
        placeholders("a $ b")
