"""The READMEs must not drift from the code, and every Python example in them must run.

* The options table is generated from Config.
* Every ```python block of README.md and sitecustomize_example/README.md is executed:
  pytest examples under ``pytester`` (they define their own fixtures), the others in a
  private network namespace whose loopback stands in for the hosts they name (an HTTP
  server on 127.0.0.1:8080), and the sitecustomize check in the situation that README
  describes (dnscache on ``PYTHONPATH``, where ``.pth`` files are not read).
* README.md is also the package index page: it opens with ``pip install``, and every link
  is absolute or an anchor (relative links break there).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

import dnscache
import netns
from dnscache._core.config import render_options_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SITECUSTOMIZE_DIR = ROOT / "sitecustomize_example"

pytest_plugins = ["pytester"]
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks(path: pathlib.Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


README_BLOCKS = python_blocks(README)
PYTEST_BLOCKS = [b for b in README_BLOCKS if re.search(r"^def test_", b, re.M)]
PLAIN_BLOCKS = [b for b in README_BLOCKS if b not in PYTEST_BLOCKS]


def test_options_table_matches_config() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", text, re.S)
    assert block is not None, "README.md lost its options block"
    assert block.group(1).rstrip("\n") == render_options_table(), (
        "README options table is stale: run `python scripts/update_readme.py`"
    )


def test_readme_names_the_two_commands_and_ci_calls_the_second() -> None:
    for doc in (README, ROOT / "CONTRIBUTING.md"):
        text = doc.read_text(encoding="utf-8")
        assert "python -m dnscache demo" in text, doc
        assert "bash scripts/test.sh" in text, doc
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec bash scripts/test.sh" in ci


def test_readme_opens_for_users_not_for_developers() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:2] == ["Install", "Three ways to turn it on"], headings
    assert headings[-1] == "Development"
    assert text.index("pip install pydnscache") < text.index("## Three ways")


def _anchor(heading: str) -> str:
    """GitHub's (and the index's renderer's) id for a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_every_link_is_absolute_or_an_anchor_that_exists() -> None:
    text = README.read_text(encoding="utf-8")
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    tree = urls["Source"].rstrip("/") + "/blob/main/"
    links = _LINK.findall(text)
    assert links, "no links found: the pattern is broken"
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, f"anchor {link} has no heading"
        else:
            assert link.startswith("https://"), f"relative link {link} breaks on the index page"
            if link.startswith(tree):  # a file of this repository: it must exist
                assert (ROOT / link[len(tree) :].split("#")[0]).exists(), link


def test_the_readmes_have_the_examples_this_file_runs() -> None:
    assert len(PLAIN_BLOCKS) >= 2
    assert len(PYTEST_BLOCKS) == 1
    assert len(python_blocks(SITECUSTOMIZE_DIR / "README.md")) == 1


@pytest.mark.parametrize("index", range(len(PLAIN_BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    """Run in a namespace: 127.0.0.1:8080 is then surely ours, and nothing leaves the host."""
    netns.require_e2e()
    script = (
        "import json, warnings\n"
        "warnings.simplefilter('error')\n"
        "import netns\n"
        "server, port = netns.start_http_server('127.0.0.1', 8080)\n"
        f"block = {PLAIN_BLOCKS[index]!r}\n"
        "exec(compile(block, 'README.md', 'exec'), {'__name__': '__readme__'})\n"
        "import dnscache\n"
        "print(json.dumps({'installed_after': dnscache.is_installed()}))\n"
    )
    result = netns.run_in_netns(script, timeout=60)
    assert result == {"installed_after": False}


def test_readme_pytest_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):  # requests would send api.example.com to a proxy
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)
    (block,) = PYTEST_BLOCKS
    pytester.makepyfile(test_readme_example=block)
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(re.findall(r"^def test_", block, re.M)))


def _base_python() -> str:
    """The interpreter under this venv: its site-packages has no dnscache.pth."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _run_block_on_pythonpath(
    block: str, tmp_path: pathlib.Path, *, with_sitecustomize: bool
) -> subprocess.CompletedProcess[str]:
    first = tmp_path / "first"
    first.mkdir(exist_ok=True)
    if with_sitecustomize:
        shutil.copy(SITECUSTOMIZE_DIR / "sitecustomize.py", first)
    # dnscache and its dependencies, importable but from PYTHONPATH: no .pth file is read.
    import cachetools
    import dns

    dirs = [first, pathlib.Path(dnscache.__file__).parent.parent]
    dirs += [pathlib.Path(m.__file__).parent.parent for m in (dns, cachetools)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(
        PYTHONPATH=os.pathsep.join(map(str, dirs)),
        PYTHONDNSCACHE="1",
        PYTHONDNSCACHE_TTL="30",
    )
    # -s: no user site either; the site module itself (and so sitecustomize) still runs.
    return subprocess.run(
        [_base_python(), "-s", "-c", block],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )


def test_sitecustomize_example_turns_the_cache_on_where_pth_files_are_not_read(
    tmp_path: pathlib.Path,
) -> None:
    (block,) = python_blocks(SITECUSTOMIZE_DIR / "README.md")
    without = _run_block_on_pythonpath(block, tmp_path, with_sitecustomize=False)
    assert without.returncode != 0 and "was not picked up" in without.stderr, (
        "the check passed without sitecustomize.py: this interpreter reads a dnscache.pth, "
        "so the test proves nothing\n" + without.stdout + without.stderr
    )
    with_it = _run_block_on_pythonpath(block, tmp_path, with_sitecustomize=True)
    assert with_it.returncode == 0, with_it.stderr
    assert with_it.stdout.split() == ["30.0"]
    assert with_it.stderr == ""


def test_sitecustomize_readme_does_not_promise_python_dash_s() -> None:
    text = (SITECUSTOMIZE_DIR / "README.md").read_text(encoding="utf-8")
    # -S skips the site module, so neither .pth files nor sitecustomize are read.
    for line in text.splitlines():
        if "-S" in line:
            assert "Neither way works" in line or "skips the `site` module" in line, line
