"""
Batch norm makes the loss landscape smoother
============================================

Why does batch norm help? Santurkar et al. (2018, "How does batch normalization help
optimization?") found that it does little to reduce the "internal covariate shift" the original
paper invoked; what it does is make the loss and its gradient change more gently, so that a
gradient step predicts well what happens a little further along it, and large steps are safe.

Their measurement, reproduced here: every 25 training steps, stop, take the mini-batch gradient
``g`` at the current weights ``theta`` and, for step sizes ``eta`` from 0.05 to 0.4, evaluate the
mini-batch loss ``L(theta - eta * g)`` and the gradient there, without updating anything. Two
numbers per probe:

- the *loss range*, ``max - min`` of ``L(theta - eta * g)`` over the step sizes: how much the loss
  varies along the gradient direction;
- the *gradient change*, ``max ||grad L(theta - eta * g) - grad L(theta)||``: how much the gradient
  changes along it (a smaller value is a smoother, more predictable landscape).

The network has six ReLU hidden layers of 100 units (He initialization) trained by SGD (learning
rate 0.1, batch 64) on a synthetic 10-class problem (scikit-learn's ``make_classification``: on
digits the plain network reaches a loss near 0 and there is nothing left to measure), without
normalization, with batch norm and with layer norm. The probes leave the network as they found it:
weights, gradients and batch norm's running statistics are put back before the training step.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

import fastnorm
from fastnorm import BatchNormalizer, nn

QUICK = os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"
SEEDS = (0,) if QUICK else (0, 1, 2)
STEPS = 100 if QUICK else 1000
PROBE_EVERY = 25
ETAS = np.linspace(0.05, 0.4, 4 if QUICK else 8)
DEPTH, WIDTH, BATCH, LR = 6, 100, 64, 0.1
NORMS = {"none": None, "batch norm": nn.BatchNorm, "layer norm": nn.LayerNorm}

X, y = make_classification(
    n_samples=6000,
    n_features=40,
    n_informative=20,
    n_redundant=10,
    n_classes=10,
    n_clusters_per_class=2,
    flip_y=0.05,
    random_state=0,
)
X = BatchNormalizer().fit_transform(X).astype(np.float32)


def make_network(norm, seed):
    layers, fan_in = [], X.shape[1]
    for i in range(DEPTH):
        layers.append(
            nn.Linear(fan_in, WIDTH, bias=norm is not nn.BatchNorm, random_state=seed + i)
        )
        if norm is not None:
            layers.append(norm(WIDTH))
        layers.append(nn.ReLU())
        fan_in = WIDTH
    layers.append(nn.Linear(fan_in, 10, random_state=seed + DEPTH))
    return nn.Sequential(*layers)


def loss_and_gradient(net, loss, rows):
    value = loss.forward(net.forward(X[rows]), y[rows])
    net.backward(loss.backward())
    return value, {k: g.copy() for k, g in net.grads.items()}


def probe(net, loss, rows, g):
    """Loss and gradient change along -g, for every step size; the network is left unchanged."""
    state = net.state_dict()  # weights and running statistics
    losses, changes = [], []
    for eta in ETAS:
        for key, p in net.params.items():
            p[...] = state[key] - eta * g[key]
        value, g_eta = loss_and_gradient(net, loss, rows)
        losses.append(value)
        changes.append(np.sqrt(sum(np.sum((g_eta[k] - g[k]) ** 2) for k in g)))
    net.load_state_dict(state)
    for key, grad in net.grads.items():  # the gradient of the training step, as it was
        grad[...] = g[key]
    return np.ptp(losses), np.max(changes)


def train(norm, seed):
    rng = np.random.default_rng(seed)
    net = make_network(norm, seed)
    optimizer, loss = nn.SGD(net, lr=LR), nn.CrossEntropyLoss()
    loss_range, grad_change, train_loss = [], [], []
    for step in range(1, STEPS + 1):
        rows = rng.choice(len(X), BATCH, replace=False)
        value, g = loss_and_gradient(net, loss, rows)
        if step % PROBE_EVERY == 0:
            r, c = probe(net, loss, rows, g)
            loss_range.append(r)
            grad_change.append(c)
            train_loss.append(value)
        optimizer.step()
    return np.array(loss_range), np.array(grad_change), np.array(train_loss)


start = time.perf_counter()
with threadpool_limits(1), fastnorm.serial_kernels():
    results = {name: [train(norm, seed) for seed in SEEDS] for name, norm in NORMS.items()}
steps = np.arange(PROBE_EVERY, STEPS + 1, PROBE_EVERY)


def summary(values):
    """Mean over probes per seed, then mean +- s.e. over seeds; and the range over probes."""
    per_seed = np.array([v.mean() for v in values])
    se = per_seed.std(ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1 else 0.0
    low, high = np.min(np.concatenate(values)), np.max(np.concatenate(values))
    return f"{per_seed.mean():7.2f} +- {se:4.2f}  (probes {low:.2f}-{high:.2f})"


print(
    f"{DEPTH} x {WIDTH} ReLU, SGD lr {LR}, {STEPS} steps, probed every {PROBE_EVERY} steps at "
    f"eta = {ETAS.min():.2f}..{ETAS.max():.2f}; mean over probes (mean +- s.e. over "
    f"{len(SEEDS)} seeds)"
)
for column, label in ((0, "loss range"), (1, "gradient change"), (2, "training loss")):
    print(label)
    for name, runs in results.items():
        print(f"  {name:>12}: {summary([r[column] for r in runs])}")
print(f"({time.perf_counter() - start:.0f} s)")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
titles = ("(a) loss range along the gradient", "(b) gradient change along it", "(c) training loss")
for ax, column, title in zip(axes, range(3), titles):
    for name, runs in results.items():
        values = np.array([r[column] for r in runs])
        mean = values.mean(0)
        ax.plot(steps, mean, label=name)
        if len(runs) > 1:
            se = values.std(0, ddof=1) / np.sqrt(len(runs))
            ax.fill_between(steps, mean - se, mean + se, alpha=0.3)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_title(title, fontsize=10)
axes[0].legend()
fig.tight_layout()
plt.show()

# %%
# What the full-size run shows (3 seeds, 40 probes each): along the gradient direction the loss of
# the plain network varies by 1.63 on average (up to 5.7) and its gradient changes by 10.8 (up to
# 26); with batch norm, by 0.39 and 3.1, and both keep shrinking as training goes on (panel a).
# Layer norm sits in between (1.39 and 7.6). The training loss itself (c) falls at about the same
# pace: the smoothness is what batch norm changes, as Santurkar et al. report.
