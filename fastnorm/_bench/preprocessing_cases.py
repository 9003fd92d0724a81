"""Benchmark cases for the scikit-learn transformers, against StandardScaler and plain NumPy."""

import numpy as np

from .case import BenchCase

N_ROWS = 1_000_000
N_FEATURES = 64
CHUNK = 10_000
SPARSE_FEATURES = 1_000
SPARSE_DENSITY = 0.01


def _data(n_rows):
    rng = np.random.default_rng(0)
    return rng.normal(3.0, 2.0, (n_rows, N_FEATURES)).astype(np.float32)


def _sparse_data(n_rows):
    """CSR float32, n_rows x 1,000 at 1 % density (10M stored values at 1M rows), seeded."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(
        n_rows, SPARSE_FEATURES, density=SPARSE_DENSITY, format="csr", dtype=np.float32, rng=rng
    )
    X.data = rng.normal(3.0, 2.0, X.data.shape[0]).astype(np.float32)
    return X


def _numpy_moments(chunk):
    """NumPy's float64-accumulated count, mean and M2 of each column (no NaN handling)."""
    mean = chunk.mean(axis=0, dtype=np.float64)
    m2 = chunk.var(axis=0, dtype=np.float64) * chunk.shape[0]
    return np.full(chunk.shape[1], float(chunk.shape[0])), mean, m2


def _make_partial_fit(n_rows):
    from sklearn.preprocessing import StandardScaler

    from ..functional import merge_moments
    from ..preprocessing import BatchNormalizer

    X = _data(n_rows)
    starts = range(0, n_rows, CHUNK)

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


def _make_fit(n_rows):
    from sklearn.preprocessing import StandardScaler

    from ..preprocessing import BatchNormalizer

    X = _data(n_rows)
    return {
        "fastnorm": lambda: BatchNormalizer().fit(X),
        "sklearn": lambda: StandardScaler().fit(X),
        "numpy": lambda: _numpy_moments(X),
    }


def _make_transform(n_rows):
    from sklearn.preprocessing import StandardScaler

    from ..preprocessing import BatchNormalizer

    X = _data(n_rows)
    bn = BatchNormalizer().fit(X)
    ss = StandardScaler().fit(X)
    mean = bn.mean_.astype(np.float32)
    factor = (1.0 / np.sqrt(bn.var_ + bn.eps)).astype(np.float32)
    return {
        "fastnorm": lambda: bn.transform(X),
        "sklearn": lambda: ss.transform(X),
        "numpy": lambda: (X - mean) * factor,
    }


def _make_sparse(method, n_rows):
    """fit, partial_fit in 10k-row chunks, or transform of a CSR matrix (with_mean=False)."""

    def make():
        from sklearn.preprocessing import StandardScaler

        from ..preprocessing import BatchNormalizer

        X = _sparse_data(n_rows)
        chunks = [X[i : i + CHUNK] for i in range(0, n_rows, CHUNK)]
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


def _rows(n_rows):
    return "1M" if n_rows == 1_000_000 else f"{n_rows // 1000}k"


def build_cases(n_rows=N_ROWS):
    """The table at ``n_rows`` rows (the asv suite's quick profile uses fewer)."""
    dense_bytes = n_rows * N_FEATURES * 4  # float32
    # float32 values + int32 indices
    sparse_bytes = int(n_rows * SPARSE_FEATURES * SPARSE_DENSITY) * 8
    rows = _rows(n_rows)
    sparse = f"CSR {rows} x 1000, 1%"
    table = [
        (f"partial_fit {rows} x 64, 10k chunks", lambda: _make_partial_fit(n_rows), dense_bytes),
        (f"fit {rows} x 64", lambda: _make_fit(n_rows), dense_bytes),
        (f"transform {rows} x 64", lambda: _make_transform(n_rows), 2 * dense_bytes),
        (f"fit {sparse}", _make_sparse("fit", n_rows), sparse_bytes),
        (f"partial_fit {sparse}, 10k chunks", _make_sparse("partial_fit", n_rows), sparse_bytes),
        (f"transform {sparse}", _make_sparse("transform", n_rows), 2 * sparse_bytes),
    ]
    return [
        BenchCase(
            name=f"BatchNormalizer.{name}",
            group="preprocessing",
            make=make,
            bytes_moved=moved,
            target=">= 2x sklearn" if "transform" in name else ">= 5x sklearn",
            repeat=5,
        )
        for name, make, moved in table
    ]


CASES = build_cases()
