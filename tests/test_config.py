"""Config: defaults, immutability, validation, and the PYTHONDNSCACHE_* environment twins."""

from __future__ import annotations

import dataclasses
import math
import os.path
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import dnscache
from dnscache import Config, ConfigWarning
from dnscache._core.config import make_config, options_table, parse_env

# --- defaults and immutability ---


def test_defaults() -> None:
    c = Config()
    assert c.ttl == 60.0 and isinstance(c.ttl, float)
    assert c.negative_ttl == 1.0 and isinstance(c.negative_ttl, float)
    assert c.maxsize == 10000
    assert c.disabled is False
    assert dict(c.hosts) == {}
    assert c.on_cache_miss is None
    assert c.on_change is None


def test_frozen() -> None:
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.ttl = 5.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.hosts["x.test"] = ("127.0.0.1",)  # type: ignore[index]


def test_hosts_are_copied_not_shared() -> None:
    given = {"svc.test": ["127.0.0.1"]}
    c = Config(hosts=given)
    given["svc.test"].append("127.0.0.2")
    given["other.test"] = ["127.0.0.3"]
    assert dict(c.hosts) == {"svc.test": ("127.0.0.1",)}


def test_hosts_normalised() -> None:
    c = Config(hosts={"a.test": "127.0.0.1", "b.test": ["0:0::0001", "127.0.0.2"]})
    assert dict(c.hosts) == {"a.test": ("127.0.0.1",), "b.test": ("::1", "127.0.0.2")}


def test_int_accepted_for_seconds() -> None:
    c = Config(ttl=5, negative_ttl=0)
    assert c.ttl == 5.0 and isinstance(c.ttl, float)
    assert c.negative_ttl == 0.0 and isinstance(c.negative_ttl, float)


def test_replace_returns_a_changed_copy() -> None:
    c = Config()
    d = c.replace(ttl=5, maxsize=3)
    assert (d.ttl, d.maxsize) == (5.0, 3)
    assert (c.ttl, c.maxsize) == (60.0, 10000)
    assert d.negative_ttl == c.negative_ttl


def test_replace_unknown_option() -> None:
    with pytest.raises(TypeError):
        Config().replace(tll=5)


def test_replace_validates() -> None:
    with pytest.raises(ValueError):
        Config().replace(ttl=-1)


def test_equality() -> None:
    assert Config(ttl=5) == Config(ttl=5.0)
    assert Config(ttl=5) != Config(ttl=6)


def test_hashable_like_any_frozen_dataclass() -> None:
    assert hash(Config()) == hash(Config())
    a = Config(ttl=5, hosts={"svc.test": ["127.0.0.1"]})
    b = Config(ttl=5.0, hosts={"svc.test": ("127.0.0.1",)})
    assert a == b and hash(a) == hash(b)
    assert len({a, b, Config()}) == 2


def test_make_config() -> None:
    assert make_config(None, {}) == Config()
    assert make_config(None, {"ttl": 3}) == Config(ttl=3)
    assert make_config(Config(maxsize=7), {"ttl": 3}) == Config(maxsize=7, ttl=3)
    with pytest.raises(TypeError):
        make_config({"ttl": 3}, {})  # type: ignore[arg-type]


def _hook(*args: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": -1}, ValueError),
        ({"ttl": math.nan}, ValueError),
        ({"ttl": math.inf}, ValueError),
        ({"ttl": "5"}, TypeError),
        ({"ttl": True}, TypeError),
        ({"ttl": None}, TypeError),
        ({"negative_ttl": -0.5}, ValueError),
        ({"negative_ttl": "1"}, TypeError),
        ({"maxsize": 0}, ValueError),
        ({"maxsize": -5}, ValueError),
        ({"maxsize": 1.5}, TypeError),
        ({"maxsize": 10.0}, TypeError),
        ({"maxsize": True}, TypeError),
        ({"disabled": 1}, TypeError),
        ({"disabled": "yes"}, TypeError),
        ({"hosts": [("a.test", "127.0.0.1")]}, TypeError),
        ({"hosts": "a.test=127.0.0.1"}, TypeError),
        ({"hosts": {"a.test": ["not-an-ip"]}}, ValueError),
        ({"hosts": {"a.test": ["127.0.0.1", "256.0.0.1"]}}, ValueError),
        ({"hosts": {"a.test": []}}, ValueError),
        ({"hosts": {"": ["127.0.0.1"]}}, ValueError),
        ({"hosts": {".": ["127.0.0.1"]}}, ValueError),
        ({"hosts": {"a\x00b.test": ["127.0.0.1"]}}, ValueError),
        ({"hosts": {b"a.test": ["127.0.0.1"]}}, ValueError),
        # Names the resolver cannot encode (CPython's idna codec rejects them):
        ({"hosts": {"a..b.test": ["127.0.0.1"]}}, ValueError),
        ({"hosts": {"x" * 64 + ".test": ["127.0.0.1"]}}, ValueError),
        ({"on_cache_miss": 5}, TypeError),
        ({"on_change": "os:getcwd"}, TypeError),
    ],
)
def test_bad_programmatic_values(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Config(**options)


def test_bad_value_also_rejected_by_resolver_and_install() -> None:
    with pytest.raises(ValueError):
        dnscache.Resolver(ttl=-1)
    with pytest.raises(TypeError):
        dnscache.Resolver(tll=1)
    with pytest.raises(ValueError):
        dnscache.install(maxsize=0)
    assert not dnscache.is_installed()


def test_hooks_accepted() -> None:
    c = Config(on_cache_miss=_hook, on_change=print)
    assert c.on_cache_miss is _hook
    assert c.on_change is print


# --- the environment twins ---


def env(**values: str) -> dict[str, str]:
    return {f"PYTHONDNSCACHE_{k.upper()}": v for k, v in values.items()}


def test_no_environment_gives_defaults() -> None:
    config, problems = parse_env({})
    assert config == Config()
    assert problems == []


def test_unrelated_variables_ignored() -> None:
    config, problems = parse_env({"PYTHONDNSCACHE": "1", "PATH": "/bin", "TTL": "3"})
    assert config == Config()
    assert problems == []


@pytest.mark.parametrize(
    ("environ", "field", "expected"),
    [
        (env(ttl="5"), "ttl", 5.0),
        (env(ttl=" 2.5 "), "ttl", 2.5),
        (env(ttl="0"), "ttl", 0.0),
        (env(negative_ttl="0.25"), "negative_ttl", 0.25),
        (env(maxsize="10"), "maxsize", 10),
        (env(maxsize=" 7 "), "maxsize", 7),
        (env(disabled="1"), "disabled", True),
        (env(disabled="yes"), "disabled", True),
        (env(disabled="TRUE"), "disabled", True),
        (env(disabled="on"), "disabled", True),
        (env(disabled="0"), "disabled", False),
        (env(disabled="off"), "disabled", False),
        (env(disabled="False"), "disabled", False),
        (env(hosts="a.test=127.0.0.1"), "hosts", {"a.test": ("127.0.0.1",)}),
        (
            env(hosts="a.test=127.0.0.1,::1;b.test=127.0.0.2"),
            "hosts",
            {"a.test": ("127.0.0.1", "::1"), "b.test": ("127.0.0.2",)},
        ),
        (
            env(hosts=" a.test = 127.0.0.1 , ::1 ;; b.test=127.0.0.2 ; "),
            "hosts",
            {"a.test": ("127.0.0.1", "::1"), "b.test": ("127.0.0.2",)},
        ),
        (env(on_cache_miss="os.path:join"), "on_cache_miss", os.path.join),
        (env(on_cache_miss="os:path.join"), "on_cache_miss", os.path.join),
        (env(on_change="os.path:basename"), "on_change", os.path.basename),
    ],
)
def test_env_values(environ: dict[str, str], field: str, expected: Any) -> None:
    config, problems = parse_env(environ)
    assert problems == []
    value = getattr(config, field)
    if isinstance(expected, Mapping):
        assert dict(value) == expected
    elif callable(expected):
        assert value is expected
    else:
        assert value == expected
        assert type(value) is type(expected)
    # Nothing else moved.
    assert config.replace(**{field: getattr(Config(), field)}) == Config()


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDNSCACHE_TTL", "7")
    monkeypatch.setenv("PYTHONDNSCACHE_MAXSIZE", "9")
    c = Config.from_env()
    assert (c.ttl, c.maxsize) == (7.0, 9)
    assert parse_env()[0] == c


def test_from_env_given_mapping_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDNSCACHE_TTL", "7")
    assert Config.from_env({}) == Config()


BAD_VALUES = [
    ("TTL", "abc"),
    ("TTL", ""),
    ("TTL", "-1"),
    ("TTL", "nan"),
    ("TTL", "inf"),
    ("TTL", "1e999"),
    ("NEGATIVE_TTL", "soon"),
    ("NEGATIVE_TTL", "-0.1"),
    ("MAXSIZE", "0"),
    ("MAXSIZE", "-3"),
    ("MAXSIZE", "1.5"),
    ("MAXSIZE", "ten"),
    ("DISABLED", "maybe"),
    ("DISABLED", "2"),
    ("HOSTS", "nonsense"),
    ("HOSTS", "a.test=not-an-ip"),
    ("HOSTS", "a.test="),
    ("HOSTS", "=127.0.0.1"),
    ("HOSTS", "a.test=127.0.0.1;b.test"),
    ("HOSTS", "a..b.test=127.0.0.1"),
    ("ON_CACHE_MISS", "no_colon"),
    ("ON_CACHE_MISS", "no_such_module_for_dnscache_tests:f"),
    ("ON_CACHE_MISS", "os:no_such_function"),
    ("ON_CACHE_MISS", "os:sep"),
    ("ON_CACHE_MISS", ":getcwd"),
    ("ON_CHANGE", "os:"),
    ("ON_CHANGE", "os:sep"),
]


@pytest.mark.parametrize(("suffix", "raw"), BAD_VALUES)
def test_bad_env_value_one_message_and_default(suffix: str, raw: str) -> None:
    name = f"PYTHONDNSCACHE_{suffix}"
    config, problems = parse_env({name: raw})
    assert config == Config()
    assert dict(config.hosts) == {}
    assert config.on_cache_miss is None and config.on_change is None
    assert len(problems) == 1, problems
    assert name in problems[0]
    assert "\n" not in problems[0]


@pytest.mark.parametrize(("suffix", "raw"), BAD_VALUES)
def test_from_env_warns_once_per_bad_value(suffix: str, raw: str) -> None:
    name = f"PYTHONDNSCACHE_{suffix}"
    with pytest.warns(ConfigWarning) as record:
        config = Config.from_env({name: raw})
    assert config == Config()
    assert [w.category for w in record] == [ConfigWarning]
    assert name in str(record[0].message)


def test_bad_values_do_not_spoil_good_ones() -> None:
    environ = env(ttl="abc", maxsize="5", negative_ttl="-1", disabled="yes")
    config, problems = parse_env(environ)
    assert config == Config(maxsize=5, disabled=True)
    assert len(problems) == 2
    assert any("PYTHONDNSCACHE_TTL" in p for p in problems)
    assert any("PYTHONDNSCACHE_NEGATIVE_TTL" in p for p in problems)
    with pytest.warns(ConfigWarning) as record:
        assert Config.from_env(environ) == config
    assert len(record) == 2


def test_hook_module_that_fails_to_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dnscache_test_broken_hook.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config, problems = parse_env(env(on_change="dnscache_test_broken_hook:f"))
    finally:
        sys.modules.pop("dnscache_test_broken_hook", None)
    assert config.on_change is None
    assert len(problems) == 1 and "PYTHONDNSCACHE_ON_CHANGE" in problems[0]


def test_config_warning_is_a_warning() -> None:
    assert issubclass(ConfigWarning, UserWarning)


# --- the options table ---


def test_options_table_covers_every_field_in_order() -> None:
    rows = options_table()
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(Config)]
    defaults = Config()
    for name, env_var, default, doc in rows:
        assert env_var == f"PYTHONDNSCACHE_{name.upper()}"
        value = getattr(defaults, name)
        assert default == repr(dict(value) if isinstance(value, Mapping) else value)
        assert doc.strip()


def test_options_table_first_rows() -> None:
    assert [r[:3] for r in options_table()[:7]] == [
        ("ttl", "PYTHONDNSCACHE_TTL", "60.0"),
        ("negative_ttl", "PYTHONDNSCACHE_NEGATIVE_TTL", "1.0"),
        ("maxsize", "PYTHONDNSCACHE_MAXSIZE", "10000"),
        ("max_views", "PYTHONDNSCACHE_MAX_VIEWS", "20000"),
        ("disabled", "PYTHONDNSCACHE_DISABLED", "False"),
        ("hosts", "PYTHONDNSCACHE_HOSTS", "{}"),
        ("on_cache_miss", "PYTHONDNSCACHE_ON_CACHE_MISS", "None"),
    ]


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Config)])
@pytest.mark.parametrize("raw", ["%garbage%", "-1", "", "a=b=c;;", "\udcff"])
def test_every_twin_never_raises_and_says_at_most_one_thing(field: str, raw: str) -> None:
    name = f"PYTHONDNSCACHE_{field.upper()}"
    config, problems = parse_env({name: raw})
    assert isinstance(config, Config)
    assert len(problems) <= 1
    if problems:
        assert name in problems[0]
        assert getattr(config, field) == getattr(Config(), field)


@pytest.mark.parametrize("option", ["persist", "tls_ca_bundle"])
@pytest.mark.parametrize(
    ("value", "error"),
    [(b"/etc/x", TypeError), ("/a\x00b", ValueError), ("relative", ValueError), (3, TypeError)],
)
def test_file_options_take_absolute_str_paths_only(
    option: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=option):
        dnscache.Config(**{option: value})
    assert getattr(dnscache.Config(**{option: ""}), option) is None
