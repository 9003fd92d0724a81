"""The code on the getting-started and user-guide pages runs as written: each page's
``.. code-block:: python`` blocks in order, sharing one namespace, as a reader would paste them."""

import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("getting_started.rst", "user_guide.rst")
BLOCK = re.compile(r"^\.\. code-block:: python\n((?:\n|[ ]{3}.*\n)+)", flags=re.M)


def python_blocks(page):
    return [textwrap.dedent(b) for b in BLOCK.findall((DOCS / page).read_text())]


@pytest.mark.parametrize("page", PAGES)
def test_page_has_python_blocks(page):
    assert len(python_blocks(page)) >= 4


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    namespace = {"__name__": "docs"}
    for i, block in enumerate(python_blocks(page)):
        try:
            exec(compile(block, f"docs/{page} python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message says which block failed
            raise AssertionError(f"docs/{page} python block {i + 1} failed: {exc!r}") from exc
