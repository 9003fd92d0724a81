"""The bench runner: interleaved repetitions, noisy rows flagged instead of reported, the
roofline marked for shapes that fit in cache, one table per thread count."""

import numpy as np
import pytest

from fastnorm._bench import runner
from fastnorm._bench.case import BenchCase


def test_libraries_are_timed_in_turn():
    calls = []
    impls = {lib: (lambda lib=lib: calls.append(lib)) for lib in ("fastnorm", "torch", "numpy")}
    samples = runner.interleaved_samples(impls, repeat=3, min_sample=0.0, warm_up=0.0)
    assert {lib: len(v) for lib, v in samples.items()} == {"fastnorm": 3, "torch": 3, "numpy": 3}
    timed = calls[6:]  # after a first call and one calibration call each
    assert timed == ["fastnorm", "torch", "numpy"] * 3


def test_a_slow_first_call_does_not_set_the_calls_per_sample():
    """A first call that compiles (Numba, torch.compile) must not make every sample one call."""
    import time

    calls = []

    def fn():
        if not calls:
            time.sleep(0.2)
        calls.append(1)

    assert runner._calibrate(fn, min_sample=0.01, warm_up=0.05) > 100


def test_noisy_library_gives_no_ratio():
    stats = runner.summarize(
        {"fastnorm": [1.0, 1.1, 1.05], "torch": [2.0, 2.1, 2.2], "numpy": [1.0, 5.0, 1.2]}
    )
    assert stats["fastnorm"]["min"] == 1.0 and stats["fastnorm"]["median"] == 1.05
    assert not stats["torch"]["noisy"] and stats["numpy"]["noisy"]
    assert runner.ratio(stats, "torch") == pytest.approx(2.0)
    assert runner.ratio(stats, "numpy") is None and runner.ratio(stats, "sklearn") is None
    row = {"case": "c", "target": "", "stats": stats}
    text = runner.format_row(row)
    assert "2.00x" in text and "~" in text


def test_a_case_is_marked_in_cache_or_given_its_roofline():
    x = np.ones(1000)
    case = BenchCase("tiny", "kernels", lambda: {"fastnorm": lambda: x.sum()}, bytes_moved=8000)
    row = runner.add_roofline(runner.run_case(case, repeat=3), 1e10, cache_bytes=1 << 20)
    assert row["roofline"] == "in cache"
    row = runner.add_roofline(runner.run_case(case, repeat=3), 1e10, cache_bytes=0)
    assert isinstance(row["roofline"], float) and row["roofline"] > 0


def test_run_prints_one_table_per_thread_count(monkeypatch):
    monkeypatch.setattr(runner, "stream_copy_bandwidth", lambda cache: (1e10, 1 << 28))
    x = np.ones(100)
    case = BenchCase("tiny", "kernels", lambda: {"fastnorm": lambda: x.sum(), "numpy": x.mean})
    lines = []
    results = runner.run([case], repeat=2, threads=[1], echo=lines.append)
    assert list(results) == [1] and len(results[1]) == 1
    assert any("stream copy of" in line and "last-level cache" in line for line in lines)
    table_at = [i for i, t in enumerate(lines) if t.strip() == "1 thread"][0]
    assert table_at < [i for i, t in enumerate(lines) if "stream copy" in t][0]  # copy last
    assert "1 thread" in [line.strip() for line in lines]


def test_last_level_cache_is_read_when_linux_reports_it():
    size = runner.last_level_cache_bytes()
    assert isinstance(size, int) and size >= 0


def test_readme_table_is_generated_from_a_record(tmp_path):
    from fastnorm._bench import record

    stats = runner.summarize({"fastnorm": [1e-3, 1.1e-3], "torch": [2e-3, 2e-3], "numpy": [1, 9]})
    rec = record.new_record(["bench", "--repeat", "2"])
    rec["results"] = {1: [{"case": "op (8, 8)", "target": "", "stats": stats, "bytes": None}]}
    path = tmp_path / "run.json"
    record.save(rec, path)
    import json

    loaded = json.loads(path.read_text())
    text = record.table(loaded)
    assert "| op (8, 8) | 1.00 | 2.00x | noisy |" in text
    assert "`python -m fastnorm bench --repeat 2`" in text and loaded["versions"]["numpy"]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{record.START}\nold\n{record.END}\nrest\n")
    record.update_readme(loaded, readme)
    new = readme.read_text()
    assert "old" not in new and "2.00x" in new and new.endswith("rest\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        record.update_readme(loaded, readme)


def test_targets_table_says_which_clause_each_thread_count_meets():
    from fastnorm._bench import record

    def stats(fastnorm, torch, noisy=False):
        lib = {"min": fastnorm, "median": fastnorm, "spread": 1.0, "noisy": False}
        peer = {"min": torch, "median": torch, "spread": 1.0, "noisy": noisy}
        return {"fastnorm": lib, "torch": peer}

    rows = {
        "1": [
            {"case": "a", "target": ">= 1.5x torch, >= 85% roofline", "roofline": 0.9,
             "stats": stats(1.0, 2.0)},
            {"case": "b", "target": "<= 1.2x batch", "stats": stats(1.0, 1.0)},
            {"case": "c", "target": ">= 1.5x torch", "roofline": "in cache",
             "stats": stats(1.0, 1.2)},
        ],
        "2": [
            {"case": "a", "target": ">= 1.5x torch, >= 85% roofline", "roofline": 0.5,
             "stats": stats(1.0, 1.0)},
            {"case": "c", "target": ">= 1.5x torch", "stats": stats(1.0, 9.0, noisy=True)},
            {"case": "d", "target": ">= 60% roofline", "roofline": "in cache",
             "stats": stats(1.0, 1.0)},
            {"case": "e", "target": ">= 60% roofline", "roofline": 0.9,
             "stats": {"fastnorm": {**stats(1.0, 1.0)["fastnorm"], "noisy": True}}},
            {"case": "f", "target": ">= 2x torch out=", "stats": stats(1.0, 3.0)},
        ],
    }  # fmt: skip
    lines = record.targets_table({"results": rows}).splitlines()
    assert lines[0] == "| case | target | 1T | 2T |"
    assert lines[2:] == [
        "| a | >= 1.5x torch, >= 85% roofline | yes, 2.00x; yes, 90 % | no, 1.00x; no, 50 % |",
        "| c | >= 1.5x torch | no, 1.20x | noisy |",
        "| d | >= 60% roofline | - | in cache |",  # no row at one thread
        "| e | >= 60% roofline | - | noisy |",  # the roofline is fastnorm's noisy time
    ]  # "b" is relative to another row, "f" to a peer's out= column: not checked
    assert record.target_clauses(">= 1.3x torch, >= 1.3x faster than sklearn (no BN)") == [
        ("torch", 1.3),
        ("sklearn", 1.3),
    ]


def test_record_command_says_when_torch_compile_was_timed(monkeypatch):
    from fastnorm._bench import record

    monkeypatch.delenv("FASTNORM_BENCH_COMPILE", raising=False)
    assert record.new_record(["bench"])["command"] == "python -m fastnorm bench"
    monkeypatch.setenv("FASTNORM_BENCH_COMPILE", "1")
    assert record.new_record(["bench"])["command"].startswith("FASTNORM_BENCH_COMPILE=1 python")


def test_kernel_table_times_each_operation_forward_alone_and_with_backward():
    """The speed targets hold for the forward pass alone and for forward + backward: every
    operation with a PyTorch peer has both rows in the bench's table, at the same shape."""
    from fastnorm._bench import kernel_cases as kc

    modes = {}
    for _, op, shape, mode, *_ in kc.TABLE:
        if op not in kc.FASTNORM_ONLY:
            modes.setdefault((op, shape), set()).add(mode)
    ops = {op for op, _ in modes}
    assert ops == {"batch", "layer", "group", "instance", "rms"}
    for op in ops:
        both = [shape for (o, shape), m in modes.items() if o == op and m == {"fwd", "fwd+bwd"}]
        assert both, f"{op} has no shape timed both forward alone and with backward"
    assert ("batch", (4096, 1024)) in modes and modes["batch", (4096, 1024)] == {"fwd", "fwd+bwd"}


def test_preallocated_ratio_compares_the_out_calls():
    stats = runner.summarize(
        {
            "fastnorm": [1.0, 1.0],
            "torch": [3.0, 3.0],
            "fastnorm out=": [2.0, 2.0],
            "torch out=": [1.0, 1.0],
        }
    )
    assert runner.ratio(stats, "torch out=", "fastnorm out=") == pytest.approx(0.5)
    text = runner.format_row({"case": "c", "target": "", "stats": stats})
    assert "3.00x" in text and "0.50x" in text


@pytest.mark.parametrize(
    "op, shape, axis",
    [
        ("batch", (64, 24), 1),
        ("batch", (4, 24, 5, 6), 1),
        ("batch", (4, 5, 6, 24), -1),
        ("layer", (16, 40), -1),
        ("rms", (16, 40), -1),
        ("group", (4, 64, 5, 6), 1),
        ("group", (4, 5, 6, 64), -1),
        ("instance", (4, 8, 5, 6), 1),
        ("instance", (4, 5, 6, 8), -1),
    ],
)
def test_preallocated_calls_compute_the_operation(op, shape, axis):
    """The "out=" columns time the real operation: both libraries' outputs match NumPy's."""
    from fastnorm._bench import kernel_cases as kc

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    expected_y = kc.numpy_forward_backward(op, x, None, axis)
    expected_dx = kc.numpy_forward_backward(op, x, dy, axis)
    run = kc._fastnorm_out_impl(op, x, dy, axis)
    run()
    np.testing.assert_allclose(run.outputs[0], expected_y, atol=2e-5)
    np.testing.assert_allclose(run.outputs[1], expected_dx, atol=2e-5)
    pytest.importorskip("torch")
    run = kc._torch_out_impl(op, x, dy, axis)
    if op == "rms":  # PyTorch has no out= form of RMS norm
        assert run is None
        return
    run()
    y, dx = (np.asarray(t.numpy()) for t in run.outputs)
    if op != "layer":  # PyTorch's outputs are NCHW, (1, N * C, L) for instance norm
        nchw = np.moveaxis(x, axis, 1).shape
        y, dx = (np.moveaxis(a.reshape(nchw), 1, axis) for a in (y, dx))
    np.testing.assert_allclose(y, expected_y, atol=2e-5)
    np.testing.assert_allclose(dx, expected_dx, atol=2e-5)


def test_every_compiled_case_runs_its_own_graph(monkeypatch):
    """torch.compile's peer must stay compiled past Dynamo's recompile limit (8 per function
    code): the cases share one forward function."""
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from fastnorm._bench import kernel_cases

    monkeypatch.setattr(kernel_cases, "COMPILE_BACKEND", "eager")  # Dynamo's part only: fast
    cases = [("batch", (8, 4), 1), ("layer", (8, 4), None), ("group", (2, 32, 3), 1)]
    cases += [("instance", (2, 4, 3), 1), ("rms", (8, 4), None)]
    rng = np.random.default_rng(0)
    before = counters["stats"]["unique_graphs"]
    runs = 0
    for dtype in (np.float32, np.float64):
        for op, shape, axis in cases:
            x = rng.standard_normal(shape).astype(dtype)
            for dy in (None, np.ones_like(x)):
                kernel_cases._torch_impl(op, x, dy, axis, compiled=True)()
                runs += 1
    torch._dynamo.reset()
    assert counters["stats"]["unique_graphs"] - before == runs
