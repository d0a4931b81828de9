"""Jira Cloud's rate limits in the simulator: burst buckets, the hourly points quota, per-issue writes, 429 headers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from spec import load_spec

from jira_lab.sim import SimCloud, SiteBuilder
from jira_lab.sim.limits import (
    DEFAULT_ENDPOINT_RATES,
    PRICED_ROUTES,
    RateLimited,
    RateLimiter,
    RateLimits,
    point_cost,
    tenant_quota,
)
from jira_lab.sim.model import Site

# 50 s before the top of a UTC hour, so quota tests can cross it
START = datetime(2026, 3, 2, 10, 59, 10, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 3, 2, 11, 0, 0, tzinfo=UTC)
SCOPES = ["read:jira-user", "read:jira-work", "manage:jira-configuration"]
ISSUE = "/rest/api/3/issue/{issueIdOrKey}"


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Lab:
    """One site with an administrator (Ann, who also has an API token) and a group of 8 active members."""

    def __init__(self, name: str = "ratelab") -> None:
        b = SiteBuilder(name)
        self.ann = b.user("Ann Admin", api_token="ann-token")
        self.ann_email = f"ann.admin@{name}.example"
        admins = b.group("jira-admins", members=[self.ann])
        b.global_permission("ADMINISTER", admins)
        self.crew = b.group("crew", members=[b.user(f"Crew Member {i}") for i in range(8)])
        eng = b.project("ENG", "Engineering", lead=self.ann, permission_scheme=b.permission_scheme("Default"))
        self.issue = b.issue(eng, "An issue", reporter=self.ann)
        self.site: Site = b.site


def gateway_client(cloud: SimCloud, lab: Lab) -> httpx.Client:
    token = cloud.mint_access_token(lab.ann, SCOPES, sites=[lab.site])
    return httpx.Client(
        transport=cloud.transport(),
        base_url=cloud.gateway_url(lab.site),
        headers={"Authorization": f"Bearer {token}"},
    )


def basic_client(cloud: SimCloud, lab: Lab) -> httpx.Client:
    return httpx.Client(
        transport=cloud.transport(), base_url=cloud.site_url(lab.site), auth=(lab.ann_email, "ann-token")
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- defaults ------------------------------------------------------------------------------------------------------


def test_defaults_are_atlassians_documented_limits() -> None:
    limits = RateLimits()
    assert limits.hourly_points == 65_000
    assert limits.quota_pool == "global"
    assert limits.steady_rate("GET", "/rest/api/3/field") == 100
    assert limits.steady_rate("POST", "/rest/api/3/search/jql") == 100
    assert limits.steady_rate("PUT", ISSUE) == 50
    assert limits.steady_rate("DELETE", ISSUE) == 50
    assert limits.steady_rate("GET", ISSUE) == 150
    assert limits.steady_rate("GET", "/rest/api/3/user") == 150
    assert limits.steady_rate("POST", "/rest/api/3/search/approximate-count") == 150
    assert limits.steady_rate("GET", f"{ISSUE}/changelog") == 200
    assert limits.steady_rate("GET", "/rest/api/3/issuesecurityschemes/{id}") == 200
    assert limits.per_issue_writes == ((20, 2.0), (100, 30.0))


def test_every_priced_or_overridden_route_is_a_spec_operation() -> None:
    paths = load_spec()["paths"]
    for method, template in [*PRICED_ROUTES, *DEFAULT_ENDPOINT_RATES]:
        assert method.lower() in paths.get(template, {}), f"{method} {template} is not in the spec"


def test_tenant_quota_follows_the_tier_2_formula() -> None:
    assert tenant_quota("free", 500) == 65_000
    assert tenant_quota("standard", 100) == 100_000 + 10 * 100
    assert tenant_quota("premium", 1_000) == 130_000 + 20 * 1_000
    assert tenant_quota("enterprise", 20_000) == 500_000  # 150k + 600k, capped


@pytest.mark.parametrize(
    "bad",
    [
        {"burst_seconds": 0},
        {"hourly_points": 0},
        {"steady_rates": {"GET": 0}},
        {"per_issue_writes": ((0, 2.0),)},
        {"omit_retry_after_probability": 1.5},
        {"omit_retry_after_every": -1},
    ],
)
def test_nonsense_configuration_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RateLimits(**bad)  # type: ignore[arg-type]


def test_a_cloud_without_limits_never_answers_429() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock())  # a frozen clock would empty any bucket
    with basic_client(cloud, lab) as client:
        statuses = {client.get("/rest/api/3/serverInfo").status_code for _ in range(300)}
    assert statuses == {200}
    assert cloud.rate_limiter is None


# -- burst ---------------------------------------------------------------------------------------------------------


def test_burst_bucket_empties_and_refills_with_the_fake_clock() -> None:
    lab, clock = Lab(), FakeClock()
    cloud = SimCloud(lab.site, clock=clock, limits=RateLimits(steady_rates={"GET": 2}, hourly_points=None))
    with basic_client(cloud, lab) as client:

        def status() -> int:
            return client.get("/rest/api/3/serverInfo").status_code

        # a full bucket holds one second of the steady rate
        assert [status(), status(), status()] == [200, 200, 429]
        clock.advance(0.5)  # half a second at 2/s puts one token back
        assert [status(), status()] == [200, 429]
        clock.advance(10)  # refilling stops at the bucket's capacity
        assert [status(), status(), status()] == [200, 200, 429]


def test_buckets_are_per_endpoint_and_per_tenant() -> None:
    one, two = Lab("siteone"), Lab("sitetwo")
    clock = FakeClock()
    cloud = SimCloud(one.site, two.site, clock=clock, limits=RateLimits(steady_rates={"GET": 1}, hourly_points=None))
    with basic_client(cloud, one) as first, basic_client(cloud, two) as second:
        assert first.get("/rest/api/3/serverInfo").status_code == 200
        assert first.get("/rest/api/3/serverInfo").status_code == 429
        # another endpoint of the same site, and the same endpoint of another site, have buckets of their own
        assert first.get("/rest/api/3/myself").status_code == 200
        assert second.get("/rest/api/3/serverInfo").status_code == 200


def test_endpoint_override_replaces_the_methods_rate() -> None:
    lab = Lab()
    limits = RateLimits(steady_rates={"GET": 5}, endpoint_rates={("GET", "/rest/api/3/myself"): 1}, hourly_points=None)
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=limits)
    with basic_client(cloud, lab) as client:
        assert [client.get("/rest/api/3/myself").status_code for _ in range(2)] == [200, 429]
        assert [client.get("/rest/api/3/serverInfo").status_code for _ in range(6)] == [200] * 5 + [429]


def test_burst_429_carries_the_documented_headers() -> None:
    lab, clock = Lab(), FakeClock()
    cloud = SimCloud(lab.site, clock=clock, limits=RateLimits(steady_rates={"GET": 2}, hourly_points=None))
    with basic_client(cloud, lab) as client:
        for _ in range(2):
            client.get("/rest/api/3/serverInfo")
        refused = client.get("/rest/api/3/serverInfo")
    assert refused.status_code == 429
    headers = refused.headers
    # an empty bucket refilling at 2/s has a token again in 0.5 s: Retry-After is whole seconds, rounded up
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit-Reason"] == "jira-burst-based"
    assert headers["X-RateLimit-Limit"] == "2"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Reset"] == iso(datetime.fromtimestamp(START.timestamp() + 1, UTC))
    assert headers["RateLimit-Policy"] == '"jira-burst-based";q=2;w=1'
    assert headers["RateLimit"] == '"jira-burst-based";r=0;t=1'
    assert "X-RateLimit-NearLimit" not in headers  # not used for request-rate limiting
    assert refused.json()["errorMessages"]


def test_basic_auth_traffic_shares_the_burst_bucket_with_3lo_traffic() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=RateLimits(steady_rates={"GET": 2}))
    with gateway_client(cloud, lab) as app, basic_client(cloud, lab) as token_user:
        assert app.get("/rest/api/3/myself").status_code == 200
        assert token_user.get("/rest/api/3/myself").status_code == 200
        refused = token_user.get("/rest/api/3/myself")
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Reason"] == "jira-burst-based"


# -- 429s without Retry-After ----------------------------------------------------------------------------------------


def refusals(limits: RateLimits, count: int) -> list[httpx.Response]:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=limits)
    with basic_client(cloud, lab) as client:
        client.get("/rest/api/3/serverInfo")  # empties the one-token bucket
        return [client.get("/rest/api/3/serverInfo") for _ in range(count)]


def test_every_nth_429_comes_without_retry_after() -> None:
    answers = refusals(RateLimits(steady_rates={"GET": 1}, hourly_points=None, omit_retry_after_every=3), 6)
    assert [r.status_code for r in answers] == [429] * 6
    assert ["Retry-After" in r.headers for r in answers] == [True, True, False, True, True, False]
    # the reason stays unless asked otherwise
    assert all(r.headers["RateLimit-Reason"] == "jira-burst-based" for r in answers)


def test_a_bare_429_can_lack_the_reason_too() -> None:
    limits = RateLimits(steady_rates={"GET": 1}, hourly_points=None, omit_retry_after_every=1, omit_reason_too=True)
    (bare,) = refusals(limits, 1)
    assert bare.status_code == 429
    assert "Retry-After" not in bare.headers
    assert "RateLimit-Reason" not in bare.headers
    assert bare.headers["X-RateLimit-Reset"]  # what is left to go on


def test_429s_without_retry_after_by_probability_are_seeded() -> None:
    def pattern(seed: int) -> list[bool]:
        limits = RateLimits(steady_rates={"GET": 1}, hourly_points=None, omit_retry_after_probability=0.5, seed=seed)
        return ["Retry-After" in r.headers for r in refusals(limits, 40)]

    first = pattern(7)
    assert first == pattern(7)
    assert True in first and False in first
    assert first != pattern(8)


# -- the points quota ----------------------------------------------------------------------------------------------


def test_points_are_charged_per_returned_object_for_3lo_traffic() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=RateLimits())
    limiter = cloud.rate_limiter
    assert limiter is not None
    with gateway_client(cloud, lab) as client:
        client.get("/rest/api/3/serverInfo")
        assert limiter.points_used() == 1  # uncategorised: the base point
        client.get("/rest/api/3/myself")
        assert limiter.points_used() == 1 + (1 + 2)  # one user: an identity object
        members = client.get("/rest/api/3/group/member", params={"groupId": lab.crew})
        assert members.status_code == 200
        assert len(members.json()["values"]) == 8
        # Atlassian's own example: a group-member page of 8 users costs 1 + 8 × 2 = 17 points
        assert limiter.points_used() == 4 + 17
        assert members.headers["X-RateLimit-Limit"] == "65000"
        assert members.headers["X-RateLimit-Remaining"] == str(65_000 - 21)
        assert members.headers["RateLimit-Policy"] == '"global-app-quota";q=65000;w=3600'
        assert "X-RateLimit-NearLimit" not in members.headers


def test_basic_auth_traffic_is_exempt_from_the_quota() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=RateLimits(hourly_points=5))
    assert cloud.rate_limiter is not None
    with basic_client(cloud, lab) as client:
        answers = [client.get("/rest/api/3/myself") for _ in range(10)]  # 30 points if it were charged
    assert {r.status_code for r in answers} == {200}
    assert cloud.rate_limiter.points_used() == 0
    assert "X-RateLimit-Remaining" not in answers[-1].headers


def test_point_cost_of_the_documented_example_and_other_answers() -> None:
    users = [{"accountId": f"acc-{i}", "displayName": f"User {i}"} for i in range(8)]
    page = {"startAt": 0, "maxResults": 50, "total": 8, "isLast": True, "values": users}
    assert point_cost("GET", "/rest/api/3/group/member", 200, page) == 17
    issues = {"issues": [{"id": "1"}, {"id": "2"}, {"id": "3"}], "isLast": True}
    assert point_cost("POST", "/rest/api/3/search/jql", 200, issues) == 1 + 3
    assert point_cost("POST", "/rest/api/3/worklog/list", 200, [{"id": "1"}, {"id": "2"}]) == 1 + 2
    bulk = {
        "issueChangeLogs": [{"issueId": "1", "changeHistories": [{}, {}]}, {"issueId": "2", "changeHistories": [{}]}]
    }
    assert point_cost("POST", "/rest/api/3/changelog/bulkfetch", 200, bulk) == 1 + 3
    mine = {"permissions": {"BROWSE_PROJECTS": {"havePermission": True}, "ADMINISTER": {"havePermission": False}}}
    assert point_cost("GET", "/rest/api/3/mypermissions", 200, mine) == 1 + 2 * 2
    assert point_cost("GET", ISSUE, 200, {"id": "10000", "key": "ENG-1"}) == 1 + 1
    # errors return nothing, writes cost one point flat
    assert point_cost("GET", "/rest/api/3/group/member", 404, {"errorMessages": ["x"]}) == 1
    assert point_cost("PUT", ISSUE, 204, None) == 1


def test_quota_exhaustion_refuses_everything_until_the_top_of_the_hour() -> None:
    lab, clock = Lab(), FakeClock()
    cloud = SimCloud(lab.site, clock=clock, limits=RateLimits(hourly_points=10))
    with gateway_client(cloud, lab) as client:
        # 3 points each: admitted at 0, 3, 6 and 9 points used; the fourth overdraws the pool to 12
        assert [client.get("/rest/api/3/myself").status_code for _ in range(4)] == [200] * 4
        refused = client.get("/rest/api/3/myself")
        other_endpoint = client.get("/rest/api/3/serverInfo")
        clock.advance(49)  # 10:59:59
        still = client.get("/rest/api/3/serverInfo")
        clock.now = NEXT_HOUR.timestamp()
        cleared = client.get("/rest/api/3/myself")
    assert refused.status_code == other_endpoint.status_code == still.status_code == 429
    headers = refused.headers
    assert headers["RateLimit-Reason"] == "jira-quota-global-based"
    assert headers["Retry-After"] == str(int(NEXT_HOUR.timestamp() - START.timestamp()))  # 50 s
    assert headers["X-RateLimit-Reset"] == iso(NEXT_HOUR)
    assert headers["X-RateLimit-Limit"] == "10"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-NearLimit"] == "true"
    assert headers["RateLimit-Policy"] == '"global-app-quota";q=10;w=3600'
    assert headers["RateLimit"] == '"global-app-quota";r=0;t=50'
    assert still.headers["Retry-After"] == "1"
    assert still.headers["X-RateLimit-Reset"] == iso(NEXT_HOUR)
    assert cleared.status_code == 200
    assert cloud.rate_limiter is not None and cloud.rate_limiter.points_used() == 3


def test_refused_requests_cost_nothing() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=RateLimits(hourly_points=2))
    assert cloud.rate_limiter is not None
    with gateway_client(cloud, lab) as client:
        client.get("/rest/api/3/myself")
        used = cloud.rate_limiter.points_used()
        assert [client.get("/rest/api/3/myself").status_code for _ in range(3)] == [429] * 3
    assert cloud.rate_limiter.points_used() == used == 3


def test_near_limit_headers_appear_below_a_fifth_of_the_quota() -> None:
    lab = Lab()
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=RateLimits(hourly_points=10))
    with gateway_client(cloud, lab) as client:
        first, second, third = (client.get("/rest/api/3/myself") for _ in range(3))
    # 7 and 4 points remain: at least a fifth of 10; then 1 remains
    assert "X-RateLimit-NearLimit" not in first.headers and "RateLimit" not in first.headers
    assert "X-RateLimit-NearLimit" not in second.headers
    assert third.headers["X-RateLimit-Remaining"] == "1"
    assert third.headers["X-RateLimit-NearLimit"] == "true"
    assert third.headers["RateLimit"] == '"global-app-quota";r=1;t=50'


def test_the_global_pool_is_shared_by_every_site_and_the_tenant_pool_is_not() -> None:
    one, two = Lab("siteone"), Lab("sitetwo")
    shared = SimCloud(one.site, two.site, clock=FakeClock(), limits=RateLimits(hourly_points=3))
    with gateway_client(shared, one) as first, gateway_client(shared, two) as second:
        assert first.get("/rest/api/3/myself").status_code == 200
        refused = second.get("/rest/api/3/myself")
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Reason"] == "jira-quota-global-based"

    one, two = Lab("siteone"), Lab("sitetwo")
    limits = RateLimits(hourly_points=3, quota_pool="tenant")
    separate = SimCloud(one.site, two.site, clock=FakeClock(), limits=limits)
    with gateway_client(separate, one) as first, gateway_client(separate, two) as second:
        assert first.get("/rest/api/3/myself").status_code == 200
        assert second.get("/rest/api/3/myself").status_code == 200
        refused = first.get("/rest/api/3/myself")
    assert refused.headers["RateLimit-Reason"] == "jira-quota-tenant-based"
    assert refused.headers["RateLimit-Policy"] == '"tenant-app-quota";q=3;w=3600'


def test_beta_policy_headers_and_the_legacy_reset_format() -> None:
    lab = Lab()
    limits = RateLimits(hourly_points=1, beta_policy_headers=True, legacy_reset_format=True)
    cloud = SimCloud(lab.site, clock=FakeClock(), limits=limits)
    with gateway_client(cloud, lab) as client:
        client.get("/rest/api/3/serverInfo")
        refused = client.get("/rest/api/3/serverInfo")
    assert refused.headers["Beta-RateLimit-Policy"] == '"global-app-quota";q=1;w=3600'
    assert "RateLimit-Policy" not in refused.headers
    assert refused.headers["X-RateLimit-Reset"] == NEXT_HOUR.strftime("%Y-%m-%dT%H:%MZ")


# -- per-issue writes ----------------------------------------------------------------------------------------------


def test_writes_to_one_issue_are_limited_per_2_and_per_30_seconds() -> None:
    lab, clock = Lab(), FakeClock()
    limiter = RateLimiter(RateLimits(hourly_points=None), clock)
    issue = lab.site.issues[lab.issue]

    def write(id_or_key: str) -> None:
        limiter.admit(lab.site, "PUT", ISSUE, {"issueIdOrKey": id_or_key}, three_lo=False)

    # the key and the id name the same issue, so they share its windows
    for n in range(20):
        write(issue.key if n % 2 else str(issue.id))
    with pytest.raises(RateLimited) as refused:
        write(issue.key)
    assert refused.value.status == 429
    assert refused.value.headers["RateLimit-Reason"] == "jira-per-issue-on-write"
    assert refused.value.headers["X-RateLimit-Limit"] == "20"
    assert refused.value.headers["Retry-After"] == "2"
    # reads of the issue and read-only POSTs under it are not writes
    limiter.admit(lab.site, "GET", ISSUE, {"issueIdOrKey": issue.key}, three_lo=False)
    limiter.admit(lab.site, "POST", f"{ISSUE}/changelog/list", {"issueIdOrKey": issue.key}, three_lo=False)

    # 20 writes every 2 s reach the 30-second window's 100 after 10 s
    for _ in range(4):
        clock.advance(2)
        for _ in range(20):
            write(issue.key)
    clock.advance(2)
    with pytest.raises(RateLimited) as refused:
        write(issue.key)
    assert refused.value.headers["X-RateLimit-Limit"] == "100"
    assert refused.value.headers["Retry-After"] == str(30 - 10)
    clock.advance(20)
    write(issue.key)


def test_another_issue_has_its_own_write_windows() -> None:
    lab = Lab()
    limiter = RateLimiter(RateLimits(hourly_points=None, per_issue_writes=((1, 2.0),)), FakeClock())
    limiter.admit(lab.site, "DELETE", f"{ISSUE}/comment/{{id}}", {"issueIdOrKey": "ENG-1", "id": "1"}, three_lo=True)
    with pytest.raises(RateLimited):
        limiter.admit(lab.site, "PUT", ISSUE, {"issueIdOrKey": "eng-1"}, three_lo=True)
    limiter.admit(lab.site, "PUT", ISSUE, {"issueIdOrKey": "ENG-2"}, three_lo=True)
