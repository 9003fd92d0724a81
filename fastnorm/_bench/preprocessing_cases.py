"""Benchmark cases for the scikit-learn transformers, against StandardScaler and plain NumPy."""

import numpy as np

from .case import BenchCase

N_ROWS = 1_000_000
N_FEATURES = 64
CHUNK = 10_000
_BYTES = N_ROWS * N_FEATURES * 4  # float32
SPARSE_FEATURES = 1_000
SPARSE_DENSITY = 0.01
_SPARSE_BYTES = int(N_ROWS * SPARSE_FEATURES * SPARSE_DENSITY) * 8  # float32 values + int32 indices


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, (N_ROWS, N_FEATURES)).astype(np.float32)


def _sparse_data():
    """CSR float32, 1M x 1,000 at 1 % density (10M stored values), seeded."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(
        N_ROWS, SPARSE_FEATURES, density=SPARSE_DENSITY, format="csr", dtype=np.float32, rng=rng
    )
    X.data = rng.normal(3.0, 2.0, X.data.shape[0]).astype(np.float32)
    return X


def _numpy_moments(chunk):
    """NumPy's float64-accumulated count, mean and M2 of each column (no NaN handling)."""
    mean = chunk.mean(axis=0, dtype=np.float64)
    m2 = chunk.var(axis=0, dtype=np.float64) * chunk.shape[0]
    return np.full(chunk.shape[1], float(chunk.shape[0])), mean, m2


def _make_partial_fit():
    from sklearn.preprocessing import StandardScaler

    from ..functional import merge_moments
    from ..preprocessing import BatchNormalizer

    X = _data()
    starts = range(0, N_ROWS, CHUNK)

    def fastnorm():
        est = BatchNormalizer()
        for i in starts:
            est.partial_fit(X[i : i + CHUNK])

    def sklearn():
        est = StandardScaler()
        for i in starts:
            est.partial_fit(X[i : i + CHUNK])

    def numpy():
        state = _numpy_moments(X[:CHUNK])
        for i in starts[1:]:
            state = merge_moments(*state, *_numpy_moments(X[i : i + CHUNK]))
        return state

    return {"fastnorm": fastnorm, "sklearn": sklearn, "numpy": numpy}


def _make_fit():
    from sklearn.preprocessing import StandardScaler

    from ..preprocessing import BatchNormalizer

    X = _data()
    return {
        "fastnorm": lambda: BatchNormalizer().fit(X),
        "sklearn": lambda: StandardScaler().fit(X),
        "numpy": lambda: _numpy_moments(X),
    }


def _make_transform():
    from sklearn.preprocessing import StandardScaler

    from ..preprocessing import BatchNormalizer

    X = _data()
    bn = BatchNormalizer().fit(X)
    ss = StandardScaler().fit(X)
    mean = bn.mean_.astype(np.float32)
    factor = (1.0 / np.sqrt(bn.var_ + bn.eps)).astype(np.float32)
    return {
        "fastnorm": lambda: bn.transform(X),
        "sklearn": lambda: ss.transform(X),
        "numpy": lambda: (X - mean) * factor,
    }


def _make_sparse(method):
    """fit, partial_fit in 10k-row chunks, or transform of a CSR matrix (with_mean=False)."""

    def make():
        from sklearn.preprocessing import StandardScaler

        from ..preprocessing import BatchNormalizer

        X = _sparse_data()
        chunks = [X[i : i + CHUNK] for i in range(0, N_ROWS, CHUNK)]
        peers = {"fastnorm": BatchNormalizer, "sklearn": StandardScaler}
        if method == "transform":
            fitted = {name: cls(with_mean=False).fit(X) for name, cls in peers.items()}
            return {name: (lambda est=est: est.transform(X)) for name, est in fitted.items()}
        if method == "fit":
            return {
                name: (lambda cls=cls: cls(with_mean=False).fit(X)) for name, cls in peers.items()
            }

        def stream(cls):
            est = cls(with_mean=False)
            for chunk in chunks:
                est.partial_fit(chunk)

        return {name: (lambda cls=cls: stream(cls)) for name, cls in peers.items()}

    return make


CASES = [
    BenchCase(
        name="BatchNormalizer.partial_fit 1M x 64, 10k chunks",
        group="preprocessing",
        make=_make_partial_fit,
        bytes_moved=_BYTES,
        target=">= 5x sklearn",
        repeat=5,
    ),
    BenchCase(
        name="BatchNormalizer.fit 1M x 64",
        group="preprocessing",
        make=_make_fit,
        bytes_moved=_BYTES,
        target=">= 5x sklearn",
        repeat=5,
    ),
    BenchCase(
        name="BatchNormalizer.transform 1M x 64",
        group="preprocessing",
        make=_make_transform,
        bytes_moved=2 * _BYTES,
        target=">= 2x sklearn",
        repeat=5,
    ),
    BenchCase(
        name="BatchNormalizer.fit CSR 1M x 1000, 1%",
        group="preprocessing",
        make=_make_sparse("fit"),
        bytes_moved=_SPARSE_BYTES,
        target=">= 5x sklearn",
        repeat=5,
    ),
    BenchCase(
        name="BatchNormalizer.partial_fit CSR 1M x 1000, 1%, 10k chunks",
        group="preprocessing",
        make=_make_sparse("partial_fit"),
        bytes_moved=_SPARSE_BYTES,
        target=">= 5x sklearn",
        repeat=5,
    ),
    BenchCase(
        name="BatchNormalizer.transform CSR 1M x 1000, 1%",
        group="preprocessing",
        make=_make_sparse("transform"),
        bytes_moved=2 * _SPARSE_BYTES,
        target=">= 2x sklearn",
        repeat=5,
    ),
]
