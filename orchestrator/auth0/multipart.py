"""The exact multipart/form-data body of a users-imports request.

The service's 512,000-byte limit applies to the whole request body (reference §2), so the chunk planner
needs the body's overhead to the byte; building the body here, once, for both the planner and the client,
keeps the two in agreement. Part order and headers follow the real go-auth0 request (reference §12.1).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Final

#: Boundary length in characters; fixed so the overhead does not depend on the random boundary.
BOUNDARY_LENGTH: Final = 32
#: `connection_id` always matches ^con_[A-Za-z0-9]{16}$ (reference §1): 20 characters.
CONNECTION_ID_LENGTH: Final = 20
USERS_FILENAME: Final = "users.json"


@dataclass(frozen=True, slots=True)
class ImportFields:
    """The text parts sent beside the users file."""

    connection_id: str
    upsert: bool
    external_id: str
    send_completion_email: bool


def new_boundary() -> str:
    """A random boundary of BOUNDARY_LENGTH hex characters (never found inside JSON by chance)."""
    return secrets.token_hex(BOUNDARY_LENGTH // 2)


def content_type(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"


def _text_part(boundary: str, name: str, value: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def encode_import_body(users_json: bytes, fields: ImportFields, boundary: str) -> bytes:
    """The request body for POST /api/v2/jobs/users-imports, users file last."""
    head = b"".join(
        (
            _text_part(boundary, "connection_id", fields.connection_id),
            _text_part(boundary, "upsert", _flag(fields.upsert)),
            _text_part(boundary, "external_id", fields.external_id),
            _text_part(boundary, "send_completion_email", _flag(fields.send_completion_email)),
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="users"; '
                f'filename="{USERS_FILENAME}"\r\nContent-Type: application/json\r\n\r\n'
            ).encode(),
        )
    )
    return head + users_json + f"\r\n--{boundary}--\r\n".encode()


def body_overhead(external_id: str) -> int:
    """Bytes a request adds around its users file, at the worst case of the other fields.

    The planner does not know yet which connection or flags the run will use, so it assumes the longest:
    a 20-character connection id and "false" (longer than "true") for both flags. The external_id
    appears once, verbatim, so only its own length varies (the planner asks several times a chunk).
    """
    return _overhead_besides_external_id() + len(external_id.encode())


@functools.cache
def _overhead_besides_external_id() -> int:
    worst = ImportFields(
        connection_id="c" * CONNECTION_ID_LENGTH,
        upsert=False,
        external_id="",
        send_completion_email=False,
    )
    return len(encode_import_body(b"", worst, "b" * BOUNDARY_LENGTH))
