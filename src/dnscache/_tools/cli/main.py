"""The ``dnscache`` command: the parser built from every command module, and the dispatch.

Rules every command keeps: a user error (bad flag, bad value, unknown name) is
one line on stderr and a non-zero exit, never a traceback; bad usage exits 2
(argparse's convention), a failure (a name that does not resolve, a file that
cannot be read, a process without an endpoint) 1, and ``run`` passes its
child's status through (127 when the command does not exist, as a shell does).
With ``--json`` the result is JSON on stdout, and so is a failure, as
``{"error": ..., "status": ...}`` beside the usual line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from . import bench, cache, demo, doctor, dump, flush, lookup, ps, run, stats
from .options import (
    EXIT_STATUS_HELP,
    FAILED,
    INTERRUPTED,
    PROG,
    USAGE,
    CommandError,
    Parser,
    UsageError,
)
from .output import emit_json, say

# In the order a newcomer meets them.
COMMANDS = (
    demo.COMMAND,
    lookup.COMMAND,
    run.COMMAND,
    cache.COMMAND,
    bench.COMMAND,
    doctor.COMMAND,
    # A running process, through its control endpoint.
    ps.COMMAND,
    stats.COMMAND,
    dump.COMMAND,
    flush.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    from ..._core.version import __version__

    parser = Parser(
        prog=PROG,
        description="A faithful, cached socket.getaddrinfo: try it, check it, run with it.",
        epilog=f"Start with '{PROG} demo'. Every command has --help and --json. "
        + EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def _normalise(argv: Sequence[str]) -> list[str]:
    """``run``'s boolean options made unambiguous (see :func:`run.normalise`)."""
    argv = list(argv)
    for i, token in enumerate(argv):
        if not token.startswith("-"):  # the command: the top level takes no valued options
            if token == run.COMMAND.name:
                return argv[: i + 1] + run.normalise(argv[i + 1 :])
            break
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dnscache`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(_normalise(sys.argv[1:] if argv is None else argv))
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
        status = USAGE if isinstance(exc, UsageError) else FAILED
        if getattr(args, "json", False):
            emit_json({"error": str(exc), "status": status})
        return status
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`dnscache lookup ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
