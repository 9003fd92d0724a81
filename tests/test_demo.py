"""``python -m fastnorm demo``: its options, its tables, and its compile-time report (no timing
assertions: the machine decides those)."""

import json
import re

import numba
import pytest

from fastnorm.__main__ import main
from fastnorm._demo import _CompileTimer, run_demo

MLP_ROWS = (
    "scikit-learn MLPClassifier",
    "fastnorm, no normalization",
    "fastnorm, batch norm",
    "fastnorm, layer norm",
    "fastnorm, group norm (8 groups)",
)
NORMALIZER_ROWS = (
    "scikit-learn StandardScaler",
    "BatchNormalizer",
    "BatchNormalizer, 10 partial_fit chunks",
    "LayerNormalizer",
    "GroupNormalizer(8)",
)


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--seed", "--threads", "--epochs", "--quick", "--no-torch"):
        assert option in text
    assert "compile" in text and "warm-up" in text


@pytest.fixture(scope="module")
def demo_run():
    """The reduced demo, twice in one process: the second run finds every kernel compiled."""
    first, second = [], []
    first_result = run_demo(echo=first.append, quick=True, torch=False, epochs=3)
    second_result = run_demo(echo=second.append, quick=True, torch=False, epochs=3)
    return first, first_result, second, second_result


def _row(lines, label):
    matches = [line for line in lines if line.strip().startswith(label + "  ")]
    assert len(matches) == 1, (label, lines)
    return matches[0].strip()[len(label) :].split()


def test_mlp_table(demo_run):
    lines, result, _, _ = demo_run
    text = "\n".join(lines)
    assert re.search(r"model\s+test accuracy\s+epochs to 95 %\s+ms / epoch", text)
    for label in MLP_ROWS:
        accuracy, *epochs, ms = _row(lines, label)
        assert 0.5 < float(accuracy) <= 1.0  # 3 epochs on digits: well above chance
        assert " ".join(epochs) in {"1", "2", "3", "> 3"}
        assert float(ms) > 0
    assert [row[0] for row in result["mlp"]] == list(MLP_ROWS)
    # the table's "epochs to 95 %" agrees with its accuracy after the last epoch
    for _, accuracy, epochs, _ in result["mlp"]:
        if accuracy >= 0.95:
            assert epochs != "> 3"


def test_normalizer_table(demo_run):
    lines, result, _, _ = demo_run
    for label in NORMALIZER_ROWS:
        cells = _row(lines, label)
        assert 0.9 < float(cells[0]) <= 1.0
    # the BatchNormalizer rows report their distance to StandardScaler's means: rounding only
    for label, _, _, diff in result["normalizers"]:
        if label.startswith("BatchNormalizer"):
            assert float(diff) < 1e-9
        else:
            assert diff == "-"


def test_kernel_table_without_torch(demo_run):
    lines, result, _, _ = demo_run
    text = "\n".join(lines)
    assert "NumPy / fastnorm" in text
    assert "PyTorch / fastnorm" not in text  # torch=False: no PyTorch column
    assert [row[0].split()[0] for row in result["kernels"]] == [
        "batch_norm",
        "layer_norm",
        "group_norm",
    ]
    for row in result["kernels"]:
        assert float(row[1]) > 0
        assert row[2] == "noisy" or re.fullmatch(r"\d+\.\dx", row[2])


def test_compilation_is_reported_separately_and_is_zero_when_nothing_compiles(demo_run):
    first, first_result, second, second_result = demo_run
    assert sum(line.startswith("compilation: ") for line in first) == 1
    # everything the first run needed is compiled (or loaded) now: the second compiles nothing
    assert second_result["compiled_functions"] == 0
    assert second_result["compile_seconds"] == 0.0
    assert any(line.startswith("compilation: 0 s") for line in second)
    assert first_result["compile_seconds"] <= first_result["warm_up_seconds"]


def test_compile_timer_counts_compilations_and_not_calls():
    @numba.njit  # a new function: it must compile, there is no cache
    def twice(a):
        return 2 * a

    timer = _CompileTimer()
    with timer.listening():
        assert twice(21) == 42
    assert timer.functions >= 1 and timer.seconds > 0
    seconds = timer.seconds
    with timer.listening():
        twice(1)  # compiled already: no event
    assert timer.seconds == seconds


def test_cli_runs_the_demo(capsys):
    assert main(["demo", "--quick", "--no-torch", "--epochs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed 1" in out and "2 epochs" in out and "demo finished in" in out


def test_cli_rejects_too_many_threads(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)])
    assert "--threads" in capsys.readouterr().err


@pytest.mark.parametrize("threads", [1, 2])
def test_reported_compilation_is_all_of_it_on_an_empty_cache(tmp_path, threads):
    """In a fresh process with an empty Numba cache, the compile report counts every compilation
    of the run (the scaler's fit before the tables included), and all of it happens before the
    tables: none of them times a compilation (at 2 threads too, where sizes pick threaded
    twins)."""
    from subprocess_script import run_script

    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("Numba has fewer threads on this machine")
    done = run_script(
        f"""
        import json
        from fastnorm._demo import _CompileTimer, run_demo
        whole_run = _CompileTimer()
        with whole_run.listening():
            result = run_demo(
                echo=lambda line: None, quick=True, torch=False, epochs=1, threads={threads}
            )
        print(json.dumps({{
            "reported": result["compiled_functions"],
            "after_warm_up": result["compiled_after_warm_up"],
            "whole_run": whole_run.functions,
        }}))
        """,
        timeout=600,
        env={"NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["whole_run"] > 0  # the cache was empty
    assert counts["reported"] == counts["whole_run"]
    assert counts["after_warm_up"] == 0


def test_a_compilation_after_the_warm_up_is_reported(monkeypatch):
    """A path the warm-up missed is counted and said, not hidden in a table's time."""
    import fastnorm._demo as demo

    calls = []
    original = demo._timed_sections

    def with_a_new_function(*args):
        @numba.njit
        def fresh(a):  # never compiled before: one compilation inside the timed sections
            return a + 1

        calls.append(fresh(1))
        return original(*args)

    monkeypatch.setattr(demo, "_timed_sections", with_a_new_function)
    lines = []
    result = demo.run_demo(echo=lines.append, quick=True, torch=False, epochs=1)
    assert calls == [2]
    assert result["compiled_after_warm_up"] >= 1
    assert any("compiled after the warm-up" in line for line in lines)
