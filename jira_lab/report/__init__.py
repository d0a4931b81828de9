"""Reports and sharing: the HTML report, the export bundle, pseudonymization and the charts.

* :func:`render_report` / :func:`write_report`: one self-contained HTML page (checklist, gaps, coverage charts,
  permission-change timeline) from a DuckDB file, loaded tables or an audit already run
  (:mod:`jira_lab.report.page`);
* :func:`write_bundle`: Parquet tables of the audit results and of the loaded data, plus the report, in a folder or a
  zip, with people pseudonymized on request (:mod:`jira_lab.report.export`, :mod:`jira_lab.report.pseudonymize`);
* :mod:`jira_lab.report.charts`: the charts as Vega-Altair objects, which display themselves in a notebook.

::

    from jira_lab.report import write_report, write_bundle
    write_report("jira.duckdb", user="connector@example.com", path="report.html")
    write_bundle("jira.duckdb", user="connector@example.com", path="share.zip", pseudonymize=True, salt=SALT)
"""

from __future__ import annotations

from jira_lab.report.export import Bundle, write_bundle
from jira_lab.report.page import audit_results, load_tables, render_report, render_results, write_report
from jira_lab.report.pseudonymize import Pseudonymizer

__all__ = [
    "Bundle",
    "Pseudonymizer",
    "audit_results",
    "load_tables",
    "render_report",
    "render_results",
    "write_bundle",
    "write_report",
]
