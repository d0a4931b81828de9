"""Handlers of the simulated REST API v3, one module per family of endpoints.

Two modules hold no endpoint, only what several families share: :mod:`~jira_lab.sim.api.admin_only` (the refusal of
administrators-only endpoints) and :mod:`~jira_lab.sim.api.issue_items` (comments and worklogs as the caller may see
them).

Each module registers its handlers with :func:`jira_lab.sim.routing.route`, using the OpenAPI spec's path template.
Handlers read the site through ``call.site``, filter every read through ``call.engine`` for ``call.caller``, and
render JSON with :mod:`jira_lab.sim.render`.
"""
