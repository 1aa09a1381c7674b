"""The road to the service: the aiohttp session, and the one map from its exceptions to ours.

The only module that imports aiohttp. It sends one request and hands back what came back (status,
body, the few headers the client reads) or raises `TransportError`; it judges nothing.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Self

import aiohttp

from orchestrator.errors import TransportError
from orchestrator.settings import ClientSettings


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What one HTTP exchange returned, before interpretation.

    Attributes:
        clock_offset: the server's clock minus ours, from its Date header (None without one).
        clock_floor: the least that offset can be, given when we sent and received the exchange
            (the Date has whole seconds and was stamped in between): never above the true offset.
    """

    status: int
    content: bytes
    retry_after: str | None
    remaining: str | None
    reset: str | None
    clock_offset: float | None
    clock_floor: float | None = None


class HttpSession:
    """One aiohttp session to one base URL; use as ``async with HttpSession(...) as http:``.

    The session is created on entry: it is bound to the running event loop.
    """

    def __init__(self, base_url: str, settings: ClientSettings) -> None:
        self.base_url = base_url.rstrip("/")
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("HttpSession is already open")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=self._settings.request_timeout, sock_connect=self._settings.connect_timeout
            ),
            headers={"User-Agent": self._settings.user_agent, "Accept": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        payload: bytes | None,
    ) -> RawAnswer:
        """Send one request and read its whole answer; redirects are never followed.

        Raises:
            TransportError: no HTTP answer (``maybe_processed`` False when the connection was never
                made, so the request cannot have been processed).
        """
        if self._session is None:
            raise RuntimeError("HttpSession used outside `async with`")
        with _translate_errors(method, path, self.base_url):
            async with self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=payload,
                headers=headers,
                allow_redirects=False,  # a redirect would carry the token elsewhere
            ) as response:
                content = await response.read()
                received = time.time()
                h = response.headers
                offset = clock_offset(h.get("Date"), received)
                return RawAnswer(
                    status=response.status,
                    content=content,
                    retry_after=h.get("Retry-After"),
                    remaining=h.get("X-RateLimit-Remaining"),
                    reset=h.get("X-RateLimit-Reset"),
                    clock_offset=offset,
                    # The server stamped a time >= its Date no later than we received the answer.
                    clock_floor=None if offset is None else offset - 0.5,
                )


@contextmanager
def _translate_errors(method: str, path: str, base_url: str) -> Iterator[None]:
    """The one place where aiohttp's exceptions become ours (the original stays as __cause__)."""
    where = f"{method} {path}"
    url = base_url + path
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # The connection was never established, so the request cannot have been processed.
        raise TransportError(
            f"{where}: cannot connect to {base_url}: {_describe(exc)}",
            maybe_processed=False,
            method=method,
            url=url,
        ) from exc
    except TimeoutError as exc:
        raise TransportError(
            f"{where}: no answer in time ({_describe(exc)})", method=method, url=url
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(
            f"{where}: connection failed: {_describe(exc)}", method=method, url=url
        ) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def clock_offset(date_header: str | None, now: float) -> float | None:
    """Seconds the server's clock is ahead of ours (negative: behind), from an HTTP Date header.

    The header has whole seconds (truncated), so half a second is added to centre the estimate;
    None when the header is absent or unreadable.
    """
    if not date_header:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() + 0.5 - now
