"""``dnscache run``: run a command with the cache switched on through ``PYTHONDNSCACHE``.

The ``.pth`` hook does the rest in the child: every Python program the command
starts installs the cache before any of its own modules is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Callable
from typing import Any

from .options import PROG, Command, UsageError
from .output import say


def _is_callable_type(tp: Any) -> bool:
    """True for ``Callable[...]`` and unions containing one (the hooks)."""
    if tp is Callable or typing.get_origin(tp) is Callable:
        return True
    return any(_is_callable_type(arg) for arg in typing.get_args(tp))


def run_fields() -> list[dataclasses.Field[Any]]:
    """The Config fields ``run`` offers as options: all but the hooks (callables)."""
    from ..._core.config import Config

    try:
        hints = typing.get_type_hints(Config)
    except Exception:  # an annotation only a type checker can resolve: read the text
        hints = {}
    fields = []
    for f in dataclasses.fields(Config):
        if f.name in hints:
            hook = _is_callable_type(hints[f.name])
        else:
            hook = any(word in str(f.type) for word in ("Callable", "Hook"))
        if not hook:
            fields.append(f)
    return fields


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _run_env(args: argparse.Namespace) -> dict[str, str]:
    """The child's environment: ours, PYTHONDNSCACHE=1 and one variable per option given."""
    from ..._core.config import ENV_PREFIX, Config, env_name

    env = dict(os.environ)
    env[ENV_PREFIX] = "1"
    for f in run_fields():
        raw = getattr(args, f.name)
        if raw is None:
            continue
        try:
            value = f.metadata["parse"](raw)
            Config(**{f.name: value})  # the same checks the child will make
        except Exception as exc:
            raise UsageError(f"argument {option_name(f.name)}: {raw!r}: {exc}") from None
        env[env_name(f.name)] = raw
    return env


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to run")
    env = _run_env(args)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # exec, not a child: the command gets our pid, terminal and signals, and
        # its exit status is ours without any translation.
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        say(f"{PROG}: {command[0]}: command not found")
        return 127
    except PermissionError:
        say(f"{PROG}: {command[0]}: permission denied")
        return 126
    except OSError as exc:
        say(f"{PROG}: {command[0]}: {exc.strerror or exc}")
        return 126


def _configure(parser: argparse.ArgumentParser) -> None:
    from ..._core.config import env_name

    for f in run_fields():
        doc = str(f.metadata.get("doc", "")).replace("%", "%%")
        parser.add_argument(
            option_name(f.name),
            dest=f.name,
            metavar="VALUE",
            help=f"{doc} [{env_name(f.name)}]",
        )
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


COMMAND = Command(
    name="run",
    help="run a command with the cache on",
    description="Run COMMAND with PYTHONDNSCACHE=1 and each option below as its "
    "PYTHONDNSCACHE_<OPTION> variable, so every Python program it starts caches DNS. "
    "Exits with COMMAND's status (127 if it is not found).",
    usage=f"{PROG} run [OPTIONS] [--] COMMAND [ARGS...]",
    run=run,
    configure=_configure,
)
