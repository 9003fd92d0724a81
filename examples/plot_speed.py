"""
Speed: fastnorm against PyTorch, NumPy and scikit-learn
=======================================================

How much faster (or slower) each peer library is than fastnorm on the benchmark cases: kernels
(forward, and forward plus backward, of batch, layer, group, instance and RMS norm, on CNN and MLP
shapes), the scikit-learn transformer against ``StandardScaler`` and the MLP against PyTorch and
scikit-learn's ``MLPClassifier``. A bar longer than 1 means fastnorm is faster.

The numbers are not measured here: this example draws the run committed with the repository,
``benchmarks/readme_run.json``, the same run the README's table is generated from, so the figure
is deterministic and takes no time to build. The run is recorded with
``python -m fastnorm bench --json run.json``; set ``FASTNORM_BENCH_RECORD=run.json`` to draw your
own (see :doc:`/performance`). The runner times the libraries of a case interleaved and keeps
each one's minimum; a ratio is left out ("noisy") when a library's repetitions spread over 2x,
which happens on a busy machine.
"""

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

try:
    ROOT = Path(__file__).resolve().parents[1]
except NameError:  # run from an interactive session in examples/
    ROOT = Path.cwd().parent
RECORD = Path(os.environ.get("FASTNORM_BENCH_RECORD", ROOT / "benchmarks" / "readme_run.json"))
PEERS = ("torch", "numpy", "sklearn")  # as named in the record
LABELS = {"torch": "PyTorch", "numpy": "NumPy", "sklearn": "scikit-learn"}

with open(RECORD) as f:
    record = json.load(f)


def ratio(stats, peer):
    """Peer time / fastnorm time (minimum of each), or None when either was noisy or absent."""
    if peer not in stats or "fastnorm" not in stats:
        return None
    if stats[peer]["noisy"] or stats["fastnorm"]["noisy"]:
        return np.nan
    return stats[peer]["min"] / stats["fastnorm"]["min"]


thread_counts = sorted(record["results"], key=int)
cases = [row["case"] for row in record["results"][thread_counts[0]]]
ratios = {}  # (threads, case, peer) -> ratio
for n in thread_counts:
    for row in record["results"][n]:
        for peer in PEERS:
            ratios[n, row["case"], peer] = ratio(row["stats"], peer)
cases = [
    c for c in cases if any(ratios.get((n, c, p)) is not None for n in thread_counts for p in PEERS)
]

m, v = record["machine"], record["versions"]
print(f"{record['command']} on {m['cpu']} ({m['logical_cpus']} logical CPUs)")
print(
    f"numpy {v['numpy']}, numba {v['numba']}, scikit-learn {v['scikit-learn']}, torch {v['torch']}"
)
print("peer time / fastnorm time ('noisy': withheld, '-': not timed)")
head = "".join(f"{LABELS[p] + ', ' + n + 'T':>17}" for n in thread_counts for p in PEERS)
width = max(len(c) for c in cases) + 2
print(f"{'case':{width}}{head}")
for case in cases:
    cells = ""
    for n in thread_counts:
        for p in PEERS:
            r = ratios.get((n, case, p))
            cells += f"{'-' if r is None else 'noisy' if np.isnan(r) else f'{r:.2f}x':>17}"
    print(f"{case:{width}}{cells}")

fig, axes = plt.subplots(
    1, len(thread_counts), figsize=(12, 0.32 * len(cases) + 1.5), sharex=True, sharey=True
)
axes = np.atleast_1d(axes)
height = 0.8 / len(PEERS)
positions = np.arange(len(cases))
for ax, n in zip(axes, thread_counts):
    for k, peer in enumerate(PEERS):
        values = np.array(
            [np.nan if ratios.get((n, c, peer)) is None else ratios[n, c, peer] for c in cases]
        )
        ax.barh(positions + (k - 1) * height, values, height, label=LABELS[peer], color=f"C{k}")
        for i, c in enumerate(cases):
            if ratios.get((n, c, peer)) is not None and np.isnan(ratios[n, c, peer]):
                ax.text(1.05, i + (k - 1) * height, "noisy", va="center", fontsize=6, color="gray")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("peer time / fastnorm time (> 1: fastnorm faster)")
    ax.set_title(f"{n} thread{'s' if int(n) > 1 else ''}")
axes[0].set_yticks(positions, cases, fontsize=7)
axes[0].invert_yaxis()
axes[0].legend(loc="lower right", fontsize=8)
fig.suptitle(
    f"benchmarks/readme_run.json: {m['cpu']}, {m['logical_cpus']} logical CPUs", fontsize=9
)
fig.tight_layout()
plt.show()

# %%
# What the run committed when this was written shows: fastnorm's kernels are 3-5x faster than
# PyTorch's on large channels-first batch norm, 1.8-3.5x on layer, group and instance norm, and
# 20x on RMS norm at one thread; NumPy is 3-24x slower. fastnorm is slower than PyTorch on
# channels-last batch norm (0.8x) and on the (4096, 1024) batch norm at two threads (0.7x).
# ``BatchNormalizer`` is 2-31x faster than ``StandardScaler``, and an MLP epoch with batch norm
# 1.4x faster than PyTorch's, while MLP inference is slower (0.3-0.9x). Ratios withheld as noisy
# are marked.
