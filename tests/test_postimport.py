"""Post-import hooks (dnscache._activation.postimport): exact, and invisible to everything else.

Each test imports modules with unique names from a temporary directory, so the
real import system (path hooks, zipimport, runpy, reload) does the work.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import runpy
import sys
import zipfile
import zipimport
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dnscache._activation import postimport

_names = itertools.count()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A directory on sys.path; modules imported from it are forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            del sys.modules[name]
        importlib.invalidate_caches()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[ModuleType] = []
        self.registered: list[str] = []

    def __call__(self, module: ModuleType) -> None:
        self.seen.append(module)

    def watch(self, name: str) -> None:
        postimport.when_imported(name, self)
        self.registered.append(name)

    def forget(self) -> None:
        for name in self.registered:
            postimport.discard(name, self)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.forget()


def unique(prefix: str = "pi_mod") -> str:
    return f"{prefix}_{next(_names)}"


def test_callback_runs_once_the_code_has_run_before_import_returns(
    tree: Path, recorder: Recorder
) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("VALUE = 1\n")
    states: list[Any] = []

    def patch(module: ModuleType) -> None:
        states.append((module.VALUE, postimport.imported(name) is module))
        module.VALUE = 2

    postimport.when_imported(name, patch)
    try:
        imported = importlib.import_module(name)
        from_import = __import__(name, fromlist=["VALUE"]).VALUE
    finally:
        postimport.discard(name, patch)
    assert states == [(1, True)]  # the module's code had run; it counts as imported
    assert imported.VALUE == 2 and from_import == 2


def test_the_module_keeps_its_real_loader(tree: Path, recorder: Recorder) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("LOADER_WHILE_RUNNING = __loader__\n")
    recorder.watch(name)
    module = importlib.import_module(name)
    assert [m.__name__ for m in recorder.seen] == [name]
    for loader in (module.__loader__, module.__spec__.loader, module.LOADER_WHILE_RUNNING):
        assert type(loader) is importlib.machinery.SourceFileLoader


def test_unwatched_modules_are_not_touched(tree: Path, recorder: Recorder) -> None:
    watched, other = unique(), unique()
    (tree / f"{watched}.py").write_text("")
    (tree / f"{other}.py").write_text("")
    recorder.watch(watched)
    finder = postimport._finder
    assert finder is not None
    assert finder.find_spec(other) is None
    importlib.import_module(other)
    assert recorder.seen == []


def test_reload_runs_the_callbacks_again(tree: Path, recorder: Recorder) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("")
    recorder.watch(name)
    module = importlib.import_module(name)
    assert importlib.reload(module) is module
    assert recorder.seen == [module, module]
    assert type(module.__spec__.loader) is importlib.machinery.SourceFileLoader


def test_package_watch_sees_every_submodule(tree: Path, recorder: Recorder) -> None:
    package = unique("pi_pkg")
    (tree / package).mkdir()
    (tree / package / "__init__.py").write_text("")
    (tree / package / "sub.py").write_text("")
    recorder.watch(f"{package}.*")
    importlib.import_module(f"{package}.sub")
    assert [m.__name__ for m in recorder.seen] == [f"{package}.sub"]


def test_submodule_is_bound_on_its_package_when_callbacks_run(
    tree: Path, recorder: Recorder
) -> None:
    package = unique("pi_pkg")
    (tree / package).mkdir()
    (tree / package / "__init__.py").write_text(f"from {package} import sub\n")
    (tree / package / "sub.py").write_text("X = 1\n")
    seen: list[int] = []

    def look(module: ModuleType) -> None:
        seen.append(sys.modules[package].sub.X)  # as "import a.b; a.b.X" would

    postimport.when_imported(f"{package}.sub", look)
    try:
        importlib.import_module(package)
    finally:
        postimport.discard(f"{package}.sub", look)
    assert seen == [1]


def test_a_failing_callback_does_not_break_the_import(tree: Path, recorder: Recorder) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("X = 1\n")

    def boom(module: ModuleType) -> None:
        raise RuntimeError("callback failed")

    postimport.when_imported(name, boom)
    recorder.watch(name)
    try:
        assert importlib.import_module(name).X == 1
    finally:
        postimport.discard(name, boom)
    assert len(recorder.seen) == 1  # the next callback still ran


def test_a_failing_module_runs_no_callback(tree: Path, recorder: Recorder) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("raise ValueError('broken module')\n")
    recorder.watch(name)
    with pytest.raises(ValueError, match="broken module"):
        importlib.import_module(name)
    assert recorder.seen == [] and name not in sys.modules


def test_a_copy_executed_by_hand_is_not_reported(tree: Path, recorder: Recorder) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("")
    recorder.watch(name)
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert recorder.seen == []
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader


def test_zipimport(tmp_path: Path, recorder: Recorder) -> None:
    name = unique()
    archive = tmp_path / "mods.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{name}.py", "X = 'from the zip'\n")
    sys.path.insert(0, str(archive))
    try:
        recorder.watch(name)
        module = importlib.import_module(name)
        assert module.X == "from the zip"
        assert [m.__name__ for m in recorder.seen] == [name]
        assert type(module.__loader__) is zipimport.zipimporter
    finally:
        sys.path.remove(str(archive))
        sys.modules.pop(name, None)
        sys.path_importer_cache.pop(str(archive), None)


class StringFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Another project's finder: serves modules from source strings."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in self.sources:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.sources[module.__name__], module.__dict__)


class RecursiveFinder(importlib.abc.MetaPathFinder):
    """Like wrapt's or a tracer's finder: asks the whole import system again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy = False
        self.calls = 0

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name or self.busy:
            return None
        self.calls += 1
        self.busy = True
        try:
            return importlib.util.find_spec(fullname)
        finally:
            self.busy = False


def test_other_finders_behind_us_are_used(recorder: Recorder) -> None:
    name = unique()
    finder = StringFinder({name: "X = 'from a string'\n"})
    sys.meta_path.append(finder)
    try:
        recorder.watch(name)
        module = importlib.import_module(name)
        assert module.X == "from a string"
        assert module.__loader__ is finder
        assert [m.__name__ for m in recorder.seen] == [name]
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop(name, None)


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_finder_that_asks_importlib_again(tree: Path, recorder: Recorder, where: str) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("")
    recorder.watch(name)  # puts our finder first
    finder = RecursiveFinder(name)
    if where == "before":
        sys.meta_path.insert(0, finder)
    else:
        sys.meta_path.insert(1, finder)
    try:
        importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)
    assert finder.calls >= 1
    assert len(recorder.seen) == 1


def test_runpy_reads_the_code_through_the_wrapper(tree: Path, recorder: Recorder) -> None:
    # python -m asks importlib.util.find_spec, then the loader's get_code: no exec_module.
    name = unique()
    (tree / f"{name}.py").write_text("RESULT = __name__\n")
    recorder.watch(name)
    namespace = runpy.run_module(name, run_name="__main__")
    assert namespace["RESULT"] == "__main__"
    assert recorder.seen == []  # the code ran as __main__, not as the watched module


def test_discard_stops_the_callbacks(tree: Path) -> None:
    name = unique()
    (tree / f"{name}.py").write_text("")
    seen: list[ModuleType] = []
    postimport.when_imported(name, seen.append)
    postimport.discard(name, seen.append)
    postimport.discard(name, seen.append)  # harmless twice
    importlib.import_module(name)
    assert seen == []
    assert name not in postimport._callbacks


def test_imported_is_none_while_a_module_runs(tree: Path) -> None:
    name = unique()
    (tree / f"{name}.py").write_text(
        f"from dnscache._activation import postimport\nDURING = postimport.imported({name!r})\n"
    )
    module = importlib.import_module(name)
    assert module.DURING is None
    assert postimport.imported(name) is module
    assert postimport.imported(unique()) is None
