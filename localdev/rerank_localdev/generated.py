"""The `write|check` command line of a file generated from code (the dashboard JSON, the API reference): `write`
rewrites it, `check` fails when the file in the repository is not what the code gives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def write_or_check(argv: list[str] | None, output: Path, render: Callable[[], str], prog: str, remedy: str) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in ([], ["write"]):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render())
        print(output)
        return 0
    if argv == ["check"]:
        if output.exists() and output.read_text() == render():
            return 0
        print(f"{output} is not what {prog} gives: {remedy}", file=sys.stderr)
        return 1
    print(f"usage: python -m {prog} [write|check]", file=sys.stderr)
    return 2
