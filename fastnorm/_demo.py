"""``python -m fastnorm demo``: the three faces of fastnorm on scikit-learn's digits."""

import time

import numpy as np


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def run_demo(seed=0, echo=print):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import fastnorm

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.2, stratify=y, random_state=seed
    )
    echo(f"digits: {X_train.shape[0]} train / {X_test.shape[0]} test rows, {X.shape[1]} features\n")

    echo("1. Functional API: batch norm of the 8x8 images as (N, 1, 8, 8), training mode")
    images = X_train.reshape(-1, 1, 8, 8)
    running_mean, running_var = np.zeros(1, np.float32), np.ones(1, np.float32)
    out = fastnorm.batch_norm(images, running_mean, running_var, training=True, momentum=1.0)
    echo(
        f"   output mean {out.mean():+.2e}, std {out.std():.4f}; running mean "
        f"{running_mean[0]:.3f} (NumPy: {images.mean():.3f})\n"
    )

    echo("2. scikit-learn transformer: BatchNormalizer streamed in chunks vs StandardScaler")
    streamed = fastnorm.BatchNormalizer()
    for chunk in np.array_split(X_train, 10):
        streamed.partial_fit(chunk)
    scaler = StandardScaler().fit(X_train)
    echo(
        f"   max |mean - StandardScaler mean| after 10 partial_fit calls: "
        f"{np.max(np.abs(streamed.mean_ - scaler.mean_)):.1e}"
    )
    for name, step in [
        ("BatchNormalizer", fastnorm.BatchNormalizer()),
        ("StandardScaler", StandardScaler()),
    ]:
        model = make_pipeline(step, LogisticRegression(max_iter=2000))
        model.fit(X_train, y_train)
        echo(f"   {name:<16} + LogisticRegression: test accuracy {model.score(X_test, y_test):.3f}")
    echo("")

    echo("3. MLP trainer: hidden (128, 128), at most 60 epochs, Adam, batch 64")
    echo("   (the first fit of each kind includes Numba's one-time compilation on a cold cache)")
    models = [
        (
            "scikit-learn MLPClassifier",
            SkMLPClassifier((128, 128), batch_size=64, max_iter=60, random_state=seed),
        )
    ]
    for norm in (None, "batch", "layer"):
        models.append(
            (
                f"fastnorm normalization={norm}",
                fastnorm.MLPClassifier(
                    (128, 128), normalization=norm, batch_size=64, max_iter=60, random_state=seed
                ),
            )
        )
    for name, model in models:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
            _, seconds = _timed(lambda model=model: model.fit(X_train, y_train))
        echo(
            f"   {name:<32} test accuracy {model.score(X_test, y_test):.3f}   fit {seconds:5.2f} s"
        )
