"""The one error tree of modelplane.

Every error the project raises on purpose derives from :class:`ModelplaneError`. Errors describe
what went wrong in domain terms; only HTTP adapters map them to status codes, and only the CLI maps
them to exit codes. Library exceptions are wrapped at the boundary with ``raise ... from exc``.

    ModelplaneError
    ├── SpecError                  a resource or manifest is invalid (carries field-level details)
    ├── ArtifactError              a model artifact cannot be fetched or fails verification
    │   ├── ArtifactNotFoundError      no object, file or directory at the source
    │   ├── ArtifactAccessDeniedError  the store refused the credentials it was given
    │   ├── ArtifactUnreachableError   the store did not answer, after retries (temporary)
    │   ├── DigestMismatchError        the content is not what source.sha256 pins
    │   └── UnsafeArtifactError        a path escapes the artifact, or it is over a size limit
    ├── ModelLoadError             an artifact was fetched but the model cannot be loaded
    │   └── MissingExtraError      the format needs an optional extra that is not installed
    ├── InferenceError             a request could not be served
    │   ├── InvalidRequestError    the request is malformed or does not fit the model
    │   │   └── PayloadTooLargeError   the body is over the limit
    │   ├── ModelNotFoundError     no such model (or version) is served here
    │   ├── ModelNotReadyError     the model exists but cannot serve yet (temporary)
    │   ├── DeadlineExceededError  the work ran past its time limit
    │   ├── EngineBusyError        every slot busy and the waiting list full (429: retry_after)
    │   ├── PredictError           the model itself failed on valid input
    │   ├── AdapterUnavailableError  a LoRA adapter cannot be fetched or loaded (its requests
    │   │                            only; the base model serves on)
    │   ├── ReplicaFailedError     no replica answered (after retries): the gateway's 502
    │   └── ClientGoneError        the client left: nobody to answer (gateway and runtime)
    ├── ResourceError              a control-plane operation on a stored object failed
    │   ├── NotFoundError          no object of that name
    │   ├── AlreadyExistsError     create of a name that exists
    │   ├── ConflictError          stale resourceVersion: re-read and retry (temporary)
    │   └── GoneError              a watch asked for history that was compacted away
    ├── AuthError                  a request's credentials do not allow it
    │   ├── UnauthenticatedError   no credential, or one that is not valid (HTTP 401)
    │   └── ForbiddenError         a valid credential without the role for this (HTTP 403)
    ├── QuotaExceededError         a namespace is over its quota (temporary: retry_after)
    ├── MetricsUnavailableError    the rollout analysis cannot read its metrics (temporary)
    ├── ScorerError                an evaluation gate's scorer cannot be imported where the gate
    │                              runs, raised, or returned anything but a number in [0, 1]
    ├── StateError                 the embedded platform's state cannot be used: a database of a
    │                              newer schema, a backup that is broken or not one, a state
    │                              directory in use
    └── KubernetesError            the Kubernetes API refused a request (temporary or not, by
        │                          its status: 409, 429 and 5xx pass)
        ├── CacheBehindError       the operator's cache is behind the cluster (temporary)
        ├── NotLeadingError        a write without a fresh lease, refused before it is sent
        └── LeadershipLostError    the operator's lease is gone: it stops and exits

Errors are *permanent* unless they say otherwise: ``retry_after`` is the seconds after which the
same call may succeed (None: it will not, as kopf's ``PermanentError`` against its
``TemporaryError(delay=...)``). A reconciler requeues on it; an HTTP adapter may send it as
``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass


class ModelplaneError(Exception):
    """Root of every error modelplane raises on purpose."""

    retry_after: float | None = None  # seconds until the same call may succeed; None: never

    @property
    def permanent(self) -> bool:
        return self.retry_after is None


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: where (``spec.scaling.minReplicas``), what was given, what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ModelplaneError):
    """A resource or manifest is invalid; ``problems`` name each offending field."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        self.problems = problems or []
        detail = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{message}: {detail}" if detail else message)
        self.summary = message


class ArtifactError(ModelplaneError):
    """A model artifact cannot be fetched, or its content does not match the pinned digest.

    Messages name the source (never a credential, nor a presigned query), what went wrong and
    what to do; a replica that cannot get its artifact reports ``ArtifactUnavailable``.
    """


class ArtifactNotFoundError(ArtifactError):
    """Nothing at the source: no such file, object, prefix or bucket."""


class ArtifactAccessDeniedError(ArtifactError):
    """The store refused the request: wrong or missing credentials, or no permission."""


class ArtifactUnreachableError(ArtifactError):
    """The store did not answer (connection refused, timeouts, 5xx) after every retry."""

    retry_after = 5.0


class DigestMismatchError(ArtifactError):
    """The fetched content's digest is not the one ``source.sha256`` pins."""


class UnsafeArtifactError(ArtifactError):
    """A path escapes the artifact's directory, or the artifact has more files or bytes than
    allowed."""


class ModelLoadError(ModelplaneError):
    """The artifact is here but the model cannot be loaded from it."""


class MissingExtraError(ModelLoadError):
    """A format needs an optional dependency; the message names the extra to install. No restart
    cures it, so a runtime that meets it exits with a code of its own (``api/exits.py``)."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra, which is not installed; "
            f"install it with: pip install 'modelplane[{extra}]'"
        )
        self.extra = extra


class InferenceError(ModelplaneError):
    """A request could not be served."""


class EngineBusyError(InferenceError):
    """Every slot of the engine is busy and its waiting list is full (HTTP 429); the same request
    may pass after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequestError(InferenceError):
    """The request is malformed or does not fit the model's inputs; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than the configured limit."""


class ModelNotFoundError(InferenceError):
    """No model (or model version) of that name is served here."""


class ModelNotReadyError(InferenceError):
    """The model is known but not ready: still loading, or failed to load."""

    retry_after = 1.0


class DeadlineExceededError(InferenceError):
    """The request ran past its time limit (a generation timeout, say) and was stopped."""


class PredictError(InferenceError):
    """The model raised on input that passed validation."""


class AdapterUnavailableError(InferenceError):
    """The LoRA adapter a request names cannot be fetched, or is not an adapter of this model;
    the message names it and says why. Its requests fail, the base model's are served."""


class ReplicaFailedError(InferenceError):
    """No replica answered the request, after the retries it was allowed."""

    def __init__(self, message: str, revision: str = "-") -> None:
        super().__init__(message)
        self.revision = revision  # the revision last tried


class ClientGoneError(InferenceError):
    """The client disconnected before its request was read: nobody waits for an answer."""


class ResourceError(ModelplaneError):
    """A control-plane operation on a stored object failed."""


class NotFoundError(ResourceError):
    """No object of that kind, namespace and name."""


class AlreadyExistsError(ResourceError):
    """An object of that name exists already."""


class ConflictError(ResourceError):
    """The write carried a stale resourceVersion: someone else changed the object first."""

    retry_after = 0.0


class GoneError(ResourceError):
    """A watch asked to resume from a resourceVersion older than the retained history."""


class AuthError(ModelplaneError):
    """The request's credentials do not allow it."""


class UnauthenticatedError(AuthError):
    """No credential, or one that is malformed, unknown, revoked or expired."""


class ForbiddenError(AuthError):
    """A valid credential whose roles do not cover this action in this namespace."""


class QuotaExceededError(ModelplaneError):
    """A namespace is over one of its limits; the same request may pass after ``retry_after``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MetricsUnavailableError(ModelplaneError):
    """The rollout analysis could not read its metrics (Prometheus down, a bad answer)."""

    retry_after = 5.0


class ScorerError(ModelplaneError):
    """An evaluation gate's scorer cannot be used; the message names it (and the example)."""


class StateError(ModelplaneError):
    """The embedded platform's stored state (its database, a backup of it) cannot be used as it
    is; the message says what was found and what to do."""


class KubernetesError(ModelplaneError):
    """The Kubernetes API server refused a request; the message carries its reason and
    ``code`` its HTTP status (0: no answer)."""

    def __init__(self, message: str, code: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class NotLeadingError(KubernetesError):
    """A write was asked for while this process does not hold a fresh lease: refused before it
    reached the server. The process is on its way out; a restart follows as a contender."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 0, retry_after=2.0)


class LeadershipLostError(KubernetesError):
    """The lease went to another process, or could not be renewed in time: this process stops
    reconciling and exits, so that Kubernetes restarts it as a contender."""


class CacheBehindError(KubernetesError):
    """The operator's watch cache is behind the cluster: try again once it catches up."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409, retry_after=2.0)
