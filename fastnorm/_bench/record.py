"""One bench run as a JSON record (machine, versions, thread counts, command, every row), and the
README's performance table generated from it: the README's numbers are never typed by hand.

``python -m fastnorm bench --json run.json`` writes a record;
``python -m fastnorm._bench.record run.json README.md`` rewrites the table between the README's
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` markers.
"""

import json
import os
import platform
import re
import sys
from importlib import metadata

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def machine():
    """CPU model, logical CPUs and the operating system."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "os": platform.platform()}


def versions():
    out = {"python": platform.python_version()}
    for name in ("fastnorm", "numpy", "numba", "scikit-learn", "scipy", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def new_record(argv=None):
    # the opt-in torch.compile column is part of how the run was made
    env = "FASTNORM_BENCH_COMPILE=1 " if os.environ.get("FASTNORM_BENCH_COMPILE") == "1" else ""
    return {
        "command": env
        + "python -m fastnorm "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
    }


def save(record, path):
    """Write ``record`` (rows with their statistics) as JSON; thread counts become strings."""
    data = dict(record)
    data["results"] = {
        str(n): [
            {k: v for k, v in row.items() if k != "stats"}
            | {"stats": {lib: dict(s) for lib, s in row["stats"].items()}}
            for row in rows
        ]
        for n, rows in record.get("results", {}).items()
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def _ms(seconds):
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def _ratio(stats, lib):
    base = "fastnorm out=" if lib.endswith(" out=") else "fastnorm"
    if lib not in stats or base not in stats:
        return "-"
    if stats[lib]["noisy"] or stats[base]["noisy"]:
        return "noisy"
    return f"{stats[lib]['min'] / stats[base]['min']:.2f}x"


def table(record, peers=("torch", "torch out=", "compile", "numpy", "sklearn")):
    """The markdown table: fastnorm's time and each peer's ratio (peer / fastnorm, > 1: fastnorm
    is faster) at every thread count of the record, and the provenance underneath. "torch out="
    compares both libraries writing into preallocated outputs."""
    results = record["results"]
    counts = sorted(results, key=int)
    present = [p for p in peers if any(p in row["stats"] for n in counts for row in results[n])]
    head = ["case"]
    for n in counts:
        head += [f"fastnorm, {n}T (ms)"]
        head += [
            f"{p.removesuffix(' out=')}/fastnorm{', out=' * p.endswith(' out=')}, {n}T"
            for p in present
        ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_case = {}
    for n in counts:
        for row in results[n]:
            by_case.setdefault(row["case"], {})[n] = row["stats"]
    for case, per_count in by_case.items():
        cells = [case]
        for n in counts:
            stats = per_count.get(n, {})
            fn = stats.get("fastnorm")
            cells.append("-" if fn is None else _ms(fn["min"]))
            cells += [_ratio(stats, p) for p in present]
        lines.append("| " + " | ".join(cells) + " |")
    m, v = record["machine"], record["versions"]
    lines.append("")
    lines.append(
        f"Generated from one run of `{record['command']}` on {m['cpu']} ({m['logical_cpus']} "
        f"logical CPUs, {m['os']}); Python {v['python']}, numpy {v['numpy']}, numba "
        f"{v['numba']}, scikit-learn {v['scikit-learn']}, torch {v['torch']}. Minimum of "
        "interleaved repetitions; 'noisy': a library's repetitions spread over 2x; 'torch out=': "
        "both libraries writing into preallocated outputs (`out=` forward and backward)."
    )
    return "\n".join(lines)


# the clauses of a case's target that a record can check: ">= 1.5x torch", ">= 5x sklearn",
# ">= 1.3x faster than sklearn (no BN)", ">= 85% roofline"; others (relative to another row, or a
# peer's out= column) are not
_CLAUSE = re.compile(
    r">= ([0-9.]+)(x|%) (?:faster than )?(torch|compile|numpy|sklearn|roofline)\b(?! out=)"
)


def target_clauses(target):
    """[(peer, minimum)] of the checkable clauses of ``target``: a peer's time / fastnorm's,
    or the roofline fraction (peer "roofline", minimum a fraction)."""
    clauses = []
    for value, unit, peer in _CLAUSE.findall(target):
        clauses.append((peer, float(value) / (100.0 if unit == "%" else 1.0)))
    return clauses


def _check(row, peer, minimum):
    stats = row["stats"]
    if "fastnorm" not in stats:
        return "-"
    if peer == "roofline":
        roof = row.get("roofline")
        if isinstance(roof, str):  # "in cache"
            return roof
        if not isinstance(roof, (int, float)):
            return "-"
        if stats["fastnorm"]["noisy"]:  # the roofline comes from fastnorm's time
            return "noisy"
        return f"{'yes' if roof >= minimum else 'no'}, {100 * roof:.0f} %"
    text = _ratio(stats, peer)  # "-" or "noisy" where there is no ratio
    if not text.endswith("x"):
        return text
    r = stats[peer]["min"] / stats["fastnorm"]["min"]
    return f"{'yes' if r >= minimum else 'no'}, {r:.2f}x"


def targets_table(record):
    """Markdown: each case with a checkable target, and whether the record meets each clause at
    every thread count ("yes, 2.31x" / "no, 0.82x"; "noisy": the ratio was withheld)."""
    results = record["results"]
    counts = sorted(results, key=int)
    lines = ["| case | target | " + " | ".join(f"{n}T" for n in counts) + " |"]
    lines.append("|" + "---|" * (2 + len(counts)))
    rows = {}
    for n in counts:
        for row in results[n]:
            rows.setdefault(row["case"], {})[n] = row
    for case, per_count in rows.items():
        target = next(iter(per_count.values())).get("target", "")
        clauses = target_clauses(target)
        if not clauses:
            continue
        cells = [case, target]
        for n in counts:
            row = per_count.get(n)
            checks = [] if row is None else [_check(row, p, m) for p, m in clauses]
            cells.append("; ".join(checks) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(record, readme_path):
    """Replace the text between the README's markers by ``table(record)``."""
    with open(readme_path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise ValueError(f"{readme_path} has no {START} ... {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    with open(readme_path, "w") as f:
        f.write(f"{before}{START}\n{table(record)}\n{END}{after}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m fastnorm._bench.record RUN.json README.md")
    with open(sys.argv[1]) as f:
        update_readme(json.load(f), sys.argv[2])
