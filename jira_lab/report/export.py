"""The export bundle: the audit's results as Parquet, the loaded tables they refer to, and the HTML report.

For people who do not have the database. A bundle is a folder, or a ``.zip`` of the same files::

    README.md          what the bundle holds, what was removed and how pseudonyms were made
    manifest.json      the files with their row counts, and how the bundle was made (never the salt)
    report.html        the HTML report (pseudonymized too, when the bundle is)
    audit/<name>.parquet   every result frame of the audit (AuditResults.frames(): restriction_gaps ...)
    data/<table>.parquet   the loaded tables the results refer to (issues, comments, worklogs, users, groups ...)

With ``pseudonymize``, people's account ids, names and emails are replaced by salted pseudonyms, the same person by
the same pseudonym in every file (:mod:`jira_lab.report.pseudonymize`); comment and worklog bodies, issue summaries
and the raw JSON columns are dropped, since free text can name anyone. The README says so; the salt is never
written anywhere.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from jira_lab.audits.model import SiteTables
from jira_lab.audits.preflight import AuditResults
from jira_lab.report.page import CHANGE_ROWS, HIDDEN_ROWS, Source, _version, audit_results, load_tables, render_results
from jira_lab.report.pseudonymize import Pseudonymizer, describe_method

__all__ = ["BODY_COLUMNS", "DATA_TABLES", "FREE_TEXT_COLUMNS", "Bundle", "write_bundle"]

#: Loaded tables a bundle carries beside the audit's results: what its ids refer to.
DATA_TABLES = (
    "issues",
    "comments",
    "worklogs",
    "projects",
    "users",
    "groups",
    "group_members",
    "project_roles",
    "role_actors",
    "security_levels",
)
#: Comment and worklog bodies: dropped from a pseudonymized bundle.
BODY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "comments": ("body_adf", "body_text"),
    "worklogs": ("comment_adf", "comment_text"),
}
#: Other free text that may name anyone, dropped from a pseudonymized bundle (``raw`` from every table as well).
FREE_TEXT_COLUMNS: Mapping[str, tuple[str, ...]] = {"issues": ("summary",)}
_MANIFEST = "manifest.json"
_README = "README.md"
_REPORT = "report.html"


@dataclass(frozen=True, slots=True)
class Bundle:
    """What :func:`write_bundle` wrote.

    Attributes:
        path: the folder or the zip file.
        files: the bundle's files, relative to its root, with their row counts (``None`` for the report and notes).
        pseudonymized: people were replaced by pseudonyms.
    """

    path: Path
    files: Mapping[str, int | None]
    pseudonymized: bool


def _dropped_columns(table: str, columns: Iterable[str]) -> list[str]:
    wanted = {"raw", *BODY_COLUMNS.get(table, ()), *FREE_TEXT_COLUMNS.get(table, ())}
    return [column for column in columns if column in wanted]


def _data_frames(
    tables: SiteTables, pseudonymizer: Pseudonymizer | None
) -> tuple[dict[str, pl.DataFrame], dict[str, list[str]]]:
    frames: dict[str, pl.DataFrame] = {}
    dropped: dict[str, list[str]] = {}
    for name in DATA_TABLES:
        frame = tables.table(name).collect()
        if pseudonymizer is None:
            frames[name] = frame
            continue
        dropped[name] = _dropped_columns(name, frame.columns)
        frames[name] = pseudonymizer.frame(frame, drop=dropped[name])
    return frames, dropped


def _readme(
    results: AuditResults,
    files: Mapping[str, int | None],
    dropped: Mapping[str, list[str]],
    pseudonymized: bool,
    random_salt: bool,
    generated_at: datetime,
) -> str:
    lines = [
        f"# jira_lab export: what {results.account_name} can see on {results.site}",
        "",
        f"Made by jira_lab {_version()} on {generated_at.strftime('%Y-%m-%d %H:%M UTC')} for the technical user "
        f"{results.account_name} ({results.account_id}).",
        "",
        "- `report.html`: the report (open it in any browser; it needs no network and runs no script).",
        "- `audit/*.parquet`: the audit's results, one file per frame; their columns are documented in jira_lab's "
        "`docs/audits.md`.",
        "- `data/*.parquet`: the loaded tables the results refer to; their columns are documented in jira_lab's "
        "`docs/data-dictionary.md`.",
        "",
        "Read them with polars (`pl.read_parquet('audit/restriction_gaps.parquet')`), DuckDB "
        "(`SELECT * FROM 'audit/*.parquet'`) or any Parquet reader.",
        "",
        "## Files",
        "",
        *[f"- `{name}`" + ("" if rows is None else f": {rows:,} rows") for name, rows in files.items()],
        "",
    ]
    if not pseudonymized:
        lines += [
            "## Not pseudonymized",
            "",
            "This bundle holds people's account ids, names and emails, and comment and worklog bodies, as loaded. "
            "Share it only with people allowed to see them (`jira-lab export --pseudonymize` makes a bundle "
            "without them).",
            "",
        ]
        return "\n".join(lines)
    removed = [
        f"- `data/{table}.parquet`: {', '.join(f'`{c}`' for c in columns)}"
        for table, columns in dropped.items()
        if columns
    ]
    lines += [
        "## Pseudonymized",
        "",
        "People's account ids, display names and email addresses are replaced by pseudonyms everywhere: in every "
        "Parquet file (id, name and email columns, and inside free text such as evidence, fixes and change "
        "descriptions) and in the report.",
        "",
        describe_method(),
        "",
        "A random salt was used and not kept: these pseudonyms cannot be matched with any other export."
        if random_salt
        else "The salt is not in this bundle. Exports made with the same salt use the same pseudonyms; keep the salt "
        "secret, since anyone holding it and a list of account ids can recompute them.",
        "",
        "Removed, because free text can name anyone:",
        "",
        "- comment bodies and worklog comments (`body_adf`, `body_text`, `comment_adf`, `comment_text`),",
        "- issue summaries (`summary`),",
        "- the raw JSON Jira sent (`raw`) from every table.",
        "",
        "Columns dropped, file by file:",
        "",
        *removed,
        "",
        "Kept: ids of issues, comments, worklogs, projects, groups, roles and levels; project keys, group, role and "
        "level names; times; visibility restrictions; time zones and locales of accounts.",
        "",
    ]
    return "\n".join(lines)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def write_bundle(
    source: Source,
    *,
    path: str | os.PathLike[str],
    user: str | None = None,
    results: AuditResults | None = None,
    pseudonymize: bool = False,
    salt: str | bytes | None = None,
    site_id: str | None = None,
    analyst: str | None = None,
    granted_scopes: Iterable[str] | None = None,
    hidden_rows: int = HIDDEN_ROWS,
    change_rows: int = CHANGE_ROWS,
    generated_at: datetime | None = None,
) -> Bundle:
    """Write the export bundle of a technical user's audit: Parquet results and tables, the report, a README.

    Args:
        source: a DuckDB connection or file (opened read-only), or loaded tables.
        path: a folder (created; if it exists it must be empty or an earlier bundle, whose files are replaced),
            or a file ending in ``.zip``.
        user: the technical user (account id or email); not needed when ``results`` is given.
        results: the audit already run on ``source`` (computed when ``None``).
        pseudonymize: replace people by salted pseudonyms and drop bodies, summaries and raw JSON.
        salt: the pseudonyms' key (at least 8 characters); ``None`` with ``pseudonymize``: a random one, not kept.
        site_id, analyst, granted_scopes: as for :func:`jira_lab.report.render_report`.
        hidden_rows, change_rows, generated_at: for the report (:func:`jira_lab.report.render_results`).

    Returns:
        The :class:`Bundle` written.

    Raises:
        ValueError: a salt without ``pseudonymize``, a salt too short, no ``user``, or a folder that is neither
            empty nor a bundle.
    """
    if salt is not None and not pseudonymize:
        raise ValueError("a salt is only used with pseudonymize=True")
    target = Path(path)
    as_zip = target.suffix.lower() == ".zip"
    if not as_zip:
        _check_folder(target)
    tables = load_tables(source, site_id)
    audit = results or audit_results(tables, user=user, analyst=analyst, granted_scopes=granted_scopes)
    moment = generated_at or datetime.now(UTC)
    random_salt = pseudonymize and salt is None
    pseudonymizer = Pseudonymizer.for_tables(tables, salt or secrets.token_urlsafe(32)) if pseudonymize else None
    if pseudonymizer is not None:
        audit = pseudonymizer.results(audit)
    data, dropped = _data_frames(tables, pseudonymizer)
    contents: dict[str, bytes] = {}
    rows: dict[str, int | None] = {_REPORT: None}
    contents[_REPORT] = render_results(
        audit,
        hidden_rows=hidden_rows,
        change_rows=change_rows,
        generated_at=moment,
        pseudonymized=pseudonymize,
    ).encode()
    for folder, frames in (("audit", audit.frames()), ("data", data)):
        for name, frame in frames.items():
            contents[f"{folder}/{name}.parquet"] = _parquet_bytes(frame)
            rows[f"{folder}/{name}.parquet"] = frame.height
    files = {_README: None, _MANIFEST: None, **rows}
    contents[_README] = _readme(audit, files, dropped, pseudonymize, random_salt, moment).encode()
    manifest = {
        "jira_lab": _version(),
        "generated_at": moment.isoformat(),
        "site_id": audit.site_id,
        "technical_user": audit.account_id,
        "pseudonymized": pseudonymize,
        "pseudonyms": describe_method() if pseudonymize else None,
        "dropped_columns": {f"data/{table}.parquet": columns for table, columns in dropped.items() if columns},
        "files": files,
    }
    contents[_MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    if as_zip:
        _write_zip(target, contents)
    else:
        _write_folder(target, contents)
    return Bundle(target, files, pseudonymize)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file: give a folder, or a path ending in .zip")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / _MANIFEST).is_file():
        raise ValueError(f"{folder} is not empty and holds no earlier bundle: give an empty or new folder")


def _write_folder(folder: Path, contents: Mapping[str, bytes]) -> None:
    """Write the files next to the folder, then swap it in: a reader never sees a half-written bundle."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would make the shared folder unreadable to the people it is for
        for name, data in contents.items():
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_zip(target: Path, contents: Mapping[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    os.replace(partial, target)
