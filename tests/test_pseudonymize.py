"""Pseudonymization: salted, consistent pseudonyms for account ids, names and emails; nothing original survives.

The unit tests pin the documented method (HMAC-SHA256 of ``account:<id>`` keyed with the salt, 12 hex digits)
by computing the expected codes here with ``hmac`` directly. The bundle tests export the demo site (loaded through
3LO by both principals) and search every Parquet cell and the report for every original id, name and email of the
users table, follow each person across tables, and compare two salts.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from report_world import Page, ReportWorld, demo_world

from jira_lab import store
from jira_lab.report import Pseudonymizer, write_bundle

SALT_A = "first-salt-for-the-tests"
SALT_B = "second-salt-for-the-tests"
PSEUDONYM = re.compile(r"(?:person-|Person )([0-9a-f]{12})")


def code(salt: str, account_id: str) -> str:
    return hmac.new(salt.encode(), f"account:{account_id}".encode(), hashlib.sha256).hexdigest()[:12]


# -- the method, on small frames ---------------------------------------------------------------------------------
def test_a_person_has_one_code_for_id_name_and_email() -> None:
    pseudonyms = Pseudonymizer(SALT_A, [("acc-1", "Ann Lee", "Ann.Lee@example.com")])
    expected = code(SALT_A, "acc-1")
    assert pseudonyms.account("acc-1") == f"person-{expected}"
    assert pseudonyms.value("acc-1", "id") == f"person-{expected}"
    assert pseudonyms.value("Ann Lee", "name") == f"Person {expected}"
    assert pseudonyms.value("Ann.Lee@example.com", "email") == f"person-{expected}@pseudonym.invalid"
    assert pseudonyms.value("ann.lee@example.com", "email") == f"person-{expected}@pseudonym.invalid"
    # an account nobody named is still coded from its id; an unknown name from itself
    assert pseudonyms.value("acc-2", "id") == f"person-{code(SALT_A, 'acc-2')}"
    unknown = hmac.new(SALT_A.encode(), b"name:Zed", hashlib.sha256).hexdigest()[:12]
    assert pseudonyms.value("Zed", "name") == f"Person {unknown}"


def test_frames_replace_people_in_their_columns_and_inside_free_text() -> None:
    pseudonyms = Pseudonymizer(SALT_A, [("acc-1", "Ann Lee", "ann@example.com"), ("acc-2", "Bob Roe", None)])
    frame = pl.DataFrame(
        {
            "account_id": ["acc-1", "acc-9"],
            "display_name": ["Ann Lee", "Someone Else"],
            "email_address": ["ann@example.com", None],
            "holder_type": ["user", "group"],
            "holder_value": ["acc-2", "group-id-1"],
            "description": ["Bob Roe removed Ann Lee (acc-1) from group devs", "ann@example.com asked"],
            "items": [3, 4],
        }
    )
    out = pseudonyms.frame(frame)
    ann, bob, other = code(SALT_A, "acc-1"), code(SALT_A, "acc-2"), code(SALT_A, "acc-9")
    assert out["account_id"].to_list() == [f"person-{ann}", f"person-{other}"]
    assert out["display_name"][0] == f"Person {ann}"
    assert out["display_name"][1].startswith("Person ") and "Someone" not in out["display_name"][1]
    assert out["email_address"].to_list() == [f"person-{ann}@pseudonym.invalid", None]
    # a user holder is a person; a group holder is not
    assert out["holder_value"].to_list() == [f"person-{bob}", "group-id-1"]
    assert out["description"].to_list() == [
        f"Person {bob} removed Person {ann} (person-{ann}) from group devs",
        f"person-{ann}@pseudonym.invalid asked",
    ]
    assert out["items"].to_list() == [3, 4]
    assert pseudonyms.frame(frame, drop=["description"]).columns == [c for c in frame.columns if c != "description"]


def test_the_longest_name_wins_and_short_names_only_match_whole_words() -> None:
    pseudonyms = Pseudonymizer(SALT_A, [("acc-1", "Ann", None), ("acc-2", "Ann Lee", None), ("acc-3", "Al", None)])
    ann, ann_lee, al = (code(SALT_A, f"acc-{n}") for n in (1, 2, 3))
    assert pseudonyms.text("Ann Lee met Ann") == f"Person {ann_lee} met Person {ann}"
    assert pseudonyms.text("Al went to Alaska with Al.") == f"Person {al} went to Alaska with Person {al}."


def test_a_display_name_two_accounts_share_belongs_to_neither() -> None:
    pseudonyms = Pseudonymizer(SALT_A, [("acc-1", "Sam Smith", None), ("acc-2", "Sam Smith", None)])
    shared = pseudonyms.value("Sam Smith", "name")
    assert shared not in {f"Person {code(SALT_A, 'acc-1')}", f"Person {code(SALT_A, 'acc-2')}"}
    assert shared == f"Person {hmac.new(SALT_A.encode(), b'name:Sam Smith', hashlib.sha256).hexdigest()[:12]}"


def test_the_salt_must_be_long_enough_and_is_never_shown() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        Pseudonymizer("short")
    pseudonyms = Pseudonymizer(SALT_A, [("acc-1", "Ann Lee", None)])
    assert SALT_A not in repr(pseudonyms) and SALT_A not in str(pseudonyms)
    assert Pseudonymizer(SALT_B, [("acc-1", "Ann Lee", None)]).account("acc-1") != pseudonyms.account("acc-1")


# -- the demo site's bundle --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world() -> ReportWorld:
    return demo_world()


@pytest.fixture(scope="module")
def bundles(world: ReportWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Pseudonymized bundles of the demo: salt A twice (a folder and a zip), salt B once."""
    folder = tmp_path_factory.mktemp("bundles")
    results = world.results()
    written = {}
    for name, salt, target in (("a", SALT_A, "a"), ("a-again", SALT_A, "a-again.zip"), ("b", SALT_B, "b")):
        bundle = write_bundle(world.db, path=folder / target, results=results, pseudonymize=True, salt=salt)
        assert bundle.pseudonymized
        written[name] = bundle.path
    return written


def bundle_files(path: Path) -> dict[str, bytes]:
    import zipfile

    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def cells(files: dict[str, bytes]) -> Iterator[tuple[str, str, str]]:
    """(file, column, value) of every non-null cell of every Parquet file, as text."""
    import io

    for name, data in files.items():
        if name.endswith(".parquet"):
            frame = pl.read_parquet(io.BytesIO(data))
            for column in frame.columns:
                for value in frame[column].cast(pl.String).drop_nulls().to_list():
                    yield name, column, value


def texts(files: dict[str, bytes]) -> dict[str, str]:
    """Every text file, and the report also with its character references decoded."""
    found = {name: data.decode() for name, data in files.items() if not name.endswith(".parquet")}
    found["report.html (unescaped)"] = html.unescape(found["report.html"])
    return found


def original_people(world: ReportWorld) -> set[str]:
    conn = store.connect(world.db, read_only=True)
    try:
        users = store.read_table(conn, "users")
        principals = store.read_table(conn, "_jira_lab_principals")
    finally:
        conn.close()
    values = {*users["account_id"], *users["display_name"], *users["email_address"], *principals["display_name"]}
    return {value for value in values if value}


def table(files: dict[str, bytes], name: str) -> pl.DataFrame:
    import io

    return pl.read_parquet(io.BytesIO(files[name]))


def test_no_original_id_name_or_email_survives_anywhere(world: ReportWorld, bundles: dict[str, Path]) -> None:
    originals = original_people(world)
    assert len(originals) > 60  # 25 accounts: ids, names and emails
    for path in bundles.values():
        files = bundle_files(path)
        leaks = [
            (name, column, original)
            for name, column, value in cells(files)
            for original in originals
            if original in value
        ]
        assert leaks == []
        for name, text in texts(files).items():
            assert [original for original in originals if original in text] == [], name
        assert SALT_A not in "".join(texts(files).values())


def test_the_same_person_has_the_same_pseudonym_in_every_table_and_the_report(
    world: ReportWorld, bundles: dict[str, Path]
) -> None:
    files = bundle_files(bundles["a"])
    technical = code(SALT_A, world.technical_user)
    users = table(files, "data/users.parquet")
    row = users.filter(pl.col("account_id") == f"person-{technical}").row(0, named=True)
    assert row["display_name"] == f"Person {technical}"
    assert row["email_address"] == f"person-{technical}@pseudonym.invalid"
    assert f"person-{technical}" in table(files, "audit/sync_coverage.parquet")["principal_id"].to_list()
    memberships = table(files, "data/group_members.parquet").filter(pl.col("account_id") == f"person-{technical}")
    assert memberships.height == sum(world.technical_user in members for members in world.site.group_members.values())
    descriptions = " ".join(table(files, "audit/permission_changes.parquet")["description"].to_list())
    assert f"Person {technical}" in descriptions
    page = Page(files["report.html"].decode())
    heading = next(e for e in page.elements if e.tag == "h1").text
    assert f"Person {technical}" in heading and f"person-{technical}" in page.text
    assert page.by_id("pseudonymized")
    # every author keeps their items: the pseudonyms of comment authors count what the originals did
    expected = Counter(
        f"person-{code(SALT_A, comment.author_account_id)}"
        for issue in world.site.issues.values()
        for comment in issue.comments
    )
    assert Counter(table(files, "data/comments.parquet")["author_account_id"].to_list()) == expected


def test_different_salts_give_unlinkable_pseudonyms(bundles: dict[str, Path]) -> None:
    def codes(path: Path) -> set[str]:
        files = bundle_files(path)
        found = {match for _, _, value in cells(files) for match in PSEUDONYM.findall(value)}
        return found | {match for text in texts(files).values() for match in PSEUDONYM.findall(text)}

    first, again, other = codes(bundles["a"]), codes(bundles["a-again"]), codes(bundles["b"])
    assert len(first) >= 25 and len(other) == len(first)
    assert first == again  # same salt, same pseudonyms: exports can be compared
    assert first.isdisjoint(other)


def adf_text(node: Any) -> str:
    if isinstance(node, dict):
        return (node.get("text") or "") + " ".join(adf_text(child) for child in node.get("content", []))
    return ""


def test_bodies_summaries_and_raw_json_are_gone(world: ReportWorld, bundles: dict[str, Path]) -> None:
    files = bundle_files(bundles["a"])
    comments, worklogs, issues = (table(files, f"data/{name}.parquet") for name in ("comments", "worklogs", "issues"))
    assert comments.height == sum(len(issue.comments) for issue in world.site.issues.values())
    for frame in (comments, worklogs, issues):
        assert not {"raw", "body_adf", "body_text", "comment_adf", "comment_text", "summary"} & set(frame.columns)
    bodies = {adf_text(c.body).strip() for issue in world.site.issues.values() for c in issue.comments}
    summaries = {issue.summary for issue in world.site.issues.values()}
    distinctive = {text for text in bodies | summaries if len(text) >= 25}
    assert len(distinctive) > 50
    found = [value for _, _, value in cells(files) for text in distinctive if text in value]
    assert found == []
    readme = files["README.md"].decode()
    assert "comment bodies" in readme and "HMAC-SHA256" in readme and "salt is not in this bundle" in readme
