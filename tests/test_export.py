"""The export bundle: the audit's results and loaded tables as Parquet, the report and a README, in a folder or a zip;
and nothing secret in any output, searched for on the demo site loaded through the real 3LO flow.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from report_world import Page, ReportWorld, demo_world

from jira_lab.audits.preflight import AuditResults
from jira_lab.cli import main
from jira_lab.report import write_bundle, write_report

SECTIONS = ("preflight", "gaps", "coverage", "changes")


@pytest.fixture(scope="module")
def world() -> ReportWorld:
    return demo_world()


@pytest.fixture(scope="module")
def results(world: ReportWorld) -> AuditResults:
    return world.results()


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def read_folder(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def parquet(data: bytes) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(data))


def test_a_bundle_holds_the_audit_the_tables_the_report_and_a_readme(
    world: ReportWorld, results: AuditResults, tmp_path: Path
) -> None:
    bundle = write_bundle(world.db, path=tmp_path / "share", results=results)
    files = read_folder(bundle.path)
    assert not bundle.pseudonymized
    assert set(files) == set(bundle.files)
    for name, frame in results.frames().items():
        assert parquet(files[f"audit/{name}.parquet"]).equals(frame), name
    tables = world.tables()
    for name in ("issues", "comments", "worklogs", "users", "group_members"):
        assert parquet(files[f"data/{name}.parquet"]).equals(tables.table(name).collect()), name
    # not pseudonymized: the bodies and the people are there, and the README says so
    comments = parquet(files["data/comments.parquet"])
    assert comments["body_text"].drop_nulls().len() == comments.height > 0
    assert world.technical_user in parquet(files["data/users.parquet"])["account_id"].to_list()
    readme = files["README.md"].decode()
    assert "Not pseudonymized" in readme and "restriction_gaps" in readme
    manifest = json.loads(files["manifest.json"])
    assert manifest["pseudonymized"] is False
    assert manifest["files"]["audit/restriction_gaps.parquet"] == results.gaps.gaps.height
    page = Page(files["report.html"].decode())
    assert page.errors == [] and all(page.by_id(section) for section in SECTIONS)
    assert page.by_id("hidden-by-kind").data("total") == str(results.gaps.gaps.height)


def test_a_zip_bundle_holds_the_same_files(world: ReportWorld, results: AuditResults, tmp_path: Path) -> None:
    folder = write_bundle(world.db, path=tmp_path / "share", results=results)
    archive = write_bundle(world.db, path=tmp_path / "share.zip", results=results)
    in_zip = read_zip(archive.path)
    assert set(in_zip) == set(read_folder(folder.path)) == set(archive.files)
    assert parquet(in_zip["audit/gap_fixes.parquet"]).equals(results.gaps.fixes)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_a_folder_is_replaced_only_when_it_holds_an_earlier_bundle(
    world: ReportWorld, results: AuditResults, tmp_path: Path
) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        write_bundle(world.db, path=foreign, results=results)
    assert (foreign / "mine.txt").read_text() == "keep me"
    target = tmp_path / "share"
    write_bundle(world.db, path=target, results=results)
    (target / "audit" / "stale.parquet").write_bytes(b"from an older export")
    write_bundle(world.db, path=target, results=results)
    assert not (target / "audit" / "stale.parquet").exists()
    assert (target / "report.html").is_file()


def test_a_salt_is_only_for_pseudonymized_bundles(world: ReportWorld, results: AuditResults, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="salt"):
        write_bundle(world.db, path=tmp_path / "x", results=results, salt="a-long-enough-salt")
    outcome = CliRunner().invoke(
        main,
        [
            "export",
            "--db",
            str(world.db),
            "--user",
            world.technical_user,
            "-o",
            str(tmp_path / "y"),
            "--salt",
            "s" * 12,
        ],
    )
    assert outcome.exit_code == 2 and "--pseudonymize" in outcome.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_export_command_takes_the_salt_from_the_environment(world: ReportWorld, tmp_path: Path) -> None:
    salt = "salt-from-the-environment"
    target = tmp_path / "share.zip"
    outcome = CliRunner().invoke(
        main,
        ["export", "--db", str(world.db), "--user", world.technical_email, "-o", str(target), "--pseudonymize"],
        env={"JIRA_LAB_PSEUDONYM_SALT": salt},
    )
    assert outcome.exit_code == 0, outcome.output
    assert salt not in outcome.output and "pseudonymized" in outcome.output
    expected = hmac.new(salt.encode(), f"account:{world.technical_user}".encode(), hashlib.sha256).hexdigest()[:12]
    files = read_zip(target)
    assert f"person-{expected}" in parquet(files["data/users.parquet"])["account_id"].to_list()
    assert json.loads(files["manifest.json"])["technical_user"] == f"person-{expected}"


# -- nothing secret ----------------------------------------------------------------------------------------------
def every_text(files: dict[str, bytes]) -> list[str]:
    """Each file's text, and every Parquet cell as text (Parquet pages are compressed: bytes would hide them)."""
    found = []
    for name, data in files.items():
        if name.endswith(".parquet"):
            frame = parquet(data)
            found += [value for column in frame.columns for value in frame[column].cast(pl.String).drop_nulls()]
        else:
            found.append(data.decode())
    return found


def test_nothing_secret_appears_in_a_report_or_a_bundle(
    world: ReportWorld, results: AuditResults, tmp_path: Path
) -> None:
    secrets = world.secrets
    # the client secret, both principals' access and refresh tokens, the consent states and codes, the API tokens
    assert len(secrets) >= 11 and all(len(secret) >= 8 for secret in secrets)
    report = write_report(world.db, path=tmp_path / "report.html", user=world.technical_email)
    plain = write_bundle(world.db, path=tmp_path / "plain.zip", results=results)
    pseudonymous = write_bundle(
        world.db, path=tmp_path / "shared", results=results, pseudonymize=True, salt="salt-for-secrets"
    )
    outputs = {
        "report": [report.read_text(encoding="utf-8")],
        "plain bundle": every_text(read_zip(plain.path)),
        "pseudonymized bundle": every_text(read_folder(pseudonymous.path)),
    }
    assert sum(len(texts) for texts in outputs.values()) > 10_000  # every cell of every table was searched
    for name, texts in outputs.items():
        everything = "\n".join(texts)
        leaked = [secret[:6] + "…" for secret in secrets if secret in everything]
        assert leaked == [], f"secrets in the {name}"
    raw = report.read_bytes() + plain.path.read_bytes()
    assert not [secret for secret in secrets if secret.encode() in raw]
