"""The API reference lists every public name, and each has a numpydoc docstring with a
Parameters section (when it takes arguments) and an Examples section (run by the doctests)."""

import inspect
import re
from pathlib import Path

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

import fastnorm
import fastnorm.functional
import fastnorm.neural_network
import fastnorm.nn

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
# fastnorm.functional plumbing that the API page names without documenting (see api.rst)
INTERNAL = {"adam_step", "sgd_step", "deferred_interrupts", "deliver_interrupts"}


def documented():
    """``(module, name)`` of every autosummary entry of docs/api.rst."""
    out, module = [], None
    for line in API.read_text().splitlines():
        found = re.match(r"\.\. currentmodule:: (\S+)", line)
        if found:
            module = found.group(1)
        elif re.match(r"   [A-Za-z_][A-Za-z0-9_]*$", line):
            out.append((module, line.strip()))
    return out


DOCUMENTED = documented()


def public_names():
    names = {("fastnorm", n) for n in fastnorm.__all__ if n != "__version__"}
    names |= {("fastnorm.nn", n) for n in fastnorm.nn.__all__}
    names |= {("fastnorm.neural_network", n) for n in fastnorm.neural_network.__all__}
    names |= {
        ("fastnorm.functional", n)
        for n in fastnorm.functional.__all__
        if n not in fastnorm.__all__ and n not in INTERNAL
    }
    return names


def test_every_public_name_is_on_the_api_page():
    listed = {(m, n) for m, n in DOCUMENTED}
    # a name exported both by fastnorm and a submodule is listed once, under either
    short = {n for _, n in listed}
    missing = sorted(f"{m}.{n}" for m, n in public_names() if (m, n) not in listed)
    missing = [name for name in missing if name.rsplit(".", 1)[1] not in short]
    assert not missing, f"public names missing from docs/api.rst: {missing}"


def _takes_arguments(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return any(p not in ("self",) for p in params) and target is not object.__init__


@pytest.mark.parametrize("module, name", DOCUMENTED, ids=[f"{m}.{n}" for m, n in DOCUMENTED])
def test_numpydoc_sections(module, name):
    obj = getattr(__import__(module, fromlist=[name]), name)
    doc = ClassDoc(obj) if inspect.isclass(obj) else FunctionDoc(obj)
    assert doc["Summary"], f"{module}.{name} has no summary line"
    assert doc["Examples"], f"{module}.{name} has no Examples section"
    assert ">>>" in "\n".join(doc["Examples"])
    is_exception = inspect.isclass(obj) and issubclass(obj, BaseException)
    if _takes_arguments(obj) and not is_exception:
        assert doc["Parameters"], f"{module}.{name} takes arguments but has no Parameters section"
