"""The README's options table is generated from Config and must not drift."""

from __future__ import annotations

import pathlib
import re

from dnscache._core.config import render_options_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_options_table_matches_config() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", text, re.S)
    assert block is not None, "README.md lost its options block"
    assert block.group(1).rstrip("\n") == render_options_table(), (
        "README options table is stale: run `python scripts/update_readme.py`"
    )


def test_readme_names_the_two_commands_and_ci_calls_the_second() -> None:
    text = README.read_text(encoding="utf-8")
    assert "python -m dnscache demo" in text
    assert "bash scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci
