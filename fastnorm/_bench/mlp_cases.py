"""MLP benchmark cases: one training epoch and inference, fastnorm vs PyTorch vs scikit-learn.

Training: 50,000 x 256 float32 rows, 10 classes, hidden (512, 512), batch norm, Adam, batch 128.
"fastnorm" is :class:`fastnorm.MLPClassifier` (one ``partial_fit`` = one epoch), "torch" the same
network in PyTorch, "sklearn" scikit-learn's ``MLPClassifier`` without normalization (it has none).
All get Numba's thread count: the runner sets torch's, fastnorm's ``n_threads`` and threadpoolctl
limit the BLAS threads of fastnorm and scikit-learn. Inference: ``predict_proba`` on the 50,000
rows with and without :meth:`~fastnorm.MLPClassifier.fold_batchnorm`.
"""

import warnings

import numpy as np

from .case import BenchCase

N_ROWS, N_FEATURES, N_CLASSES = 50_000, 256, 10
HIDDEN = (512, 512)
BATCH = 128
LR = 1e-3


def _data(seed=0, n_rows=N_ROWS):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    # a learnable but not trivial labelling: argmax of a random linear map plus noise
    W = rng.standard_normal((N_FEATURES, N_CLASSES)).astype(np.float32)
    y = np.argmax(X @ W + rng.standard_normal((n_rows, N_CLASSES)).astype(np.float32), axis=1)
    return X, y


def _threads():
    """The thread count every library gets: Numba's (the runner sets torch's to it too)."""
    import numba

    return numba.get_num_threads()


def _fastnorm_model(X, y, fold=False, normalization="batch", batch_size=BATCH, hidden=HIDDEN):
    from ..neural_network import MLPClassifier

    model = MLPClassifier(
        hidden,
        normalization=normalization,
        virtual_batch_size=16,
        solver="adam",
        learning_rate_init=LR,
        batch_size=batch_size,
        random_state=0,
        n_threads=_threads(),
    )
    # compile the kernels and create the optimizer state on a small slice
    model.partial_fit(X[: 2 * batch_size], y[: 2 * batch_size], classes=np.arange(N_CLASSES))
    if fold:
        model.fold_batchnorm()
    return model


def _torch_net(hidden=HIDDEN):
    try:
        import torch
    except ImportError:
        return None, None
    torch.manual_seed(0)
    layers = []
    fan_in = N_FEATURES
    for h in hidden:
        layers += [torch.nn.Linear(fan_in, h, bias=False), torch.nn.BatchNorm1d(h), torch.nn.ReLU()]
        fan_in = h
    layers.append(torch.nn.Linear(fan_in, N_CLASSES))
    return torch, torch.nn.Sequential(*layers)


def _torch_epoch(X, y, hidden=HIDDEN, batch_size=BATCH):
    torch, net = _torch_net(hidden)
    if torch is None:
        return None
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)

    def epoch():
        net.train()
        order = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), batch_size):
            ids = order[s : s + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[ids]), yt[ids])
            loss.backward()
            opt.step()

    return epoch


def _sklearn_epoch(X, y):
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        HIDDEN, solver="adam", learning_rate_init=LR, batch_size=BATCH, random_state=0
    )

    from threadpoolctl import threadpool_limits

    n_threads = _threads()

    def epoch():
        with warnings.catch_warnings(), threadpool_limits(n_threads, user_api="blas"):
            warnings.simplefilter("ignore")
            model.partial_fit(X, y, classes=np.arange(N_CLASSES))

    return epoch


def _make_train(n_rows):
    X, y = _data(n_rows=n_rows)
    model = _fastnorm_model(X, y)
    return {
        "fastnorm": lambda: model.partial_fit(X, y),
        "torch": _torch_epoch(X, y),
        "sklearn": _sklearn_epoch(X, y),
    }


def _make_inference(fold, n_rows=N_ROWS):
    def make():
        X, y = _data(n_rows=max(n_rows, 2 * BATCH))
        model = _fastnorm_model(X, y, fold=fold)
        X = X[:n_rows]
        impls = {"fastnorm": lambda: model.predict_proba(X)}
        torch, net = _torch_net()
        if torch is not None:
            net.eval()
            Xt = torch.from_numpy(X)

            def torch_predict():
                with torch.inference_mode():
                    torch.softmax(net(Xt), dim=1)

            impls["torch"] = torch_predict
        return impls

    return make


def _make_small_batch_epoch(normalization, n_rows=20_000):
    """One epoch on 20,000 rows, hidden (128, 128), batch 32: the small-batch remedies' cost."""

    def make():
        X, y = _data(n_rows=n_rows)
        model = _fastnorm_model(X, y, normalization=normalization, batch_size=32, hidden=(128, 128))
        impls = {"fastnorm": lambda: model.partial_fit(X, y)}
        if normalization == "batch":  # the same network and optimizer in PyTorch
            impls["torch"] = _torch_epoch(X, y, hidden=(128, 128), batch_size=32)
        return impls

    return make


def build_cases(n_rows=N_ROWS):
    """The table with ``n_rows`` training / inference rows (the asv quick profile uses fewer)."""
    k = n_rows // 1000
    small = min(20_000, n_rows)  # the small-batch epochs' rows
    return [
        BenchCase(
            name=f"MLP epoch {k}k x 256, (512, 512) BN, Adam, batch 128",
            group="mlp",
            make=lambda: _make_train(n_rows),
            target=">= 1.3x torch, >= 1.3x faster than sklearn (no BN)",
            repeat=3,
        ),
        BenchCase(
            name=f"MLP predict_proba {k}k x 256, (512, 512) BN",
            group="mlp",
            make=_make_inference(fold=False, n_rows=n_rows),
            target=">= 1x torch",
            repeat=5,
        ),
        BenchCase(
            name=f"MLP predict_proba {k}k x 256, BN folded",
            group="mlp",
            make=_make_inference(fold=True, n_rows=n_rows),
            target="faster than the unfolded row",
            repeat=5,
        ),
        # small batches: per-layer call overhead matters, which folding removes
        BenchCase(
            name="MLP predict_proba 64 x 256, (512, 512) BN",
            group="mlp",
            make=_make_inference(fold=False, n_rows=64),
            target=">= 1x torch",
            repeat=200,
        ),
        BenchCase(
            name="MLP predict_proba 64 x 256, BN folded",
            group="mlp",
            make=_make_inference(fold=True, n_rows=64),
            target="faster than the unfolded row",
            repeat=200,
        ),
        *[
            BenchCase(
                name=f"MLP epoch {small // 1000}k x 256, (128, 128) {name}, batch 32",
                group="mlp",
                make=_make_small_batch_epoch(normalization, small),
                target=">= 3x torch" if normalization == "batch" else "<= 1.2x the batch-norm row",
                repeat=3,
            )
            for name, normalization in (
                ("BN", "batch"),
                ("batch renorm", "batch_renorm"),
                ("ghost BN 16", "ghost_batch"),
            )
        ],
    ]


CASES = build_cases()
