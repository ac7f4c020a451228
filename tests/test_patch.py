"""install()/uninstall()/patched(): layers that restore exactly what they replaced."""

from __future__ import annotations

import asyncio
import asyncio.base_events
import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import dnscache
from dnscache import Config, Resolver, active_resolver, install, is_installed, patched, uninstall

ORIG_GAI = socket.getaddrinfo
ORIG_CC = socket.create_connection


def assert_pristine() -> None:
    assert socket.getaddrinfo is ORIG_GAI
    assert socket.create_connection is ORIG_CC
    assert not is_installed()
    assert active_resolver() is None


def assert_active(r: Resolver) -> None:
    assert socket.getaddrinfo is r.getaddrinfo
    assert socket.create_connection is r.create_connection
    assert is_installed()
    assert active_resolver() is r
    assert dnscache.get_original("getaddrinfo") is ORIG_GAI
    assert dnscache.get_original("create_connection") is ORIG_CC


@pytest.fixture(autouse=True)
def _pristine() -> Iterator[None]:
    assert_pristine()
    yield


# --- install / uninstall ---


def test_install_and_uninstall() -> None:
    r = install()
    try:
        assert isinstance(r, Resolver)
        assert_active(r)
        assert socket.getaddrinfo("localhost", 80) == ORIG_GAI("localhost", 80)
        assert r.stats().lookups == 1
    finally:
        uninstall()
    assert_pristine()


def test_install_options() -> None:
    r = install(ttl=5)
    uninstall()
    assert r.config.ttl == 5.0
    r = install(Config(maxsize=3), ttl=7)
    uninstall()
    assert (r.config.maxsize, r.config.ttl) == (3, 7.0)


def test_install_is_idempotent() -> None:
    first = install()
    try:
        assert install() is first
        assert_active(first)
    finally:
        uninstall()
    assert_pristine()  # one uninstall undoes both installs


def test_install_with_the_same_options_again_keeps_the_resolver() -> None:
    first = install(ttl=5)
    try:
        assert install(ttl=5) is first
        assert install(Config(ttl=5)) is first
        assert install() is first  # no arguments: whatever is installed
    finally:
        uninstall()
    assert_pristine()


# --- install() with options while installed: applied, never ignored (issue 10, item 6) ---


def test_install_with_other_options_replaces_the_resolver() -> None:
    first = install()
    socket.getaddrinfo("localhost", 80)  # give it background work to stop
    second = install(ttl=5, hosts={"svc.test": ["127.0.0.1"]})
    try:
        assert second is not first
        assert (second.config.ttl, dict(second.config.hosts)) == (5.0, {"svc.test": ("127.0.0.1",)})
        assert_active(second)
        assert socket.getaddrinfo("svc.test", 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert not any(t.is_alive() for t in first.background_threads())
        # The options replace the configuration; they are not merged into the old one.
        third = install(Config(maxsize=3))
        assert (third.config.maxsize, third.config.ttl, dict(third.config.hosts)) == (3, 60.0, {})
        assert_active(third)
    finally:
        uninstall()
    assert_pristine()  # and uninstall still restores the true originals


def test_install_with_a_different_hook_is_a_different_configuration() -> None:
    # Hooks do not take part in Config's equality; install() must still see the change.
    first = install()
    try:
        seen: list[str] = []
        second = install(on_cache_miss=seen.append)
        assert second is not first and second.config.on_cache_miss == seen.append
        socket.getaddrinfo("localhost", 80)
        assert seen == ["localhost"]
    finally:
        uninstall()


def test_install_with_options_under_an_open_patched_block() -> None:
    base = install()
    try:
        with patched() as block:
            new = install(ttl=3)
            assert_active(block)  # the block keeps winning while it is open
        assert_active(new)  # and what comes back when it ends is the new configuration
        assert new.config.ttl == 3.0 and new is not base
    finally:
        uninstall()
    assert_pristine()


def test_install_with_options_reaches_asyncio_too() -> None:
    install()
    try:
        before = asyncio.base_events.BaseEventLoop.getaddrinfo
        new = install(ttl=4)

        async def lookup() -> Any:
            return await asyncio.get_running_loop().getaddrinfo("localhost", 80)

        asyncio.run(lookup())
        after = asyncio.base_events.BaseEventLoop.getaddrinfo
        assert after is not before and getattr(after, "__dnscache__", False)
        assert new.stats().lookups >= 1  # the loop's lookup went through the new resolver
    finally:
        uninstall()


def test_install_with_options_under_a_foreign_wrapper_is_an_error() -> None:
    first = install()
    ours = socket.getaddrinfo

    def foreign(*args: Any, **kwargs: Any) -> Any:
        return ours(*args, **kwargs)

    socket.getaddrinfo = foreign
    try:
        with pytest.raises(RuntimeError, match=r"socket\.getaddrinfo was wrapped"):
            install(ttl=5)
        assert active_resolver() is first  # nothing changed
        assert socket.getaddrinfo is foreign
        assert socket.create_connection is first.create_connection
    finally:
        socket.getaddrinfo = ours
        uninstall()
    assert_pristine()


def test_program_install_after_the_environment_installed() -> None:
    # PYTHONDNSCACHE=1 installed at start-up with the environment's ttl; the program
    # then asks for its own options, before or after its first import of socket.
    code = textwrap.dedent(
        """        import json, sys
        import dnscache
        if sys.argv[1] == "socket-first":
            import socket
        r = dnscache.install(ttl=5, hosts={"svc.test": ["127.0.0.1"]})
        import socket
        print(json.dumps({
            "ttl": r.config.ttl,
            "active": dnscache.active_resolver() is r and socket.getaddrinfo is r.getaddrinfo,
            "answer": socket.getaddrinfo("svc.test", 80, socket.AF_INET)[0][4][0],
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(PYTHONDNSCACHE="1", PYTHONDNSCACHE_TTL="60")
    for order in ("socket-first", "dnscache-first"):
        proc = subprocess.run(
            [sys.executable, "-c", code, order],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
        assert json.loads(proc.stdout) == {"ttl": 5.0, "active": True, "answer": "127.0.0.1"}


def test_uninstall_twice_and_without_install_is_harmless() -> None:
    uninstall()
    install()
    uninstall()
    uninstall()
    assert_pristine()


def test_uninstall_stops_the_resolvers_threads() -> None:
    r = install()
    socket.getaddrinfo("localhost", 80)  # a miss starts the background machinery
    uninstall()
    assert not any(t.is_alive() for t in r.background_threads())


def test_wrapper_installed_after_us_is_left_in_place() -> None:
    r = install()
    ours = socket.getaddrinfo

    def foreign(*args: Any, **kwargs: Any) -> Any:
        return ours(*args, **kwargs)

    socket.getaddrinfo = foreign
    try:
        with pytest.warns(RuntimeWarning, match="getaddrinfo"):
            uninstall()
        assert socket.getaddrinfo is foreign  # not silently unpatched
        assert socket.create_connection is ORIG_CC  # what is still ours is restored
        assert not is_installed()
        assert socket.getaddrinfo("localhost", 80) == ORIG_GAI("localhost", 80)
    finally:
        socket.getaddrinfo = ORIG_GAI
    assert r.getaddrinfo is ours


def test_uninstall_is_complete_even_when_its_warning_is_an_error() -> None:
    # With -W error (or pytest's filterwarnings = error) the RuntimeWarning is raised;
    # uninstall() must have finished its bookkeeping first, not stop half-way.
    install()
    ours = socket.getaddrinfo
    socket.getaddrinfo = lambda *a, **k: ours(*a, **k)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            with pytest.raises(RuntimeWarning):
                uninstall()
        assert socket.create_connection is ORIG_CC
        assert not is_installed()
    finally:
        socket.getaddrinfo = ORIG_GAI
        with warnings.catch_warnings():  # finish what a half-done uninstall left behind
            warnings.simplefilter("ignore", RuntimeWarning)
            uninstall()


# --- patched() ---


def test_patched_block() -> None:
    with patched(ttl=9) as r:
        assert isinstance(r, Resolver)
        assert r.config.ttl == 9.0
        assert_active(r)
        assert socket.getaddrinfo("localhost", 80) == ORIG_GAI("localhost", 80)
    assert_pristine()
    assert not any(t.is_alive() for t in r.background_threads())


def test_patched_with_config() -> None:
    with patched(Config(maxsize=4)) as r:
        assert r.config.maxsize == 4


def test_patched_nested_inner_wins_outer_restored() -> None:
    with patched() as outer:
        assert_active(outer)
        with patched() as inner:
            assert inner is not outer
            assert_active(inner)
        assert_active(outer)
    assert_pristine()


def test_same_patched_object_nests() -> None:
    p = patched()
    with p as a:
        with p as b:
            assert a is not b
            assert_active(b)
        assert_active(a)
    assert_pristine()


def test_patched_restores_on_exception() -> None:
    with pytest.raises(ZeroDivisionError), patched(), patched():
        1 / 0  # noqa: B018
    assert_pristine()


def test_patched_decorator_sync() -> None:
    seen: list[Resolver | None] = []

    @patched(ttl=3)
    def work(x: int) -> int:
        """Docstring kept."""
        r = active_resolver()
        seen.append(r)
        assert r is not None and socket.getaddrinfo is r.getaddrinfo
        assert r.config.ttl == 3.0
        return x * 2

    assert_pristine()
    assert work(2) == 4
    assert_pristine()
    assert work(3) == 6
    assert_pristine()
    assert work.__name__ == "work" and work.__doc__ == "Docstring kept."
    assert seen[0] is not seen[1]  # a fresh Resolver per call


def test_patched_decorator_sync_restores_on_exception() -> None:
    @patched()
    def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        broken()
    assert_pristine()


def test_patched_decorator_async() -> None:
    seen: list[Resolver | None] = []

    @patched(ttl=4)
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        r = active_resolver()
        seen.append(r)
        assert r is not None and socket.getaddrinfo is r.getaddrinfo
        assert r.config.ttl == 4.0
        return x + 1

    assert inspect.iscoroutinefunction(work)
    assert_pristine()
    assert asyncio.run(work(1)) == 2
    assert_pristine()
    assert asyncio.run(work(2)) == 3
    assert_pristine()
    assert seen[0] is not seen[1]


def test_patched_async_with() -> None:
    async def main() -> Resolver:
        async with patched(ttl=6) as r:
            assert_active(r)
            assert r.config.ttl == 6.0
            await asyncio.sleep(0)
            assert_active(r)
        assert socket.getaddrinfo is ORIG_GAI
        return r

    r = asyncio.run(main())
    assert isinstance(r, Resolver)
    assert_pristine()


def test_patched_async_with_restores_on_exception() -> None:
    async def main() -> None:
        async with patched():
            raise ValueError("x")

    with pytest.raises(ValueError):
        asyncio.run(main())
    assert_pristine()


# --- layers: install and patched together ---


def test_patched_inside_install_restores_install() -> None:
    base = install()
    try:
        with patched() as inner:
            assert_active(inner)
        assert_active(base)
    finally:
        uninstall()
    assert_pristine()


def test_uninstall_while_patched_is_active_splices() -> None:
    base = install()
    with patched() as inner:
        uninstall()
        assert_active(inner)  # the inner block still wins
        assert dnscache.get_original("getaddrinfo") is ORIG_GAI
    assert_pristine()  # and on exit the true originals come back
    assert not any(t.is_alive() for t in base.background_threads())


def test_install_inside_patched_then_block_ends_first() -> None:
    with patched() as block:
        base = install()
        assert_active(base)
    assert_active(base)  # the block's layer was spliced out from under install's
    uninstall()
    assert_pristine()
    assert block is not base


def test_wrapper_inside_patched_block_is_left_in_place() -> None:
    def foreign(*args: Any, **kwargs: Any) -> Any:
        return ORIG_GAI(*args, **kwargs)

    try:
        with pytest.warns(RuntimeWarning, match="getaddrinfo"), patched():
            socket.getaddrinfo = foreign
        assert socket.getaddrinfo is foreign
        assert socket.create_connection is ORIG_CC
        assert not is_installed()
    finally:
        socket.getaddrinfo = ORIG_GAI


def test_patched_create_connection_connects() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with patched() as r:
            with socket.create_connection(("localhost", port), timeout=5) as sock:
                assert sock.getpeername() == ("127.0.0.1", port)
            assert r.stats().lookups == 1


# --- TARGETS: the table another runtime's entry is added to ---

LIBRARY = """\
class Base:
    def getaddrinfo(self, host, port):
        return "base"


class Loop(Base):  # inherits getaddrinfo, as uvloop.Loop does from its Cython base
    pass
"""


def _fake_getaddrinfo(resolver: Resolver) -> Any:
    def getaddrinfo(self: Any, host: Any, port: Any) -> Any:
        return ("ours", resolver)

    getaddrinfo.__dnscache__ = True  # type: ignore[attr-defined]
    return getaddrinfo


@pytest.fixture
def library(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module name, not imported yet, with an entry for it in TARGETS."""
    from dnscache._activation import patch as _patch
    from dnscache._activation.targets import Target

    name = f"fake_runtime_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    target = Target(name, "Loop", "getaddrinfo", _fake_getaddrinfo)
    monkeypatch.setattr(_patch, "TARGETS", (*_patch.TARGETS, target))
    try:
        yield name
    finally:
        sys.modules.pop(name, None)


def test_a_new_target_is_patched_when_imported_and_restored_by_deleting(library: str) -> None:
    import importlib

    r = install()
    try:
        module = importlib.import_module(library)  # imported after install()
        assert module.Loop().getaddrinfo("h", 1) == ("ours", r)
        assert module.Base().getaddrinfo("h", 1) == "base"  # only the holder is patched
        importlib.reload(module)  # a reload re-runs the module: patched again
        assert module.Loop().getaddrinfo("h", 1) == ("ours", r)
        with patched() as inner:
            assert module.Loop().getaddrinfo("h", 1) == ("ours", inner)
        assert module.Loop().getaddrinfo("h", 1) == ("ours", r)
    finally:
        uninstall()
    # The attribute was inherited: restoring it means removing ours, not copying Base's in.
    assert "getaddrinfo" not in vars(module.Loop)
    assert module.Loop().getaddrinfo("h", 1) == "base"


def test_a_target_that_cannot_be_patched_does_not_stop_the_others(
    library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from dnscache._activation import patch as _patch
    from dnscache._activation.targets import Target

    def broken(resolver: Resolver) -> Any:
        raise AttributeError("this version of the library moved it")

    module = importlib.import_module(library)  # imported before install() this time
    monkeypatch.setattr(
        _patch, "TARGETS", (Target(library, "Base", "getaddrinfo", broken), *_patch.TARGETS)
    )
    r = install()
    try:
        assert_active(r)
        assert module.Base().getaddrinfo("h", 1) == "base"  # the broken entry: skipped
        assert module.Loop().getaddrinfo("h", 1) == ("ours", r)  # the fixture's: applied
    finally:
        uninstall()
    assert_pristine()


def test_a_second_copy_of_a_patched_module_is_left_alone(library: str) -> None:
    """eventlet's import_patched() re-executes a module while sys.modules briefly holds the copy.

    The copy is not the program's module: patching it would overwrite what the layers
    recorded of the real one, and uninstall() would then leave our function behind.
    """
    import importlib

    module = importlib.import_module(library)
    r = install()
    try:
        saved = sys.modules.pop(library)  # what eventlet.patcher.inject does, in short
        try:
            copy = importlib.import_module(library)
        finally:
            sys.modules[library] = saved
        assert copy is not module
        assert copy.Loop().getaddrinfo("h", 1) == "base"  # the copy: untouched
        assert module.Loop().getaddrinfo("h", 1) == ("ours", r)
    finally:
        uninstall()
    assert "getaddrinfo" not in vars(module.Loop)
    assert module.Loop().getaddrinfo("h", 1) == "base"
