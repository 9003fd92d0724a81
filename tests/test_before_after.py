"""``benchmarks/before_after.py``: an earlier checkout is imported next to the current package and
timed against it, row by row."""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def before_after(tmp_path_factory):
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    sys.path.insert(0, str(REPO))
    from benchmarks import before_after

    commit, root, kernels, mlp = before_after.import_before(
        str(REPO), str(tmp_path_factory.mktemp("before"))
    )
    return before_after, commit, kernels, mlp


def test_the_earlier_checkout_is_a_package_of_its_own(before_after):
    module, commit, kernels, _ = before_after
    import fastnorm

    assert len(commit) == 40
    assert kernels.__name__ == "fastnorm_before._bench.kernel_cases"
    assert sys.modules["fastnorm_before"].__file__ != fastnorm.__file__


def test_rows_pair_both_versions_and_are_timed_in_turn(before_after):
    module, _, kernels, mlp = before_after
    pairs = module.paired_cases(kernels, mlp)
    names = [name for name, _, _ in pairs]
    assert "layer_norm fwd (32, 64), per call" in names
    assert any(name.startswith("MLP epoch") for name in names)
    name, make_after, make_before = pairs[names.index("layer_norm fwd (32, 64), per call")]
    stats = module.measure_pair(make_after, make_before, repeat=2)
    assert {"before", "after"} <= set(stats)
    assert all(len(s) == 4 and s["min"] > 0 for s in stats.values())
    assert name in module.format_row(name, stats)


def test_eval_rows_time_each_versions_layer_in_eval_mode(before_after):
    module, _, kernels, mlp = before_after
    pairs = {name: (a, b) for name, a, b in module.paired_cases(kernels, mlp)}
    make_after, make_before = pairs["batch_norm eval fwd (32, 64), per call"]
    after, before = make_after(), make_before()
    for impls, package in ((after, "fastnorm"), (before, "fastnorm_before")):
        layer = impls["fastnorm"].layer
        assert type(layer).__module__.startswith(package + ".") and not layer.training
        y = layer.forward(np.random.default_rng(1).standard_normal((32, 64)).astype(np.float32))
        assert y.shape == (32, 64)
    stats = module.measure_pair(make_after, make_before, repeat=2)
    assert {"before", "after"} <= set(stats)


def test_a_path_that_is_not_a_checkout_is_refused(before_after, tmp_path, capsys):
    module = before_after[0]
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--before", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is not a checkout of fastnorm" in capsys.readouterr().err
