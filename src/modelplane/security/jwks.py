"""The identity provider's signing keys (a JWKS) for ``TokenVerifier``: read once from a file, or
fetched from a URL in the background so that checking a token never waits on the network.

Tokens are checked on the control API's and the gateway's event loop, where a fetch would stall
every request while the identity provider is slow or down. So ``RemoteKeys`` owns a daemon
thread that fetches the set when started, every ``refresh`` seconds after a success (every
``RETRY_SECONDS`` after a failure), and at once, at most every ``ASK_GAP_SECONDS``, when a
token names a key id the set lacks (the provider rotated its keys). A check only reads the last
good set; a failed fetch keeps it and logs a warning. ``modelplane up`` and ``modelplane
gateway`` start it before they serve and close it after (``with verifier:``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import httpx
import jwt

from modelplane.errors import UnauthenticatedError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = 30.0  # after a failed fetch, instead of waiting a whole refresh
ASK_GAP_SECONDS = 30.0  # fetches asked for by unknown key ids: at most one in this long


class SigningKeys(Protocol):
    def current(self) -> jwt.PyJWKSet:
        """The keys to check tokens with, or UnauthenticatedError when there are none yet."""
        ...

    def unknown(self, kid: str) -> None:
        """A token named ``kid``, which ``current()`` lacks."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class FileKeys:
    """A JWKS file, read once: a broken file is an error at start."""

    def __init__(self, path: Path) -> None:
        self._keys = jwt.PyJWKSet.from_json(path.read_text())

    def current(self) -> jwt.PyJWKSet:
        return self._keys

    def unknown(self, kid: str) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class RemoteKeys:
    """A JWKS URL, fetched by a thread of its own between ``start()`` and ``close()``."""

    def __init__(
        self, url: str, refresh: float = REFRESH_SECONDS, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.url, self.refresh, self.timeout = url, refresh, timeout
        self._keys: jwt.PyJWKSet | None = None
        self._error = "fetching has not been started"
        self._wake, self._stop, self._tried = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        self._asked = float("-inf")
        self._asking = threading.Lock()
        self._thread: threading.Thread | None = None

    def current(self) -> jwt.PyJWKSet:
        keys = self._keys
        if keys is None:
            self._ask()
            raise UnauthenticatedError(
                f"the identity provider's keys ({self.url}) are not loaded yet: {self._error}"
            )
        return keys

    def unknown(self, kid: str) -> None:
        self._ask()

    def start(self) -> None:
        """Fetch from now on. Waits for the first fetch, at most ``timeout`` seconds, so that a
        platform whose identity provider is up takes tokens from its first request; one whose
        provider is down starts anyway and refuses tokens, saying why, until a fetch succeeds."""
        if self._thread is not None:
            return
        self._error = "the first fetch has not finished"
        self._thread = threading.Thread(target=self._run, name=f"jwks {self.url}", daemon=True)
        self._thread.start()
        if not self._tried.wait(self.timeout):
            log.warning("the identity provider's keys (%s) are not loaded after %g s; "
                        "tokens are refused until they are", self.url, self.timeout)  # fmt: skip

    def close(self) -> None:
        """Stop fetching. A fetch under way is left to its timeout (the thread is a daemon)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout)

    def _ask(self) -> None:
        with self._asking:
            now = time.monotonic()
            if now - self._asked < ASK_GAP_SECONDS:
                return
            self._asked = now
        self._wake.set()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            while not self._stop.is_set():
                fetched = self._fetch(client)
                self._tried.set()
                self._wake.wait(self.refresh if fetched else min(self.refresh, RETRY_SECONDS))
                self._wake.clear()  # here, not before the fetch: a close() meanwhile is seen

    def _fetch(self, client: httpx.Client) -> bool:
        try:
            response = client.get(self.url, headers={"Accept": "application/json"})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
            return self._failed(f"{type(exc).__name__}: {exc}")
        if response.status_code != httpx.codes.OK:
            return self._failed(f"HTTP {response.status_code} {response.reason_phrase}")
        try:
            keys = jwt.PyJWKSet.from_json(response.text)
        # A document fails to parse in many ways (JSON, pyjwt, a list where an object belongs),
        # and any of them must leave the thread running with the last good keys.
        except Exception as exc:
            return self._failed(f"not a usable JWKS: {exc}")
        first = self._keys is None
        self._keys, self._error = keys, ""
        ids = ", ".join(str(k.key_id) for k in keys.keys)
        log.log(logging.INFO if first else logging.DEBUG,
                "the identity provider's keys (%s) loaded: %s", self.url, ids)  # fmt: skip
        return True

    def _failed(self, reason: str) -> bool:
        self._error = reason
        kept = "keeping the last good ones" if self._keys is not None else "none loaded yet"
        log.warning("fetching the identity provider's keys (%s) failed, %s: %s",
                    self.url, kept, reason)  # fmt: skip
        return False
