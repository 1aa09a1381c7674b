"""The sandbox's aiohttp application: the Management API routes, the token endpoint, and the gateway
middleware that applies latency, faults and the rate limit and records every request.

Routes under /sandbox/ (state and faults) bypass the gateway: reading the record never perturbs it.
Every answer, errors included, carries a `Date` on the sandbox's wall clock (`clock_offset`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Final

import orjson
from aiohttp import web

from orchestrator.sandbox.faults import FaultKind, apply_fault_request
from orchestrator.sandbox.ratelimit import RateDecision
from orchestrator.sandbox.responses import (
    STATE_KEY,
    ApiFailure,
    Dropped,
    drop_connection,
    envelope,
    json_response,
)
from orchestrator.sandbox.routes import API_ROUTES
from orchestrator.sandbox.state import SandboxState

GLOBAL_LIMIT: Final = "Global limit has been reached"
_TOKEN_PATH: Final = "/oauth/token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(state: SandboxState) -> web.Application:
    """The application serving `state`'s tenant."""
    limit = max(state.settings.max_request_bytes * 2, 1024**2)
    app = web.Application(middlewares=[_gateway], client_max_size=limit)
    app[STATE_KEY] = state
    app.add_routes(API_ROUTES)
    app.router.add_get("/sandbox/state", _sandbox_state)
    app.router.add_post("/sandbox/faults", _sandbox_faults)
    app.on_response_prepare.append(_stamp_date)
    return app


async def _stamp_date(request: web.Request, response: web.StreamResponse) -> None:
    """Set `Date` from the sandbox's clock (aiohttp would use the host's), just before it is sent."""
    response.headers["Date"] = formatdate(request.app[STATE_KEY].wall_now(), usegmt=True)


def _is_loopback(remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


@web.middleware
async def _gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_loopback(request.remote):
        return web.Response(status=403, text="the sandbox answers loopback clients only")
    if request.path.startswith("/sandbox/"):
        return await _answer(request, handler)
    state = request.app[STATE_KEY]
    delay = state.faults.latency_seconds()
    if delay > 0:
        await asyncio.sleep(delay)
    response = await _through_faults(request, handler, state)
    if isinstance(response, web.Response) and not isinstance(response, Dropped):
        _echo_token(request, response, state)
    status = 0 if isinstance(response, Dropped) else response.status
    state.record_request(request.method, request.path, status)
    return response


async def _through_faults(
    request: web.Request, handler: Handler, state: SandboxState
) -> web.StreamResponse:
    method, path, faults = request.method, request.path, state.faults
    if faults.take(FaultKind.RESET_REQUEST, method, path):
        return drop_connection(request)
    failure = faults.take(FaultKind.FAIL_REQUEST, method, path)
    if failure is not None:
        return _server_error(failure.status)
    if faults.take(FaultKind.RATE_LIMIT_429, method, path):
        state.count_too_many("injected_rate_limit")
        return _rate_limited(state, None, path)
    decision = None
    if path != _TOKEN_PATH or state.settings.rate_limit_token_endpoint:
        decision = state.take_rate()
    if decision is not None and not decision.allowed:
        state.count_too_many("rate_limit")
        return _rate_limited(state, decision, path)
    response = await _answer(request, handler)
    if decision is not None and not isinstance(response, Dropped):
        response.headers.update(decision.headers(state.wall_now()))
    return response


def _echo_token(request: web.Request, response: web.Response, state: SandboxState) -> None:
    """Fault `echo_token_errors`: quote the request's bearer token in a JSON error's `message`."""
    if response.status < 400 or not request.path.startswith("/api/v2/"):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not isinstance(response.body, bytes):
        return
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:  # the 502's HTML page: nothing to quote it in
        return
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return
    if state.faults.take(FaultKind.ECHO_TOKEN, request.method, request.path):
        body["message"] = f"{body['message']} (Authorization: Bearer {token.strip()})"
        response.body = orjson.dumps(body)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiFailure as failure:
        return failure.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # The router's own 404/405 in the Management API's envelope.
        return json_response(envelope(exc.status, exc.reason), exc.status)


def _server_error(status: int) -> web.Response:
    if status == 502:
        # A gateway error comes from the edge, not the API: HTML, not the JSON envelope.
        html = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
        return web.Response(status=502, text=html, content_type="text/html")
    message = "Internal error." if status == 500 else "Service Unavailable"
    return json_response(envelope(status, message), status)


def _rate_limited(state: SandboxState, decision: RateDecision | None, path: str) -> web.Response:
    wall = state.wall_now()
    if decision is None:  # an injected 429: the bucket "refills" in about a second
        limit = state.settings.bucket_size or 10
        decision = RateDecision(allowed=False, limit=limit, remaining=0, seconds_to_refill=1.0)
    headers = decision.headers(wall)
    if state.settings.rate_limit_retry_after:
        headers["Retry-After"] = str(max(1, int(decision.seconds_to_refill + 0.999)))
    if path == _TOKEN_PATH:
        body: dict[str, object] = {"error": "too_many_requests", "error_description": GLOBAL_LIMIT}
    else:
        body = envelope(429, GLOBAL_LIMIT, "too_many_requests")
    return json_response(body, 429, headers=headers)


async def _sandbox_state(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    include = request.query.get("requests", "1") not in {"0", "false"}
    return json_response(state.snapshot(include_requests=include))


async def _sandbox_faults(request: web.Request) -> web.Response:
    """Arm faults from a JSON object, e.g. {"fail_jobs": 1, "expire_tokens": true}."""
    state = request.app[STATE_KEY]
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        if body.pop("expire_tokens", False) is True:
            state.revoke_tokens()
        apply_fault_request(state.faults, body)
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        return json_response(envelope(400, str(exc), "invalid_body"), 400)
    return json_response({"faults": state.faults.pending()})
