"""``python -m dnscache``: the command line (see :mod:`dnscache._tools.cli`)."""

from __future__ import annotations

from ._tools.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
