"""
Normalization allows higher learning rates
==========================================

A deep plain network trained by SGD has a narrow range of usable learning rates: too small and it
barely moves, too large and the activations and gradients grow from layer to layer until the loss
overflows. Batch normalization keeps every layer's input at unit scale whatever the weights, so
a large step on the weights cannot blow up the next layer's input; the batch-norm paper trained
Inception with a 30x larger learning rate.

Here a ReLU network of six hidden layers of 100 units (He initialization) is trained on
scikit-learn's digits by plain SGD (no momentum, batch 64, about 1,200 steps) over a grid of
learning rates from 0.01 to 10, without normalization and with batch, layer and group norm
(``norm_groups="auto"``: 5 groups of 20 units for a width of 100).
A run that diverges (its loss becomes NaN or infinite) stops with
:class:`~fastnorm.neural_network.TrainingDivergedError`; it is drawn at chance level (10 %).
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fastnorm import MLPClassifier
from fastnorm.neural_network import TrainingDivergedError

QUICK = os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"
RATES = (0.1, 1.0, 10.0) if QUICK else (0.01, 0.1, 0.3, 1.0, 3.0, 10.0)
SEEDS = (0,) if QUICK else (0, 1, 2)
EPOCHS = 5 if QUICK else 53  # 23 mini-batches of 64 per epoch: about 1,200 steps
NORMS = {"none": None, "batch norm": "batch", "layer norm": "layer", "group norm": "group"}

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=360, stratify=y, random_state=0
)


def test_accuracy(normalization, lr, seed):
    """Test accuracy after training, or None when the loss diverged."""
    model = MLPClassifier(
        (100,) * 6,
        normalization=normalization,
        solver="sgd",
        momentum=0.0,
        learning_rate_init=lr,
        alpha=0.0,
        batch_size=64,
        max_iter=EPOCHS,
        n_iter_no_change=EPOCHS,  # a fixed budget: no early stop
        random_state=seed,
        n_threads=1,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: the budget is fixed on purpose
            model.fit(X_train, y_train)
    except TrainingDivergedError:
        return None
    return model.score(X_test, y_test)


start = time.perf_counter()
results = {
    (name, lr): [test_accuracy(norm, lr, seed) for seed in SEEDS]
    for name, norm in NORMS.items()
    for lr in RATES
}

print(f"test accuracy % (mean +- s.e. over {len(SEEDS)} seeds; 'diverged': NaN loss in a seed)")
print(f"{'learning rate':>14}" + "".join(f"{lr:>18g}" for lr in RATES))
curves = {}
for name in NORMS:
    cells, curve = [], []
    for lr in RATES:
        runs = results[name, lr]
        n_div = sum(r is None for r in runs)
        acc = np.array([0.1 if r is None else r for r in runs])
        se = acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0
        curve.append((acc.mean(), se))
        if n_div == len(runs):
            cells.append(f"{'diverged':>18}")
        else:
            mark = f"({n_div} div)" if n_div else ""
            cells.append(f"{100 * acc.mean():>7.1f} +-{100 * se:4.1f}{mark:>7}")
    curves[name] = np.array(curve)
    print(f"{name:>14}" + "".join(cells))
print(f"(6 x 100 ReLU, SGD, batch 64, {EPOCHS} epochs; {time.perf_counter() - start:.0f} s)")

fig, ax = plt.subplots(figsize=(6, 4))
for name, curve in curves.items():
    ax.errorbar(RATES, 100 * curve[:, 0], yerr=100 * curve[:, 1], marker="o", capsize=3, label=name)
ax.axhline(10, color="gray", lw=0.8, ls=":")
ax.set_xscale("log")
ax.set_xlabel("learning rate (SGD)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("digits, 6 x 100 ReLU: learning rate and normalization")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# What the full-size run shows (3 seeds): every variant trains at learning rates 0.01 to 0.3
# (95-98 %). At 1, the plain network diverges or stays at chance, layer and group norm survive in
# some seeds only (37 % and 56 % on average), and batch norm still reaches 96 %; at 3 only batch
# norm trains (93 %), and at 10 everything fails. Batch norm widens the usable range by about a
# factor of 10 here.
