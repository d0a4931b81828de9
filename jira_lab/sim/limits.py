"""Jira Cloud's rate limits as Atlassian documents them (enforced since 2 March 2026 for 3LO apps).

Three independent limits, each answering **429** with a ``RateLimit-Reason``:

* **points quota** per UTC hour (``jira-quota-global-based``, or ``jira-quota-tenant-based`` for a per-tenant pool).
  Only 3LO (API gateway) traffic is charged; Basic API-token traffic is exempt. A request costs 1 point, plus 1 per
  core object (issues, comments, projects ...) and 2 per identity or access object (users, groups, roles,
  permissions) it returned; writes cost 1 point flat. When the pool is used up *every* request is refused until the
  top of the hour: there is no gradual throttling. A request is admitted while any quota remains, so the one that
  crosses the line still completes and the pool can end slightly overdrawn;
* **burst**: a token bucket per tenant × method × endpoint (``jira-burst-based``), shared by every caller of the site,
  3LO or Basic, refilled at the endpoint's steady rate (GET/POST 100/s, PUT/DELETE 50/s, with per-endpoint
  overrides) and holding ``burst_seconds`` of it;
* **per-issue writes**: 20 per 2 s and 100 per 30 s on one issue (``jira-per-issue-on-write``), for any caller.

A 429 carries ``Retry-After`` (whole seconds), ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``,
``X-RateLimit-Reset`` (ISO 8601, the request time plus ``Retry-After``; the top of the hour for the quota) and
``RateLimit-Reason``; quota and burst refusals add the structured ``RateLimit-Policy`` / ``RateLimit`` pair. Answers to
admitted 3LO requests carry the quota's ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` and ``RateLimit-Policy``;
past 80 % usage they add ``RateLimit`` (``r`` remaining, ``t`` seconds to reset) and ``X-RateLimit-NearLimit: true``.

Field reports of 429s **without** ``Retry-After`` (sometimes without a reason too) are reproduced on demand with
``omit_retry_after_every`` / ``omit_retry_after_probability`` (seeded, so deterministic) and ``omit_reason_too``.

:class:`SimCloud` has no limits unless it is given a :class:`RateLimits`: tests about something else must not trip
over a bucket emptied by a frozen fake clock, while the demo passes ``RateLimits()`` to behave like Jira. All time
comes from the cloud's injectable clock; nothing here sleeps.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from jira_lab.sim.routing import JiraError

if TYPE_CHECKING:
    from jira_lab.sim.model import Site

QUOTA_GLOBAL = "jira-quota-global-based"
QUOTA_TENANT = "jira-quota-tenant-based"
BURST = "jira-burst-based"
PER_ISSUE_WRITE = "jira-per-issue-on-write"

HOUR = 3600

#: Atlassian's default steady rate (requests per second) per HTTP method.
DEFAULT_STEADY_RATES: Mapping[str, float] = {"GET": 100.0, "POST": 100.0, "PUT": 50.0, "DELETE": 50.0}

#: Endpoints Atlassian lists with their own steady rate, keyed by (method, spec path template).
DEFAULT_ENDPOINT_RATES: Mapping[tuple[str, str], float] = {
    ("GET", "/rest/api/3/issue/{issueIdOrKey}"): 150.0,
    ("GET", "/rest/api/3/user"): 150.0,
    ("POST", "/rest/api/3/search/approximate-count"): 150.0,
    ("GET", "/rest/api/3/issue/{issueIdOrKey}/changelog"): 200.0,
    ("GET", "/rest/api/3/issuesecurityschemes/{id}"): 200.0,
    ("POST", "/rest/api/3/permissionscheme/{schemeId}/permission"): 100.0,
}

Edition = Literal["free", "standard", "premium", "enterprise"]

_TENANT_QUOTA: Mapping[str, tuple[int, int]] = {
    "free": (65_000, 0),
    "standard": (100_000, 10),
    "premium": (130_000, 20),
    "enterprise": (150_000, 30),
}


def tenant_quota(edition: Edition, users: int) -> int:
    """Hourly points of a Tier 2 per-tenant pool: a base per edition plus points per user, capped at 500,000."""
    base, per_user = _TENANT_QUOTA[edition]
    return min(500_000, base + per_user * users)


# -- point costs ---------------------------------------------------------------------------------------------------

ObjectKind = Literal["core", "identity"]

#: points per returned object: identity and access objects (users, groups, roles, permissions) cost double
OBJECT_POINTS: Mapping[ObjectKind, int] = {"core": 1, "identity": 2}


@dataclass(frozen=True, slots=True)
class Priced:
    """Where a read's returned objects are in its JSON body, and what kind they are.

    Each path is dotted keys into the body: ``""`` is the body itself (a list counts its items, an object counts
    one), ``"values"`` a page's list, ``"a.b"`` descends through lists, ``"*"`` stands for every value of a map.
    Only the objects the operation lists are counted, not the ones embedded in them (a scheme's grants, an
    issue's comments): Atlassian documents costs per returned object, not per nested one.
    """

    kind: ObjectKind
    paths: tuple[str, ...] = ("",)


_ISSUE = "/rest/api/3/issue/{issueIdOrKey}"

#: Reads whose cost depends on what they return, keyed by (method, spec path template). Any other request costs
#: the base point alone: writes (1 point flat) and uncategorised operations alike.
PRICED_ROUTES: Mapping[tuple[str, str], Priced] = {
    # core objects
    ("GET", "/rest/api/3/search/jql"): Priced("core", ("issues",)),
    ("POST", "/rest/api/3/search/jql"): Priced("core", ("issues",)),
    ("GET", _ISSUE): Priced("core"),
    ("POST", "/rest/api/3/issue/bulkfetch"): Priced("core", ("issues",)),
    ("GET", f"{_ISSUE}/comment"): Priced("core", ("comments",)),
    ("GET", f"{_ISSUE}/comment/{{id}}"): Priced("core"),
    ("POST", "/rest/api/3/comment/list"): Priced("core", ("values",)),
    ("GET", f"{_ISSUE}/worklog"): Priced("core", ("worklogs",)),
    ("GET", f"{_ISSUE}/worklog/{{id}}"): Priced("core"),
    ("GET", "/rest/api/3/worklog/updated"): Priced("core", ("values",)),
    ("GET", "/rest/api/3/worklog/deleted"): Priced("core", ("values",)),
    ("POST", "/rest/api/3/worklog/list"): Priced("core"),
    ("GET", f"{_ISSUE}/changelog"): Priced("core", ("values",)),
    ("POST", f"{_ISSUE}/changelog/list"): Priced("core", ("histories",)),
    ("POST", "/rest/api/3/changelog/bulkfetch"): Priced("core", ("issueChangeLogs.changeHistories",)),
    ("GET", "/rest/api/3/auditing/record"): Priced("core", ("records",)),
    ("GET", "/rest/api/3/project/search"): Priced("core", ("values",)),
    ("GET", "/rest/api/3/project/{projectIdOrKey}"): Priced("core"),
    ("POST", "/rest/api/3/permissions/project"): Priced("core", ("projects",)),
    ("GET", "/rest/api/3/field"): Priced("core"),
    ("GET", "/rest/api/3/field/search"): Priced("core", ("values",)),
    ("GET", "/rest/api/3/status"): Priced("core"),
    ("GET", "/rest/api/3/statuses/search"): Priced("core", ("values",)),
    ("GET", "/rest/api/3/statuscategory"): Priced("core"),
    # identity and access objects
    ("GET", "/rest/api/3/myself"): Priced("identity"),
    ("GET", "/rest/api/3/user"): Priced("identity"),
    ("GET", "/rest/api/3/users"): Priced("identity"),
    ("GET", "/rest/api/3/users/search"): Priced("identity"),
    ("GET", "/rest/api/3/user/bulk"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/user/groups"): Priced("identity"),
    ("GET", "/rest/api/3/user/search"): Priced("identity"),
    ("GET", "/rest/api/3/user/permission/search"): Priced("identity"),
    ("GET", "/rest/api/3/user/viewissue/search"): Priced("identity"),
    ("GET", "/rest/api/3/group/bulk"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/group/member"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/role"): Priced("identity"),
    ("GET", "/rest/api/3/role/{id}"): Priced("identity"),
    ("GET", "/rest/api/3/role/{id}/actors"): Priced("identity", ("actors",)),
    ("GET", "/rest/api/3/project/{projectIdOrKey}/role"): Priced("identity", ("*",)),
    ("GET", "/rest/api/3/project/{projectIdOrKey}/role/{id}"): Priced("identity", ("actors",)),
    ("GET", "/rest/api/3/project/{projectIdOrKey}/roledetails"): Priced("identity"),
    ("GET", "/rest/api/3/permissionscheme"): Priced("identity", ("permissionSchemes",)),
    ("GET", "/rest/api/3/permissionscheme/{schemeId}"): Priced("identity"),
    ("GET", "/rest/api/3/permissionscheme/{schemeId}/permission"): Priced("identity", ("permissions",)),
    ("GET", "/rest/api/3/project/{projectKeyOrId}/permissionscheme"): Priced("identity"),
    ("GET", "/rest/api/3/mypermissions"): Priced("identity", ("permissions.*",)),
    ("GET", "/rest/api/3/permissions"): Priced("identity", ("permissions.*",)),
    ("POST", "/rest/api/3/permissions/check"): Priced("identity", ("globalPermissions", "projectPermissions")),
    ("GET", "/rest/api/3/issuesecurityschemes"): Priced("identity", ("issueSecuritySchemes",)),
    ("GET", "/rest/api/3/issuesecurityschemes/{id}"): Priced("identity"),
    ("GET", "/rest/api/3/issuesecurityschemes/search"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/issuesecurityschemes/level"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/issuesecurityschemes/level/member"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/issuesecurityschemes/{issueSecuritySchemeId}/members"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/issuesecurityschemes/project"): Priced("identity", ("values",)),
    ("GET", "/rest/api/3/project/{projectKeyOrId}/issuesecuritylevelscheme"): Priced("identity"),
    ("GET", "/rest/api/3/project/{projectKeyOrId}/securitylevel"): Priced("identity", ("levels",)),
    ("GET", "/rest/api/3/securitylevel/{id}"): Priced("identity"),
    ("GET", "/rest/api/3/applicationrole"): Priced("identity"),
    ("GET", "/rest/api/3/applicationrole/{key}"): Priced("identity"),
}

#: POST operations that only read, so they are neither writes to an issue nor flat-priced writes.
READ_ONLY_POSTS: frozenset[str] = frozenset(t for (m, t) in PRICED_ROUTES if m == "POST") | {
    "/rest/api/3/search/approximate-count",
}


def _count_objects(node: Any, path: str) -> int:
    if isinstance(node, list) and path:
        return sum(_count_objects(item, path) for item in node)
    if not path:
        if isinstance(node, list):
            return len(node)
        return 0 if node is None else 1
    if not isinstance(node, dict):
        return 0
    head, _, rest = path.partition(".")
    if head == "*":
        return sum(_count_objects(value, rest) for value in node.values())
    return _count_objects(node.get(head), rest)


def point_cost(method: str, template: str, status: int, body: Any) -> int:
    """Points one answered request costs: 1, plus 1 per core and 2 per identity object a successful read returned.

    Args:
        method: the request's HTTP method.
        template: the operation's spec path template (``/rest/api/3/group/member``).
        status: the answer's status; only 2xx answers return objects.
        body: the answer's JSON body as the handler produced it.

    Returns:
        The points charged against the hourly quota.
    """
    priced = PRICED_ROUTES.get((method.upper(), template))
    if priced is None or not 200 <= status < 300:
        return 1
    objects = sum(_count_objects(body, path) for path in priced.paths)
    return 1 + OBJECT_POINTS[priced.kind] * objects


# -- configuration -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    """How a :class:`SimCloud` limits requests; the defaults are Atlassian's documented ones.

    Args:
        steady_rates: requests per second per HTTP method (a method not listed gets the lowest rate listed).
        endpoint_rates: per-endpoint steady rates, keyed by (method, spec path template), overriding the method's.
        burst_seconds: a bucket holds this many seconds of its steady rate (at least one request); Atlassian only
            says there is a burst buffer and that clients should design for the steady rate.
        hourly_points: the points quota per UTC hour; ``None`` switches the quota off.
        quota_pool: ``"global"`` (Tier 1, the default: one pool for the app across every site) or ``"tenant"``
            (Tier 2: one pool per site; size it with :func:`tenant_quota`).
        per_issue_writes: (writes, seconds) windows a single issue's writes must fit in.
        near_limit_fraction: below this share of the quota remaining, answers say ``X-RateLimit-NearLimit: true``.
        omit_retry_after_every: every Nth 429 comes without ``Retry-After`` (0: never), as seen in the field.
        omit_retry_after_probability: the chance a 429 comes without ``Retry-After``, drawn from ``seed``.
        omit_reason_too: such a 429 also lacks ``RateLimit-Reason``, like the gateway 429s reported in April 2026.
        seed: seeds the draws of ``omit_retry_after_probability``.
        beta_policy_headers: send ``Beta-RateLimit-Policy`` / ``Beta-RateLimit`` (the rollout's names) instead.
        legacy_reset_format: write ``X-RateLimit-Reset`` as ``yyyy-MM-ddTHH:mmZ`` (no seconds), the older format
            JRACLOUD-69262 documents.
    """

    steady_rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STEADY_RATES))
    endpoint_rates: Mapping[tuple[str, str], float] = field(default_factory=lambda: dict(DEFAULT_ENDPOINT_RATES))
    burst_seconds: float = 1.0
    hourly_points: int | None = 65_000
    quota_pool: Literal["global", "tenant"] = "global"
    per_issue_writes: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0))
    near_limit_fraction: float = 0.2
    omit_retry_after_every: int = 0
    omit_retry_after_probability: float = 0.0
    omit_reason_too: bool = False
    seed: int = 0
    beta_policy_headers: bool = False
    legacy_reset_format: bool = False

    def __post_init__(self) -> None:
        rates = [*self.steady_rates.values(), *self.endpoint_rates.values()]
        if not self.steady_rates or any(rate <= 0 for rate in rates):
            raise ValueError("steady rates must be positive requests per second, with at least one method")
        if self.burst_seconds <= 0:
            raise ValueError("burst_seconds must be positive")
        if self.hourly_points is not None and self.hourly_points <= 0:
            raise ValueError("hourly_points must be positive, or None to switch the quota off")
        if any(count <= 0 or seconds <= 0 for count, seconds in self.per_issue_writes):
            raise ValueError("per_issue_writes windows need a positive count and a positive length")
        if not 0 <= self.omit_retry_after_probability <= 1 or not 0 <= self.near_limit_fraction <= 1:
            raise ValueError("omit_retry_after_probability and near_limit_fraction are shares between 0 and 1")
        if self.omit_retry_after_every < 0:
            raise ValueError("omit_retry_after_every must be 0 (never) or a positive N")

    def steady_rate(self, method: str, template: str) -> float:
        """The steady requests per second of one endpoint."""
        override = self.endpoint_rates.get((method, template))
        if override is not None:
            return override
        return self.steady_rates.get(method, min(self.steady_rates.values()))


# -- state ---------------------------------------------------------------------------------------------------------


class RateLimited(JiraError):
    """A 429 refusal, carrying Jira's rate-limit headers."""

    def __init__(self, reason: str, headers: dict[str, str]) -> None:
        super().__init__(429, "Rate limit exceeded.", headers=headers)
        self.reason = reason


@dataclass(slots=True)
class _Bucket:
    capacity: float
    rate: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now

    def wait_for_token(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass(slots=True)
class _Pool:
    hour: int
    used: int = 0


@dataclass(slots=True)
class Admission:
    """An admitted request; :meth:`settle` charges what its answer returned."""

    limiter: RateLimiter
    method: str
    template: str
    #: the quota pool the request is charged to; ``None`` for traffic exempt from the quota (Basic, anonymous)
    pool_key: str | None

    def settle(self, status: int, body: Any) -> dict[str, str]:
        """Charge the objects the answer returned (the base point was charged on admission).

        Returns:
            The rate-limit headers the answer carries.
        """
        return self.limiter._settle(self, status, body)


class RateLimiter:
    """The live state of :class:`RateLimits` for one simulated cloud: buckets, per-issue windows, quota pools.

    Not thread-safe on its own: :class:`SimCloud` calls it under its lock.
    """

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._issue_writes: dict[tuple[str, str], deque[float]] = {}
        self._pools: dict[str, _Pool] = {}
        self._refusals = 0
        self._random = random.Random(limits.seed)

    # -- admission -------------------------------------------------------------------------------------------
    def admit(
        self,
        site: Site,
        method: str,
        template: str,
        path_params: Mapping[str, str],
        *,
        three_lo: bool,
    ) -> Admission:
        """Let one request through or refuse it with :class:`RateLimited`; an admitted request costs 1 point.

        Args:
            site: the site (tenant) the request is for.
            method: its HTTP method.
            template: the spec path template of its operation.
            path_params: the path parameters, to find the issue a write goes to.
            three_lo: whether it came through the API gateway with a 3LO token (the only traffic the quota charges).
        """
        now = self.clock()
        pool_key = self._pool_key(site) if three_lo and self.limits.hourly_points is not None else None
        if pool_key is not None:
            self._check_quota(pool_key, now)
        issue_key = self._written_issue(site, method, template, path_params)
        if issue_key is not None:
            self._check_issue_writes(issue_key, now)
        bucket = self._bucket(site, method, template, now)
        if bucket.tokens < 1.0:
            self._refuse_burst(bucket, now)
        bucket.tokens -= 1.0
        if issue_key is not None:
            self._issue_writes.setdefault(issue_key, deque()).append(now)
        if pool_key is not None:
            self._pool(pool_key, now).used += 1
        return Admission(self, method, template, pool_key)

    def _settle(self, admission: Admission, status: int, body: Any) -> dict[str, str]:
        if admission.pool_key is None:
            return {}
        now = self.clock()
        pool = self._pool(admission.pool_key, now)
        pool.used += point_cost(admission.method, admission.template, status, body) - 1
        return self._quota_headers(pool, now)

    # -- inspection ------------------------------------------------------------------------------------------
    def points_used(self, site: Site | None = None) -> int:
        """Points charged so far this UTC hour to the pool ``site`` draws on (the app's global pool by default)."""
        key = "app" if self.limits.quota_pool == "global" or site is None else site.cloud_id
        return self._pool(key, self.clock()).used

    # -- quota -----------------------------------------------------------------------------------------------
    def _pool_key(self, site: Site) -> str:
        return "app" if self.limits.quota_pool == "global" else site.cloud_id

    def _pool(self, key: str, now: float) -> _Pool:
        hour = int(now // HOUR)
        pool = self._pools.get(key)
        if pool is None or pool.hour != hour:
            pool = self._pools[key] = _Pool(hour)
        return pool

    def _quota_names(self) -> tuple[str, str]:
        """The quota's policy name (``RateLimit-Policy``) and refusal reason (``RateLimit-Reason``)."""
        if self.limits.quota_pool == "global":
            return "global-app-quota", QUOTA_GLOBAL
        return "tenant-app-quota", QUOTA_TENANT

    def _check_quota(self, pool_key: str, now: float) -> None:
        quota = self.limits.hourly_points
        assert quota is not None
        pool = self._pool(pool_key, now)
        if pool.used < quota:
            return
        reset_at = (pool.hour + 1) * HOUR
        wait = max(1, math.ceil(reset_at - now))
        policy, reason = self._quota_names()
        headers = {
            "Retry-After": str(wait),
            "X-RateLimit-Limit": str(quota),
            "X-RateLimit-Remaining": str(max(0, quota - pool.used)),
            "X-RateLimit-Reset": self._timestamp(reset_at),
            "X-RateLimit-NearLimit": "true",
            "RateLimit-Reason": reason,
            self._policy_header("RateLimit-Policy"): f'"{policy}";q={quota};w={HOUR}',
            self._policy_header("RateLimit"): f'"{policy}";r=0;t={wait}',
        }
        self._refuse(reason, headers)

    def _quota_headers(self, pool: _Pool, now: float) -> dict[str, str]:
        quota = self.limits.hourly_points
        assert quota is not None
        policy, _ = self._quota_names()
        remaining = max(0, quota - pool.used)
        headers = {
            "X-RateLimit-Limit": str(quota),
            "X-RateLimit-Remaining": str(remaining),
            self._policy_header("RateLimit-Policy"): f'"{policy}";q={quota};w={HOUR}',
        }
        if remaining < quota * self.limits.near_limit_fraction:
            seconds_left = math.ceil((pool.hour + 1) * HOUR - now)
            headers["X-RateLimit-NearLimit"] = "true"
            headers[self._policy_header("RateLimit")] = f'"{policy}";r={remaining};t={seconds_left}'
        return headers

    # -- burst -----------------------------------------------------------------------------------------------
    def _bucket(self, site: Site, method: str, template: str, now: float) -> _Bucket:
        key = (site.cloud_id, method, template)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = self.limits.steady_rate(method, template)
            capacity = max(1.0, rate * self.limits.burst_seconds)
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        bucket.refill(now)
        return bucket

    def _refuse_burst(self, bucket: _Bucket, now: float) -> None:
        wait = max(1, math.ceil(bucket.wait_for_token()))
        rate = _number(bucket.rate)
        headers = {
            "Retry-After": str(wait),
            "X-RateLimit-Limit": rate,
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": self._timestamp(now + wait),
            "RateLimit-Reason": BURST,
            self._policy_header("RateLimit-Policy"): f'"{BURST}";q={rate};w=1',
            self._policy_header("RateLimit"): f'"{BURST}";r=0;t={wait}',
        }
        self._refuse(BURST, headers)

    # -- per-issue writes ------------------------------------------------------------------------------------
    @staticmethod
    def _written_issue(
        site: Site, method: str, template: str, path_params: Mapping[str, str]
    ) -> tuple[str, str] | None:
        id_or_key = path_params.get("issueIdOrKey")
        if id_or_key is None or method == "GET" or (method == "POST" and template in READ_ONLY_POSTS):
            return None
        issue = None if id_or_key.isdigit() else site.issue_by_key(id_or_key)
        # a key and the id of the same issue share its windows
        return site.cloud_id, (str(issue.id) if issue is not None else id_or_key.upper())

    def _check_issue_writes(self, issue_key: tuple[str, str], now: float) -> None:
        writes = self._issue_writes.get(issue_key)
        if not writes:
            return
        longest = max(seconds for _, seconds in self.limits.per_issue_writes)
        while writes and writes[0] <= now - longest:
            writes.popleft()
        for count, seconds in self.limits.per_issue_writes:
            recent = [t for t in writes if t > now - seconds]
            if len(recent) >= count:
                wait = max(1, math.ceil(recent[-count] + seconds - now))
                headers = {
                    "Retry-After": str(wait),
                    "X-RateLimit-Limit": str(count),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": self._timestamp(now + wait),
                    "RateLimit-Reason": PER_ISSUE_WRITE,
                }
                self._refuse(PER_ISSUE_WRITE, headers)

    # -- refusals --------------------------------------------------------------------------------------------
    def _refuse(self, reason: str, headers: dict[str, str]) -> None:
        self._refusals += 1
        every = self.limits.omit_retry_after_every
        drawn = self.limits.omit_retry_after_probability > 0 and (
            self._random.random() < self.limits.omit_retry_after_probability
        )
        if (every and self._refusals % every == 0) or drawn:
            headers.pop("Retry-After")
            if self.limits.omit_reason_too:
                headers.pop("RateLimit-Reason")
        raise RateLimited(reason, headers)

    def _policy_header(self, name: str) -> str:
        return f"Beta-{name}" if self.limits.beta_policy_headers else name

    def _timestamp(self, moment: float) -> str:
        when = datetime.fromtimestamp(moment, UTC)
        return when.strftime("%Y-%m-%dT%H:%MZ" if self.limits.legacy_reset_format else "%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
