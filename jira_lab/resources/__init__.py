"""Resource families: for each, ``fetch_*`` functions (I/O: raw Jira pages) and pure ``*_frame`` functions (raw JSON ->
polars frames with the schemas declared in :mod:`jira_lab.schema`). Saving is :mod:`jira_lab.store`'s job."""
