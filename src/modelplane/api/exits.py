"""How a runtime process ends: the contract with whatever supervises it (``modelplane up``'s
supervisor, a kubelet), which reads only the exit code and the last log line.

The exit code names the kind of failure, and with it the condition reason a supervisor reports
(``REASONS``) and whether a restart may cure it: an artifact not there yet may be there at the
next start (``EXIT_ARTIFACT_UNAVAILABLE``: restarted with backoff, the Model ``Stalled`` with
``ArtifactUnavailable`` meanwhile); an installation without an extra the model's format needs
fails the same way every time (``EXIT_MISSING_EXTRA`` is ``PERMANENT``: left failed, reported
once, never restarted).
"""

from __future__ import annotations

from modelplane.errors import ArtifactError, MissingExtraError, ModelplaneError

EXIT_OK = 0
EXIT_LOAD_FAILED = 3  # the model could not be loaded; the reason is the log's last line
# 4 is the CLI's exit code for an invalid spec (modelplane.cli.errors.EXIT_SPEC)
EXIT_ARTIFACT_UNAVAILABLE = 5  # the artifact could not be fetched or verified
# EX_CONFIG of sysexits.h; neither Python nor click exits with it on their own.
EXIT_MISSING_EXTRA = 78

# The condition reason each kind of failure is reported under (others: the log's last words).
REASONS: dict[int, str] = {
    EXIT_ARTIFACT_UNAVAILABLE: "ArtifactUnavailable",
    EXIT_MISSING_EXTRA: "MissingExtra",
}
# Exit codes no restart can cure.
PERMANENT = frozenset({EXIT_MISSING_EXTRA})


def load_failure_code(error: ModelplaneError) -> int:
    """The exit code for a model that failed to load with ``error``."""
    if isinstance(error, MissingExtraError):
        return EXIT_MISSING_EXTRA
    if isinstance(error, ArtifactError):
        return EXIT_ARTIFACT_UNAVAILABLE
    return EXIT_LOAD_FAILED
