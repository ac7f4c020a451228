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
from collections.abc import Callable, Sequence
from typing import Any

from .options import PROG, USAGE, Command, Opt, UsageError
from .output import emit_json, say

# A shell's statuses for a command it could not start.
NOT_FOUND = 127
NOT_EXECUTABLE = 126


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


def _is_bool(f: dataclasses.Field[Any]) -> bool:
    return isinstance(f.default, bool)


# The words an old-style boolean value may be (`--disabled yes`): PYTHONDNSCACHE's own.
_BOOL_WORDS = frozenset({"1", "0", "true", "false", "yes", "no", "on", "off"})


def normalise(args: Sequence[str]) -> list[str]:
    """``run``'s arguments with every boolean option in its unambiguous ``--name=value`` form.

    Booleans are flags (``--disabled``, ``--no-refresh``), and the older
    ``--disabled yes`` keeps working: a boolean word right after a boolean option
    is its value. Anything else after it is the command (``--disabled python
    app.py``), which argparse alone would take as the option's value. The scan
    stops at ``--`` and at the first word that is not an option (the command).
    """
    fields = run_fields()
    booleans = {option_name(f.name) for f in fields if _is_bool(f)}
    valued = {option_name(f.name) for f in fields if not _is_bool(f)}
    out = list(args)
    i = 0
    while i < len(out):
        token = out[i]
        if token == "--" or not token.startswith("-"):
            break
        if token in booleans:
            following = out[i + 1] if i + 1 < len(out) else None
            if following is not None and following.lower() in _BOOL_WORDS:
                out[i : i + 2] = [f"{token}={following}"]
            else:
                out[i] = f"{token}=1"
        elif token in valued:
            i += 1  # its value, whatever it looks like
        i += 1
    return out


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
        return _not_started(args, command, "command not found", NOT_FOUND)
    except PermissionError:
        return _not_started(args, command, "permission denied", NOT_EXECUTABLE)
    except OSError as exc:
        return _not_started(args, command, str(exc.strerror or exc), NOT_EXECUTABLE)


def _not_started(args: argparse.Namespace, command: list[str], reason: str, status: int) -> int:
    say(f"{PROG}: {command[0]}: {reason}")
    if args.json:
        emit_json({"command": command, "error": reason, "status": status})
    return status


def _configure(parser: argparse.ArgumentParser) -> None:
    from ..._core.config import env_name

    for f in run_fields():
        doc = str(f.metadata.get("doc", "")).replace("%", "%%")
        name = option_name(f.name)
        if not _is_bool(f):
            parser.add_argument(
                name, dest=f.name, metavar="VALUE", help=f"{doc} [{env_name(f.name)}]"
            )
            continue
        # A flag; `--name yes|no` is the older form, still accepted (see normalise()).
        parser.add_argument(
            name,
            dest=f.name,
            nargs="?",
            const="1",
            metavar="yes|no",
            help=f"{doc} [{env_name(f.name)}=1]",
        )
        parser.add_argument(
            "--no-" + name[2:],
            dest=f.name,
            action="store_const",
            const="0",
            help=f"[{env_name(f.name)}=0]",
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
    options=(
        Opt(
            ("--json",),
            {"action": "store_true", "help": "report a command that cannot start as JSON"},
        ),
    ),
    exit_help=(
        f"exit status: COMMAND's own; {NOT_FOUND} if it is not found, {NOT_EXECUTABLE} if it "
        f"cannot be run; {USAGE} bad usage. With --json, a command that cannot start is also "
        "reported as a JSON object with 'command', 'error' and 'status' on stdout."
    ),
)
