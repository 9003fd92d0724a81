"""Dask support: statistics of Dask arrays and DataFrames computed on a real
``distributed.LocalCluster`` (two worker processes, loopback only) equal the in-memory ``fit``;
transforms stay lazy; the MLP estimators stream blocks through ``partial_fit``."""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference_preprocessing import weighted_moments
from sklearn.exceptions import ConvergenceWarning

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import cloudpickle  # noqa: E402  (a dependency of distributed)

from fastnorm import (  # noqa: E402
    BatchNormalizer,
    GroupNormalizer,
    InstanceNormalizer,
    LayerNormalizer,
    MLPClassifier,
    MLPRegressor,
)
from fastnorm.preprocessing._dask import STATE_BYTES_PER_FEATURE, moments_graph  # noqa: E402

# the workers cannot import this file: ship its helper functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

RTOL = 1e-10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _warm_up():
    """Compile (or load from Numba's cache) the kernels a chunk uses, for each dtype and with and
    without weights; returns the process id."""
    import fastnorm

    for dtype in (np.float64, np.float32, np.float16):
        X = da.from_array(np.array([[0.0, 1.0], [2.0, np.nan], [4.0, 3.0]], dtype), chunks=2)
        for w in (None, da.ones(3, chunks=2)):
            bn = fastnorm.BatchNormalizer().fit(X, sample_weight=w)
        bn.transform(X).compute(scheduler="sync")
    return os.getpid()


@pytest.fixture(scope="module", autouse=True)
def client():
    """Every test of this module computes on a two-process cluster (the default client)."""
    with dask.config.set(scheduler="sync"):
        _warm_up()  # compiled here once, the workers load Numba's cache instead of compiling
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_warm_up)
        yield client


def _data(rng, n=500, f=7, nan_fraction=0.1):
    X = rng.normal(3.0, 2.0, (n, f)) * rng.uniform(0.1, 100.0, f)
    X[rng.random(X.shape) < nan_fraction] = np.nan
    return X


def _assert_same_statistics(got, want, rtol=RTOL):
    assert_allclose(got.mean_, want.mean_, rtol=rtol)
    assert_allclose(got.var_, want.var_, rtol=rtol)
    assert_allclose(got.scale_, want.scale_, rtol=rtol)
    assert_allclose(got.n_samples_seen_, want.n_samples_seen_, rtol=rtol)
    assert got._n_rows == want._n_rows and got._weighted == want._weighted
    assert got.n_features_in_ == want.n_features_in_


# -- import -------------------------------------------------------------------------------------


def test_import_fastnorm_does_not_import_dask():
    code = (
        "import sys, numpy as np, fastnorm\n"
        "fastnorm.BatchNormalizer().fit(np.ones((3, 2))).transform(np.ones((3, 2)))\n"
        "fastnorm.MLPClassifier\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# -- statistics ---------------------------------------------------------------------------------

CHUNKINGS = {
    "rows": (100, -1),
    "columns": (-1, 2),
    "rows-and-columns": (64, 3),
    "uneven": ((37, 200, 1, 162, 100), (1, 4, 2)),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
def test_fit_equals_in_memory_fit_and_the_reference(rng, chunks, weighted):
    X = _data(rng)
    w = rng.uniform(0.0, 3.0, X.shape[0]) if weighted else None
    w_dask = None if w is None else da.from_array(w, chunks=90)  # not X's row chunks
    got = BatchNormalizer().fit(da.from_array(X, chunks=chunks), sample_weight=w_dask)
    want = BatchNormalizer().fit(X, sample_weight=w)
    _assert_same_statistics(got, want)
    sum_w, mean, var = weighted_moments(X, w)
    assert_allclose(got.mean_, mean, rtol=RTOL)
    assert_allclose(got.var_, var, rtol=RTOL)
    assert_allclose(got.n_samples_seen_, sum_w, rtol=RTOL)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_ill_conditioned_features_stay_exact(rng, weighted):
    """Spreads far below the mean (timestamps in seconds): a chunk's rounded mean would enter
    the merge; its low part keeps the Dask fit as exact as the in-memory one."""
    n = 4000
    X = np.column_stack(
        [
            1.7e9 + rng.normal(0.0, 10.0, n),
            -1000.0 + 1e-3 * rng.random(n),
            rng.normal(5.0, 2.0, n),
        ]
    )
    X[rng.random(X.shape) < 0.05] = np.nan
    w = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    got = BatchNormalizer().fit(
        da.from_array(X, chunks=(250, 2)), sample_weight=da.from_array(w, 300) if weighted else None
    )
    want = BatchNormalizer().fit(X, sample_weight=w if weighted else None)
    _assert_same_statistics(got, want, rtol=1e-14)
    ld, wl = X.astype(np.longdouble), w.astype(np.longdouble)[:, None] * ~np.isnan(X)
    mean = np.nansum(wl * ld, axis=0) / wl.sum(axis=0)
    var = np.nansum(wl * (ld - mean) ** 2, axis=0) / wl.sum(axis=0)
    assert_allclose(got.var_, var.astype(np.float64), rtol=1e-14)


def test_statistics_do_not_depend_on_the_chunking(rng):
    X = _data(rng, n=100, f=5)
    w = rng.uniform(0.5, 2.0, X.shape[0])
    fits = [
        BatchNormalizer().fit(da.from_array(X, chunks=c), sample_weight=da.from_array(w, 64))
        for c in ((100, 5), (1, 5), (7, 1), ((50, 0, 50), (3, 2)))
    ]
    for other in fits[1:]:
        _assert_same_statistics(other, fits[0])


def test_dtypes_and_constant_features(rng):
    X = rng.normal(size=(200, 4))
    X[:, 1] = 0.1  # constant: var_ exactly 0 and scale_ 1, as in memory
    for dtype in (np.float32, np.float16, np.int64):
        Xt = (X * 100).astype(dtype)
        got = BatchNormalizer().fit(da.from_array(Xt, chunks=(30, 3)))
        want = BatchNormalizer().fit(Xt)
        _assert_same_statistics(got, want)
        assert got.var_[1] == 0.0 and got.scale_[1] == 1.0
        out = got.transform(da.from_array(Xt, chunks=(30, 3)))
        assert out.dtype == want.transform(Xt).dtype
        assert_allclose(
            out.compute(), want.transform(Xt), rtol=1e-3 if dtype == np.float16 else 1e-6
        )


def _sent_bytes(dask_worker):
    return dask_worker.transfer_outgoing_bytes_total


def test_only_the_state_comes_back(client):
    """What the workers send (to each other and to the client) is chunk states, 48 bytes per
    feature, never data: the chunks are generated and reduced where they live."""
    for n in (10, 10_000):
        graph = moments_graph(da.zeros((n, 9), chunks=(3, 4)))
        assert graph.shape == (1, 9) and graph.nbytes == 9 * STATE_BYTES_PER_FEATURE == 9 * 48
    X = da.random.default_rng(0).random((64_000, 50), chunks=(4_000, 50))  # 16 chunks, 25 MB
    before = sum(client.run(_sent_bytes).values())
    bn = BatchNormalizer().fit(X)
    sent = sum(client.run(_sent_bytes).values()) - before
    state = 50 * STATE_BYTES_PER_FEATURE
    assert state <= sent <= X.numblocks[0] * state < X.nbytes / 500
    assert_allclose(bn.mean_, 0.5, atol=0.01)


def test_dataframe_sets_feature_names(rng):
    X = _data(rng, n=240, f=4)
    w = rng.uniform(0.0, 2.0, X.shape[0])
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ddf = dd.from_pandas(frame, npartitions=3)
    got = BatchNormalizer().fit(ddf, sample_weight=dd.from_pandas(pd.Series(w), npartitions=3))
    want = BatchNormalizer().fit(frame, sample_weight=w)
    _assert_same_statistics(got, want)
    assert_array_equal(got.feature_names_in_, want.feature_names_in_)
    assert_array_equal(got.get_feature_names_out(), ["a", "b", "c", "d"])
    out = got.transform(ddf)
    assert isinstance(out, da.Array)
    assert_allclose(out.compute(), want.transform(frame), rtol=1e-12, atol=1e-12)
    with pytest.warns(UserWarning, match="feature names"):
        got.transform(da.from_array(X, chunks=100))
    with pytest.raises(ValueError, match="feature names"):
        got.transform(dd.from_pandas(frame.rename(columns={"a": "z"}), npartitions=2))


def test_partial_fit_continues_an_in_memory_state(rng):
    X = _data(rng, n=600, f=6)
    w = rng.uniform(0.0, 2.0, X.shape[0])
    bn = BatchNormalizer().partial_fit(X[:100], sample_weight=w[:100])
    bn.partial_fit(
        da.from_array(X[100:450], chunks=(70, 4)), sample_weight=da.from_array(w[100:450], 70)
    )
    bn.partial_fit(X[450:], sample_weight=w[450:])
    _assert_same_statistics(bn, BatchNormalizer().fit(X, sample_weight=w))
    # and a Dask state merges with an in-memory one
    merged = (
        BatchNormalizer()
        .fit(da.from_array(X[:300], chunks=50))
        .merge(BatchNormalizer().fit(X[300:]))
    )
    _assert_same_statistics(merged, BatchNormalizer().fit(X))


def test_partial_fit_with_momentum_takes_the_array_as_one_batch(rng):
    X = _data(rng, n=300, f=3)
    got = BatchNormalizer(momentum=0.2).partial_fit(X[:50])
    got.partial_fit(da.from_array(X[50:], chunks=(40, 2)))
    want = BatchNormalizer(momentum=0.2).partial_fit(X[:50]).partial_fit(X[50:])
    _assert_same_statistics(got, want)


def test_zero_weight_chunks_and_partial_fit(rng):
    X = _data(rng, n=100, f=3)
    w = np.zeros(X.shape[0])
    w[60:] = 1.5
    got = BatchNormalizer().fit(da.from_array(X, chunks=20), sample_weight=da.from_array(w, 20))
    _assert_same_statistics(got, BatchNormalizer().fit(X, sample_weight=w))
    # a stream's chunk without weight changes no statistic, as in memory
    got = BatchNormalizer().fit(X)
    got.partial_fit(da.from_array(X, chunks=30), sample_weight=da.zeros(100, chunks=30))
    want = BatchNormalizer().fit(X).partial_fit(X, sample_weight=np.zeros(100))
    for key, value in want.get_state().items():
        assert_array_equal(got.get_state()[key], value)


# -- transforms ---------------------------------------------------------------------------------


def _explode(shape):
    raise RuntimeError("computed too early")


def _lazy_trap(X, chunks):
    """X as a Dask array whose last block raises when computed."""
    head = da.from_array(X[:-10], chunks=chunks)
    tail = da.from_delayed(dask.delayed(_explode)((10, X.shape[1])), (10, X.shape[1]), X.dtype)
    return da.concatenate([head, tail])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_is_lazy_with_the_same_chunks(rng, dtype):
    X = _data(rng, n=210, f=6).astype(dtype)
    bn = BatchNormalizer(scale=2.0, shift=0.5).fit(X)
    trap = _lazy_trap(X, (50, 4))
    for method in (bn.transform, bn.inverse_transform):
        out = method(trap)
        assert isinstance(out, da.Array)
        assert out.chunks == trap.chunks and out.dtype == dtype
        with pytest.raises(RuntimeError, match="too early"):
            out.compute()
    dX = da.from_array(X, chunks=((100, 110), (1, 5)))
    out = bn.transform(dX)
    assert_allclose(out.compute(), bn.transform(X), rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert_allclose(bn.inverse_transform(out).compute(), X, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "normalizer",
    [LayerNormalizer(), GroupNormalizer(n_groups=3), InstanceNormalizer(n_channels=2)],
    ids=["layer", "group", "instance"],
)
def test_row_normalizers_transform_lazily(rng, normalizer):
    X = rng.normal(size=(90, 12))
    trap = _lazy_trap(X, (40, 5))
    normalizer.fit(trap)  # only the shape is read
    out = normalizer.transform(trap)
    assert isinstance(out, da.Array) and out.shape == X.shape and out.dtype == np.float64
    with pytest.raises(RuntimeError, match="too early"):
        out.compute()
    got = normalizer.transform(da.from_array(X.astype(np.float32), chunks=(40, 5)))
    assert got.dtype == np.float32
    assert_allclose(got.compute(), normalizer.transform(X.astype(np.float32)), rtol=1e-6)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda X: (da.from_array(X[:, 0]), None), ValueError, "X must be"),
        (lambda X: (da.from_array(X.astype(complex)), None), ValueError, "X must be.*complex"),
        (lambda X: (da.from_array(X.astype(str)), None), ValueError, "X must be.*dtype"),
        (lambda X: (dask.bag.from_sequence([1, 2]), None), TypeError, "X must be.*Bag"),
        (lambda X: (da.from_array(X), da.ones(5)), ValueError, "sample_weight.shape"),
        (lambda X: (da.from_array(X), da.ones((50, 2))), ValueError, "sample_weight must be 1-D"),
        (lambda X: (da.from_array(X), -da.ones(50)), ValueError, "sample_weight must be finite"),
        (lambda X: (da.from_array(X), da.zeros(50)), ValueError, "Sample weights must contain"),
        (lambda X: (da.from_array(X) * np.inf, None), ValueError, "infinity"),
        (
            lambda X: (da.from_array(X)[da.from_array(X)[:, 0] > 0], da.ones(50)),
            ValueError,
            "compute_chunk_sizes",
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(rng, make, error, match):
    pytest.importorskip("dask.bag")
    X = rng.normal(size=(50, 3))
    bn = BatchNormalizer().fit(X[:10])
    before = bn.get_state()
    dX, w = make(X)
    with pytest.raises(error, match=match):
        bn.fit(dX, sample_weight=w)
    assert_array_equal(bn.mean_, BatchNormalizer().fit(X[:10]).mean_)
    for key, value in before.items():
        assert_array_equal(bn.get_state()[key], value)


def test_transform_refuses_a_wrong_feature_count(rng):
    bn = BatchNormalizer().fit(rng.normal(size=(20, 3)))
    for method in (bn.transform, bn.inverse_transform):
        with pytest.raises(ValueError, match="4 features"):
            method(da.ones((5, 4)))


# -- a real cluster -------------------------------------------------------------------------------


def _slow_copy(block):
    time.sleep(0.2)
    return block.copy()


def test_a_worker_killed_in_the_middle_of_a_fit_is_survived(client, rng):
    X = _data(rng, n=640, f=4)
    dX = da.from_array(X, chunks=(40, 2)).map_blocks(_slow_copy, dtype=X.dtype)  # 32 chunks
    pids = set(client.run(os.getpid).values())
    done = {}
    fit = threading.Thread(target=lambda: done.update(bn=BatchNormalizer().fit(dX)))
    fit.start()
    time.sleep(1.5)  # some chunks reduced, most to come (32 x 0.2 s on two workers)
    assert fit.is_alive()
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    fit.join(timeout=120)
    assert not fit.is_alive()
    _assert_same_statistics(done["bn"], BatchNormalizer().fit(X))
    client.wait_for_workers(2, timeout=60)
    new_pids = set(client.run(os.getpid).values())
    assert victim not in new_pids and len(new_pids) == 2


def test_dask_ml_standard_scaler_agrees(rng):
    dask_ml_preprocessing = pytest.importorskip("dask_ml.preprocessing")
    X = rng.normal(5.0, 3.0, (400, 5))
    dX = da.from_array(X, chunks=(100, 5))
    theirs = dask_ml_preprocessing.StandardScaler().fit(dX)
    ours = BatchNormalizer().fit(dX)
    assert_allclose(ours.mean_, theirs.mean_, rtol=RTOL)
    assert_allclose(ours.var_, theirs.var_, rtol=RTOL)
    assert_allclose(ours.transform(dX).compute(), theirs.transform(dX).compute(), rtol=1e-12)


# -- MLP estimators -----------------------------------------------------------------------------


def _classification(rng, n=400):
    X = rng.normal(size=(n, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_mlp_fit_of_a_single_block_is_the_in_memory_fit(rng, kind):
    X, y = _classification(rng)
    if kind == "classifier":
        est = MLPClassifier((8,), max_iter=12, random_state=0, normalization="batch")
    else:
        est, y = (
            MLPRegressor((8,), max_iter=40, tol=0.05, n_iter_no_change=2, random_state=0),
            X[:, 0],
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: short runs on purpose
        want = est.__class__(**est.get_params()).fit(X, y)
        got = est.__class__(**est.get_params()).fit(da.from_array(X, (-1, 2)), da.from_array(y))
    assert got.n_iter_ == want.n_iter_ and got.t_ == want.t_
    assert_array_equal(got.loss_curve_, want.loss_curve_)
    assert_array_equal(got.predict(X), want.predict(X))


def test_mlp_streams_blocks_through_partial_fit(rng, monkeypatch):
    X, y = _classification(rng, n=500)
    dX, dy = da.from_array(X, chunks=(100, 3)), da.from_array(y, chunks=130)  # realigned to X
    params = dict(hidden_layer_sizes=(8,), max_iter=3, shuffle=False, random_state=0)
    want = MLPClassifier(**params)
    for _ in range(3):
        for s in range(0, 500, 100):
            want.partial_fit(X[s : s + 100], y[s : s + 100], classes=[0, 1])
    seen = []
    original = MLPClassifier.partial_fit

    def recording(self, Xb, yb, **kwargs):
        assert isinstance(Xb, np.ndarray) and isinstance(yb, np.ndarray)
        seen.append(Xb.shape)
        return original(self, Xb, yb, **kwargs)

    monkeypatch.setattr(MLPClassifier, "partial_fit", recording)
    with pytest.warns(ConvergenceWarning):
        est = MLPClassifier(**params).fit(dX, dy)
    assert seen == [(100, 6)] * 15  # 3 passes over 5 blocks, one block in memory at a time
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    assert_array_equal(est.classes_, [0, 1])
    assert_array_equal(est.predict_proba(X), want.predict_proba(X))
    assert est.t_ == want.t_ == 1500


def test_mlp_partial_fit_of_a_dask_array_is_partial_fit_of_each_block(rng):
    X, y = _classification(rng, n=300)
    w = rng.uniform(0.5, 1.5, 300)
    got = MLPRegressor((8,), random_state=0).partial_fit(
        da.from_array(X, chunks=100), da.from_array(y * 1.0, chunks=100), da.from_array(w, 100)
    )
    want = MLPRegressor((8,), random_state=0)
    for s in range(0, 300, 100):
        want.partial_fit(X[s : s + 100], y[s : s + 100] * 1.0, sample_weight=w[s : s + 100])
    assert_array_equal(got.loss_curve_, want.loss_curve_)
    assert_array_equal(got.predict(X), want.predict(X))


def test_mlp_fit_from_a_dataframe_sets_feature_names(rng):
    X, y = _classification(rng, n=300)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(target=y)
    ddf = dd.from_pandas(frame, npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((8,), max_iter=2, random_state=0).fit(
            ddf.drop(columns="target"), ddf["target"]
        )
    assert_array_equal(est.feature_names_in_, [f"x{i}" for i in range(6)])


def test_mlp_bad_dask_input_changes_nothing(rng):
    X, y = _classification(rng, n=200)
    est = MLPClassifier((8,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    weights = est.net_.state_dict()
    with pytest.raises(ValueError, match="y has 150 rows"):
        est.fit(da.from_array(X, chunks=50), da.from_array(y[:150], chunks=50))
    with pytest.raises(ValueError, match="early_stopping"):
        est.set_params(early_stopping=True).fit(da.from_array(X, chunks=50), da.from_array(y, 50))
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(da.from_array(X, chunks=50), da.from_array(y, 50))
    for key, value in weights.items():
        assert_array_equal(est.net_.state_dict()[key], value)


def test_mlp_under_dask_ml_incremental(rng):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _classification(rng, n=400)
    dX, dy = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    inc = wrappers.Incremental(
        MLPClassifier((8,), random_state=0), scoring="accuracy", shuffle_blocks=False
    )
    inc.fit(dX, dy, classes=[0, 1])
    want = MLPClassifier((8,), random_state=0)
    for s in range(0, 400, 100):
        want.partial_fit(X[s : s + 100], y[s : s + 100], classes=[0, 1])
    assert_array_equal(inc.estimator_.loss_curve_, want.loss_curve_)
    assert inc.score(dX, dy) == want.score(X, y)
