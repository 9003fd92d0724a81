"""Command line: ``python -m fastnorm demo``, ``bench`` and ``compile``."""

import argparse
import sys


def _int_from(minimum, accepted):
    """argparse ``type=``: an integer >= ``minimum`` (argparse names the option)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {accepted}, got {text!r}")
        return value

    return parse


positive_int = _int_from(1, "a positive integer")
non_negative_int = _int_from(0, "an integer >= 0")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnorm")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train on scikit-learn's digits with and without normalization",
        description=(
            "Train MLPs with no, batch, layer and group normalization (and scikit-learn's "
            "MLPClassifier) on scikit-learn's digits, fit the normalizers in a pipeline, and time "
            "three kernels against NumPy and PyTorch. Every path runs once first (the warm-up, "
            "where Numba compiles or loads its kernels); the compile time is printed on its own "
            "line (0 s when every kernel comes from Numba's cache) and never counted in the "
            "tables. Takes under a minute with a cold cache, seconds with a warm one."
        ),
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the train/test split and the weights"
    )
    demo.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help=(
            "threads for BLAS, fastnorm's kernels and PyTorch (default 1: on networks this small "
            "threads cost more than they save, and unpinned BLAS threads make times swing)"
        ),
    )
    demo.add_argument(
        "--epochs", type=positive_int, default=None, help="training epochs per MLP (default 30)"
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a reduced run (4 epochs, small kernel shapes, fewer timing repetitions)",
    )
    demo.add_argument(
        "--no-torch",
        dest="torch",
        action="store_false",
        help="leave PyTorch out of the kernel timings even when it is installed",
    )
    bench = sub.add_parser("bench", help="time fastnorm against NumPy, PyTorch and scikit-learn")
    bench.add_argument(
        "--group",
        action="append",
        choices=["kernels", "preprocessing", "mlp"],
        help="case groups to run (default: all)",
    )
    bench.add_argument("-k", "--filter", default="", help="run only cases whose name contains this")
    bench.add_argument(
        "--json", default=None, help="also write the run (machine, versions, rows) to this file"
    )
    bench.add_argument(
        "--repeat", type=positive_int, default=None, help="timed runs per case (best is kept)"
    )
    bench.add_argument(
        "--threads",
        type=positive_int,
        action="append",
        default=None,
        help="thread count for every library (repeatable; default: 1 and all of Numba's)",
    )
    compile_ = sub.add_parser(
        "compile", help="compile every kernel into Numba's cache, so first calls load it"
    )
    compile_.add_argument(
        "--processes",
        type=non_negative_int,
        default=None,
        help="worker processes (default: CPU count; 0: compile in this process)",
    )
    compile_.add_argument(
        "--dtype", action="append", choices=["float32", "float64"], help="default: both"
    )
    args = parser.parse_args(argv)
    if args.command == "compile":
        return _compile(args)
    if args.command == "bench" and args.threads is not None:
        import numba

        for n in args.threads:
            if n > numba.config.NUMBA_NUM_THREADS:
                bench.error(
                    f"argument --threads: must be at most {numba.config.NUMBA_NUM_THREADS} "
                    f"(Numba's thread pool on this machine), got {n}"
                )
    if args.command == "demo":
        import numba

        if args.threads > numba.config.NUMBA_NUM_THREADS:
            demo.error(
                f"argument --threads: must be at most {numba.config.NUMBA_NUM_THREADS} "
                f"(Numba's thread pool on this machine), got {args.threads}"
            )
        from ._demo import run_demo

        run_demo(
            seed=args.seed,
            threads=args.threads,
            epochs=args.epochs,
            quick=args.quick,
            torch=args.torch,
        )
        return 0
    from ._bench import record as bench_record
    from ._bench import runner

    cases = [c for c in runner.load_cases(args.group) if args.filter in c.name]
    record = bench_record.new_record(argv if argv is not None else sys.argv[1:])
    runner.run(cases, repeat=args.repeat, threads=args.threads, record=record)
    if args.json:
        bench_record.save(record, args.json)
    return 0


def _compile(args):
    from ._compile import DTYPES, precompile

    result = precompile(
        tuple(args.dtype or DTYPES), processes=args.processes, log=lambda line: print(line)
    )
    print(
        f"compiled {result['compiled']} functions in {result['seconds']:.1f} s"
        + (f"; {result['missed']} not cached" if result["missed"] else "; all cached")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
