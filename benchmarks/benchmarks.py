"""asv suite: the same case tables as ``python -m fastnorm bench``, timing fastnorm's side only.

Run ``asv run`` for history, or ``asv run --python=same --quick`` against the installed tree.
"""

from fastnorm._bench import runner


def _suite(group):
    cases = {case.name: case for case in runner.load_cases([group])}

    class Suite:
        params = [list(cases)]
        param_names = ["case"]
        timeout = 600
        number = 1
        repeat = (3, 7, 30.0)

        def setup(self, name):
            self.run = cases[name].make()["fastnorm"]
            self.run()  # compile (or load from cache) outside the timing

        def time_fastnorm(self, name):
            self.run()

    Suite.__name__ = f"Time{group.capitalize()}"
    return Suite


TimeKernels = _suite("kernels")
TimePreprocessing = _suite("preprocessing")
TimeMlp = _suite("mlp")
