"""The project's exception tree: everything `orchestrator` raises on purpose.

Grouped by what the caller does about it; the CLI maps each branch to one exit code::

    OrchestratorError                base
    ├── ConfigError                  bad settings or arguments              -> exit 2
    │   └── SettingsError            one settings field is invalid (.field)
    ├── InputError                   export unreadable or malformed         -> exit 2
    ├── RunDirError                  run dir/manifest unusable or mismatched -> exit 2
    ├── RunStopped                   the run stopped after sending (disk full, ...) -> exit 3
    ├── Interrupted                  Ctrl-C or SIGTERM, state saved (.active_jobs) -> exit 130
    └── ApiError                     anything the remote API did
        ├── TransportError           connection reset, timeout, DNS: retryable
        └── ApiStatusError           a non-2xx answer (.status, .body)
            ├── AuthError            401/403, bad credentials: fatal for the run
            ├── RateLimitedError     429 (request budget): retry after .retry_after
            ├── SlotsBusyError       429 "N active import users jobs": wait for a slot
            ├── ServerError          5xx: retryable
            └── RequestRejectedError other 4xx (400 connection, 413, 404): not retryable

Messages are written for the person at the terminal: what, where, what to do. Context travels in
fields, never inside the message text.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the project raises deliberately."""


class ConfigError(OrchestratorError):
    """Settings or command-line arguments are invalid."""


class SettingsError(ConfigError):
    """One field of a settings object is invalid.

    ``field`` is the settings field (``max_rps``), ``value`` what it was given and ``problem`` what
    is wrong with it; the message names the field, and the CLI names the flag that set it instead.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field} {value!r}: {problem}")


class InputError(OrchestratorError):
    """The export cannot be read: malformed JSON/NDJSON, truncated, not UTF-8, not objects.

    ``where`` names the place: ``byte 1234`` or ``line 17``.
    """

    def __init__(self, message: str, *, path: str, where: str | None = None) -> None:
        self.path = path
        self.where = where
        location = f"{path}, {where}" if where else path
        super().__init__(f"{location}: {message}")


class RunDirError(OrchestratorError):
    """The run directory or its manifest is unusable, or belongs to other input/settings."""


class RunStopped(OrchestratorError):
    """The run stopped unfinished after sending something (the message says why): not a failure
    to start, whatever caused it; `resume` continues once the cause is fixed."""


class Interrupted(OrchestratorError):
    """Ctrl-C or SIGTERM arrived; the state is saved and the run can be resumed.

    ``active_jobs`` is how many of our import jobs were still running at Auth0 when we stopped.
    """

    def __init__(self, active_jobs: int = 0) -> None:
        self.active_jobs = active_jobs
        super().__init__(f"interrupted; {active_jobs} job(s) still run at Auth0")


class ApiError(OrchestratorError):
    """Base for everything the remote API (or the road to it) did wrong."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class TransportError(ApiError):
    """The request did not get an HTTP answer: connection refused/reset, timeout.

    ``maybe_processed`` is True when the request may have reached the service before the failure (the
    connection broke after sending): for a POST that means a job may exist that we never heard of.
    """

    def __init__(
        self, message: str, *, maybe_processed: bool = True, method: str = "", url: str = ""
    ) -> None:
        self.maybe_processed = maybe_processed
        super().__init__(message, method=method, url=url)


class ApiStatusError(ApiError):
    """The API answered with a non-2xx status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: object = None,
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(message, method=method, url=url)


class AuthError(ApiStatusError):
    """Credentials rejected or a scope missing (401 twice, 403): the run cannot go on."""


class RateLimitedError(ApiStatusError):
    """429 from the request budget; ``retry_after`` says how long to wait (seconds)."""


class SlotsBusyError(ApiStatusError):
    """429 "There are N active import users jobs": every job slot of the tenant is taken."""

    def __init__(
        self,
        message: str,
        *,
        active_jobs: int | None,
        status: int,
        body: object = None,
        method: str = "",
        url: str = "",
    ) -> None:
        self.active_jobs = active_jobs
        super().__init__(message, status=status, body=body, method=method, url=url)


class ServerError(ApiStatusError):
    """5xx: the service failed; retry with backoff."""


class RequestRejectedError(ApiStatusError):
    """A 4xx other than 401/403/429: the request itself is wrong (bad connection, too large)."""
