"""One benchmark case: the same operation in several libraries, timed side by side."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class BenchCase:
    """A row of the benchmark table.

    ``make()`` builds the inputs once and returns ``{library: callable}`` for the libraries that
    can run the case (keys among "fastnorm", "numpy", "torch", "sklearn"); each callable runs the
    operation once. A library that is not installed or does not apply is simply left out.
    ``bytes_moved`` is what the operation must read and write at least, for the roofline column.
    """

    name: str
    group: str
    make: Callable[[], dict]
    bytes_moved: int | None = None
    target: str = ""
    repeat: int = 7
    tags: tuple = field(default_factory=tuple)
