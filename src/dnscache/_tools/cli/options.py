"""The shared option table, argument types, exit statuses and errors of every command.

After coverage.py's ``cmdline``: each option is defined once here (:class:`Opts`),
with its flags, type and help, and each command lists the ones it takes, so
``--json`` or ``--nameserver`` read and behave the same wherever they appear.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

PROG = "dnscache"

# Exit statuses, the same for every command (and said in every --help).
OK = 0
FAILED = 1  # a name did not resolve, a process has no endpoint, a file could not be read
USAGE = 2  # bad usage: argparse's own convention
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

EXIT_STATUS_HELP = (
    "exit status: 0 ok; 1 not found or failed; 2 bad usage; 130 interrupted. "
    "With --json, a failure is also a JSON object with 'error' and 'status' on stdout."
)


class UsageError(Exception):
    """Bad input from the user: shown as one line, exit status 2."""


class CommandError(Exception):
    """A command could not do its work: shown as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: "dnscache lookup: error: ... (see --help)"."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- argument types: text -> value, or argparse.ArgumentTypeError with a short reason ---


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def delay_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000 ms")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


# --- the option table ---


@dataclass(frozen=True)
class Opt:
    """One command-line option: its flags and argparse keywords."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def add(self, parser: argparse.ArgumentParser | Any, **override: Any) -> None:
        parser.add_argument(*self.flags, **{**self.kwargs, **override})


class Opts:
    """A namespace of the options commands are built from (coverage.py's ``Opts``)."""

    json = Opt(("--json",), {"action": "store_true", "help": "print JSON instead of text"})
    count = Opt(
        ("--count",),
        {"type": positive_int, "metavar": "N", "help": "calls per run (%(default)s)"},
    )
    delay = Opt(
        ("--delay",),
        {
            "type": delay_ms,
            "metavar": "MS",
            "help": "the embedded server's delay per answer in ms (%(default)s)",
        },
    )
    # dig's and curl's -4/-6; --family 4|6 is the older spelling, kept.
    ipv4 = Opt(
        ("-4",), {"dest": "family", "action": "store_const", "const": "4", "help": "IPv4 only"}
    )
    ipv6 = Opt(
        ("-6",), {"dest": "family", "action": "store_const", "const": "6", "help": "IPv6 only"}
    )
    family = Opt(("--family",), {"choices": ["4", "6"], "help": "the same as -4 or -6"})
    backend = Opt(
        ("--backend",), {"choices": ["system", "dnspython"], "help": "where answers come from"}
    )
    nameserver = Opt(
        ("--nameserver",),
        {
            "action": "append",
            "metavar": "IP[:PORT]",
            "help": "a server for the dnspython backend (repeatable; implies --backend dnspython)",
        },
    )
    path = Opt(("--path",), {"help": "the database file"})
    max_age = Opt(
        ("--max-age",),
        {
            "type": seconds,
            "metavar": "SECONDS",
            "help": "records not seen for this long are dead (default: 30 days)",
        },
    )


@dataclass(frozen=True)
class Command:
    """A sub-command: its parser's texts, the shared options it takes, and its body."""

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    options: Sequence[Opt] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Positional arguments and options of its own, added after the shared ones.
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    usage: str | None = None
    exit_help: str = EXIT_STATUS_HELP

    def add_to(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            usage=self.usage,
            epilog=self.exit_help,
        )
        if self.configure is not None:
            self.configure(parser)
        for opt in self.options:
            dest = opt.flags[-1].lstrip("-").replace("-", "_")
            if dest in self.defaults:
                opt.add(parser, default=self.defaults[dest])
            else:
                opt.add(parser)
        parser.set_defaults(handler=self.run)
        return parser
