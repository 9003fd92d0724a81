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

import fastnorm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fastnorm of this tree, whatever is installed

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
    "within_subsection_order": "FileNameSortKey",
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

_REF = re.compile(r":ref:`([^`<]+?)(?: <[^`>]+>)?`")


def _plain_refs(app, what, name, obj, options, lines):
    """Methods inherited from scikit-learn's mixins (``score``) link to labels of scikit-learn's
    own docs (``:ref:`accuracy <accuracy_score>```); here they become plain text."""
    for i, line in enumerate(lines):
        lines[i] = _REF.sub(r"\1", line)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_refs)
    os.environ.setdefault("PYTHONHASHSEED", "0")
