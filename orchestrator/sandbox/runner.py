"""Starting and stopping a sandbox: in the current event loop (SandboxServer) or in a background thread
with its own loop (SandboxThread, for tests that drive the CLI as a subprocess or from sync code).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from orchestrator.sandbox.app import create_app
from orchestrator.sandbox.settings import SandboxSettings
from orchestrator.sandbox.state import SandboxState

#: Seconds given to in-flight requests when the sandbox stops; tests should not wait on a slow answer.
_SHUTDOWN_TIMEOUT = 0.5
_THREAD_START_TIMEOUT = 10.0


class SandboxServer:
    """A sandbox serving on 127.0.0.1 in the running event loop.

    Example::

        async with SandboxServer(SandboxSettings(job_seconds=0.05)) as server:
            ...  # talk to server.base_url; assert on server.state
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.state = SandboxState(self.settings, clock=clock)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` once started (still readable after it stopped)."""
        if not self.state.base_url:
            raise RuntimeError("the sandbox is not started")
        return self.state.base_url

    async def start(self) -> None:
        """Bind and start serving."""
        runner = web.AppRunner(
            create_app(self.state), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        self.state.base_url = f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SandboxThread:
    """The same server in a daemon thread with its own event loop; usable from synchronous code.

    `state` is shared with the server thread; its methods take the state's lock, so reading counts
    and arming faults from the calling thread is safe.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = SandboxServer(settings, clock=clock)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def settings(self) -> SandboxSettings:
        return self._server.settings

    @property
    def state(self) -> SandboxState:
        return self._server.state

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        """Start the thread and wait until the server listens (or failed to)."""
        self._thread = threading.Thread(target=self._run, name="auth0-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(_THREAD_START_TIMEOUT):
            raise RuntimeError("the sandbox thread did not start in time")
        if self._error is not None or self._server.port == 0:
            self._thread.join()
            raise self._error or RuntimeError("the sandbox thread failed to start")

    def stop(self) -> None:
        """Stop the server and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._server.start()
        except (
            OSError
        ) as exc:  # the port is taken: handed to the starting thread, which re-raises it
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
