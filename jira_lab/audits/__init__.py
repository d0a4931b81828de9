"""Audits of what a technical user can and cannot see: pure polars over the loaded tables of one site.

* :mod:`jira_lab.audits.model`: the loaded tables as LazyFrames (:class:`~jira_lab.audits.model.SiteTables`,
  :func:`~jira_lab.audits.model.from_db`) and the permission model resolved from them (who holds Browse Projects,
  who is a member of a security level, who satisfies a restriction).
* :mod:`jira_lab.audits.visibility`: restriction gaps (the static prediction), the empirical two-principal check
  and their comparison.

Each public function documents its output columns; ``docs/audits.md`` lists them all.
"""
