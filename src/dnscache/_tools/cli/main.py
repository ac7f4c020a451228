"""The ``dnscache`` command: the parser built from every command module, and the dispatch.

Rules every command keeps: a user error (bad flag, bad value, unknown name) is
one line on stderr and a non-zero exit, never a traceback; bad usage exits 2
(argparse's convention), a failed lookup 1, and ``run`` passes its child's
status through (127 when the command does not exist, as a shell does).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from . import bench, cache, demo, doctor, lookup, run
from .options import FAILED, INTERRUPTED, PROG, USAGE, CommandError, Parser, UsageError
from .output import say

# In the order a newcomer meets them.
COMMANDS = (demo.COMMAND, lookup.COMMAND, run.COMMAND, cache.COMMAND, bench.COMMAND, doctor.COMMAND)


def build_parser() -> argparse.ArgumentParser:
    from ... import __version__

    parser = Parser(
        prog=PROG,
        description="A faithful, cached socket.getaddrinfo: try it, check it, run with it.",
        epilog=f"Start with '{PROG} demo'. Every command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dnscache`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, bad usage: argparse has said why
        return exc.code if isinstance(exc.code, int) else USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, CommandError) as exc:
        command = " ".join(
            part for part in (PROG, args.command_name, getattr(args, "cache_command", None)) if part
        )
        say(f"{command}: error: {exc}")
        return USAGE if isinstance(exc, UsageError) else FAILED
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`dnscache lookup ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
