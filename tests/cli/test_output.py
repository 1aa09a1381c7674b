"""The event log: JSON lines for schedulers, text lines for people, and on a terminal the live view
drawn by rich under those lines. rich is imported only when a live view is shown."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson

from orchestrator.cli.output import EventLog

PROGRESS = {
    "chunks": 10,
    "chunks_done": 4,
    "chunks_failed": 1,
    "active": 2,
    "jobs_in_flight": ["job_AAAAAAAAAAAAAAAA (processing 40%)", "job_BBBBBBBBBBBBBBBB (pending)"],
    "users": 10_000,
    "users_done": 4_000,
    "inserted": 3_900,
    "updated": 0,
    "failed": 100,
    "users_per_hour": 36_000,
    "eta_seconds": 600,
    "rate": "36,000 users/hour, ETA 10.0 min",
}


def live_log() -> tuple[EventLog, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return EventLog(json_lines=False, quiet=False, out=out, err=err, live=True), out, err


def test_the_live_view_shows_users_the_eta_and_each_job_in_flight() -> None:
    log, out, err = live_log()
    log("progress", PROGRESS)
    shown = err.getvalue()
    assert "\x1b[" in shown  # drawn in place
    assert "4,000/10,000" in shown  # the bar of users
    assert "36,000 users/hour" in shown
    assert "ETA 10m00s" in shown
    assert "in flight: job_AAAAAAAAAAAAAAAA (processing 40%)" in shown
    assert "in flight: job_BBBBBBBBBBBBBBBB (pending)" in shown
    assert "4/10 done, 2 active, 1 failed" in shown
    assert out.getvalue() == ""


def test_event_lines_appear_above_the_live_view_and_the_summary_after_it() -> None:
    log, out, err = live_log()
    log("progress", PROGRESS)
    log("job_completed", {"chunk": 3, "job_id": "job_C", "inserted": 5, "updated": 0, "failed": 0})
    log("progress", {**PROGRESS, "chunks_done": 5})
    before_summary = err.getvalue()
    log.summary("run 1\n  inserted 5", {"inserted": 5})
    shown = err.getvalue()
    line = "chunk 3: job job_C completed: 5 inserted, 0 updated, 0 failed"
    assert line in before_summary
    # The line was printed once, above the view, which was redrawn under it.
    assert before_summary.count(line) == 1
    assert before_summary.index(line) < before_summary.rindex("5/10 done")
    assert len(shown) >= len(before_summary)  # the view is taken away before the summary
    assert out.getvalue() == "run 1\n  inserted 5\n"


def test_server_text_with_brackets_is_shown_as_it_is() -> None:
    log, _, err = live_log()
    log("progress", PROGRESS)
    log("info", {"message": "connection [bold]Users[/bold] :smile:"})
    log.close_live()
    assert "connection [bold]Users[/bold] :smile:" in err.getvalue()


def test_json_lines_carry_no_terminal_codes_even_on_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    log = EventLog(json_lines=True, quiet=False, out=out, err=err, live=True)
    log("progress", PROGRESS)
    log("job_submitted", {"chunk": 1, "job_id": "job_A", "external_id": "x-000001"})
    log.summary("ignored", {"inserted": 1})
    assert "\x1b" not in out.getvalue()
    assert err.getvalue() == ""
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["job_submitted", "summary"]  # progress throttled


def test_rich_is_imported_only_for_a_live_view() -> None:
    probe = (
        "import io, sys\n"
        "from orchestrator.cli.output import EventLog\n"
        "log = EventLog(json_lines={json}, quiet=False, out=io.StringIO(), err=io.StringIO(), "
        "live={live})\n"
        "log('progress', {{'chunks': 1, 'chunks_done': 0, 'active': 0, 'users': 1, "
        "'users_done': 0, 'inserted': 0, 'updated': 0, 'failed': 0, 'users_per_hour': 0, "
        "'eta_seconds': None, 'rate': ''}})\n"
        "log('info', {{'message': 'x'}})\n"
        "log.close_live()\n"
        "print('rich' in sys.modules)\n"
    )
    for json_lines, live, expected in (
        (True, True, "False"),
        (False, False, "False"),
        (False, True, "True"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe.format(json=json_lines, live=live)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected, (json_lines, live)
