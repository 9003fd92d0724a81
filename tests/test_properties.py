"""Property tests (hypothesis): every functional op, its context's backward and the nn layers'
backward against the float64 reference (``tests/reference.py``) over random shapes, layouts and
value classes; and the streaming properties of ``BatchNormalizer`` (any split of
``partial_fit``, any merge tree, equals ``fit`` on the whole).

Profiles (registered in ``conftest.py``):

- ``ci`` (default): derandomized, so every run draws the same examples; sized so this file runs
  in about a minute on a 2-core machine.
- ``long``: many more, random examples, for a search before a release::

      HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py

  (``python -m pytest tests/test_properties.py --hypothesis-profile=long`` does the same.)

Drawn: the op and its options (axis, groups, normalized dims, affine, eps), float32/float64,
ndim 2 to 5 with size-0 and size-1 axes, the input's memory layout (C, Fortran, negative strides,
a strided view, any of them read-only) and its values (ordinary, tiny, denormal, huge up to near
float32's maximum, large offsets of 1e4 to 1e6 with a small spread, constant slices, NaN and
infinity mixtures).

Accuracy: within 1e-3 (float32) or 1e-9 (float64) of the reference, relative to the scale of
the reference output (the largest finite magnitude, at least 1), as the float32 accuracy tests
of ``test_norm_layers.py`` and ``test_functional.py``; the reference computes in float64 from the
same input values, and its result is rounded to the output dtype before finiteness is compared
(an output beyond float32's range is infinite). NaN exactly where the reference has NaN, finite
exactly where it is finite.

Constant slices are drawn with magnitudes up to 1e6 only: beyond, the float64 reference itself
is not exact (``np.var`` of a constant slice at 1e29 is not 0), while fastnorm's statistics are;
``test_numerics.py`` checks huge constant slices against exact expectations and PyTorch.
"""

import warnings

import numpy as np
import pytest
import reference as ref
from hypothesis import assume, given, note
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import fastnorm.functional as F
from fastnorm import BatchNormalizer
from fastnorm.nn import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

OPS = ("batch_train", "batch_eval", "layer", "group", "instance", "instance_eval", "rms")
CHANNEL_OPS = ("batch_train", "batch_eval", "group", "instance", "instance_eval")
VALUE_CLASSES = ("normal", "tiny", "denormal", "huge", "offset")
LAYOUTS = ("C", "F", "negative", "strided")
TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}
# constant slices beyond this magnitude: the reference's own variance is not exactly 0
CONSTANT_MAX = 1e6


# ------------------------------------------------------------------------------ strategies

# sizes of one axis: size 0 and size 1 are deliberately frequent
AXIS_SIZE = st.sampled_from([0, 1, 1, 2, 2, 3, 3, 4, 5, 7])


@st.composite
def shapes(draw, min_ndim=2, max_ndim=5, max_size=3000):
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(AXIS_SIZE) for _ in range(ndim))
    if draw(st.booleans()):  # now and then a longer axis: several kernel blocks or long rows
        i = draw(st.integers(0, ndim - 1))
        shape = shape[:i] + (draw(st.sampled_from([9, 16, 33, 130])),) + shape[i + 1 :]
    assume(int(np.prod(shape)) <= max_size)
    return shape


@st.composite
def values(draw, shape, dtype):
    """An array of ``shape``/``dtype`` from one value class, with optional constant slices and
    NaN/infinity mixed in; returns (array, description)."""
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(VALUE_CLASSES))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    f32 = np.dtype(dtype) == np.float32
    if kind == "normal":
        x = 0.5 + 2.0 * z
    elif kind == "tiny":
        x = z * draw(st.sampled_from([1e-20, 1e-30]))
    elif kind == "denormal":
        x = z * (1e-40 if f32 else 1e-310)
    elif kind == "huge":
        scale = draw(st.sampled_from([1e20, 1e30, 1e37]))
        x = np.clip(z * scale, -3e38, 3e38)  # near float32's maximum, 3.4e38
    else:  # a large offset and a small spread
        offset = draw(st.sampled_from([1e4, -1e5, 1e6]))
        x = offset + draw(st.sampled_from([1.0, 10.0])) * z
    x = x.astype(dtype)
    desc = [kind]
    if x.size and draw(st.booleans()):  # constant slices along a random axis
        axis = draw(st.integers(0, len(shape) - 1))
        idx = [slice(None)] * len(shape)
        idx[axis] = rng.random(shape[axis]) < 0.5
        magnitude = np.max(np.abs(x), initial=1.0)
        c = float(np.clip(rng.standard_normal() * magnitude, -CONSTANT_MAX, CONSTANT_MAX))
        x[tuple(idx)] = c
        desc.append(f"constant {c:.3g} along axis {axis}")
    if x.size and draw(st.integers(0, 3)) == 0:  # NaN / +-inf sprinkled in
        specials = np.array([np.nan, np.inf, -np.inf])[rng.integers(0, 3, x.size)]
        where = rng.random(x.size) < draw(st.sampled_from([0.02, 0.2]))
        x.reshape(-1)[where] = specials[where]
        desc.append("non-finite")
    return x, desc


def laid_out(x, layout, readonly):
    """``x``'s values in a given memory layout (a view, for the non-contiguous ones)."""
    if layout == "F":
        out = np.asfortranarray(x)
    elif layout == "negative":  # every axis reversed in memory: negative strides
        flip = tuple(slice(None, None, -1) for _ in range(x.ndim))
        out = np.ascontiguousarray(x[flip])[flip]
    elif layout == "strided":  # every other element of a larger buffer along the last axis
        big = np.full(x.shape[:-1] + (2 * x.shape[-1],), np.nan, x.dtype)
        out = big[..., ::2]
        out[...] = x
    else:
        out = np.ascontiguousarray(x)
    if readonly:
        out.flags.writeable = False
    return out


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def op_cases(draw, layer=False):
    """A dict describing one call: op, options, input and upstream gradient."""
    op = draw(st.sampled_from(OPS))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    shape = draw(shapes())
    case = {"op": op, "dtype": dtype, "shape": shape}
    if op in CHANNEL_OPS:
        axis = draw(st.sampled_from([1, -1] if op != "batch_train" else [1, -1, 0]))
        c = shape[axis]
        if layer:
            assume(c >= 1)  # the layers need num_features >= 1
        case["axis"] = axis
        case["channels"] = c
        if op == "group":
            case["groups"] = draw(st.sampled_from(_divisors(c))) if c else 1
    else:
        k = draw(st.integers(1, len(shape)))
        case["normalized_shape"] = shape[len(shape) - k :]
        if layer:
            assume(min(case["normalized_shape"]) >= 1)
    case["affine"] = draw(st.booleans())
    case["eps"] = draw(
        st.sampled_from([None, 1e-5]) if op == "rms" else st.sampled_from([1e-5, 1e-3])
    )
    case["momentum"] = draw(st.sampled_from([0.1, 0.5, 1.0]))
    # training may go without running statistics; eval needs them
    case["with_running"] = op.endswith("eval") or draw(st.booleans())
    x, desc = draw(values(shape, dtype))
    case["layout"] = draw(st.sampled_from(LAYOUTS))
    case["readonly"] = draw(st.booleans())
    case["x"] = laid_out(x, case["layout"], case["readonly"])
    case["values"] = desc
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    case["dy"] = rng.standard_normal(shape).astype(dtype)
    pshape = (case["channels"],) if op in CHANNEL_OPS else case["normalized_shape"]
    case["weight"] = rng.uniform(0.5, 1.5, pshape).astype(dtype) if case["affine"] else None
    has_bias = case["affine"] and op != "rms"
    case["bias"] = rng.standard_normal(pshape).astype(dtype) if has_bias else None
    if op in CHANNEL_OPS and op != "group":
        c = case["channels"]
        case["running"] = (
            rng.standard_normal(c).astype(dtype),
            rng.uniform(0.5, 2.0, c).astype(dtype),
        )
    note({k: v for k, v in case.items() if k not in ("x", "dy")})
    return case


# ------------------------------------------------------------------------------ comparison


def slots(case):
    """The input as (slots, values per slot): the sets each statistic is computed over."""
    op, x = case["op"], np.asarray(case["x"], np.float64)
    if op in ("layer", "rms"):
        d = int(np.prod(case["normalized_shape"]))
        return x.reshape(-1, d) if d else x.reshape(0, 0)
    nc = np.moveaxis(x, case["axis"], 1)
    n, c = nc.shape[:2]
    if op.startswith("batch"):
        return np.moveaxis(nc, 1, 0).reshape(c, -1) if c else nc.reshape(0, 0)
    groups = case["groups"] if op == "group" else c
    return nc.reshape(n * groups, -1) if n * groups else nc.reshape(0, 0)


def conditioning(case):
    """How much float64 rounding of the input's statistics is amplified in the output:
    max |x| / sqrt(var + eps) over the slots (the running variance in eval mode). Both the
    reference and fastnorm round; for a slot of values close together far from 0 (an offset of
    1e5 with a spread of 1e-3) the float64 results themselves agree only to ~1e-16 times it."""
    rows = slots(case)
    finite = np.where(np.isfinite(rows), rows, np.nan)
    if rows.size == 0 or np.isnan(finite).all():
        return 1.0
    eps = ref.rms_eps(case["dtype"], case["eps"]) if case["op"] == "rms" else case["eps"]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if case["op"] in ("batch_eval", "instance_eval"):
            var = np.min(np.asarray(case["running"][1], np.float64))
        else:
            var = np.nanmin(np.nanvar(finite, axis=1))
        return float(np.nanmax(np.abs(finite)) / np.sqrt(var + eps))


def assert_matches(actual, expected, dtype, name, cond=1.0):
    """``actual`` against the float64 reference: NaN exactly where the reference has NaN,
    finite exactly where the reference rounded to ``dtype`` is finite, infinities equal, and
    finite values within TOL[dtype] times the scale of the reference (or, for ill-conditioned
    slots, within 64 float64 roundings amplified by ``cond``, see ``conditioning``)."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64).reshape(expected.shape)
    with np.errstate(over="ignore"):
        rounded = expected.astype(dtype).astype(np.float64)
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), (
        f"{name}: NaN at {np.argwhere(nan_a != nan_e)[:5].tolist()} differ from the reference"
    )
    # values within 1e-3 of the dtype's maximum may round either way
    edge = np.abs(expected) > np.finfo(dtype).max * (1 - 1e-3)
    fin_a, fin_e = np.isfinite(actual), np.isfinite(rounded)
    bad = (fin_a != fin_e) & ~edge
    assert not bad.any(), (
        f"{name}: finite at {np.argwhere(bad)[:5].tolist()} differ: "
        f"{actual[bad][:5]} vs reference {expected[bad][:5]}"
    )
    inf = ~fin_a & ~nan_a & ~edge
    assert np.array_equal(actual[inf], rounded[inf]), f"{name}: infinities differ"
    both = fin_a & np.isfinite(expected)
    finite = expected[both]
    scale = max(1.0, float(np.max(np.abs(finite), initial=0.0)))
    tol = max(TOL[np.dtype(dtype)], 64 * np.finfo(np.float64).eps * cond)
    assert_allclose(actual[both], finite, rtol=0, atol=tol * scale, err_msg=name)


# ------------------------------------------------------------------------------ functional


def _expected_rejection(case):
    """The message of the ValueError the call must raise (torch's rules), or None."""
    op, shape = case["op"], case["shape"]
    if op == "batch_train":  # torch counts the values per channel even with zero channels
        axis = case["axis"] % len(shape)
        if int(np.prod([s for i, s in enumerate(shape) if i != axis])) == 1:
            return "more than 1 value per channel"
    if op == "instance":
        axis = case["axis"] % len(shape)
        spatial = [s for i, s in enumerate(shape) if i not in (0, axis)]
        if int(np.prod(spatial)) <= 1:
            return "more than 1 spatial element"
    return None


def _run_functional(case, running):
    """(output, context) of the functional op; ``running`` is a writable copy or None."""
    op, x, w, b, eps = case["op"], case["x"], case["weight"], case["bias"], case["eps"]
    rm, rv = running if running is not None else (None, None)
    if op in ("batch_train", "batch_eval"):
        training = op == "batch_train"
        return F.batch_norm_forward(
            x, rm, rv, w, b, training, case["momentum"], eps, axis=case["axis"]
        )
    if op in ("instance", "instance_eval"):
        return F.instance_norm_forward(
            x, rm, rv, w, b, op == "instance", case["momentum"], eps, axis=case["axis"]
        )
    if op == "group":
        return F.group_norm_forward(x, case["groups"], w, b, eps, axis=case["axis"])
    if op == "layer":
        return F.layer_norm_forward(x, case["normalized_shape"], w, b, eps)
    return F.rms_norm_forward(x, case["normalized_shape"], w, eps)


def _reference(case, dy=None):
    """Reference output (``dy`` None) or gradients (dx, dweight, dbias); NumPy's warnings about
    NaN and infinity in the reference's own arithmetic are silenced."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _reference_unguarded(case, dy)


def _reference_unguarded(case, dy):
    op, x, w, b, eps = case["op"], case["x"], case["weight"], case["bias"], case["eps"]
    rm, rv = case.get("running", (None, None))
    if op in ("batch_train", "batch_eval"):
        t = op == "batch_train"
        if dy is None:
            return ref.batch_norm(x, rm, rv, w, b, t, case["momentum"], eps, axis=case["axis"])
        return ref.batch_norm_backward(dy, x, rm, rv, w, b, t, eps, axis=case["axis"])
    if op in ("instance", "instance_eval"):
        t = op == "instance"
        if dy is None:
            return ref.instance_norm(x, rm, rv, w, b, t, case["momentum"], eps, axis=case["axis"])
        return ref.instance_norm_backward(dy, x, rm, rv, w, b, t, eps, axis=case["axis"])
    if op == "group":
        if dy is None:
            return ref.group_norm(x, case["groups"], w, b, eps, axis=case["axis"])
        return ref.group_norm_backward(dy, x, case["groups"], w, b, eps, axis=case["axis"])
    ns = case["normalized_shape"]
    if op == "layer":
        return (
            ref.layer_norm(x, ns, w, b, eps)
            if dy is None
            else ref.layer_norm_backward(dy, x, ns, w, b, eps)
        )
    if dy is None:
        return ref.rms_norm(x, ns, w, eps)
    return ref.rms_norm_backward(dy, x, ns, w, eps) + (None,)


def _new_running_stats(case):
    x, (rm, rv), m = case["x"], case["running"], case["momentum"]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if case["op"] == "batch_train":
            return ref.batch_norm_running_stats(x, rm, rv, m, axis=case["axis"])
        return ref.instance_norm_running_stats(x, rm, rv, m, axis=case["axis"])


def _check_gradients(case, dx, dw, db, where):
    dt = case["dtype"]
    ex_dx, ex_dw, ex_db = _reference(case, case["dy"])
    assert dx.shape == case["shape"] and dx.dtype == dt
    cond = conditioning(case)
    assert_matches(dx, ex_dx, dt, f"{where} dx", cond)
    if ex_dw is not None:
        assert_matches(dw, ex_dw, dt, f"{where} dweight", cond)
    if ex_db is not None:
        assert_matches(db, ex_db, dt, f"{where} dbias", cond)


@given(case=op_cases())
def test_functional_forward_and_backward_match_reference(case):
    x = case["x"]
    x_before = x.copy()
    running = None
    if "running" in case and case["with_running"]:
        running = tuple(a.copy() for a in case["running"])
    rejection = _expected_rejection(case)
    if rejection is not None:
        with pytest.raises(ValueError, match=rejection):
            _run_functional(case, running)
        return
    y, ctx = _run_functional(case, running)
    assert y.shape == case["shape"] and y.dtype == case["dtype"]
    assert_matches(y, _reference(case), case["dtype"], "y", conditioning(case))
    np.testing.assert_array_equal(x, x_before)  # the input is never written
    if running is not None and case["op"] in ("batch_train", "instance"):
        new_rm, new_rv = _new_running_stats(case)
        assert_matches(running[0], new_rm, case["dtype"], "running_mean")
        assert_matches(running[1], new_rv, case["dtype"], "running_var")
    dx, dw, db = ctx.backward(case["dy"])
    _check_gradients(case, dx, dw, db, "ctx.backward")


# ------------------------------------------------------------------------------ nn layers


def _layer(case):
    op, dt, eps = case["op"], case["dtype"], case["eps"]
    if op in ("batch_train", "batch_eval"):
        layer = BatchNorm(
            case["channels"], eps, case["momentum"], case["affine"], axis=case["axis"], dtype=dt
        )
    elif op in ("instance", "instance_eval"):
        track = op == "instance_eval"
        layer = InstanceNorm(
            case["channels"],
            eps,
            case["momentum"],
            case["affine"],
            track,
            axis=case["axis"],
            dtype=dt,
        )
    elif op == "group":
        layer = GroupNorm(
            case["groups"], case["channels"], eps, case["affine"], axis=case["axis"], dtype=dt
        )
    elif op == "layer":
        layer = LayerNorm(case["normalized_shape"], eps, case["affine"], dtype=dt)
    else:
        layer = RMSNorm(case["normalized_shape"], eps, case["affine"], dtype=dt)
    for key in ("weight", "bias"):
        if key in layer.params:
            layer.params[key][...] = case[key]
    if op in ("batch_eval", "instance_eval"):
        layer.running_mean[...], layer.running_var[...] = case["running"]
        layer.eval()
    return layer


@given(case=op_cases(layer=True))
def test_layer_backward_matches_reference(case):
    assume(_expected_rejection(case) is None)
    layer = _layer(case)
    y = layer.forward(case["x"])
    assert_matches(y, _reference(case), case["dtype"], "layer y", conditioning(case))
    dx = layer.backward(case["dy"])
    _check_gradients(case, dx, layer.grads.get("weight"), layer.grads.get("bias"), "layer")


# ------------------------------------------------------------------------------ streaming


@st.composite
def stream_data(draw):
    """(X, sample_weight or None): float64 data with an offset, NaN holes and, when weighted,
    zero weights including whole zero-weight runs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(2, 120))
    f = draw(st.integers(1, 6))
    X = rng.normal(draw(st.sampled_from([0.0, 1e3, -1e5])), 1.0 + np.arange(f), (n, f))
    if draw(st.booleans()):
        X[rng.random(X.shape) < draw(st.sampled_from([0.05, 0.3]))] = np.nan
    w = None
    if draw(st.booleans()):
        w = rng.uniform(0.0, 3.0, n)
        w[rng.random(n) < 0.2] = 0.0
        if draw(st.booleans()):  # a run of zero weights: a whole chunk may weigh nothing
            start = int(rng.integers(0, n))
            w[start : start + int(rng.integers(1, n + 1))] = 0.0
        assume(w.sum() > 0)  # fit on the whole needs some weight (scikit-learn's rule)
    return X, w


def _cuts(draw, n):
    """Sorted cut points splitting range(n) into non-empty chunks."""
    k = draw(st.integers(0, min(n - 1, 8)))
    return sorted(draw(st.lists(st.integers(1, n - 1), min_size=k, max_size=k, unique=True)))


def _fit_part(X, w, lo, hi):
    return BatchNormalizer().fit(X[lo:hi], sample_weight=None if w is None else w[lo:hi])


def _assert_same_statistics(got, whole):
    """mean_ and var_ to 1e-10 relative (to the largest per-feature scale, so a variance that is
    exactly 0 in one computation may be a rounding above 0 in the other), counts equal."""
    mean, var = np.nan_to_num(whole.mean_), np.nan_to_num(whole.var_)
    scale = float(np.max(np.abs(mean) + np.sqrt(var), initial=1.0))
    var_atol = 1e-10 * float(np.max(var, initial=0.0)) + (1e-13 * scale) ** 2
    assert_allclose(got.mean_, whole.mean_, rtol=1e-10, atol=1e-10 * scale, equal_nan=True)
    assert_allclose(got.var_, whole.var_, rtol=1e-10, atol=var_atol, equal_nan=True)
    assert_allclose(got.n_samples_seen_, whole.n_samples_seen_, rtol=1e-12)
    assert np.shape(got.n_samples_seen_) == np.shape(whole.n_samples_seen_)


@given(data=stream_data(), split=st.data())
def test_partial_fit_any_split_equals_fit(data, split):
    X, w = data
    whole = BatchNormalizer().fit(X, sample_weight=w)
    bounds = [0, *_cuts(split.draw, X.shape[0]), X.shape[0]]
    streamed = BatchNormalizer()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        streamed.partial_fit(X[lo:hi], sample_weight=None if w is None else w[lo:hi])
    _assert_same_statistics(streamed, whole)


@given(data=stream_data(), tree=st.data())
def test_any_merge_tree_equals_fit(data, tree):
    """Normalizers fitted on the parts (partial_fit when a part weighs nothing: fit rejects
    that), merged pairwise in a random order, equal fit on the whole."""
    X, w = data
    whole = BatchNormalizer().fit(X, sample_weight=w)
    bounds = [0, *_cuts(tree.draw, X.shape[0]), X.shape[0]]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sw = None if w is None else w[lo:hi]
        parts.append(BatchNormalizer().partial_fit(X[lo:hi], sample_weight=sw))
    while len(parts) > 1:  # any two parts, in either order: a random merge tree
        i = tree.draw(st.integers(0, len(parts) - 1))
        j = tree.draw(st.integers(0, len(parts) - 2))
        j += j >= i
        parts[i].merge(parts[j])
        del parts[j]
    _assert_same_statistics(parts[0], whole)
