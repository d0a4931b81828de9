"""The command line: `jira-lab sim` serves over loopback, `jira-lab demo` measures what each account sees."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter

import httpx
from click.testing import CliRunner

from jira_lab.cli import main
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


def test_demo_reports_what_each_account_can_see() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    analyst = _visible("demo", "analyst")
    technical = _visible("demo", "technical_user")
    rows = dict(
        (m.group(1), tuple(int(n) for n in m.groups()[1:]))
        for m in re.finditer(r"^\s+([A-Z]+)\s+(\d+) / (\d+)\s+(\d+) / (\d+)\s+(\d+) / (\d+)$", result.output, re.M)
    )
    assert set(rows) == set(analyst[0])
    for key, row in rows.items():
        assert row == (
            analyst[0][key],
            technical[0][key],
            analyst[1][key],
            technical[1][key],
            analyst[2][key],
            technical[2][key],
        )
    hidden = [analyst[i].total() - technical[i].total() for i in range(3)]
    assert hidden[0] > 0 and hidden[1] > 0 and hidden[2] > 0
    assert f"{hidden[0]} issues, {hidden[1]} comments, {hidden[2]} worklogs" in result.output
