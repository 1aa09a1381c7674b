"""Reading the multipart body of POST /api/v2/jobs/users-imports with aiohttp's multipart reader.

The size limit is the whole request body (reference §2): the declared Content-Length is checked first,
then the bytes actually read, so a chunked upload without a length cannot slip past it either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import BodyPartReader, web

from orchestrator.sandbox.responses import ApiFailure, bad_request

INVALID_MULTIPART: Final = "Payload validation error: 'Invalid multipart payload format'."
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ImportForm:
    """The parts of one import request: the users file (None when absent) and the text fields."""

    users: bytes | None
    fields: dict[str, str]
    request_bytes: int


def too_large(max_bytes: int) -> ApiFailure:
    # hapi's own 413 carries no errorCode (reference §1: no real 413 body was found).
    return ApiFailure(413, f"Payload content length greater than maximum allowed: {max_bytes}.")


async def read_import_form(request: web.Request, max_bytes: int) -> ImportForm:
    """Read every part of the request, the first of each name winning; unknown parts are ignored.

    Raises:
        ApiFailure: 413 past `max_bytes`, 400 for a body that is not multipart/form-data.
    """
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise too_large(max_bytes)
    if not request.content_type.startswith("multipart/"):
        raise bad_request(INVALID_MULTIPART)
    users: bytes | None = None
    fields: dict[str, str] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise bad_request(INVALID_MULTIPART)
            data = await _read_part(part, request, max_bytes)
            if part.name == "users":
                users = data if users is None else users
            elif part.name is not None:
                fields.setdefault(part.name, data.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise bad_request(INVALID_MULTIPART) from exc
    return ImportForm(users, fields, declared or request.content.total_bytes)


async def _read_part(part: BodyPartReader, request: web.Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    while not part.at_eof():
        chunks.append(await part.read_chunk(_CHUNK))
        if request.content.total_bytes > max_bytes:
            raise too_large(max_bytes)
    return b"".join(chunks)
