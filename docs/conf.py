"""Sphinx configuration: user guide pages, the API reference from the numpydoc docstrings, and the
example gallery (sphinx-gallery runs every ``examples/plot_*.py`` and shows its output and figure).

``FASTNORM_EXAMPLE_QUICK=1`` in the environment makes every example run its reduced-size version
(fewer seeds, steps and grid points: what CI runs, so a broken example fails the build); without
it the examples run at full size, which is what the published pages show.
``sphinx-build -D plot_gallery=0 ...`` skips running the examples altogether (for a quick look
at the text).
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fastnorm of this tree, whatever is installed
sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))

import fastnorm  # noqa: E402

project = "fastnorm"
author = "fastnorm developers"
copyright = "fastnorm developers"
version = release = fastnorm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
}
html_title = f"fastnorm {release}"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.py"]
suppress_warnings = ["config.cache"]  # sphinx-gallery's callable settings are not picklable

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/_",
    "within_subsection_order": "gallery_order.GalleryOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "capture_repr": (),
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 1,
}


def _rst_table(markdown_rows):
    """A markdown table (``| a | b |`` lines, the second one the separator) as a list-table."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown_rows]
    rows = [rows[0]] + rows[2:]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        out += [f"   {'*' if i == 0 else ' '} - {cell}" for i, cell in enumerate(row)]
    return out


def write_bench_tables(record_path=ROOT / "benchmarks" / "readme_run.json"):
    """``_generated/bench_table.inc`` (the README's table, from the same generator),
    ``_generated/roofline_table.inc`` and ``_generated/targets_table.inc`` (each row's target,
    met or not), from the committed bench record."""
    import json

    from fastnorm._bench import record as bench_record

    with open(record_path) as f:
        record = json.load(f)
    lines = bench_record.table(record).splitlines()
    table = [line for line in lines if line.startswith("|")]
    note = " ".join(line for line in lines if line and not line.startswith("|"))
    note = re.sub(r"`([^`]+)`", r"``\1``", note)
    target = ROOT / "docs" / "_generated"
    target.mkdir(exist_ok=True)
    (target / "bench_table.inc").write_text("\n".join(_rst_table(table) + ["", note, ""]))

    counts = sorted(record["results"], key=int)
    head = ["case", "bytes moved (MB)"]
    head += [f"fastnorm {n}T (ms)" for n in counts] + [f"roofline {n}T" for n in counts]
    by_case = {}
    for n in counts:
        for row in record["results"][n]:
            if row.get("bytes") and "roofline" in row:
                by_case.setdefault(row["case"], {"bytes": row["bytes"]})[n] = row
    rows = []
    for case, per in by_case.items():
        cells = [case, f"{per['bytes'] / 1e6:.0f}"]
        cells += [
            f"{per[n]['stats']['fastnorm']['min'] * 1e3:.2f}" if n in per else "-" for n in counts
        ]
        for n in counts:
            roof = per.get(n, {}).get("roofline", "-")
            cells.append(roof if isinstance(roof, str) else f"{100 * roof:.0f} %")
        rows.append("| " + " | ".join(cells) + " |")
    bandwidth = record.get("bandwidth")
    note = (
        f"Roofline: bytes that must move / time, against a stream copy of "
        f"{record.get('copied_bytes', 0) / 2**20:.0f} MiB at {bandwidth / 1e9:.1f} GB/s "
        "(read + write) on the same machine; 'in cache': the data fit in the last-level cache, "
        "where a fraction of memory bandwidth would mislead."
        if bandwidth
        else ""
    )
    table = ["| " + " | ".join(head) + " |", "|---|", *rows]
    (target / "roofline_table.inc").write_text("\n".join(_rst_table(table) + ["", note, ""]))
    targets = bench_record.targets_table(record).splitlines()
    (target / "targets_table.inc").write_text("\n".join(_rst_table(targets) + [""]))


write_bench_tables()

_REF = re.compile(r":ref:`([^`<]+?)(?: <[^`>]+>)?`")


def _plain_refs(app, what, name, obj, options, lines):
    """Methods inherited from scikit-learn's mixins (``score``) link to labels of scikit-learn's
    own docs (``:ref:`accuracy <accuracy_score>```); here they become plain text."""
    for i, line in enumerate(lines):
        lines[i] = _REF.sub(r"\1", line)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_refs)
    os.environ.setdefault("PYTHONHASHSEED", "0")
