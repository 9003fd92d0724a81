"""Pickles record the fastnorm version: loading one written by another version warns, and a
fitted state with missing attributes fails at load, naming them."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning

import fastnorm
import fastnorm._persistence
from fastnorm import (
    BatchNormalizer,
    GroupNormalizer,
    InstanceNormalizer,
    LayerNormalizer,
    MLPClassifier,
    MLPRegressor,
)
from fastnorm._persistence import VERSION_KEY
from fastnorm.exceptions import InconsistentVersionWarning
from fastnorm.nn import BatchNorm, LayerNorm, Linear, ReLU, Sequential


def _X(n=40, f=8):
    return np.random.default_rng(0).normal(2.0, 3.0, (n, f))


def _fitted_estimators():
    with warnings.catch_warnings():
        return _fit_estimators()


def _fit_estimators():
    X = _X()
    y_cls = (X[:, 0] > 2.0).astype(int)
    warnings.simplefilter("ignore", ConvergenceWarning)  # two epochs are enough here
    return [
        BatchNormalizer().fit(X),
        BatchNormalizer(momentum=0.2).fit(X),
        LayerNormalizer().fit(X),
        GroupNormalizer(2).fit(X),
        InstanceNormalizer(2).fit(X),
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y_cls),
        MLPRegressor((4,), normalization="batch", max_iter=2, random_state=0).fit(X, X[:, 1]),
    ]


def _modules():
    net = Sequential(Linear(8, 6), BatchNorm(6), ReLU(), LayerNorm((6,)), Linear(6, 2))
    net.forward(_X().astype(np.float32))
    return [net, BatchNorm(3), LayerNorm((4,))]


OBJECTS = _fitted_estimators() + _modules()
IDS = [type(o).__name__ for o in OBJECTS]


def _state_of(obj):
    """The state dict a pickle of ``obj`` holds (what ``__setstate__`` receives)."""
    reduced = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    return reduced[2]


def _load_with(obj, state):
    """Load ``obj`` from its pickle's reduce tuple with the state replaced by ``state`` (as a
    pickle edited on disk would be): what ``pickle.loads`` does, step by step."""
    reconstruct, args, _ = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)[:3]
    new = reconstruct(*args)
    new.__setstate__(state)
    return new


def _pickled_by(obj, version, monkeypatch):
    """The bytes of ``obj`` pickled by a fastnorm that calls itself ``version``."""
    with monkeypatch.context() as m:
        m.setattr(fastnorm._persistence, "__version__", version)
        return pickle.dumps(obj)


@pytest.mark.parametrize("obj", OBJECTS, ids=IDS)
def test_pickle_records_the_fastnorm_version(obj):
    assert _state_of(obj)[VERSION_KEY] == fastnorm.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same version loads silently
        clone = pickle.loads(pickle.dumps(obj))
    assert type(clone) is type(obj)
    assert VERSION_KEY not in vars(clone)


@pytest.mark.parametrize("obj", OBJECTS, ids=IDS)
def test_other_version_warns_naming_both(obj, monkeypatch):
    data = _pickled_by(obj, "0.0.1", monkeypatch)
    with pytest.warns(InconsistentVersionWarning) as record:
        clone = pickle.loads(data)
    messages = [str(w.message) for w in record if w.category is InconsistentVersionWarning]
    assert any(
        "0.0.1" in m and fastnorm.__version__ in m and type(obj).__name__ in m for m in messages
    )
    assert VERSION_KEY not in vars(clone)
    w = record[0].message
    assert isinstance(w, UserWarning)
    assert (w.original_version, w.current_version) == ("0.0.1", fastnorm.__version__)


def test_other_version_edited_state_warns():
    """The same through an edited state dict instead of a pickle written by another version."""
    X = _X()
    bn = BatchNormalizer().fit(X)
    state = dict(_state_of(bn), **{VERSION_KEY: "9.9"})
    with pytest.warns(InconsistentVersionWarning, match="9.9"):
        clone = _load_with(bn, state)
    np.testing.assert_array_equal(clone.transform(X), bn.transform(X))


def test_state_without_a_version_loads_silently():
    """Pickles written before versions were recorded have no key: nothing to compare."""
    bn = BatchNormalizer().fit(_X())
    state = dict(_state_of(bn))
    del state[VERSION_KEY]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone = _load_with(bn, state)
    np.testing.assert_array_equal(clone.mean_, bn.mean_)


@pytest.mark.parametrize(
    "obj, drop",
    [
        (BatchNormalizer().fit(_X()), ("_moments", "mean_")),
        (BatchNormalizer(momentum=0.1).fit(_X()), ("_n_rows", "scale_")),
        (BatchNormalizer().fit(_X()), ("n_features_in_",)),
        (OBJECTS[5], ("net_",)),
        (OBJECTS[5], ("classes_",)),
        (OBJECTS[6], ("n_outputs_", "n_iter_")),
        (OBJECTS[5], ("_optimizer",)),
        (OBJECTS[5], ("t_", "_rng")),
        (OBJECTS[6], ("best_loss_", "_no_improvement_count")),
    ],
    ids=[
        "bn-moments-mean",
        "bn-ema-rows-scale",
        "bn-n-features",
        "clf-net",
        "clf-classes",
        "reg",
        "clf-optimizer",
        "clf-t-rng",
        "reg-best-loss",
    ],
)
def test_incomplete_fitted_state_fails_at_load(obj, drop):
    state = {k: v for k, v in _state_of(obj).items() if k not in drop}
    with pytest.raises(ValueError, match=type(obj).__name__) as info:
        _load_with(obj, state)
    for name in drop:
        assert name in str(info.value)


def test_unfitted_estimators_round_trip():
    for est in (BatchNormalizer(momentum=0.3), LayerNormalizer(), MLPClassifier((3,))):
        clone = pickle.loads(pickle.dumps(est))
        assert clone.get_params() == est.get_params()
        assert not hasattr(clone, "n_features_in_")


def test_scikit_learn_version_handling_still_works():
    """scikit-learn estimators around fastnorm ones keep their own version record."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), BatchNormalizer()).fit(_X())
    assert _state_of(pipe.steps[0][1])["_sklearn_version"] == sklearn.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(clone.transform(_X()), pipe.transform(_X()))


def test_deepcopy_drops_the_version_key():
    import copy

    net = _modules()[0]
    clone = copy.deepcopy(net)
    assert all(VERSION_KEY not in vars(m) for m in clone.modules())
    assert VERSION_KEY not in vars(copy.deepcopy(OBJECTS[0]))
