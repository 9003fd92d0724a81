"""
Batch normalization at small batch sizes, and three remedies
=============================================================

Batch norm's training statistics come from the mini-batch: at batch size 2 each feature is mapped
to exactly -1 and +1, and at inference the running averages describe a different function.
This experiment trains the same network on scikit-learn's digits with mini-batches of 2 to 128
rows and compares batch norm with its remedies: batch renormalization (Ioffe 2017), ghost batch
norm (Hoffer et al. 2017; statistics of virtual batches of 8 or 16 rows) and the
batch-independent group and layer norm. It prints the test error (mean +- standard error over
seeds) and draws it against the batch size.

Run ``python examples/plot_small_batches.py``; ``FASTNORM_EXAMPLE_QUICK=1`` runs a reduced version
(fewer seeds, batch sizes and epochs) for a quick check.
"""

import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastnorm import MLPClassifier

QUICK = os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"
BATCH_SIZES = (2, 8, 32) if QUICK else (2, 4, 8, 16, 32, 128)
SEEDS = (0,) if QUICK else (0, 1, 2)
EPOCHS = 3 if QUICK else 20
MODES = {
    "batch norm": dict(normalization="batch"),
    "batch renorm": dict(normalization="batch_renorm"),
    "ghost batch norm (8)": dict(normalization="ghost_batch", virtual_batch_size=8),
    "ghost batch norm (16)": dict(normalization="ghost_batch", virtual_batch_size=16),
    "group norm": dict(normalization="group"),
    "layer norm": dict(normalization="layer"),
}


def test_error(params, batch_size, seed):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=seed)
    model = MLPClassifier(
        (100,),
        batch_size=batch_size,
        max_iter=EPOCHS,
        n_iter_no_change=EPOCHS,  # the same budget for every mode: no early stop on the loss
        random_state=seed,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the budget is fixed on purpose
        model.fit(X_train, y_train)
    return 1.0 - model.score(X_test, y_test)


def main():
    results = {}
    start = time.perf_counter()
    for name, params in MODES.items():
        for batch_size in BATCH_SIZES:
            errors = [test_error(params, batch_size, seed) for seed in SEEDS]
            results[name, batch_size] = (
                np.mean(errors),
                np.std(errors, ddof=1) / np.sqrt(len(errors)) if len(errors) > 1 else 0.0,
            )
    header = "test error %          " + "".join(f"{b:>14}" for b in BATCH_SIZES)
    print(header)
    for name in MODES:
        cells = "".join(
            f"{100 * results[name, b][0]:>8.2f} +-{100 * results[name, b][1]:4.2f}"
            for b in BATCH_SIZES
        )
        print(f"{name:22s}{cells}")
    seconds = time.perf_counter() - start
    print(f"({len(SEEDS)} seeds, {EPOCHS} epochs, hidden (100,), Adam; {seconds:.0f} s)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return results
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in MODES:
        mean = np.array([100 * results[name, b][0] for b in BATCH_SIZES])
        err = np.array([100 * results[name, b][1] for b in BATCH_SIZES])
        ax.errorbar(BATCH_SIZES, mean, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("mini-batch size")
    ax.set_ylabel("test error (%)")
    ax.set_title("digits, (100,) MLP: batch size and normalization")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.environ.get("FASTNORM_EXAMPLE_FIGURE", "small_batches.png"), dpi=120)
    return results


if __name__ == "__main__":
    main()
