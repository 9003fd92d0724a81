"""The gallery's scripts: each is a sphinx-gallery example with a reduced mode, and the speed chart
draws exactly the ratios of the README's generated table. (The docs build in CI runs every
example in its reduced mode; see .ci/run.)"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastnorm._bench import record as bench_record

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def test_the_gallery_has_its_examples():
    names = {p.name for p in EXAMPLES}
    for name in (
        "plot_faster_training.py",
        "plot_learning_rates.py",
        "plot_inference_statistics.py",
        "plot_landscape.py",
        "plot_regularization.py",
        "plot_small_batches.py",
        "plot_speed.py",
    ):
        assert name in names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_a_gallery_script(path):
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source))
    assert doc, "sphinx-gallery needs a docstring with a title"
    title, underline = doc.splitlines()[:2]
    assert title and set(underline) == {"="} and len(underline) >= len(title)
    if path.name != "plot_speed.py":  # the speed chart reads a record: nothing to reduce
        assert 'os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"' in source
        if path.name != "plot_dask_statistics.py":  # a timing on one generated array: no seeds
            assert re.search(r"SEEDS = .* if QUICK else", source), "several seeds at full size"


def _table_ratios(record):
    """{(threads, case, peer): text} from the README table generator."""
    lines = bench_record.table(record).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for title, cell in zip(head[1:], cells[1:]):
            found = re.fullmatch(r"(\w+)/fastnorm, (\d+)T", title)
            if found:
                out[found.group(2), cells[0], found.group(1)] = cell
    return out


def test_speed_example_prints_the_readme_table_ratios(tmp_path):
    pytest.importorskip("matplotlib")
    record_path = ROOT / "benchmarks" / "readme_run.json"
    env = dict(os.environ, MPLBACKEND="Agg", FASTNORM_BENCH_RECORD=str(record_path))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "plot_speed.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(record_path.read_text())
    expected = _table_ratios(record)
    counts = sorted(record["results"], key=int)
    peers = ("torch", "numpy", "sklearn")
    checked = 0
    for line in result.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        case = cells[0]
        if not any((counts[0], case, p) in expected for p in peers) or len(cells) < 2:
            continue
        printed = cells[-len(counts) * len(peers) :]
        for i, (n, peer) in enumerate((n, p) for n in counts for p in peers):
            assert printed[i] == expected[n, case, peer], (case, n, peer)
            checked += 1
    assert checked >= 30  # every kernel, transformer and MLP row with a peer
