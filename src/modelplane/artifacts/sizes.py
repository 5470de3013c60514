"""Byte sizes as people write them (``20Gi``, ``500M``, ``1024``): Kubernetes quantity suffixes,
so ``--cache-size`` reads like a Model's ``resources.memory``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}  # fmt: skip
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")


def parse_size(text: str) -> int:
    """Bytes in ``text``; ValueError with the accepted forms if it is not a size."""
    found = _SIZE.match(text.strip())
    if found is None:
        raise ValueError(
            f"{text!r} is not a size; write bytes, or a number with a unit: 500Mi, 20Gi, 1T"
        )
    number, unit = found.groups()
    return int(float(number) * _UNITS[unit or ""])


def format_size(size: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f}{unit}"
    return f"{size}B"
