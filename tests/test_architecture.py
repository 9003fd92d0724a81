"""The layout's rules: only fastnorm.functional imports the kernels, and modules stay small."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastnorm"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _imported_modules(path, root=PACKAGE.parent):
    """Absolute dotted names of every module ``path`` imports (relative imports resolved)."""
    package = list(path.relative_to(root).parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def _layer(path):
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else path.stem


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_functional_imports_the_kernels(path):
    if _layer(path) in ("_kernels", "functional"):
        return
    kernel_imports = [m for m in _imported_modules(path) if m.startswith("fastnorm._kernels")]
    assert not kernel_imports, (
        f"{path.name} imports {kernel_imports}: go through fastnorm.functional"
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_classes_stay_small(path):
    text = path.read_text()
    assert text.count("\n") <= 420, f"{path.name} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            length = node.end_lineno - node.lineno + 1
            doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) else None
            if doc is not None and isinstance(getattr(doc, "value", None), ast.Constant):
                length -= doc.end_lineno - doc.lineno + 1  # documentation is not bulk
            assert length <= 250, f"class {node.name} in {path.name} has {length} lines of code"


def test_the_import_checker_resolves_relative_imports(tmp_path):
    source = tmp_path / "fastnorm" / "nn" / "layer.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from .._kernels import reduce\nfrom ..functional import batch_norm\n"
        "import fastnorm._kernels.merge\nfrom . import optim\n"
    )
    names = _imported_modules(source, root=tmp_path)
    assert "fastnorm._kernels.reduce" in names
    assert "fastnorm.functional.batch_norm" in names
    assert "fastnorm._kernels.merge" in names
    assert "fastnorm.nn.optim" in names
