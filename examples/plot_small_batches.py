"""
Batch normalization at small batch sizes, and its remedies
==========================================================

Batch norm's training statistics come from the mini-batch, so they get noisy as the batch
shrinks; at batch size 2 each feature is mapped to exactly -1 or +1 (the sign of ``x1 - x2``),
and at inference the running averages describe a function the network never trained with. The
group-normalization paper (Wu & He 2018) showed it on ImageNet: ResNet-50's top-1 error with
batch norm goes from 23.6 % at 32 images per GPU to 34.7 % at 2, while group norm stays at 24.1 %.

The same table here, on scikit-learn's digits: one network (one hidden layer of 100 ReLU units)
trained for 10 epochs with mini-batches of 2 to 128 rows by SGD with momentum 0.9 and, as in the
group-norm paper, the learning rate scaled with the batch (``0.1 * batch / 32``), with batch norm,
its remedies on the same kernels (batch renormalization, Ioffe 2017; ghost batch norm, Hoffer et
al. 2017, with statistics of virtual batches of 8 rows), and the batch-independent group and layer
norms; no normalization for reference. It prints the test error (mean +- standard error over
seeds) and draws it against the batch size.
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastnorm import MLPClassifier

QUICK = os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"
BATCH_SIZES = (2, 8, 32) if QUICK else (2, 4, 8, 16, 32, 128)
SEEDS = (0,) if QUICK else (0, 1, 2)
EPOCHS = 2 if QUICK else 10
MODES = {
    "none": dict(normalization=None),
    "batch norm": dict(normalization="batch"),
    "batch renorm": dict(normalization="batch_renorm"),
    "ghost batch norm (8)": dict(normalization="ghost_batch", virtual_batch_size=8),
    "group norm": dict(normalization="group"),
    "layer norm": dict(normalization="layer"),
}

X, y = load_digits(return_X_y=True)


def test_error(params, batch_size, seed):
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=360, stratify=y, random_state=seed
    )
    model = MLPClassifier(
        (100,),
        solver="sgd",
        learning_rate_init=0.1 * batch_size / 32,  # the linear scaling rule
        batch_size=batch_size,
        max_iter=EPOCHS,
        n_iter_no_change=EPOCHS,  # the same budget for every mode: no early stop on the loss
        random_state=seed,
        n_threads=1,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the budget is fixed on purpose
        model.fit(X_train, y_train)
    return 1.0 - model.score(X_test, y_test)


start = time.perf_counter()
results = {}
for name, params in MODES.items():
    for batch_size in BATCH_SIZES:
        errors = 100 * np.array([test_error(params, batch_size, seed) for seed in SEEDS])
        se = errors.std(ddof=1) / np.sqrt(len(errors)) if len(errors) > 1 else 0.0
        results[name, batch_size] = (errors.mean(), se)

print(f"test error % (mean +- s.e. over {len(SEEDS)} seeds) by mini-batch size")
print(f"{'':22}" + "".join(f"{b:>13}" for b in BATCH_SIZES))
for name in MODES:
    cells = "".join(
        f"{results[name, b][0]:>7.1f} +-{results[name, b][1]:4.1f}" for b in BATCH_SIZES
    )
    print(f"{name:22s}{cells}")
print(
    f"(hidden (100,), SGD momentum 0.9, lr 0.1 * batch / 32, {EPOCHS} epochs; "
    f"{time.perf_counter() - start:.0f} s)"
)

fig, ax = plt.subplots(figsize=(6.5, 4))
for name in MODES:
    mean = np.array([results[name, b][0] for b in BATCH_SIZES])
    err = np.array([results[name, b][1] for b in BATCH_SIZES])
    style = "--" if name.startswith("ghost") else "-"  # equals batch norm at batches <= 8
    ax.errorbar(BATCH_SIZES, mean, yerr=err, marker="o", ls=style, capsize=3, label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(BATCH_SIZES, [str(b) for b in BATCH_SIZES])
ax.set_xlabel("mini-batch size")
ax.set_ylabel("test error (%)")
ax.set_title("digits, (100,) MLP: batch size and normalization")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# What the full-size run shows (3 seeds): from 4 rows per batch up, every normalization is within
# a point of the others (2-4 % error). At 2 rows batch norm's error jumps to 12.5 % (ghost batch
# norm too: its virtual batches cannot be larger than the batch), batch renormalization halves
# that (5.6 %), and group and layer norm do not notice (3.1 % and 2.7 %): the shape of the
# group-normalization paper's table.
