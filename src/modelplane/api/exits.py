"""How a runtime process ends: the contract with whatever supervises it (``modelplane up``'s
supervisor, a kubelet), which reads only the exit code and the last log line.

The exit code tells a failure that a restart may cure (an artifact not there yet, a network
error: :data:`EXIT_LOAD_FAILED`) from one that no restart can cure: the installation lacks an
extra the model's format needs, so every restart would fail the same way. A supervisor leaves a
replica that exited with a code of :data:`PERMANENT` failed, without restarting it, and reports
the condition reason given there.
"""

from __future__ import annotations

from modelplane.errors import MissingExtraError, ModelplaneError

EXIT_OK = 0
EXIT_LOAD_FAILED = 3
# EX_CONFIG of sysexits.h; neither Python nor click exits with it on their own.
EXIT_MISSING_EXTRA = 78

# Exit codes a restart cannot cure, with the condition reason each is reported under.
PERMANENT: dict[int, str] = {EXIT_MISSING_EXTRA: "MissingExtra"}


def load_failure_code(error: ModelplaneError) -> int:
    """The exit code for a model that failed to load with ``error``."""
    return EXIT_MISSING_EXTRA if isinstance(error, MissingExtraError) else EXIT_LOAD_FAILED
