"""The command line: `jira-lab sim` and `jira-lab demo --serve` serve over loopback; the demo's summary is checked
against the simulator's permission engine (tests/test_demo.py checks it against the audits)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import httpx

from jira_lab.auth.connect import connect_from_store
from jira_lab.auth.tokens import FileTokenStore
from jira_lab.sim.generator import generate_site
from jira_lab.sim.permissions import PermissionEngine


def test_sim_serves_until_interrupted_and_the_printed_curl_works() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "jira_lab.cli", "sim", "--site", "tiny", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:  # blocks until the server prints, i.e. until it listens
            printed.append(line)
            if line.startswith("Serving until Ctrl-C"):
                break
        output = "".join(printed)
        curl = re.search(r"curl -s -u '([^:]+):([^']+)' (\S+)", output)
        assert curl is not None, output
        email, token, url = curl.groups()
        site = generate_site("tiny", seed=0)
        analyst = site.users[site.accounts["analyst"]]
        assert (email, token) == (analyst.email, analyst.api_token)
        me = httpx.get(url, auth=(email, token))
        assert me.status_code == 200
        assert me.json()["accountId"] == analyst.account_id
        for account_id in site.accounts.values():
            assert site.users[account_id].display_name in output
    finally:
        process.send_signal(signal.SIGINT)
        remaining, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert "Stopped." in remaining


def _visible(site_name: str, role: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Issues, comments and worklogs per project key that ``role`` may see, by the simulator's permission engine."""
    site = generate_site(site_name, seed=0)
    engine = PermissionEngine(site)
    account = site.accounts[role]
    issues: Counter[str] = Counter()
    comments: Counter[str] = Counter()
    worklogs: Counter[str] = Counter()
    for issue in site.issues.values():
        if engine.can_browse_issue(account, issue):
            key = site.projects[issue.project_id].key
            issues[key] += 1
            comments[key] += sum(engine.can_see_item(account, issue, c.visibility) for c in issue.comments)
            worklogs[key] += sum(engine.can_see_item(account, issue, w.visibility) for w in issue.worklogs)
    return issues, comments, worklogs


def test_demo_serve_prints_what_the_site_hides_and_keeps_it_up_for_the_notebooks(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "jira_lab.cli", "demo", "--dir", str(folder), "--serve", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:  # blocks until the demo has finished its work and serves
            printed.append(line)
            if line.startswith("Serving until Ctrl-C"):
                break
        output = "".join(printed)
        assert "Serving until Ctrl-C" in output, output

        # the analyst sees everything (the demo's story); the technical user what the permission engine allows
        everything, visible = _visible("demo", "analyst"), _visible("demo", "technical_user")
        coverage = {}
        for line in output[output.index("Coverage per project") :].splitlines()[2:]:
            if not line.strip():
                break
            key, rest = line.split(maxsplit=1)
            coverage[key] = [
                tuple(int(n.replace(",", "")) for n in pair) for pair in re.findall(r"([\d,]+) of ([\d,]+)", rest)
            ]
        assert set(coverage) == set(everything[0])
        for key, cells in coverage.items():
            assert cells == [(visible[kind][key], everything[kind][key]) for kind in range(3)]
        hidden = re.search(
            r"^Hidden from .*: ([\d,]+) of [\d,]+ issues, ([\d,]+) of [\d,]+ comments, ([\d,]+) of", output, re.M
        )
        assert hidden is not None, output
        assert [int(n.replace(",", "")) for n in hidden.groups()] == [
            everything[kind].total() - visible[kind].total() for kind in range(3)
        ]

        exported = dict(re.findall(r"^  export (JIRA_LAB_\w+)=(\S+)$", output, re.M))
        assert {"JIRA_LAB_SITE_URL", "JIRA_LAB_API_URL", "JIRA_LAB_AUTH_URL", "JIRA_LAB_CLIENT_ID"} <= set(exported)
        assert {"JIRA_LAB_CLIENT_SECRET", "JIRA_LAB_DB", "JIRA_LAB_TOKEN_STORE"} <= set(exported)
        site = generate_site("demo", seed=0)
        analyst = site.users[site.accounts["analyst"]]
        assert analyst.email is not None and analyst.api_token is not None
        me = httpx.get(exported["JIRA_LAB_SITE_URL"] + "/rest/api/3/myself", auth=(analyst.email, analyst.api_token))
        assert me.status_code == 200 and me.json()["accountId"] == analyst.account_id
        # a notebook reuses the demo's tokens against the site still served: no consent needed
        connection = connect_from_store(
            exported["JIRA_LAB_CLIENT_ID"],
            exported["JIRA_LAB_CLIENT_SECRET"],
            store=FileTokenStore(exported["JIRA_LAB_TOKEN_STORE"]),
            account_id=site.accounts["technical_user"],
            auth_url=exported["JIRA_LAB_AUTH_URL"],
            api_url=exported["JIRA_LAB_API_URL"],
        )
        assert connection.account_id == site.accounts["technical_user"]
        with duckdb.connect(exported["JIRA_LAB_DB"], read_only=True) as db:  # the demo let go of the file
            assert db.execute("SELECT count(*) FROM _jira_lab_loads WHERE status = 'succeeded'").fetchone() == (2,)
    finally:
        process.send_signal(signal.SIGINT)
        remaining, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert "Stopped." in remaining
