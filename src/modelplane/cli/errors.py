"""How the CLI fails: one line with the cause, one with a hint, an exit code; no traceback."""

from __future__ import annotations

import sys

from modelplane.errors import ModelplaneError, SpecError

EXIT_USAGE = 2
EXIT_SPEC = 4


class CliError(ModelplaneError):
    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def report(error: ModelplaneError) -> int:
    """Print ``error`` for a person and return the exit code to leave with."""
    if isinstance(error, SpecError) and error.problems:
        print(f"error: {error.summary}", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    hint = getattr(error, "hint", "")
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    if isinstance(error, CliError):
        return error.exit_code
    return EXIT_SPEC if isinstance(error, SpecError) else 1
