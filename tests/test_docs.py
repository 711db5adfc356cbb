"""Every example in README.md and docs/*.md runs as written.

How a page marks its blocks (these rules are documented here only):

* A fenced block whose info string is ``bash``, ``sh`` or ``python`` is an example and is
  run: shell blocks with ``bash -e`` (so every command must succeed; a command that is
  meant to exit non-zero says so at the end of its line, ``nn-harness check ... || test
  $? -eq 1``, and the test makes sure it does exit with that code, not 0), python blocks
  with ``sys.executable``.
* A block whose info string carries ``file=NAME`` (```` ```python file=mynet.py ````,
  ```` ```toml file=grid.toml ````) is a file the text asks you to save: it is written
  into the page's folder when the test reaches it, and not run.
* Output samples are ``text`` or ``console``; other data (``toml`` without ``file=``) is
  shown, not run. A block without an info string fails the test, so no example is
  silently left out.
* Each page runs in order, in a fresh temporary folder, with the environment of the
  test (``PYTHONPATH`` included) and ``nn-harness`` from PATH. A copy of the project's
  ``examples/`` folder is put there, since the pages say to run the commands that name
  it from the project's folder.
* An example is skipped only by a rule of ``SKIP_RULES`` below, which says why; every
  rule must match some block, so a rule outlives no example.

A failing example fails its page's test with the page, the line of the block and the
block itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"bash": "shell", "sh": "shell", "python": "python"}
SHOWN = {"text", "console", "toml"}
TIMEOUT = 300

# (name, why, predicate on a block's text): the only blocks not run.
SKIP_RULES = [
    ("cluster", "needs a Dask scheduler and workers on other machines",
     lambda code: "dask scheduler" in code or "--executor tcp://" in code),
    ("install", "installs packages or makes a virtual environment; CI runs the install "
     "itself, and a test must not change the environment it runs in",
     lambda code: bool(re.search(r"pip install|python3? -m venv|\.venv/bin/activate", code))),
    ("minutes", "takes minutes (a measured figure's reproduction, or a run the page says is "
     "long); the same command on a small case runs on the same page",
     lambda code: bool(re.search(r"^(time nn-harness |nn-harness calibrate --configs (10000|4000|500) --seed|"
                                 r"nn-harness calibrate --quick$|"
                                 r"nn-harness bench --threads 2\b|"
                                 r"PYTHONPATH=\. python examples/trajectory_rates\.py )",
                                 code, re.M))),
]


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    info: str
    code: str

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def file(self) -> str | None:
        m = re.search(r"\bfile=(\S+)", self.info)
        return m.group(1) if m else None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.info})"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (fences at the start of a line)."""
    out, lines, i = [], page.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(.*)$", lines[i])
        if not m:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{page.name}:{start + 1}: unclosed code block"
        out.append(Block(page, start + 1, m.group(1).strip(), "\n".join(body) + "\n"))
        i += 1
    return out


def kind_of(block: Block) -> str:
    """'file', 'run', 'shown' or 'skip:<rule>'; an unknown kind of block is an error."""
    if block.file:
        return "file"
    if block.lang in RUN:
        for name, _why, matches in SKIP_RULES:
            if matches(block.code):
                return f"skip:{name}"
        return "run"
    if block.lang in SHOWN:
        return "shown"
    raise AssertionError(f"{block.where}: a code block needs an info string: "
                         f"one of {sorted(RUN)} (run), {sorted(SHOWN)} (shown) or file=NAME")


ALL = [b for page in PAGES for b in blocks_of(page)]


def test_every_block_is_run_written_shown_or_skipped_by_a_named_rule():
    kinds = [kind_of(b) for b in ALL]
    counts = {k: kinds.count(k) for k in sorted(set(kinds))}
    print(f"docs examples: {counts.get('run', 0)} run, {counts.get('file', 0)} files, "
          + ", ".join(f"{n} {k}" for k, n in counts.items() if k.startswith("skip")))
    for name, _why, _ in SKIP_RULES:
        assert f"skip:{name}" in kinds, f"skip rule {name!r} matches no block: remove it"
    assert counts.get("run", 0) >= 35, counts  # a parser that loses blocks fails here
    runnable = [b for b in ALL if b.lang in RUN]
    assert all(kind_of(b) in ("run", "file") or kind_of(b).startswith("skip:")
               for b in runnable)


def _slug(heading: str) -> str:
    """The anchor a code host gives a heading: lower case, punctuation dropped, - for spaces."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_and_to_headings_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, f"README.md does not link {page.name}"
    assert "docs/layout.md" in readme
    anchors = {p.name: {_slug(h) for h in re.findall(r"^#+ (.*)$", p.read_text(), re.M)}
               for p in PAGES}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(((?:\.\./|docs/)?[\w./-]*?)(?:#([\w-]+))?\)", text):
            name = Path(target).name if target else page.name
            if name == "layout.md" or not (target.endswith(".md") or not target):
                continue  # layout.md is another page's subject; pictures and code files below
            assert (page.parent / target).exists() if target else True, \
                f"{page.name} links to missing {target}"
            if anchor:
                assert anchor in anchors[name], f"{page.name}: no heading #{anchor} in {name}"
        for target in re.findall(r"\]\(((?:\.\./)?examples/[\w.]+)\)", text):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


EXPECTED_EXIT = re.compile(r"^(.*\S) \|\| test \$\? -eq (\d+)$", re.M)


def _strict(code: str) -> str:
    """A command that says it exits with N must not exit with 0 either."""
    return EXPECTED_EXIT.sub(
        lambda m: f'{m.group(1)} && {{ echo "expected exit code {m.group(2)}, got 0" >&2; '
                  f'exit 1; }} || test $? -eq {m.group(2)}', code)


def _run(block: Block, folder: Path, env: dict) -> None:
    if RUN[block.lang] == "shell":
        argv = ["bash", "-e", "-c", _strict(block.code)]
    else:
        argv = [sys.executable, "-c", block.code]
    proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"{block.where} exited with {proc.returncode}:\n{block.code}\n"
                    f"--- stdout (end)\n{proc.stdout[-3000:]}\n--- stderr (end)\n"
                    f"{proc.stderr[-3000:]}", pytrace=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_examples_of_a_page_run_as_written(page, tmp_path):
    blocks = blocks_of(page)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    ran = 0
    for block in blocks:
        kind = kind_of(block)
        if kind == "file":
            target = tmp_path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        elif kind == "run":
            _run(block, tmp_path, env)
            ran += 1
    if not any(kind_of(b) == "run" for b in blocks):
        pytest.skip(f"{page.name} has no runnable example")
    assert ran
