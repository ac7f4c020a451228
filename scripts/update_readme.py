"""Regenerate the generated blocks of README.md (the options table) from the code."""

from __future__ import annotations

import pathlib
import re

from dnscache._core.config import render_options_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {name} block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    README.write_text(replace_block(text, "options", render_options_table()), encoding="utf-8")


if __name__ == "__main__":
    main()
