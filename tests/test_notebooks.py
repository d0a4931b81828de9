"""Every notebook runs top to bottom against the simulated demo site and shows what the library computes.

The notebooks run in order in one temporary directory, each in a fresh kernel of this project's environment, as a
reader runs them: notebook 1 connects through its widget (answering the simulated consent page automatically, as
``$JIRA_LAB_DEMO_CONSENT_AS`` asks), notebook 2 loads the demo site into ``jira.duckdb`` as the technical user and the
analyst, notebooks 3 and 4 audit that file. The figures they print and draw are compared with the audits run here on
the same file and with the simulator's permission engine, the ground truth. A notebook run on its own loads the site
first. The committed notebooks must hold no outputs, and no run may show a secret.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import polars as pl
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from jira_lab import store
from jira_lab.audits import model
from jira_lab.audits.changes import permission_changes
from jira_lab.audits.coverage import coverage
from jira_lab.audits.preflight import preflight
from jira_lab.audits.visibility import empirical_gaps, restriction_gaps
from jira_lab.auth.scopes import REQUIRED_SCOPES, check_scopes
from jira_lab.sim.authserver import DEMO_CLIENT_SECRET
from jira_lab.sim.generator import generate_site
from jira_lab.sim.model import Site
from jira_lab.sim.permissions import PermissionEngine

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_NAMES = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
#: seconds one cell may take (the loads of notebook 2 take a few seconds; CI machines are slower)
CELL_TIMEOUT = 120
KERNEL_NAME = "jira-lab-tests"
DATABASE = "jira.duckdb"
KINDS = ("issue", "comment", "worklog")


# -- running notebooks -------------------------------------------------------------------------------------------
@dataclass
class Run:
    """Notebooks executed in one working directory, and the error each stopped at (if any)."""

    directory: Path
    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.directory / DATABASE


def kernel_specs(root: Path) -> KernelSpecManager:
    """A kernel spec that starts this interpreter (the project's environment), whatever the machine's Jupyter has."""
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "jira-lab", "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(root / "kernels")])


def kernel_environment(root: Path) -> dict[str, str]:
    """The test's environment without any jira-lab setting (the demo runs in the kernel), consenting automatically."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("JIRA_LAB_")}
    env["JIRA_LAB_DEMO_CONSENT_AS"] = "search-connector@lumen-labs.example"
    env["IPYTHONDIR"] = str(root / "ipython")  # no history or profile written to the user's home
    return env


def read_notebook(name: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def execute(name: str, directory: Path, specs: KernelSpecManager, env: dict[str, str], run: Run) -> None:
    notebook = read_notebook(name)
    kernel = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(directory)}})
    try:
        client.execute(env=env)
    except CellExecutionError as error:
        run.errors[name] = str(error)
    run.notebooks[name] = notebook


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    return kernel_specs(tmp_path_factory.mktemp("jupyter"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return kernel_environment(tmp_path_factory.mktemp("kernel-home"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, specs: KernelSpecManager, env: dict[str, str]) -> Run:
    """Every notebook, in order, in one directory: notebook 2 writes the database that 3 and 4 read."""
    directory = tmp_path_factory.mktemp("notebooks")
    done = Run(directory)
    for name in NOTEBOOK_NAMES:
        execute(name, directory, specs, env, done)
    return done


# -- the ground truth --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    site: Site
    technical_user: str
    #: (kind, id) of every item the permission engine hides from the technical user
    hidden: frozenset[tuple[str, int]]
    #: kind -> items on the site
    totals: dict[str, int]
    #: (project key, kind) -> items hidden from the technical user
    hidden_by_project: Counter[tuple[str, str]]


@pytest.fixture(scope="module")
def truth() -> Truth:
    site = generate_site("demo")
    technical_user = site.accounts["technical_user"]
    engine = PermissionEngine(site).snapshot()
    hidden: set[tuple[str, int]] = set()
    by_project: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for issue in site.issues.values():
        project = site.projects[issue.project_id].key
        totals["issue"] += 1
        if not engine.can_browse_issue(technical_user, issue):
            hidden.add(("issue", issue.id))
            by_project[project, "issue"] += 1
        for kind, entries in (("comment", issue.comments), ("worklog", issue.worklogs)):
            totals[kind] += len(entries)
            for entry in entries:
                if not engine.can_see_item(technical_user, issue, entry.visibility):
                    hidden.add((kind, entry.id))
                    by_project[project, kind] += 1
    return Truth(site, technical_user, frozenset(hidden), dict(totals), by_project)


@pytest.fixture(scope="module")
def tables(run: Run) -> model.SiteTables:
    assert run.database.exists(), "notebook 2 writes the database the other notebooks read"
    with store.connect(run.database, read_only=True) as conn:
        return model.from_db(conn)


# -- reading outputs ---------------------------------------------------------------------------------------------
def tagged(notebook: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    found = [cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]
    assert len(found) == 1, f"one cell tagged {tag!r}"
    cell: nbformat.NotebookNode = found[0]
    return cell


def text(cell: nbformat.NotebookNode) -> str:
    """What a cell printed and displayed as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def svg(cell: nbformat.NotebookNode) -> str:
    charts = [output.data["image/svg+xml"] for output in cell.outputs if "image/svg+xml" in output.get("data", {})]
    assert len(charts) == 1, "the cell displays one chart, rendered to SVG"
    return str(charts[0])


def mark_labels(chart: str) -> list[dict[str, str]]:
    """The data behind each mark of a Vega SVG: its ``aria-label`` (``field: value; ...``) as a dict."""
    labels = []
    for label in re.findall(r'aria-label="([^"]*)"', chart):
        fields = dict(part.split(": ", 1) for part in label.split("; ") if ": " in part)
        if "status" in fields or "change_kind" in fields:
            labels.append(fields)
    return labels


def every_output_text(notebook: nbformat.NotebookNode) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells], ensure_ascii=False)


# -- the committed notebooks -------------------------------------------------------------------------------------
def test_the_four_notebooks_are_there() -> None:
    numbers = [name.split("-", 1)[0] for name in NOTEBOOK_NAMES]
    assert numbers[:4] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_committed_notebooks_hold_no_outputs(name: str) -> None:
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] for cell in code), "store notebooks without outputs"
    assert all(cell.execution_count is None for cell in code), "store notebooks without execution counts"
    assert "widgets" not in notebook.metadata, "no saved widget state"
    # the one cell a reader changes for their own site comes first
    assert "parameters" in code[0].get("metadata", {}).get("tags", [])
    assert sum("parameters" in cell.get("metadata", {}).get("tags", []) for cell in code) == 1


# -- every notebook runs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_the_notebook_runs_top_to_bottom_without_an_error(run: Run, name: str) -> None:
    assert name not in run.errors, run.errors.get(name)
    executed = run.notebooks[name]
    for cell in executed.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"cell {cell.get('id')} did not run"
            assert not [output for output in cell.outputs if output.output_type == "error"]


def test_no_run_shows_a_secret(run: Run, truth: Truth) -> None:
    secrets = [DEMO_CLIENT_SECRET, "sim-at-", "Bearer ", "refresh_token", "access_token"]
    secrets += [user.api_token for user in truth.site.users.values() if user.api_token]
    for name, notebook in run.notebooks.items():
        shown = every_output_text(notebook)
        assert shown != "[]"
        leaked = [secret for secret in secrets if secret in shown]
        assert not leaked, f"{name} shows {leaked}"


# -- 1: connect --------------------------------------------------------------------------------------------------
def test_the_connect_notebook_connects_as_the_technical_user(run: Run, truth: Truth) -> None:
    shown = "\n".join(text(cell) for cell in run.notebooks["01-connect.ipynb"].cells)
    technical = truth.site.users[truth.technical_user]
    assert f"user:    {technical.display_name} (account id {technical.account_id})" in shown
    assert f"cloud id {truth.site.cloud_id}" in shown
    assert f"scopes:  {check_scopes(REQUIRED_SCOPES).describe()}" in shown
    # the summary names the account, and so does the API's answer to the connection's first request
    assert shown.count(technical.account_id) >= 2


# -- 2: load and explore -----------------------------------------------------------------------------------------
def test_the_load_notebook_loads_both_principals(run: Run, truth: Truth, tables: model.SiteTables) -> None:
    notebook = run.notebooks["02-load-and-explore.ipynb"]
    lines = text(tagged(notebook, "load")).splitlines()
    technical = truth.site.users[truth.technical_user]
    analyst = truth.site.users[truth.site.accounts["analyst"]]
    assert len(lines) == 2
    assert f"as {technical.display_name} ({technical.account_id}): succeeded" in lines[0]
    assert f"as {analyst.display_name} ({analyst.account_id}): succeeded" in lines[1]
    # both loaded through the gateway with OAuth: the site is known by its cloud id
    assert tables.site_id == truth.site.cloud_id
    principals = tables.jira_lab_principals.collect()
    assert set(principals["principal_id"]) == {technical.account_id, analyst.account_id}


def test_the_load_notebook_shows_every_table_with_its_rows(run: Run, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["02-load-and-explore.ipynb"], "tables"))
    rows = {name: int(count) for name, count in re.findall(r"^│ (\w+)\s+┆ (\d+)\s+┆", shown, re.MULTILINE)}
    with store.connect(run.database, read_only=True) as conn:
        declared = [name for (name,) in conn.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
        counts = {name: conn.sql(f'SELECT count(*) FROM "{name}"').fetchall()[0][0] for name in declared}
    assert rows == counts
    assert rows["issues"] == truth.totals["issue"]
    assert rows["comments"] == truth.totals["comment"]
    assert rows["worklogs"] == truth.totals["worklog"]


def test_the_load_notebook_counts_the_restricted_comments(run: Run, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["02-load-and-explore.ipynb"], "restricted-count"))
    restricted = sum(
        1 for issue in truth.site.issues.values() for comment in issue.comments if comment.visibility is not None
    )
    assert restricted > 0
    assert shown.strip() == (
        f"{restricted} of {truth.totals['comment']} comments are restricted to a group or a project role"
    )


def test_the_load_notebook_finds_the_deactivated_accounts_still_in_groups(run: Run, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["02-load-and-explore.ipynb"], "inactive"))
    members = {account for accounts in truth.site.group_members.values() for account in accounts}
    inactive = [user for user in truth.site.users.values() if not user.active and user.account_id in members]
    assert inactive
    assert f"shape: ({len(inactive)}, 3)" in shown
    for user in inactive:
        groups = sorted(
            truth.site.groups[group_id].name
            for group_id, accounts in truth.site.group_members.items()
            if user.account_id in accounts
        )
        assert re.search(rf"{re.escape(user.display_name)}\s+┆ {user.account_id}\s+┆ {', '.join(groups)}", shown)


# -- 3: the visibility audit -------------------------------------------------------------------------------------
def hidden_counts(notebook: nbformat.NotebookNode) -> dict[str, tuple[int, int]]:
    shown = text(tagged(notebook, "hidden-counts"))
    found = re.findall(r"^\s*(\d+) of\s+(\d+) (issue|comment|worklog)s are hidden from", shown, re.MULTILINE)
    return {kind: (int(hidden), int(total)) for hidden, total, kind in found}


def test_the_audit_notebook_prints_the_preflight_checklist(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["03-visibility-audit.ipynb"], "preflight"))
    printed = {int(n): status for n, status in re.findall(r"^(\d)\. (PASS|FAIL|CANNOT TELL) ", shown, re.MULTILINE)}
    checks = preflight(tables, truth.technical_user)
    assert printed == {row["check"]: row["status"].upper() for row in checks.iter_rows(named=True)}
    # the demo's connector fails Browse Projects, security levels and restrictions; its OAuth load recorded the scopes
    assert printed == {1: "PASS", 2: "FAIL", 3: "FAIL", 4: "FAIL", 5: "PASS", 6: "PASS"}


def test_the_audit_notebook_counts_what_the_engine_hides(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    printed = hidden_counts(run.notebooks["03-visibility-audit.ipynb"])
    gaps = restriction_gaps(tables, truth.technical_user).gaps
    predicted = Counter(gaps["item_kind"].to_list())
    engine = Counter(kind for kind, _ in truth.hidden)
    assert printed == {kind: (predicted[kind], truth.totals[kind]) for kind in KINDS}
    assert printed == {kind: (engine[kind], truth.totals[kind]) for kind in KINDS}
    assert all(hidden > 0 for hidden, _ in printed.values())


def test_the_audit_notebook_compares_the_prediction_with_both_loads(
    run: Run, tables: model.SiteTables, truth: Truth
) -> None:
    shown = text(tagged(run.notebooks["03-visibility-audit.ipynb"], "observed"))
    found = re.search(r"saw (\d+) items that .+ did not; (\d+) were predicted; they disagree on (\d+) items", shown)
    assert found is not None, shown
    observed = empirical_gaps(tables, truth.site.accounts["analyst"], truth.technical_user)
    assert (int(found[1]), int(found[2]), int(found[3])) == (observed.height, len(truth.hidden), 0)


def test_the_audit_notebook_lists_the_fixes(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["03-visibility-audit.ipynb"], "fixes"))
    printed = [
        (int(step), target, int(unlocked))
        for step, target, unlocked in re.findall(r"^(\d+)\. (.+): (\d+) items become visible$", shown, re.MULTILINE)
    ]
    fixes = restriction_gaps(tables, truth.technical_user).fixes.filter(pl.col("step").is_not_null())
    assert printed == [(row["step"], row["target"], row["items_unlocked"]) for row in fixes.iter_rows(named=True)]
    # applied in order, they make every hidden item visible (the demo's permission model is complete)
    assert sum(unlocked for _, _, unlocked in printed) == len(truth.hidden)


# -- 4: coverage and changes -------------------------------------------------------------------------------------
def test_the_coverage_notebook_draws_every_chart(run: Run) -> None:
    notebook = run.notebooks["04-coverage-and-changes.ipynb"]
    for tag in ("projects-chart", "levels-chart", "restrictions-chart", "months-chart", "changes-chart"):
        chart = svg(tagged(notebook, tag))
        assert chart.lstrip().startswith("<svg") and "<script" not in chart
        assert mark_labels(chart), f"{tag} draws marks"


def test_the_project_chart_draws_the_coverage_per_project(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    chart = svg(tagged(run.notebooks["04-coverage-and-changes.ipynb"], "projects-chart"))
    drawn = {(mark["label"], mark["item_kind"], mark["status"]): int(mark["count"]) for mark in mark_labels(chart)}
    projects = coverage(tables, truth.technical_user).filter(pl.col("dimension") == "project")
    expected = {}
    for row in projects.iter_rows(named=True):
        expected[row["label"], row["item_kind"], "visible"] = row["visible"]
        expected[row["label"], row["item_kind"], "hidden"] = row["hidden"]
    assert drawn == expected
    hidden_drawn = {(project, kind): count for (project, kind, status), count in drawn.items() if status == "hidden"}
    assert {key: count for key, count in hidden_drawn.items() if count} == dict(truth.hidden_by_project)


def test_the_change_timeline_draws_every_dated_change(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    notebook = run.notebooks["04-coverage-and-changes.ipynb"]
    changes = permission_changes(tables, truth.technical_user).filter(pl.col("created").is_not_null())
    points = mark_labels(svg(tagged(notebook, "changes-chart")))
    assert len(points) == changes.height > 0
    assert Counter(point["effect"] for point in points) == Counter(changes["effect"].to_list())
    assert f"shape: ({changes.height}, 5)" in text(tagged(notebook, "changes"))


def test_the_coverage_notebook_writes_the_report(run: Run, tables: model.SiteTables, truth: Truth) -> None:
    shown = text(tagged(run.notebooks["04-coverage-and-changes.ipynb"], "report"))
    assert shown.startswith("wrote report.html (")
    page = (run.directory / "report.html").read_text(encoding="utf-8")
    assert f'id="hidden-items" data-total="{len(truth.hidden)}"' in page


# -- a notebook on its own ---------------------------------------------------------------------------------------
def test_an_audit_notebook_run_on_its_own_loads_the_site_first(
    run: Run, tmp_path: Path, specs: KernelSpecManager, env: dict[str, str], truth: Truth
) -> None:
    alone = Run(tmp_path)
    execute("03-visibility-audit.ipynb", tmp_path, specs, env, alone)
    assert not alone.errors, alone.errors
    assert alone.database.exists()
    printed = hidden_counts(alone.notebooks["03-visibility-audit.ipynb"])
    assert printed == hidden_counts(run.notebooks["03-visibility-audit.ipynb"])
    assert sum(hidden for hidden, _ in printed.values()) == len(truth.hidden)
