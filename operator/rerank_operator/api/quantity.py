"""Kubernetes resource quantities (``50Gi``, ``500m``, ``1.5``, ``2e3``) as exact numbers (pure).

The API server compares quantities in CEL (``quantity(x).compareTo(...)``); pydantic repeats those
rules (requests <= limits, a cache larger than 0) and the builders size defaults with these.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SUFFIXES = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


def parse_quantity(value: str | int) -> Decimal:
    """The value of a quantity in base units (cores, bytes). Raises ValueError for other text."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _SUFFIXES[suffix]


def format_bytes(value: Decimal | int) -> str:
    """A byte count as a quantity, rounded up to whole MiB (``12Gi``, ``1536Mi``)."""
    mib = math.ceil(Decimal(value) / _SUFFIXES["Mi"])
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"
