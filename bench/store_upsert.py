"""How fast the store writes comments: the Arrow upsert against DuckDB's ``executemany``, in the same process.

Builds ``--rows`` comment rows (100,000 by default) shaped like a real load: ADF bodies, plain text, visibility on
some, the raw JSON. Then, each in a fresh database file under a temporary directory:

* **Arrow upsert** (:func:`jira_lab.store.upsert`): all rows inserted in one call, then all of them upserted again
  with changed bodies (every row hits ON CONFLICT DO UPDATE), then the 100k sightings of that load recorded.
* **executemany baseline**: the same ``INSERT ... ON CONFLICT DO UPDATE`` statement with ``?`` parameters, fed
  the same rows as Python tuples, in one transaction. It is slow enough (a few ms per row) that it runs on the
  first ``--baseline-rows`` rows only (5,000 by default) and its rate is extrapolated to the full batch, labelled
  as such.

Run: ``uv run python bench/store_upsert.py [--rows N] [--baseline-rows N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from jira_lab import schema, store
from jira_lab.schema import quote

SITE = "bench-cloud-id"


def comment_frame(rows: int, *, edition: str) -> pl.DataFrame:
    """``rows`` comments over ``rows // 10`` issues; one in five restricted to a group or a role."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    records = []
    for n in range(rows):
        text = f"{edition} comment {n}: the deploy of build {n % 977} failed on node {n % 13}, retrying."
        adf = {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
        }
        restricted = n % 5 == 0
        group = n % 10 == 0
        created = start + timedelta(minutes=n)
        visibility = (
            {
                "type": "group" if group else "role",
                "value": "developers" if group else "Developers",
                "identifier": "276f955c-63d7-42c8-9520-92d01dca0625" if group else "Developers",
            }
            if restricted
            else None
        )
        raw = {
            "id": str(10_000 + n),
            "self": f"https://bench.atlassian.net/rest/api/3/issue/{n // 10}/comment/{n}",
            "author": {"accountId": f"acc-{n % 500}", "displayName": f"User {n % 500}"},
            "created": created.isoformat(),
            "updated": created.isoformat(),
            "jsdPublic": True,
            "visibility": visibility,
        }
        records.append(
            {
                "site_id": SITE,
                "id": 10_000 + n,
                "issue_id": 100_000 + n // 10,
                "author_account_id": f"acc-{n % 500}",
                "update_author_account_id": f"acc-{n % 500}",
                "created": created,
                "updated": created,
                "visibility_type": visibility["type"] if visibility else None,
                "visibility_value": visibility["value"] if visibility else None,
                "visibility_identifier": visibility["identifier"] if visibility else None,
                "jsd_public": True,
                "body_adf": json.dumps(adf),
                "body_text": text,
                "raw": json.dumps(raw),
            }
        )
    return schema.table("comments").frame(records)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fresh_database(directory: Path, name: str) -> duckdb.DuckDBPyConnection:
    conn = store.connect(directory / f"{name}.duckdb")
    store.ensure_schema(conn)
    return conn


def executemany_upsert(conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    """What a row-by-row loader does: one parameterised statement per row, in one transaction."""
    columns = frame.columns
    key = schema.table("comments").primary_key
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in key)
    sql = (
        f"INSERT INTO comments ({', '.join(quote(c) for c in columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
    with store.transaction(conn):
        conn.executemany(sql, frame.rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="comment rows to upsert (default 100000)")
    parser.add_argument("--baseline-rows", type=int, default=5_000, help="rows given to executemany (default 5000)")
    args = parser.parse_args()

    built = time.perf_counter()
    first = comment_frame(args.rows, edition="first")
    second = comment_frame(args.rows, edition="edited")
    print(
        f"{args.rows} comment rows built in {time.perf_counter() - built:.1f} s "
        f"({first.estimated_size('mb'):.0f} MB as a polars frame)"
    )

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        conn = fresh_database(directory, "arrow")
        insert_s = timed(lambda: store.upsert(conn, "comments", first))
        update_s = timed(lambda: store.upsert(conn, "comments", second))
        load_id = store.start_load(conn, site_id=SITE, principal_id="acc-bench")
        sightings_s = timed(
            lambda: store.record_sightings(
                conn,
                site_id=SITE,
                principal_id="acc-bench",
                load_id=load_id,
                entity_kind="comment",
                entity_ids=second["id"],
            )
        )
        stored = conn.execute("SELECT count(*), count(*) FILTER (body_text LIKE 'edited%') FROM comments").fetchall()
        conn.close()
        assert stored == [(args.rows, args.rows)], stored

        baseline_rows = min(args.baseline_rows, args.rows)
        conn = fresh_database(directory, "executemany")
        baseline_s = timed(lambda: executemany_upsert(conn, first.head(baseline_rows)))
        assert conn.execute("SELECT count(*) FROM comments").fetchall() == [(baseline_rows,)]
        conn.close()

    arrow_rate = args.rows / insert_s
    update_rate = args.rows / update_s
    baseline_rate = baseline_rows / baseline_s
    extrapolated = " (extrapolated)" if baseline_rows < args.rows else ""
    print()
    print(f"{'path':<44}{'rows':>9}{'seconds':>10}{'rows/s':>12}")
    print(f"{'Arrow upsert, new rows':<44}{args.rows:>9}{insert_s:>10.2f}{arrow_rate:>12,.0f}")
    print(f"{'Arrow upsert, every row updated':<44}{args.rows:>9}{update_s:>10.2f}{update_rate:>12,.0f}")
    print(f"{'record_sightings (one load)':<44}{args.rows:>9}{sightings_s:>10.2f}{args.rows / sightings_s:>12,.0f}")
    print(f"{'executemany baseline, new rows':<44}{baseline_rows:>9}{baseline_s:>10.2f}{baseline_rate:>12,.0f}")
    print()
    print(f"executemany would take {args.rows / baseline_rate:,.0f} s for {args.rows} rows{extrapolated}")
    print(f"ratio (Arrow upsert rows/s ÷ executemany rows/s, new rows): {arrow_rate / baseline_rate:,.0f}×")


if __name__ == "__main__":
    main()
