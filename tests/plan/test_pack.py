"""Chunk packing: order, limits, fullness, determinism (pure, no files)."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.auth0.multipart import (
    BOUNDARY_LENGTH,
    CONNECTION_ID_LENGTH,
    ImportFields,
    body_overhead,
    encode_import_body,
    new_boundary,
)
from orchestrator.plan.pack import ChunkPacker, PackedChunk
from orchestrator.plan.planner import ChunkLayout

users_strategy = st.lists(
    st.fixed_dictionaries(
        {"email": st.from_regex(r"[a-z0-9.]{1,20}@[a-z]{1,10}\.com", fullmatch=True)},
        optional={
            "name": st.text(max_size=300),
            "user_metadata": st.dictionaries(
                st.text(alphabet="abcdefghij", min_size=1, max_size=5),
                st.text(max_size=200),
                max_size=5,
            ),
        },
    ),
    max_size=200,
)


def pack(users: list[dict[str, object]], layout: ChunkLayout) -> list[PackedChunk]:
    packer = ChunkPacker(layout.users_budget)
    chunks: list[PackedChunk] = []
    for position, user in enumerate(users):
        encoded = orjson.dumps(user)
        assert packer.fits_alone(encoded)
        if (closed := packer.add(encoded, position)) is not None:
            chunks.append(closed)
    if (last := packer.finish()) is not None:
        chunks.append(last)
    return chunks


@settings(max_examples=60, deadline=None)
@given(users=users_strategy, limit=st.integers(min_value=4_000, max_value=40_000))
def test_chunks_give_back_the_users_in_order_and_every_request_fits(
    users: list[dict[str, object]], limit: int
) -> None:
    layout = ChunkLayout(limit, "run")
    chunks = pack(users, layout)
    assert [u for c in chunks for u in orjson.loads(c.body)] == users
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        fields = ImportFields(
            connection_id="con_abcdefghijklmnop",
            upsert=False,
            external_id=layout.external_id(chunk.index),
            send_completion_email=False,
        )
        body = encode_import_body(chunk.body, fields, new_boundary())
        assert len(body) <= limit
        assert chunk.users == len(orjson.loads(chunk.body))
    # Greedy: the next chunk's first user would not have fitted in the previous chunk.
    for previous, following in itertools.pairwise(chunks):
        first = orjson.dumps(orjson.loads(following.body)[0])
        assert len(previous.body) + 1 + len(first) > layout.users_budget(previous.index)
    assert pack(users, layout) == chunks  # deterministic


def test_chunks_are_nearly_full_with_realistic_users() -> None:
    users = [
        {"email": f"user{i}@example.com", "name": "N" * (300 + i % 400), "email_verified": True}
        for i in range(5_000)
    ]
    layout = ChunkLayout(512_000, "orch-1a2b3c4d")
    chunks = pack(users, layout)
    full = chunks[:-1]
    assert len(full) >= 3
    mean = sum(len(c.body) for c in full) / (len(full) * layout.users_budget(0))
    assert mean >= 0.99


def test_the_request_overhead_is_exact() -> None:
    layout = ChunkLayout(10_000, "p")
    budget = layout.users_budget(0)
    users_file = b"[" + b"x" * (budget - 2) + b"]"
    fields = ImportFields("con_abcdefghijklmnop", False, layout.external_id(0), False)
    assert len(encode_import_body(users_file, fields, new_boundary())) == 10_000


@pytest.mark.parametrize("external_id", ["p", "orch-1a2b3c4d-000007", "x" * 64 + "-1234567"])
def test_the_overhead_is_that_of_a_whole_worst_case_body(external_id: str) -> None:
    worst = ImportFields("c" * CONNECTION_ID_LENGTH, False, external_id, False)
    body = encode_import_body(b"", worst, "b" * BOUNDARY_LENGTH)
    assert body_overhead(external_id) == len(body)


def test_a_user_too_big_for_a_request_does_not_fit_alone() -> None:
    layout = ChunkLayout(4_000, "p")
    packer = ChunkPacker(layout.users_budget)
    assert packer.fits_alone(b"x" * (layout.users_budget(0) - 2))
    assert not packer.fits_alone(b"x" * (layout.users_budget(0) - 1))
