"""Text for people: the summaries of plans, runs, checks, verifications and syncs.

Pure functions from the results' JSON-ready data to lines; the JSON form of the same data is what
`--log-format json` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from orchestrator.limits import ENTERPRISE_USERS_PER_HOUR, FREE_TIER_USERS_PER_HOUR

if TYPE_CHECKING:  # the network stack is imported only by the commands that use it
    from orchestrator.results.logins import LoginsResult
    from orchestrator.results.preflight import PreflightReport
    from orchestrator.results.verify import VerifyResult

#: Users listed per category in the text summary of a verification (verify.json lists them all).
_SHOWN: Final = 10


def render_plan(plan: Mapping[str, object]) -> str:
    """A plan's counts (`PlanStats.as_json`)."""
    accepted = _int(plan["accepted"])
    source = plan.get("source")
    lines = []
    if isinstance(source, Mapping):
        lines.append(f"read as         --from {source['format']}")
    lines += [
        f"users read      {_int(plan['users_read']):>10,}",
        f"accepted        {accepted:>10,}",
        f"rejected        {_int(plan['rejected']):>10,}",
    ]
    lines += _counts(plan["rejected_by_reason"])
    skipped = _int(plan.get("skipped", 0))
    if skipped:
        lines.append(f"skipped         {skipped:>10,}   (not imported on purpose)")
        lines += _counts(plan.get("skipped_by_reason"))
    if isinstance(source, Mapping):
        lines += _listed("kept in user_metadata", source.get("to_user_metadata"))
        lines += _listed("not imported (no place in the schema)", source.get("dropped"))
        join = source.get("password_hashes")
        if isinstance(join, Mapping):
            lines.append(
                f"password hashes: {_int(join['matched']):,} of {_int(join['rows']):,} rows "
                f"matched a user; {_int(join['unmatched']):,} did not (listed in "
                "unmatched-hashes.ndjson of a run)"
            )
            lines += _listed(
                "  left out",
                {k: v for k, v in join.items() if k not in ("rows", "matched", "unmatched") and v},
            )
    lines += _listed("dropped fields", plan["dropped_fields"])
    lines += _listed("passwords", plan.get("credentials"))
    without = _int(plan.get("without_password", 0))
    if without:
        lines.append(
            f"  {without:,} accepted users would arrive without a usable password (they reset "
            "theirs)"
        )
    written = plan["chunks_written"] is True
    chunks = _int(plan["chunks"])
    verb = "chunks" if written else "chunks (not written)"
    lines.append(f"{verb:<16}{chunks:>10,}")
    if chunks:
        fill, full = plan["mean_fill"], plan["mean_fill_full_chunks"]
        lines.append(f"mean fill       {fill:>10.1%}   ({full:.1%} without the last chunk)")
        low, high = throughput_range(accepted)
        span = f"about {low}" if low == high else f"{low} to {high}"
        lines.append(
            f"import requests {chunks:>10,}   (one job per chunk; at Auth0's published rates this "
            f"takes {span}: the live ETA follows the first jobs)"
        )
    if written:
        lines.append(
            f"disk wait       {plan.get('disk_wait_s', 0.0):>9.1f}s   (planning waited for chunk "
            "files to reach the disk)"
        )
    return "\n".join(lines)


def _counts(by_reason: object) -> list[str]:
    """One indented line per reason, with its count."""
    if not isinstance(by_reason, Mapping):
        return []
    return [f"  {reason:<28}{number:>8,}" for reason, number in sorted(by_reason.items())]


def _listed(title: str, counts: object) -> list[str]:
    """`title: field users, ...` on one line, when there is anything to list."""
    if not isinstance(counts, Mapping) or not counts:
        return []
    return [f"{title}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))]


def throughput_range(users: int) -> tuple[str, str]:
    """How long `users` take between the fastest and the slowest published import tier."""
    return (
        _hours(users / ENTERPRISE_USERS_PER_HOUR),
        _hours(users / FREE_TIER_USERS_PER_HOUR),
    )


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def render_report(report: Mapping[str, object]) -> str:
    """The human summary printed at the end of run/resume/report."""
    lines = [
        f"run {report['run_id']}",
        f"  users read        {_int(report['users_read']):>10,}",
        f"  rejected locally  {_int(report['rejected_locally']):>10,}"
        + _breakdown(report["rejected_by_reason"]),
        f"  chunks            {_int(report['chunks']):>10,}"
        + _breakdown(report["chunks_by_status"]),
        f"  jobs              {_int(report['jobs']):>10,}",
        f"  inserted          {_int(report['inserted']):>10,}",
        f"  updated           {_int(report['updated']):>10,}",
        f"  failed at Auth0   {_int(report['failed']):>10,}" + _breakdown(report["failed_by_code"]),
        f"  ambiguous resubmissions {_int(report['ambiguous_resubmissions']):>4,}",
        f"  duration          {report['duration_seconds']:>10,.1f} s",
    ]
    if report["users_per_hour"]:
        lines.append(f"  users/hour        {_int(report['users_per_hour']):>10,}")
    run_dir = report["run_dir"]
    if report["retryable_users"]:
        lines.append(
            f"  {_int(report['retryable_users']):,} failed user(s) can be imported again: fix them "
            f"in {run_dir}/retry.json, then `orchestrator run` that file"
        )
    if report["duplicated_users"]:
        lines.append(
            f"  {_int(report['duplicated_users']):,} user(s) already exist (DUPLICATED_USER), "
            f"listed in {run_dir}/duplicated-users.json: import them with --upsert to update them"
        )
    if report["rejected_locally"]:
        lines.append(
            f"  users rejected before upload, with their reasons: {run_dir}/rejects.ndjson"
        )
    lines.extend(_resolutions(report.get("resolutions")))
    unknown = report.get("unknown")
    if isinstance(unknown, list):
        for item in unknown:
            lines.append(
                f"  unknown: chunk {item['chunk']} ({item['external_id']}): {item['detail']}"
            )
    unfinished = report["unfinished_chunks"]
    if isinstance(unfinished, list) and unfinished:
        lines.append(
            f"  {len(unfinished)} chunk(s) unfinished "
            f"({_int(report['users_in_failed_chunks']):,} users in failed chunks): "
            f"run `{report['next_step']}` to continue"
        )
    elif report.get("next_step"):
        lines.append(f"  next step: {report['next_step']}")
    return "\n".join(lines)


def _resolutions(resolutions: object) -> list[str]:
    """One line per resolution (the first few; report.json lists them all)."""
    if not isinstance(resolutions, list) or not resolutions:
        return []
    lines = [f"  outcomes resolved from the tenant {len(resolutions):>4,}"]
    for item in resolutions[:_SHOWN]:
        what = (
            f"{item['found']} of {item['looked_up']} DUPLICATED_USER failures imported earlier"
            if item["kind"] == "duplicates"
            else f"{item['found']} of {item['looked_up']} looked up found, "
            f"{item['resent']:,} sent again"
        )
        lines.append(f"    chunk {item['chunk']}: {what}")
    if len(resolutions) > _SHOWN:
        lines.append(f"    ... {len(resolutions) - _SHOWN} more in report.json")
    return lines


def render_status(summary: Mapping[str, object]) -> str:
    """What `status` prints for people."""
    by_status = summary["chunks_by_status"]
    states = (
        ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
        if isinstance(by_status, Mapping)
        else ""
    )
    lines = [
        f"run {summary['run_id']}  ({summary['input']} -> {summary['connection_id']})",
        f"chunks   {_int(summary['chunks']):,}: {states}",
        (
            f"users    {_int(summary['users_planned']):,} planned, "
            f"{_int(summary['rejected_locally']):,} rejected locally; "
            f"{_int(summary['inserted']):,} inserted, {_int(summary['updated']):,} updated, "
            f"{_int(summary['failed']):,} failed"
        ),
    ]
    jobs = summary["jobs"]
    if isinstance(jobs, list):
        for job in jobs:
            if job["status"] in ("submitting", "pending", "processing"):
                live = f" (live: {job['live_status']})" if "live_status" in job else ""
                lines.append(f"  chunk {job['chunk']}: {job['status']} {job['job_id'] or ''}{live}")
    return "\n".join(lines)


def render_checks(report: PreflightReport) -> str:
    """The pre-flight's verdicts as aligned lines, then a one-line conclusion."""
    from orchestrator.results.preflight import MARKS

    lines = [
        f"{MARKS[check.status]:<12} {check.name:<11} {check.message}" for check in report.checks
    ]
    problems = len(report.problems)
    lines.append(
        "ready: a run can start"
        if not problems
        else f"not ready: {problems} problem(s) to fix before a run can start"
    )
    return "\n".join(lines)


def render_verify(result: VerifyResult, path: Path) -> str:
    """A verification: counts, then the first few missing and differing users."""
    counts = result.summary()
    ratio = counts["found_ratio"]
    shown = f" ({ratio:.1%})" if isinstance(ratio, float) else ""
    lines = [
        (
            f"verify run {result.run_id}: {counts['sampled']} of {_int(counts['population']):,} "
            f"imported users sampled ({counts['chunks_read']} chunk file(s) read)"
        ),
        f"  found      {counts['found']:>6}{shown}",
        f"  missing    {counts['missing']:>6}",
        f"  differing  {counts['differing']:>6}",
        f"  unchecked  {counts['unchecked']:>6}",
    ]
    for check in [c for c in result.checks if c.outcome != "found"][:_SHOWN]:
        what: str = check.outcome
        if check.differences:
            what += ": " + ", ".join(d.field for d in check.differences)
        elif check.error:
            what += f": {check.error}"
        lines.append(f"    {check.user.email} (chunk {check.user.chunk}) {what}")
    for skipped in result.sample.skipped_chunks[:_SHOWN]:
        lines.append(f"  chunk {skipped['chunk']} not sampled: {skipped['reason']}")
    if not result.checks:
        lines.append("  nothing to verify: no user of this run is known to be imported")
    lines.append(f"  details in {path}")
    return "\n".join(lines)


def render_logins(result: LoginsResult, path: Path) -> str:
    """A login check: counts, then every account that could not sign in."""
    counts = result.summary()
    lines = [
        f"sign-ins to {result.realm}: {counts['accounts']} test account(s)",
        f"  ok              {counts['ok']:>6}",
        f"  wrong password  {counts['wrong_password']:>6}   (or no such user: Auth0 does not say)",
        f"  blocked         {counts['blocked']:>6}",
        f"  error           {counts['error']:>6}",
    ]
    for check in [c for c in result.checks if c.verdict != "ok"][:_SHOWN]:
        detail = f": {check.detail}" if check.detail else ""
        lines.append(f"    line {check.line}: {check.username} {check.verdict}{detail}")
    lines.append(f"  details in {path} (no passwords)")
    return "\n".join(lines)


def render_sync_counts(counts: Mapping[str, object], *, title: str) -> str:
    """A sync's classification (`DiffCounts.as_json`)."""
    lines = [
        title,
        f"  users read        {_int(counts['users_read']):>10,}",
        f"  new               {_int(counts['new']):>10,}",
        f"  changed           {_int(counts['changed']):>10,}",
        f"  unchanged         {_int(counts['unchanged']):>10,}",
        f"  missing           {_int(counts['missing']):>10,}   (not in the export; never deleted)",
        f"  rejected locally  {_int(counts['rejected_locally']):>10,}"
        + _breakdown(counts["rejected_by_reason"]),
    ]
    return "\n".join(lines)


def render_sync_summary(report: Mapping[str, object]) -> str:
    """A night's summary (sync.json)."""
    lines = [
        render_sync_counts(report, title=f"sync {Path(str(report['run_dir'])).name}"),
        f"  sent              {_int(report['sent']):>10,}   in {_int(report['jobs']):,} job(s)",
        f"  synced            {_int(report['synced']):>10,}",
        f"  not synced        {_int(report['not_synced']):>10,}   (sent again next night)",
    ]
    if report["missing"]:
        lines.append(f"  missing keys in {report['missing_file']}")
    return "\n".join(lines)


def render_diff_progress(counts: Mapping[str, object]) -> str:
    return (
        f"diff: {_int(counts['users_read']):,} users read: {_int(counts['new']):,} new, "
        f"{_int(counts['changed']):,} changed, {_int(counts['unchanged']):,} unchanged, "
        f"{_int(counts['rejected_locally']):,} rejected"
    )


def render_resolved(fields: Mapping[str, object]) -> str:
    """A `resolved` event: what the tenant said of users whose job was never seen."""
    found, looked_up = _int(fields.get("found")), _int(fields.get("looked_up"))
    if fields.get("duplicates"):
        return (
            f"chunk {fields['chunk']}: {found} of its {looked_up} DUPLICATED_USER failures are "
            "users an earlier submission of it imported: counted imported, not failed"
        )
    line = f"chunk {fields['chunk']}: {found} of {looked_up} users looked up are in the tenant"
    resent = _int(fields.get("resent"))
    if resent:
        return line + f"; sending the {resent:,} missing again"
    return line + "; nothing is sent again"


def duration(seconds: float) -> str:
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def _breakdown(counts: object) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return ""
    parts = ", ".join(f"{key} {value:,}" for key, value in sorted(counts.items()))
    return f"  ({parts})"


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
