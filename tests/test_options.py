"""Typed options: install(), patched() and fake_hosts() take Config's fields as keywords,
checked by mypy --strict (``Unpack[Options]``) and at run time (TypeError naming the option).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dnscache
from dnscache import testing
from dnscache._core.config import Config, Options

# Options may accept more than the field stores (the validators normalise these).
WIDER = {
    "hosts": "Mapping[str, str | Iterable[str]]",
    "preload": "Mapping[str, str | Iterable[str]]",
    "nameservers": "str | Iterable[str]",
    "persist": "str | os.PathLike[str] | None",
}


def test_options_follow_the_config_fields() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(Config)}
    assert list(Options.__annotations__) == list(fields)  # same names, same order
    assert Options.__total__ is False
    for name, annotation in Options.__annotations__.items():
        text = getattr(annotation, "__forward_arg__", annotation)  # TypedDict keeps ForwardRefs
        assert text == WIDER.get(name, fields[name]), name


def test_every_option_is_accepted_at_run_time() -> None:
    values = {
        f.name: getattr(Config(), f.name)
        for f in dataclasses.fields(Config)
        if f.name not in ("persist",)
    }
    with dnscache.patched(**values) as resolver:  # type: ignore[arg-type]
        assert resolver.config == Config()


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: dnscache.install(ttll=30), "install()"),  # type: ignore[call-arg]
        (lambda: dnscache.patched(ttll=30), "patched()"),  # type: ignore[call-arg]
        (lambda: dnscache.Resolver(ttll=30), "Resolver()"),  # type: ignore[call-arg]
        (
            lambda: testing.fake_hosts({"a.test": "127.0.0.1"}, ttll=30).__enter__(),  # type: ignore[call-arg]
            "fake_hosts()",
        ),
    ],
)
def test_a_misspelt_option_is_a_type_error_naming_it(call: object, where: str) -> None:
    with pytest.raises(TypeError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == (
        f"{where} got an unexpected keyword argument 'ttll' (did you mean 'ttl'?)"
    )
    assert not dnscache.is_installed()


def test_a_nonsense_option_has_no_hint() -> None:
    with pytest.raises(TypeError, match=r"^install\(\) got an unexpected keyword argument 'zz'$"):
        dnscache.install(zz=1)  # type: ignore[call-arg]


GOOD = """\
import dnscache
from dnscache.testing import fake_hosts

dnscache.install(ttl=30, hosts={"api.test": ["127.0.0.1"]}, nameservers="127.0.0.1")
dnscache.uninstall()
with dnscache.patched(dnscache.Config(), maxsize=3, persist=None, backend="dnspython") as r:
    r.stats()
with fake_hosts({"api.test": "127.0.0.1"}, ttl=5):
    pass
with dnscache.Resolver(ttl=5, max_views=10) as r2:
    r2.stats()
"""

BAD = """\
import dnscache

dnscache.install(ttll=30)
dnscache.patched(tll=3)
dnscache.install(ttl="30")
dnscache.instal()
dnscache.Resolver(tll=3)
"""


MYPY = (sys.executable, "-m", "mypy", "--strict", "--no-incremental")


def test_mypy_strict_catches_misspelt_options(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYPY", "PYTHONDNSCACHE"))}
    proc = subprocess.run(
        [*MYPY, "--cache-dir", str(tmp_path / "cache"), "good.py", "bad.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if e.startswith("good.py")], proc.stdout
    expected = [
        'bad.py:3: error: Unexpected keyword argument "ttll" for "install"',
        'bad.py:4: error: Unexpected keyword argument "tll" for "patched"',
        'bad.py:5: error: Argument "ttl" to "install" has incompatible type "str"',
        'bad.py:6: error: Module has no attribute "instal"',
        'bad.py:7: error: Unexpected keyword argument "tll" for "Resolver"',
    ]
    for want in expected:
        assert any(e.startswith(want) for e in errors), (want, proc.stdout)
    assert len(errors) == len(expected), proc.stdout
