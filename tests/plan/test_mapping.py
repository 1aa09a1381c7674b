"""The `--map` file and the mapper: fields and constants over a format's own mapping, CSV types, and
mappings refused with one line before anything is sent."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.errors import ConfigError
from orchestrator.plan.mapping import Mapper, read_mapping
from orchestrator.plan.planner import ChunkLayout, count_only, plan_chunks
from orchestrator.settings import PlanSettings, SourceSettings
from orchestrator.sources.formats import Export
from orchestrator.sources.formats.base import Mapped, Unmapped


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


def test_a_mapping_file_gives_dotted_fields_and_constants(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        """
        [fields]
        email = "Email Address"
        "user_metadata.plan" = "Plan"
        user_metadata.signup = "Signup Date"
        username = ""

        [constants]
        email_verified = true
        app_metadata = { migrated_from = "legacy", wave = 2 }
        """,
    )
    fields, constants = read_mapping(path)
    assert fields == (
        ("email", "Email Address"),
        ("user_metadata.plan", "Plan"),
        ("user_metadata.signup", "Signup Date"),
        ("username", ""),
    )
    assert constants == (
        ("email_verified", True),
        ("app_metadata.migrated_from", "legacy"),
        ("app_metadata.wave", 2),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[fields]\nmail = "Email"', "'mail' is not an import field"),
        ('[fields]\n"name.first" = "First"', "'name.first' is not an import field"),
        ("[fields]\nemail = 3", "a field is mapped from the name of a source field"),
        ('[colums]\nemail = "x"', "unknown table [colums]"),
        ("[fields\nemail =", "not a valid TOML file"),
    ],
)
def test_a_bad_mapping_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^--map .*map\.toml: ") as caught:
        read_mapping(write_map(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_mapping_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        read_mapping(tmp_path / "missing.toml")


def test_csv_columns_named_like_import_fields_are_those_fields_typed() -> None:
    mapper = Mapper(SourceSettings(format="csv", fields=(("user_metadata.plan", "Plan"),)))
    row = {
        "email": "ana@example.com",
        "email_verified": "Yes",
        "blocked": "",
        "user_metadata.locale": "pt",
        "Plan": "pro",
        "Notes": "call back",
    }
    converted = mapper(row)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "email": "ana@example.com",
        "email_verified": True,
        "user_metadata": {"locale": "pt", "plan": "pro"},
    }
    assert mapper.stats.dropped == {"Notes": 1}


def test_a_csv_boolean_that_is_not_one_is_a_reject_naming_the_column() -> None:
    mapper = Mapper(SourceSettings(format="csv", fields=(("blocked", "Disabled"),)))
    converted = mapper({"email": "a@example.com", "Disabled": "perhaps"})
    assert isinstance(converted, Unmapped)
    assert (converted.reason, converted.path) == ("invalid_source_value", "/Disabled")


def test_a_mapped_column_the_header_lacks_is_refused_at_the_first_row() -> None:
    mapper = Mapper(SourceSettings(format="csv", fields=(("email", "E-mail"),)))
    with pytest.raises(ConfigError, match="column 'E-mail', which the CSV header does not have"):
        mapper({"Email": "a@example.com"})


def test_a_mapped_json_field_no_record_has_is_refused_when_the_pass_ends() -> None:
    settings = SourceSettings(format="firebase", fields=(("user_metadata.tier", "tier"),))
    mapper = Mapper(settings)
    assert isinstance(mapper({"localId": "1", "email": "a@example.com"}), Mapped)
    with pytest.raises(
        ConfigError, match=r"fills user_metadata\.tier from 'tier', which no record"
    ):
        mapper.finish()


def test_fields_override_the_format_reach_into_objects_and_can_leave_a_field_out() -> None:
    settings = SourceSettings(
        format="keycloak",
        fields=(("username", ""), ("user_metadata.department", "attributes.department")),
        constants=(("app_metadata.source", "keycloak"),),
    )
    record = {
        "id": "1",
        "username": "ana",
        "email": "a@example.com",
        "attributes": {"department": ["sales"]},
    }
    as_read = copy.deepcopy(record)
    converted = Mapper(settings)(record)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "1",
        "email": "a@example.com",
        "user_metadata": {"department": ["sales"]},
        "app_metadata": {"source": "keycloak"},
    }
    assert record == as_read  # a reject shows the record as read


def test_constants_are_fresh_for_every_user() -> None:
    settings = SourceSettings(
        constants=(("app_metadata", {"roles": []}),), fields=(("app_metadata.plan", "plan"),)
    )
    mapper = Mapper(settings)
    first = mapper({"email": "a@example.com", "plan": "pro"})
    second = mapper({"email": "b@example.com"})
    assert isinstance(first, Mapped)
    assert isinstance(second, Mapped)
    assert first.user["app_metadata"] == {"roles": [], "plan": "pro"}
    assert second.user["app_metadata"] == {"roles": []}


def test_a_mapper_refuses_an_unknown_import_field() -> None:
    with pytest.raises(ConfigError, match="'emial' is not an import field"):
        Mapper(SourceSettings(fields=(("emial", "mail"),)))


def test_a_non_object_record_is_rejected_as_such() -> None:
    converted = Mapper(SourceSettings(format="firebase"))([1, 2])
    assert isinstance(converted, Unmapped)
    assert converted.reason == "not_an_object"


# -- the planner with a source format --------------------------------------------------------------


def plan(tmp_path: Path, content: bytes, source: SourceSettings) -> tuple[Any, list[Any]]:
    path = tmp_path / "export"
    path.write_bytes(content)
    export = Export(str(path), source)
    layout = ChunkLayout(512_000, "orch-test")
    rejects = tmp_path / "rejects.ndjson"
    with rejects.open("wb") as out:
        stats = plan_chunks(
            export.batches(),
            PlanSettings(source=source, passwords="allow"),
            layout,
            count_only(layout),
            rejects=out,
            where=export.reader.where,
        )
    return stats, [orjson.loads(line) for line in rejects.read_bytes().splitlines()]


def test_the_plan_counts_skipped_records_and_says_how_the_export_was_read(tmp_path: Path) -> None:
    users = [
        {"id": "1", "email": "a@example.com", "enabled": True, "createdTimestamp": 1},
        {"id": "2", "serviceAccountClientId": "backend"},
        {"id": "3", "email": "not-an-email", "enabled": False},
    ]
    stats, rejects = plan(
        tmp_path, orjson.dumps({"realm": "r", "users": users}), SourceSettings(format="keycloak")
    )
    summary = stats.as_json(512_000, chunks_written=False)
    assert (summary["users_read"], summary["accepted"], summary["rejected"]) == (3, 1, 1)
    assert (summary["skipped"], summary["skipped_by_reason"]) == (1, {"service_account": 1})
    assert summary["source"]["format"] == "keycloak"
    assert summary["source"]["dropped"] == {"createdTimestamp": 1}
    # The reject shows the record as read, where the source had it.
    assert rejects[0]["where"] == "users[2]"
    assert rejects[0]["user"] == users[2]


def test_a_reject_of_a_mapped_user_shows_the_record_before_mapping_and_dropping(
    tmp_path: Path,
) -> None:
    row = {"user_id": "'auth0|1", "email": "'broken", "created_at": "2020-01-01"}
    content = b"user_id,email,created_at\n" + ",".join(row.values()).encode() + b"\n"
    _, rejects = plan(tmp_path, content, SourceSettings(format="auth0-export"))
    assert rejects[0]["user"] == row
    assert rejects[0]["where"] == "line 2"
    assert rejects[0]["reasons"][0]["reason"] == "invalid_email"
