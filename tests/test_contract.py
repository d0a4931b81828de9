"""Every route of the simulator answers what Atlassian's OpenAPI spec says it may, for every kind of caller.

:data:`CONTRACT` says, route by route, how an analyst would call it on a real site: path parameters filled from the
site, realistic query and body parameters (expand variants, filters, small page sizes so pagination is walked to the
end) and a few requests that must fail. Each request is sent as the analyst who sees everything (over the API
gateway, with every scope), as a restricted user (Basic auth on the site URL) and anonymously; every page of every
answer, 200 or error, is validated with :func:`spec.assert_matches_spec`.

A route the table does not know fails :func:`test_every_route_has_a_contract_entry`, so no route can dodge the
contract. The scope table ``operations.json`` is checked against the spec here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import httpx
import pytest
from spec import (
    SPEC_ERRATA,
    ContractWorld,
    assert_matches_spec,
    assert_response_matches_spec,
    fill_template,
    load_spec,
    operation_texts,
)

from jira_lab.operations import TABLE, generate
from jira_lab.sim import SimCloud
from jira_lab.sim.app import api_routes
from jira_lab.sim.builder import EPOCH
from jira_lab.sim.render import epoch_ms

#: No walk of a paginated answer may take more pages than this: a paginator that never ends is a failure.
MAX_PAGES = 1000
#: The simulated "now" of the contract runs: well after every generated timestamp, so worklog feeds have settled.
NOW = EPOCH + timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Paging:
    """How to walk a paginated answer to its end.

    ``startAt``: ``startAt``/``maxResults`` (PageBean, legacy pages and bare arrays); ``token``: ``nextPageToken``
    (in the query, or in the body when ``in_body``); ``since``: the worklog feeds (follow ``nextPage``);
    ``offset``: ``offset``/``limit`` (audit records). ``items`` is the list's key, ``None`` for a bare array.
    """

    style: Literal["startAt", "token", "since", "offset"]
    items: str | None
    in_body: bool = False


@dataclass(frozen=True, slots=True)
class Req:
    """One request of the contract table; ``status`` is what the all-seeing analyst must get."""

    path: dict[str, str] = field(default_factory=dict)
    params: dict[str, str | list[str]] = field(default_factory=dict)
    body: Any = None
    paging: Paging | None = None
    status: int = 200


Builder = Callable[[ContractWorld], list[Req]]

START_AT = Paging("startAt", "values")
BARE_ARRAY = Paging("startAt", None)
MISSING_ISSUE = {"issueIdOrKey": "NOPE-99999"}


def _issue(w: ContractWorld) -> dict[str, str]:
    return {"issueIdOrKey": w.issue.key}


def _project(w: ContractWorld) -> dict[str, str]:
    return {"projectIdOrKey": w.project.key}


def _secured_project(w: ContractWorld) -> dict[str, str]:
    return {"projectKeyOrId": str(w.site.projects[w.secured_issue.project_id].id)}


def _all_comment_ids(w: ContractWorld) -> list[int]:
    return [c.id for issue in w.site.issues.values() for c in issue.comments]


def _all_worklog_ids(w: ContractWorld) -> list[int]:
    return [wl.id for issue in w.site.issues.values() for wl in issue.worklogs]


def _jql(w: ContractWorld) -> str:
    return f"project = {w.project.key} ORDER BY key ASC"


# -- the table, family by family --------------------------------------------------------------------------------


def meta_routes() -> dict[str, Builder]:
    return {
        "GET /rest/api/3/serverInfo": lambda w: [Req()],
        "GET /rest/api/3/myself": lambda w: [Req(), Req(params={"expand": "groups,applicationRoles"})],
    }


def search_routes() -> dict[str, Builder]:
    def search_get(w: ContractWorld) -> list[Req]:
        paged = Paging("token", "issues")
        return [
            Req(params={"jql": _jql(w), "maxResults": "2"}, paging=paged),
            Req(params={"jql": _jql(w), "maxResults": "3", "fields": "summary,status,updated,comment"}, paging=paged),
            Req(params={"jql": _jql(w), "fields": "*all", "expand": "names,schema,renderedFields,changelog"}),
            Req(params={"jql": f"key = {w.secured_issue.key}", "fields": "*navigable,-description"}),
            Req(params={"jql": "order by key desc"}, status=400),
            Req(params={"jql": "project = "}, status=400),
        ]

    def search_post(w: ContractWorld) -> list[Req]:
        paged = Paging("token", "issues", in_body=True)
        return [
            Req(body={"jql": _jql(w), "maxResults": 2}, paging=paged),
            Req(body={"jql": _jql(w), "maxResults": 100, "fields": ["summary", "status", "updated", "comment"]}),
            Req(body={"jql": _jql(w), "fields": ["*all"], "expand": "names,schema,changelog", "fieldsByKeys": False}),
            Req(body={"jql": "order by key desc"}, status=400),
        ]

    return {
        "GET /rest/api/3/search/jql": search_get,
        "POST /rest/api/3/search/jql": search_post,
        "POST /rest/api/3/search/approximate-count": lambda w: [
            Req(body={"jql": f"project = {w.project.key}"}),
            Req(body={"jql": "order by key desc"}, status=400),
        ],
        # the old search is gone: Jira answers 410 Gone
        "GET /rest/api/3/search": lambda w: [Req(params={"jql": _jql(w)}, status=410)],
        "POST /rest/api/3/search": lambda w: [Req(body={"jql": _jql(w)}, status=410)],
    }


def issue_routes() -> dict[str, Builder]:
    def get_issue(w: ContractWorld) -> list[Req]:
        return [
            Req(path=_issue(w)),
            Req(path={"issueIdOrKey": str(w.issue.id)}, params={"fields": "summary,comment,worklog,status"}),
            Req(path={"issueIdOrKey": w.issue.key.lower()}, params={"expand": "renderedFields,names,schema,changelog"}),
            Req(path=_issue(w), params={"expand": "versionedRepresentations,transitions,editmeta,operations"}),
            Req(path={"issueIdOrKey": w.secured_issue.key}, params={"fields": "*all", "properties": "*all"}),
            Req(path=MISSING_ISSUE, status=404),
        ]

    def bulkfetch(w: ContractWorld) -> list[Req]:
        ids: list[str] = [*[str(i.id) for i in w.site.issues.values()][:50], w.secured_issue.key, "NOPE-99999"]
        return [
            Req(body={"issueIdsOrKeys": ids}),
            Req(body={"issueIdsOrKeys": ids, "fields": ["summary", "status"], "expand": ["names", "changelog"]}),
        ]

    return {
        "GET /rest/api/3/issue/{issueIdOrKey}": get_issue,
        "POST /rest/api/3/issue/bulkfetch": bulkfetch,
    }


def comment_routes() -> dict[str, Builder]:
    def comments(w: ContractWorld) -> list[Req]:
        paged = Paging("startAt", "comments")
        return [
            Req(path=_issue(w), params={"maxResults": "2"}, paging=paged),
            Req(
                path=_issue(w),
                params={"orderBy": "-created", "expand": "renderedBody", "maxResults": "1"},
                paging=paged,
            ),
            Req(path={"issueIdOrKey": str(w.secured_issue.id)}),
            Req(path=_issue(w), params={"orderBy": "sideways"}, status=400),
            Req(path=MISSING_ISSUE, status=404),
        ]

    def comment(w: ContractWorld) -> list[Req]:
        plain = next(c for c in w.issue.comments if c.visibility is None)
        return [
            Req(path={**_issue(w), "id": str(w.restricted_comment.id)}),
            Req(path={**_issue(w), "id": str(plain.id)}, params={"expand": "renderedBody,properties"}),
            Req(path={**_issue(w), "id": "99999999"}, status=404),
        ]

    return {
        "GET /rest/api/3/issue/{issueIdOrKey}/comment": comments,
        "GET /rest/api/3/issue/{issueIdOrKey}/comment/{id}": comment,
        "POST /rest/api/3/comment/list": lambda w: [
            Req(body={"ids": _all_comment_ids(w)[:1000]}),
            Req(body={"ids": _all_comment_ids(w)[:10]}, params={"expand": "renderedBody,properties"}),
        ],
    }


def worklog_routes() -> dict[str, Builder]:
    def worklogs(w: ContractWorld) -> list[Req]:
        paged = Paging("startAt", "worklogs")
        first_started = epoch_ms(min(wl.started for wl in w.issue.worklogs))
        return [
            Req(path=_issue(w), params={"maxResults": "2"}, paging=paged),
            Req(path=_issue(w), params={"startedAfter": str(first_started), "expand": "properties"}),
            Req(path=_issue(w), params={"startedBefore": str(first_started + 1)}),
            Req(path={"issueIdOrKey": w.secured_issue.key}),
            Req(path=MISSING_ISSUE, status=404),
        ]

    def worklog(w: ContractWorld) -> list[Req]:
        restricted = next((wl for wl in w.issue.worklogs if wl.visibility is not None), w.issue.worklogs[0])
        return [
            Req(path={**_issue(w), "id": str(restricted.id)}),
            Req(path={**_issue(w), "id": str(w.issue.worklogs[0].id)}, params={"expand": "properties"}),
            Req(path={**_issue(w), "id": "99999999"}, status=404),
        ]

    since = Paging("since", "values")
    return {
        "GET /rest/api/3/issue/{issueIdOrKey}/worklog": worklogs,
        "GET /rest/api/3/issue/{issueIdOrKey}/worklog/{id}": worklog,
        "GET /rest/api/3/worklog/updated": lambda w: [
            Req(paging=since),
            Req(params={"since": str(epoch_ms(w.issue.created)), "expand": "properties"}, paging=since),
        ],
        "GET /rest/api/3/worklog/deleted": lambda w: [Req(paging=since), Req(params={"since": str(epoch_ms(NOW))})],
        "POST /rest/api/3/worklog/list": lambda w: [
            Req(body={"ids": _all_worklog_ids(w)[:1000]}),
            Req(body={"ids": _all_worklog_ids(w)[:5]}, params={"expand": "properties"}),
        ],
    }


def changelog_routes() -> dict[str, Builder]:
    def bulk(w: ContractWorld) -> list[Req]:
        keys = [i.key for i in w.site.issues.values()]
        paged = Paging("token", "issueChangeLogs", in_body=True)
        return [
            Req(body={"issueIdsOrKeys": keys, "maxResults": 2}, paging=paged),
            Req(body={"issueIdsOrKeys": keys[:3], "fieldIds": ["status"]}, paging=paged),
        ]

    return {
        "GET /rest/api/3/issue/{issueIdOrKey}/changelog": lambda w: [
            Req(path=_issue(w), params={"maxResults": "1"}, paging=START_AT),
            Req(path={"issueIdOrKey": w.secured_issue.key}, paging=START_AT),
            Req(path=MISSING_ISSUE, status=404),
        ],
        "POST /rest/api/3/issue/{issueIdOrKey}/changelog/list": lambda w: [
            Req(path=_issue(w), body={"changelogIds": [h.id for h in w.issue.changelog]}),
            Req(path=MISSING_ISSUE, body={"changelogIds": [1]}, status=404),
        ],
        "POST /rest/api/3/changelog/bulkfetch": bulk,
    }


def audit_routes() -> dict[str, Builder]:
    paged = Paging("offset", "records")
    return {
        "GET /rest/api/3/auditing/record": lambda w: [
            # a handful of pages, whatever the size of the log
            Req(params={"limit": str(max(1, len(w.site.audit_records) // 4))}, paging=paged),
            Req(params={"filter": "group", "from": "2020-01-01T00:00:00.000+0000", "to": "2030-01-01"}),
        ],
    }


def user_routes() -> dict[str, Builder]:
    return {
        "GET /rest/api/3/users/search": lambda w: [Req(params={"maxResults": "2"}, paging=BARE_ARRAY)],
        "GET /rest/api/3/users": lambda w: [Req(params={"maxResults": "3"}, paging=BARE_ARRAY)],
        "GET /rest/api/3/user": lambda w: [
            Req(params={"accountId": w.account_id}),
            Req(params={"accountId": w.account_id, "expand": "groups,applicationRoles"}),
            Req(params={"accountId": "no-such-account"}, status=404),
        ],
        "GET /rest/api/3/user/groups": lambda w: [
            Req(params={"accountId": w.account_id}),
            Req(params={"accountId": "no-such-account"}, status=404),
        ],
        "GET /rest/api/3/user/bulk": lambda w: [
            Req(params={"accountId": list(w.site.users)[:5], "maxResults": "2"}, paging=START_AT),
        ],
        "GET /rest/api/3/user/permission/search": lambda w: [
            Req(
                params={"permissions": "BROWSE_PROJECTS", "projectKey": w.project.key, "maxResults": "2"},
                paging=BARE_ARRAY,
            ),
            Req(params={"permissions": "BROWSE_PROJECTS,ADD_COMMENTS", "issueKey": w.issue.key}),
        ],
    }


def group_routes() -> dict[str, Builder]:
    def group_name(w: ContractWorld) -> str:
        return w.site.groups[w.group_id].name

    return {
        "GET /rest/api/3/group/bulk": lambda w: [
            Req(params={"maxResults": "2"}, paging=START_AT),
            Req(params={"groupId": [w.group_id]}),
            Req(params={"groupName": [group_name(w)]}),
        ],
        "GET /rest/api/3/group/member": lambda w: [
            Req(params={"groupId": w.group_id, "maxResults": "1"}, paging=START_AT),
            Req(params={"groupname": group_name(w), "includeInactiveUsers": "true"}, paging=START_AT),
            Req(params={"groupId": "00000000-0000-0000-0000-000000000000"}, status=404),
        ],
        "GET /rest/api/3/applicationrole": lambda w: [Req()],
        "GET /rest/api/3/applicationrole/{key}": lambda w: [
            Req(path={"key": w.application_role_key}),
            Req(path={"key": "no-such-product"}, status=404),
        ],
    }


def project_routes() -> dict[str, Builder]:
    expand = "description,lead,issueTypes,url,projectKeys,insight"
    return {
        "GET /rest/api/3/project/search": lambda w: [
            Req(params={"maxResults": "1"}, paging=START_AT),
            Req(params={"expand": expand, "orderBy": "-name"}, paging=START_AT),
            Req(params={"keys": [w.project.key], "query": w.project.name[:3]}),
            Req(params={"action": "browse", "typeKey": w.project.project_type_key}),
        ],
        "GET /rest/api/3/project/{projectIdOrKey}": lambda w: [
            Req(path=_project(w)),
            Req(path={"projectIdOrKey": str(w.project.id)}, params={"expand": expand}),
            Req(path={"projectIdOrKey": "NOPE"}, status=404),
        ],
        "GET /rest/api/3/project/{projectIdOrKey}/role": lambda w: [
            Req(path=_project(w)),
            Req(path={"projectIdOrKey": "NOPE"}, status=404),
        ],
        "GET /rest/api/3/project/{projectIdOrKey}/role/{id}": lambda w: [
            Req(path={**_project(w), "id": str(w.role_id)}),
            Req(path={**_project(w), "id": str(w.role_id)}, params={"excludeInactiveUsers": "true"}),
            Req(path={**_project(w), "id": "99999"}, status=404),
        ],
        "GET /rest/api/3/project/{projectIdOrKey}/roledetails": lambda w: [
            Req(path=_project(w)),
            Req(path=_project(w), params={"currentMember": "true", "excludeConnectAddons": "true"}),
        ],
    }


def role_routes() -> dict[str, Builder]:
    return {
        "GET /rest/api/3/role": lambda w: [Req()],
        "GET /rest/api/3/role/{id}": lambda w: [
            Req(path={"id": str(w.role_id)}),
            Req(path={"id": "99999"}, status=404),
        ],
        "GET /rest/api/3/role/{id}/actors": lambda w: [
            Req(path={"id": str(w.role_id)}),
            Req(path={"id": "99999"}, status=404),
        ],
    }


def permission_scheme_routes() -> dict[str, Builder]:
    expands = ["", "permissions", "all", "group,user,projectRole,field"]

    def with_expands(path: dict[str, str]) -> list[Req]:
        return [Req(path=path, params={"expand": e} if e else {}) for e in expands]

    return {
        "GET /rest/api/3/permissionscheme": lambda w: with_expands({}),
        "GET /rest/api/3/permissionscheme/{schemeId}": lambda w: [
            *with_expands({"schemeId": str(w.permission_scheme_id)}),
            Req(path={"schemeId": "99999"}, status=404),
        ],
        "GET /rest/api/3/permissionscheme/{schemeId}/permission": lambda w: [
            *with_expands({"schemeId": str(w.permission_scheme_id)}),
            Req(path={"schemeId": "99999"}, status=404),
        ],
        "GET /rest/api/3/project/{projectKeyOrId}/permissionscheme": lambda w: [
            *with_expands({"projectKeyOrId": w.project.key}),
            Req(path={"projectKeyOrId": "NOPE"}, status=404),
        ],
    }


def security_routes() -> dict[str, Builder]:
    return {
        "GET /rest/api/3/issuesecurityschemes": lambda w: [Req()],
        "GET /rest/api/3/issuesecurityschemes/{id}": lambda w: [
            Req(path={"id": str(w.security_scheme_id)}),
            Req(path={"id": "99999"}, status=404),
        ],
        "GET /rest/api/3/issuesecurityschemes/search": lambda w: [
            Req(params={"maxResults": "1"}, paging=START_AT),
            Req(params={"id": [str(w.security_scheme_id)]}),
        ],
        "GET /rest/api/3/issuesecurityschemes/level": lambda w: [
            Req(params={"maxResults": "1"}, paging=START_AT),
            Req(params={"schemeId": [str(w.security_scheme_id)], "onlyDefault": "true"}),
        ],
        "GET /rest/api/3/issuesecurityschemes/level/member": lambda w: [
            Req(params={"maxResults": "2"}, paging=START_AT),
            Req(params={"levelId": [str(w.security_level_id)], "expand": "user,group,projectRole,field,all"}),
        ],
        "GET /rest/api/3/issuesecurityschemes/project": lambda w: [
            Req(params={"maxResults": "1"}, paging=START_AT),
            Req(params={"issueSecuritySchemeId": [str(w.security_scheme_id)]}),
        ],
        "GET /rest/api/3/issuesecurityschemes/{issueSecuritySchemeId}/members": lambda w: [
            Req(path={"issueSecuritySchemeId": str(w.security_scheme_id)}, params={"maxResults": "2"}, paging=START_AT),
            Req(
                path={"issueSecuritySchemeId": str(w.security_scheme_id)},
                params={"issueSecurityLevelId": [str(w.security_level_id)], "expand": "all"},
            ),
            Req(path={"issueSecuritySchemeId": "99999"}, status=404),
        ],
        "GET /rest/api/3/project/{projectKeyOrId}/issuesecuritylevelscheme": lambda w: [Req(path=_secured_project(w))],
        "GET /rest/api/3/project/{projectKeyOrId}/securitylevel": lambda w: [
            Req(path=_secured_project(w)),
            Req(path={"projectKeyOrId": "NOPE"}, status=404),
        ],
        "GET /rest/api/3/securitylevel/{id}": lambda w: [
            Req(path={"id": str(w.security_level_id)}),
            Req(path={"id": "99999"}, status=404),
        ],
    }


def permission_routes() -> dict[str, Builder]:
    def check(w: ContractWorld) -> list[Req]:
        issues = [i.id for i in w.site.issues.values()]
        projects = [p.id for p in w.site.projects.values()]
        request = {
            "globalPermissions": ["ADMINISTER", "USER_PICKER"],
            "projectPermissions": [
                {"permissions": ["BROWSE_PROJECTS", "EDIT_ISSUES"], "projects": projects, "issues": issues}
            ],
        }
        return [
            Req(body=request),
            Req(body={**request, "accountId": w.account_id}),
            Req(
                body={"projectPermissions": [{"permissions": ["NO_SUCH_PERMISSION"], "projects": projects}]}, status=400
            ),
        ]

    return {
        "GET /rest/api/3/mypermissions": lambda w: [
            Req(params={"permissions": "BROWSE_PROJECTS,ADMINISTER,EDIT_ISSUES"}),
            Req(params={"permissions": "BROWSE_PROJECTS,ADD_COMMENTS", "projectKey": w.project.key}),
            Req(params={"permissions": "BROWSE_PROJECTS", "issueKey": w.secured_issue.key}),
            Req(params={"permissions": "BROWSE_PROJECTS", "commentId": str(w.restricted_comment.id)}),
            Req(params={"permissions": "BROWSE_PROJECTS", "projectKey": "NOPE"}, status=404),
        ],
        "GET /rest/api/3/permissions": lambda w: [Req()],
        "POST /rest/api/3/permissions/check": check,
        "POST /rest/api/3/permissions/project": lambda w: [
            Req(body={"permissions": ["BROWSE_PROJECTS"]}),
            Req(body={"permissions": ["BROWSE_PROJECTS", "ADMINISTER_PROJECTS"]}),
        ],
    }


def field_routes() -> dict[str, Builder]:
    return {
        "GET /rest/api/3/field": lambda w: [Req()],
        "GET /rest/api/3/field/search": lambda w: [
            Req(params={"maxResults": "2"}, paging=START_AT),
            Req(params={"type": ["custom"], "expand": "key,lastUsed,searcherKey", "orderBy": "name"}, paging=START_AT),
            Req(params={"id": [w.custom_field_id]}),
        ],
        "GET /rest/api/3/status": lambda w: [Req()],
        "GET /rest/api/3/statuscategory": lambda w: [Req()],
    }


#: route ("METHOD template") -> how to build its requests from a site
CONTRACT: dict[str, Builder] = {
    **meta_routes(),
    **search_routes(),
    **issue_routes(),
    **comment_routes(),
    **worklog_routes(),
    **changelog_routes(),
    **audit_routes(),
    **user_routes(),
    **group_routes(),
    **project_routes(),
    **role_routes(),
    **permission_scheme_routes(),
    **security_routes(),
    **permission_routes(),
    **field_routes(),
}


def route_keys() -> list[str]:
    """Every registered route as ``METHOD template``."""
    return [f"{r.method} {r.template}" for r in api_routes()]


def requests_for(key: str, world: ContractWorld) -> list[Req]:
    """The contract table's requests for a route; fails for a route the table does not know."""
    assert key in CONTRACT, f"route {key} is served but the contract table has no entry for it: add one to CONTRACT"
    return CONTRACT[key](world)


# -- walking and checking ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Walked:
    """What one request (all its pages) came back with."""

    statuses: list[int] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    last_page: Any = None


def _page_items(paging: Paging, page: Any) -> list[Any]:
    found = page if paging.items is None else page.get(paging.items)
    assert isinstance(found, list), f"expected a list under {paging.items!r}, got {str(page)[:200]}"
    return found


def _next_request(paging: Paging, params: dict[str, Any], body: Any, page: Any) -> tuple[str | None, bool]:
    """Advance ``params``/``body`` to the next page in place; (URL to fetch instead, whether there is a next page)."""
    items = _page_items(paging, page)
    if paging.style == "startAt":
        start = int(params.get("startAt", 0))
        if not items or (isinstance(page, dict) and page.get("isLast") is True):
            return None, False
        if isinstance(page, dict) and "isLast" not in page and "total" in page and start + len(items) >= page["total"]:
            return None, False
        params["startAt"] = str(start + len(items))
        return None, True
    if paging.style == "offset":
        offset = int(params.get("offset", 0)) + len(items)
        if not items or offset >= page["total"]:
            return None, False
        params["offset"] = str(offset)
        return None, True
    if paging.style == "token":
        token = page.get("nextPageToken")
        if "isLast" in page:
            assert page["isLast"] == (not token), f"isLast={page['isLast']} but nextPageToken={token!r}"
        if not token:
            return None, False
        (body if paging.in_body else params)["nextPageToken"] = token
        return None, True
    if page["lastPage"]:
        return None, False
    if page.get("nextPage"):
        return page["nextPage"], True
    params["since"] = str(page["until"])
    return None, True


def walk(client: httpx.Client, key: str, req: Req) -> Walked:
    """Send ``req`` (following its pages to the end), validating every answer against the spec."""
    method, template = key.split(" ", 1)
    url: str | None = fill_template(template, req.path)
    params: dict[str, Any] = dict(req.params)
    body = json.loads(json.dumps(req.body)) if req.body is not None else None
    walked = Walked()
    for _ in range(MAX_PAGES):
        assert url is not None
        response = client.request(method, url, params=params or None, json=body)
        page = assert_response_matches_spec(method, template, response)
        walked.statuses.append(response.status_code)
        if response.status_code != 200 or req.paging is None:
            walked.last_page = page
            return walked
        walked.items.extend(_page_items(req.paging, page))
        walked.last_page = page
        next_url, more = _next_request(req.paging, params, body, page)
        if not more:
            return walked
        if next_url is not None:
            url, params = next_url, {}
        else:
            url = fill_template(template, req.path)
    raise AssertionError(f"{key}: pagination did not end within {MAX_PAGES} pages for {req}")


# -- fixtures -----------------------------------------------------------------------------------------------------


def all_scopes() -> list[str]:
    """Every OAuth scope the spec defines: the analyst's gateway token may call any operation."""
    scopes: dict[str, str] = load_spec()["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"][
        "scopes"
    ]
    return sorted(scopes)


@pytest.fixture(scope="module")
def callers(contract_world: ContractWorld) -> Iterator[dict[str, httpx.Client]]:
    """The analyst over the gateway, the restricted user with Basic auth, and an anonymous caller."""
    cloud = SimCloud(contract_world.site, clock=NOW.timestamp)
    site = contract_world.site
    token = cloud.mint_access_token(contract_world.analyst.account_id, all_scopes())
    transport = cloud.transport()
    restricted = contract_world.restricted
    clients = {
        "analyst": httpx.Client(
            transport=transport, base_url=cloud.gateway_url(site), headers={"Authorization": f"Bearer {token}"}
        ),
        "restricted": httpx.Client(
            transport=transport, base_url=cloud.site_url(site), auth=(restricted.email, restricted.api_token)
        ),
        "anonymous": httpx.Client(transport=transport, base_url=cloud.site_url(site)),
    }
    yield clients
    for client in clients.values():
        client.close()


# -- tests --------------------------------------------------------------------------------------------------------


def test_every_route_has_a_contract_entry() -> None:
    missing = sorted(set(route_keys()) - set(CONTRACT))
    assert not missing, f"routes without a contract entry (add them to CONTRACT): {missing}"


def test_every_route_is_registered_once() -> None:
    keys = route_keys()
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_routes_and_contract_entries_are_spec_operations() -> None:
    paths = load_spec()["paths"]
    for key in [*route_keys(), *CONTRACT]:
        method, template = key.split(" ", 1)
        assert method.lower() in paths.get(template, {}), f"{key} is not an operation of the OpenAPI spec"


def test_operations_table_equals_the_spec() -> None:
    on_disk = json.loads(TABLE.read_text())
    expected = generate(load_spec(), route_keys())
    stale = sorted(set(on_disk) ^ set(expected))
    assert not stale, f"operations.json is stale for {stale}: regenerate it with python -m jira_lab.operations"
    for key, entry in expected.items():
        assert on_disk[key] == entry, f"operations.json disagrees with the spec for {key}"


SERVER_INFO = ("GET", "/rest/api/3/serverInfo")
COMMENT = ("GET", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}")


@pytest.mark.parametrize(
    ("operation", "status", "body", "complaint"),
    [
        (SERVER_INFO, 200, {"baseUrl": 1}, "is not of type 'string'"),
        (SERVER_INFO, 200, {"buildNumber": "582"}, "is not of type 'integer'"),
        (SERVER_INFO, 200, {"surprise": True}, "Additional properties are not allowed"),
        (SERVER_INFO, 200, {"serverTime": "2026-02-30T10:00:00.000+0000"}, "is not a 'date-time'"),
        (SERVER_INFO, 200, {"serverTime": "2026-02-03 10:00"}, "is not a 'date-time'"),
        (SERVER_INFO, 200, {"baseUrl": None}, "None for not nullable"),
        (SERVER_INFO, 201, {}, "does not document this status"),
        (SERVER_INFO, 401, {"message": "no"}, "neither an ErrorCollection"),
        (SERVER_INFO, 401, {"code": 403, "message": "Forbidden"}, "neither an ErrorCollection"),
        (COMMENT, 404, None, "without a body"),
        (COMMENT, 200, {"visibility": {"type": "project", "value": "x"}}, "is not one of"),
        (COMMENT, 200, {"author": {"accountId": "a", "groups": []}}, "Additional properties are not allowed"),
    ],
)
def test_validator_rejects_what_the_spec_forbids(
    operation: tuple[str, str], status: int, body: Any, complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        assert_matches_spec(*operation, status, body)


def test_validator_accepts_jira_timestamps_nullable_fields_and_error_shapes() -> None:
    assert_matches_spec(*SERVER_INFO, 200, {"serverTime": "2026-02-03T10:00:00.000+0000", "buildNumber": 582})
    assert_matches_spec(*SERVER_INFO, 200, {"serverTime": "2026-02-03T10:00:00.000+00:00"})
    # Visibility.identifier is declared nullable
    assert_matches_spec(
        *COMMENT, 200, {"id": "1", "visibility": {"type": "role", "value": "Developers", "identifier": None}}
    )
    assert_matches_spec(*SERVER_INFO, 401, {"errorMessages": ["Client must be authenticated"], "errors": {}})
    assert_matches_spec(*SERVER_INFO, 401, {"code": 401, "message": "Unauthorized; scope does not match"})
    assert_matches_spec(*COMMENT, 404, {"errorMessages": ["Issue does not exist"], "errors": {}})


@pytest.mark.parametrize("erratum", SPEC_ERRATA, ids=lambda e: f"{e.schema}.{e.property}")
def test_spec_errata_are_evidenced_by_the_spec_and_still_needed(erratum: Any) -> None:
    schema = load_spec()["components"]["schemas"][erratum.schema]
    declared = schema.get("properties", {}).get(erratum.property)
    if erratum.kind == "missing":
        assert declared is None, "Atlassian fixed the spec: drop this erratum"
        assert schema.get("additionalProperties") is False, "the schema no longer forbids extra properties"
    else:
        assert declared is not None and not declared.get("nullable"), "Atlassian fixed the spec: drop this erratum"
    assert any(erratum.evidence in text for text in operation_texts(*erratum.evidence_operation)), erratum.why


def test_contract_world_sees_what_it_should(contract_world: ContractWorld) -> None:
    """The callers are what the contract runs rely on: an all-seeing analyst, a restricted user."""
    from jira_lab.sim import PermissionEngine

    engine = PermissionEngine(contract_world.site)
    analyst, restricted = contract_world.analyst.account_id, contract_world.restricted.account_id
    for issue in contract_world.site.issues.values():
        assert engine.can_browse_issue(analyst, issue)
        assert all(engine.can_see_item(analyst, issue, c.visibility) for c in issue.comments)
        assert all(engine.can_see_item(analyst, issue, wl.visibility) for wl in issue.worklogs)
    assert engine.is_admin(analyst) and not engine.is_admin(restricted)
    assert engine.can_browse_issue(restricted, contract_world.issue)
    assert not engine.can_browse_issue(restricted, contract_world.secured_issue)
    assert not engine.can_see_item(restricted, contract_world.issue, contract_world.restricted_comment.visibility)


@pytest.mark.parametrize("key", route_keys())
def test_route_answers_match_the_spec(
    key: str, contract_world: ContractWorld, callers: dict[str, httpx.Client]
) -> None:
    requests = requests_for(key, contract_world)
    assert requests, f"the contract entry for {key} builds no request"
    for req in requests:
        for name, client in callers.items():
            walked = walk(client, key, req)
            if name == "analyst":
                assert walked.statuses[0] == req.status, (
                    f"{key} {req}: analyst got {walked.statuses}: {walked.last_page}"
                )
                page = walked.last_page
                if req.paging is not None and req.status == 200 and isinstance(page, dict) and "total" in page:
                    assert len(walked.items) == page["total"], (
                        f"{key} {req}: walked {len(walked.items)} of {page['total']}"
                    )
