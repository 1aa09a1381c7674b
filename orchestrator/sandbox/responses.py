"""JSON responses in the Management API's shapes: the `{statusCode, error, message, errorCode}` envelope
of every 4xx (reference §1) and the `{error, error_description}` body of the token endpoint (§9).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

import orjson
from aiohttp import web

from orchestrator.sandbox.state import SandboxState

STATE_KEY: Final = web.AppKey("sandbox_state", SandboxState)


def json_response(
    body: object,
    status: int = 200,
    *,
    charset: bool = True,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """`application/json; charset=utf-8` like most real answers; `charset=False` for the bare type
    the errors endpoint uses (reference §5)."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8" if charset else None,
        headers=headers,
    )


def envelope(status: int, message: str, error_code: str | None = None) -> dict[str, object]:
    """The Management API error body; `errorCode` is left out where the real answer has none known."""
    body: dict[str, object] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
    }
    if error_code is not None:
        body["errorCode"] = error_code
    return body


class ApiFailure(Exception):
    """Raised by a handler to answer with the error envelope; the app's middleware renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = envelope(self.status, self.message, self.error_code)
        return json_response(body, self.status, headers=self.headers)


def bad_request(message: str) -> ApiFailure:
    return ApiFailure(400, message, "invalid_body")


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """A token-endpoint error."""
    return json_response({"error": error, "error_description": description}, status)


class Dropped(web.Response):
    """Stands for an answer never sent: the connection was closed under the request."""


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without answering; the client sees a disconnect."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return Dropped(status=599)
