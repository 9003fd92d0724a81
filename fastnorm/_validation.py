"""Parameter rules, declared once and used by every layer of fastnorm.

The functional API, the layers, the transformers and the estimators check their parameters here,
so a parameter has the same accepted values everywhere and its error names it the same way. In the
spirit of scikit-learn's ``_parameter_constraints``: a rule describes what is accepted, ``check``
applies it (``TypeError`` for a value of the wrong kind, ``ValueError`` for one out of range) and
returns the value normalized (a Python ``float``, ``int``, ``bool`` or tuple).

Estimators declare a ``_parameter_constraints`` dict ``name -> rule`` and call
:func:`check_params`.
"""

import contextlib
import math
import numbers
import re

import numpy as np

__all__ = [
    "Interval",
    "Options",
    "AnyOf",
    "Boolean",
    "NoneOr",
    "IntTuple",
    "FloatDtype",
    "EPS",
    "EPS_OR_NONE",
    "MOMENTUM",
    "MOMENTUM_OR_NONE",
    "POSITIVE_INT",
    "NON_NEGATIVE_INT",
    "FLOAT_DTYPE",
    "check",
    "check_params",
    "input_errors",
]


class Rule:
    description = ""

    def check(self, value, name):
        raise NotImplementedError

    def fail(self, value, name, error=ValueError):
        raise error(f"{name} must be {self.description}, got {value!r}")


class Interval(Rule):
    """A real or integral number in a range. ``closed`` is "both", "left", "right" or "neither";
    a missing bound is open. Real numbers must be finite; bools are never numbers."""

    def __init__(self, kind, left=None, right=None, closed="both"):
        self.kind = kind
        self.left, self.right, self.closed = left, right, closed
        word = "an integer" if kind is numbers.Integral else "a real number"
        lo = "[" if closed in ("both", "left") and left is not None else "("
        hi = "]" if closed in ("both", "right") and right is not None else ")"
        if right is None and left is not None:
            self.description = f"{word} {'>=' if lo == '[' else '>'} {left}"
        elif left is None and right is not None:
            self.description = f"{word} {'<=' if hi == ']' else '<'} {right}"
        elif left is None:
            self.description = word
        else:
            self.description = f"{word} in {lo}{left}, {right}{hi}"

    def _in_range(self, v):
        if self.left is not None:
            if v < self.left or (v == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if v > self.right or (v == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def check(self, value, name):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.kind):
            self.fail(value, name, TypeError)
        number = int(value) if self.kind is numbers.Integral else float(value)
        if not math.isfinite(number) or not self._in_range(number):
            self.fail(value, name)
        return number


class Options(Rule):
    """One of a fixed set of values (strings, or None)."""

    def __init__(self, *options):
        self.options = options
        self.description = "one of " + ", ".join(repr(o) for o in options)

    def check(self, value, name):
        if not isinstance(value, (str, type(None))):
            self.fail(value, name, TypeError)
        if value not in self.options:
            self.fail(value, name)
        return value


class Boolean(Rule):
    """True or False (a NumPy bool too); strings and numbers are refused."""

    description = "a bool (True or False)"

    def check(self, value, name):
        if not isinstance(value, (bool, np.bool_)):
            self.fail(value, name, TypeError)
        return bool(value)


class NoneOr(Rule):
    """None, or a value accepted by ``rule``."""

    def __init__(self, rule):
        self.rule = rule
        self.description = f"None or {rule.description}"

    def check(self, value, name):
        if value is None:
            return None
        try:
            return self.rule.check(value, name)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must be {self.description}, got {value!r}") from None


class AnyOf(Rule):
    """A value accepted by one of ``rules`` (``ValueError`` when one of them took its kind but
    not its value, else ``TypeError``)."""

    def __init__(self, *rules):
        self.rules = rules
        self.description = " or ".join(r.description for r in rules)

    def check(self, value, name):
        error = TypeError
        for rule in self.rules:
            try:
                return rule.check(value, name)
            except ValueError:
                error = ValueError
            except TypeError:
                pass
        raise error(f"{name} must be {self.description}, got {value!r}")


class IntTuple(Rule):
    """A positive integer, or a non-empty sequence (not a string) of positive integers; returned
    as a tuple."""

    description = "a positive integer or a non-empty sequence of positive integers"

    def __init__(self, allow_empty=False):
        self.allow_empty = allow_empty
        if allow_empty:
            self.description = "a positive integer or a sequence of positive integers"

    def check(self, value, name):
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            items = (value,)
        elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            self.fail(value, name, TypeError)
        else:
            items = tuple(value)
        if not items and not self.allow_empty:
            self.fail(value, name)
        for item in items:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
                self.fail(value, name, TypeError)
            if item < 1:
                self.fail(value, name)
        return tuple(int(i) for i in items)


class FloatDtype(Rule):
    """A NumPy float32 or float64 dtype (anything ``numpy.dtype`` turns into one)."""

    description = "float32 or float64"

    def check(self, value, name):
        try:
            dtype = np.dtype(value)
        except TypeError:
            self.fail(value, name, TypeError)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            self.fail(value, name, TypeError)
        return dtype


# Rules shared across fastnorm: each parameter means the same thing everywhere.
EPS = Interval(
    numbers.Real, 0.0, None, closed="left"
)  # added to a variance; 0 allowed, as in torch
EPS_OR_NONE = NoneOr(EPS)  # RMS norm: None is the dtype's machine epsilon
MOMENTUM = Interval(numbers.Real, 0.0, 1.0, closed="both")  # weight of the newest batch
MOMENTUM_OR_NONE = NoneOr(
    MOMENTUM
)  # None: cumulative average (layers), exact statistics (transformer)
POSITIVE_INT = Interval(numbers.Integral, 1, None)
NON_NEGATIVE_INT = Interval(numbers.Integral, 0, None)
FLOAT_DTYPE = FloatDtype()
FUSED_ACTIVATION = Options(None, "relu")  # applied in batch norm's own pass


def check(value, name, rule):
    """``value`` checked against ``rule`` and normalized; errors name ``name``."""
    return rule.check(value, name)


def check_params(owner, constraints):
    """Check every attribute of ``owner`` named in ``constraints`` (``name -> rule``); returns a
    dict of the normalized values. For estimators, whose ``__init__`` only stores parameters."""
    return {name: rule.check(getattr(owner, name), name) for name, rule in constraints.items()}


@contextlib.contextmanager
def input_errors(accepted, names=("X",)):
    """Data validation (scikit-learn's ``validate_data``, ``check_array``) whose errors name the
    argument: a ``TypeError``/``ValueError`` whose message names none of ``names`` ("Expected 2D
    array", "could not convert string to float") is raised again, of the same type, with
    ``accepted`` ("X must be ...") in front of its message."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if any(re.search(rf"\b{re.escape(n)}\b", text) for n in names):
            raise
        try:
            error = type(exc)(f"{accepted}; {text}")
        except Exception:  # an exception type with another constructor: keep it as it is
            raise exc from None
        raise error from exc
