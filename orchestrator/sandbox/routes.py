"""Handlers of the Management API routes and the token endpoint, with the real checks, statuses and
messages (reference §1, §4, §5, §9, §12); the tenant logic itself lives in SandboxState.

The token endpoint also signs users in (the password-realm grant), checking the password against the
hash the user was imported with (passwords.py). A password is read from the request and handed to the
check; it is never stored, recorded or put in an answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
from typing import Final

import orjson
from aiohttp import web

from orchestrator.sandbox.faults import FaultKind
from orchestrator.sandbox.jobs import NewJob, parse_users_file
from orchestrator.sandbox.passwords import CannotVerify, verify
from orchestrator.sandbox.responses import (
    STATE_KEY,
    ApiFailure,
    bad_request,
    drop_connection,
    json_response,
    oauth_error,
)
from orchestrator.sandbox.state import SandboxState, SlotsFull
from orchestrator.sandbox.tokens import MISSING_TOKEN, TokenRejected
from orchestrator.sandbox.upload import ImportForm, read_import_form

CONNECTION_ID_PATTERN: Final = re.compile(r"^con_[A-Za-z0-9]{16}$")
JOB_ID_PATTERN: Final = re.compile(r"^job_[A-Za-z0-9]{16}$")
BAD_CONNECTION_ID: Final = (
    "Payload validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' "
    "on property connection_id"
)
BAD_JOB_ID: Final = (
    "Path validation error: 'String does not match pattern ^job_[A-Za-z0-9]{16}$' on property id"
)
NO_GRANT: Final = (
    'Client is not authorized to access "{audience}". You need to create a "client-grant" '
    "associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"
)
PASSWORD_REALM: Final = "http://auth0.com/oauth/grant-type/password-realm"
GRANT_NOT_ALLOWED: Final = f"Grant type '{PASSWORD_REALM}' not allowed for the client."
WRONG_CREDENTIALS: Final = "Wrong email or password."
#: What a login grants when the request names no scope (the OIDC scopes an ID token is made from).
DEFAULT_LOGIN_SCOPE: Final = "openid profile email"
_OIDC_SCOPES: Final = ("openid", "profile", "email")

routes = web.RouteTableDef()


def _authorize(request: web.Request, *any_of: str) -> SandboxState:
    """The tenant, once the bearer token is valid and grants one of `any_of`."""
    state = request.app[STATE_KEY]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiFailure(401, MISSING_TOKEN, "invalid_token")
    try:
        scopes = state.verify_token(token.strip())
    except TokenRejected as exc:
        raise ApiFailure(401, str(exc), "invalid_token") from exc
    if scopes.isdisjoint(any_of):
        message = f"Insufficient scope; expected any of: {','.join(any_of)}."
        raise ApiFailure(403, message, "insufficient_scope")
    return state


@routes.post("/api/v2/jobs/users-imports")
async def create_import(request: web.Request) -> web.StreamResponse:
    state = _authorize(request, "create:users")
    form = await read_import_form(request, state.settings.max_request_bytes)
    new = _new_job(form, state)
    try:
        job, body = state.create_job(new)
    except SlotsFull:
        state.count_too_many("job_slots")
        slots = state.settings.job_slots
        message = (
            f"There are {slots} active import users jobs, please wait until some of them "
            "are finished and try again"
        )
        raise ApiFailure(429, message, "too_many_requests") from None
    if state.faults.take(FaultKind.RESET_AFTER_CREATE):
        with state.lock:
            job.response_dropped = True
        return drop_connection(request)
    return json_response(body, 202)


def _new_job(form: ImportForm, state: SandboxState) -> NewJob:
    """Validate the parts in the order the OAS lists its 400s; the users file is parsed, not judged."""
    if form.users is None:
        raise bad_request("Must provide 'users' file as multipart part.")
    if not form.users:
        raise bad_request("Users file must not be empty.")
    connection_id = form.fields.get("connection_id")
    if connection_id is None:
        raise bad_request("Must provide 'connection_id' as multipart part.")
    if not CONNECTION_ID_PATTERN.match(connection_id):
        raise bad_request(BAD_CONNECTION_ID)
    connection = state.connections.get(connection_id)
    if connection is None:
        raise bad_request("The connection does not exist.")
    if not connection.is_database:
        raise bad_request("Connection must be a database connection.")
    if connection.custom_database and not connection.import_mode:
        raise bad_request("Custom Database Connections without import mode are not allowed.")
    if not connection.enabled:
        raise bad_request("Connection must be enabled.")
    return NewJob(
        connection=connection,
        upsert=_flag(form, "upsert", default=False),
        send_completion_email=_flag(form, "send_completion_email", default=True),
        external_id=form.fields.get("external_id", ""),
        request_bytes=form.request_bytes,
        parsed=parse_users_file(form.users, keep_emails=state.settings.record_emails),
    )


def _flag(form: ImportForm, name: str, *, default: bool) -> bool:
    value = form.fields.get(name)
    if value is None:
        return default
    if value in {"true", "false"}:
        return value == "true"
    message = f"Payload validation error: 'Expected type boolean but found type string' on property {name}"
    raise bad_request(message)


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["id"]
    if not JOB_ID_PATTERN.match(job_id):
        raise ApiFailure(400, BAD_JOB_ID, "invalid_uri")
    return job_id


@routes.get("/api/v2/jobs/{id}")
async def get_job(request: web.Request) -> web.Response:
    state = _authorize(request, "create:users", "read:users")
    body = state.job_json(_job_id(request))
    if body is None:
        raise ApiFailure(404, "Job not found.", "inexistent_job")
    return json_response(body)


@routes.get("/api/v2/jobs/{id}/errors")
async def get_job_errors(request: web.Request) -> web.Response:
    state = _authorize(request, "create:users", "read:users")
    errors = state.job_errors(_job_id(request))
    if errors is None:
        raise ApiFailure(404, "The job does not exist.", "inexistent_job")
    if not errors:
        return web.Response(status=204)
    # The real errors answer is `application/json` without a charset (reference §5).
    return json_response(errors, charset=False)


@routes.get("/api/v2/connections")
async def list_connections(request: web.Request) -> web.Response:
    """The tenant's connections, filtered by `name` (exact) and `strategy` (repeatable); [] if none."""
    state = _authorize(request, "read:connections")
    name = request.query.get("name")
    strategies = set(request.query.getall("strategy", []))
    found = [
        connection.to_json(state.settings.client_id)
        for connection in state.connections.values()
        if (name is None or connection.name == name)
        and (not strategies or connection.strategy in strategies)
    ]
    return json_response(found)


@routes.get("/api/v2/connections/{id}")
async def get_connection(request: web.Request) -> web.Response:
    state = _authorize(request, "read:connections")
    connection = state.connections.get(request.match_info["id"])
    if connection is None:
        raise ApiFailure(404, "The connection does not exist", "inexistent_connection")
    return json_response(connection.to_json(state.settings.client_id))


@routes.get("/api/v2/users-by-email")
async def users_by_email(request: web.Request) -> web.Response:
    state = _authorize(request, "read:users")
    email = request.query.get("email")
    if not email:
        message = "Query validation error: 'Missing required property: email'"
        raise ApiFailure(400, message, "invalid_query_string")
    return json_response(state.users_by_email(email))


@routes.post("/oauth/token")
async def issue_token(request: web.Request) -> web.Response:
    """The client-credentials grant (reference §9) and the password-realm grant (user logins)."""
    state = request.app[STATE_KEY]
    params = await _token_params(request)
    if params is None:
        return oauth_error(400, "invalid_request", "The request body is not valid JSON or a form")
    grant_type = params.get("grant_type")
    if not grant_type:
        return oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
    if grant_type == PASSWORD_REALM:
        return await _password_login(request, state, params)
    if grant_type != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
    client_id, secret = _client_credentials(request, params)
    if not _client_authenticated(state, client_id, secret):
        return oauth_error(401, "invalid_client", "Client authentication failed")
    audience = params.get("audience", "")
    denied = _audience_refusal(state, audience)
    if denied is not None:
        return oauth_error(403, "access_denied", denied)
    token = state.issue_token(client_id=client_id, audience=audience)
    body = {
        "access_token": token.access_token,
        "expires_in": token.expires_in,
        "scope": token.scope,
        "token_type": "Bearer",
    }
    return json_response(body)


def _client_authenticated(state: SandboxState, client_id: str, secret: str) -> bool:
    settings = state.settings
    known = client_id == settings.client_id
    return known and hmac.compare_digest(secret.encode(), settings.client_secret.encode())


def _audience_refusal(state: SandboxState, audience: str) -> str | None:
    if not audience:
        return "No audience parameter was provided, and no default audience has been configured"
    if not _known_audience(state, audience):
        return f"Service not found: {audience}"
    return None if state.settings.client_granted else NO_GRANT.format(audience=audience)


def _known_audience(state: SandboxState, audience: str) -> bool:
    # The Management API's identifier is https://{domain}/api/v2/; the bound URL is accepted too,
    # because a client pointed at AUTH0_BASE_URL may derive the audience from it.
    return audience in {f"https://{state.settings.domain}/api/v2/", f"{state.base_url}/api/v2/"}


async def _password_login(
    request: web.Request, state: SandboxState, params: dict[str, str]
) -> web.Response:
    """The password-realm grant: a user of database connection `realm` signs in with email and password.

    Checks run in this order: the client, the grant, the parameters, the realm, then the credentials;
    a blocked user is told so only once the password is right, so a wrong password reveals nothing.
    Statuses and texts are the Authentication API's documented ones (auth0/docs "Authentication API
    errors"; the order itself is not documented). Every attempt is counted.
    """

    def refuse(reason: str, status: int, error: str, description: str) -> web.Response:
        state.record_login_failure(reason)
        return oauth_error(status, error, description)

    client_id, secret = _client_credentials(request, params)
    if not _client_authenticated(state, client_id, secret):
        return refuse("invalid_client", 401, "invalid_client", "Client authentication failed")
    if not state.settings.password_grant:
        return refuse("unauthorized_client", 403, "unauthorized_client", GRANT_NOT_ALLOWED)
    for name in ("username", "password", "realm"):
        if not params.get(name):
            description = f"Missing required parameter: {name}"
            return refuse("invalid_request", 400, "invalid_request", description)
    audience = params.get("audience", "")
    if audience and not _known_audience(state, audience):
        return refuse("access_denied", 403, "access_denied", f"Service not found: {audience}")
    connection = state.connection_named(params["realm"])
    if connection is None:
        return refuse("unknown_realm", 400, "invalid_request", "the connection was not found")
    if not connection.is_database:
        description = "specified strategy does not support requested operation"
        return refuse("unknown_realm", 400, "invalid_request", description)
    if not connection.enabled:
        return refuse("unknown_realm", 400, "invalid_request", "the connection was disabled")
    found = state.login_credential(connection.name, params["username"])
    matched = False
    if found is not None and found[1].stored is not None:
        try:
            # bcrypt, scrypt, argon2 and pbkdf2 cost tens of milliseconds: off the event loop.
            matched = await asyncio.to_thread(verify, found[1].stored, params["password"])
        except CannotVerify as exc:
            return refuse("cannot_verify", 500, "server_error", str(exc))
    if found is None or not matched:
        return refuse("wrong_credentials", 403, "invalid_grant", WRONG_CREDENTIALS)
    profile = found[0]
    if profile.get("blocked") is True:
        return refuse("blocked", 401, "unauthorized", "user is blocked")
    requested = params.get("scope", DEFAULT_LOGIN_SCOPE).split()
    scope = " ".join(name for name in _OIDC_SCOPES if name in requested)
    tokens = state.complete_login(
        realm=connection.name, profile=profile, client_id=client_id, audience=audience, scope=scope
    )
    body: dict[str, object] = {"access_token": tokens.access_token}
    if tokens.id_token is not None:
        body["id_token"] = tokens.id_token
    body.update(scope=tokens.scope, expires_in=tokens.expires_in, token_type="Bearer")
    return json_response(body)


async def _token_params(request: web.Request) -> dict[str, str] | None:
    """The grant's parameters from a JSON or form body; None when the body is neither."""
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict):
            return None
        return {str(k): v for k, v in body.items() if isinstance(v, str)}
    if request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return None


def _client_credentials(request: web.Request, params: dict[str, str]) -> tuple[str, str]:
    """client_id/client_secret from the body, else from HTTP Basic (client_secret_basic)."""
    if "client_id" in params:
        return params["client_id"], params.get("client_secret", "")
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


API_ROUTES: Final = routes
