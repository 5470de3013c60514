"""The evaluation gate's scorers (``metric: scorer``): a name resolved to a function among what
is installed where the gate runs, and called under the contract the docs give. Used by the gate
replay (``backends.evaluating``), so by both backends and ``modelplane evaluate``.

A scorer is code run by the platform, so it is only ever imported from this Python environment
(the embedded platform's, the operator's image, the CI job's): never from a Model's sources.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from modelplane.api.model import SCORER_GROUP
from modelplane.errors import ScorerError

_INSTALL_HINT = "install the package that holds it where the gate runs"


@dataclass(frozen=True)
class Scorer:
    name: str
    function: Callable[..., object]
    takes_inputs: bool  # called with the example's inputs as a third argument

    def __call__(self, answer: object, expected: object, inputs: object, where: str) -> float:
        """The scorer's number for one answer; ScorerError naming the example (``where``) if
        it raises or returns anything but a number in [0, 1]."""
        arguments = (answer, expected, inputs) if self.takes_inputs else (answer, expected)
        try:
            value = self.function(*arguments)
        except Exception as exc:  # the user's code: any failure is the scorer's
            raise ScorerError(
                f"scorer {self.name} raised on {where}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(value, numbers.Real) or not 0 <= float(value) <= 1:
            raise ScorerError(
                f"scorer {self.name} returned {value!r:.80} on {where}; a scorer returns a "
                "number from 0 to 1"
            )
        return float(value)


def load_scorer(name: str) -> Scorer:
    """The scorer ``name`` (``package.module:function``, or an entry point's name in group
    ``modelplane.scorers``), imported here; ScorerError saying why it cannot be."""
    function = _imported(name) if ":" in name else _entry_point(name)
    if not callable(function):
        raise ScorerError(f"scorer {name} is a {type(function).__name__}, not a function")
    return Scorer(name, function, _takes_inputs(function))


def _imported(name: str) -> object:
    module_name, _, path = name.partition(":")
    try:
        found: object = importlib.import_module(module_name)
    except Exception as exc:  # not installed, or the module fails as it is imported
        raise ScorerError(
            f"scorer {name} cannot be imported here ({type(exc).__name__}: {exc}); {_INSTALL_HINT}"
        ) from exc
    for part in path.split("."):
        if not hasattr(found, part):
            raise ScorerError(f"scorer {name}: {module_name} has no {path}")
        found = getattr(found, part)
    return found


def _entry_point(name: str) -> object:
    found = sorted(entry_points(group=SCORER_GROUP, name=name), key=lambda e: e.value)
    if not found:
        raise ScorerError(
            f"scorer {name}: no entry point of that name in group {SCORER_GROUP} is installed "
            f"here; {_INSTALL_HINT}, or name a function as package.module:function"
        )
    try:
        return found[0].load()
    except Exception as exc:
        raise ScorerError(
            f"scorer {name} ({found[0].value}) cannot be imported here "
            f"({type(exc).__name__}: {exc}); {_INSTALL_HINT}"
        ) from exc


def _takes_inputs(function: Callable[..., object]) -> bool:
    try:
        inspect.signature(function).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some built-ins): the two-argument contract
        return False
    return True
