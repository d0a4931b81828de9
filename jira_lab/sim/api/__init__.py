"""Handlers of the simulated REST API v3, one module per family of endpoints.

Each module registers its handlers with :func:`jira_lab.sim.routing.route`, using the OpenAPI spec's path template.
Handlers read the site through ``call.site``, filter every read through ``call.engine`` for ``call.caller``, and
render JSON with :mod:`jira_lab.sim.render`.
"""
