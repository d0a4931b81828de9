"""Deterministic generator of simulated Jira Cloud sites, from a tiny test fixture to a large benchmark site.

``generate_site(size, seed)`` builds a :class:`~jira_lab.sim.model.Site` through :class:`SiteBuilder`. The same
``(size, seed)`` always gives the same site, in any process: every random choice comes from a :class:`random.Random`
seeded with a string (hashed the same way whatever ``PYTHONHASHSEED`` is), sets are sorted before anything is picked
from them, and every timestamp is an offset from :data:`~jira_lab.sim.builder.EPOCH`, never the wall clock.

Random sites vary their permission model with the seed (who holds Browse Projects, who is in which security level,
which groups and roles comments and worklogs are restricted to), so audits can be checked against many models. Each
names its well-known accounts in ``site.accounts`` (see :func:`analyst_id` and :func:`technical_user_id`):

* ``analyst`` sees everything: Browse Projects everywhere, a member of every security level, an actor of every
  project role in every project and a member of every group that a comment or worklog is restricted to;
* ``technical_user`` (a search connector's account) misses at least one of those, chosen by the seed and written in
  ``site.story``.

Volumes follow long tails, as real sites do: most issues have a few comments, some have more than 20 comments,
worklogs or changelog histories (what search embeds), a few have more than 100 comments (one page of the comment
endpoint). The audit log tells how the permission model came to be, and every record matches the final state.

The ``demo`` site is defined in ``data/demo-site.toml`` and built by :mod:`jira_lab.sim.demo` with the same content
machinery (:func:`populate_content`, :class:`AuditTrail`).
"""

from __future__ import annotations

import gc
import math
import random
import tomllib
import unicodedata
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, TypeVar

from jira_lab.sim.auditlog import AuditEvents
from jira_lab.sim.builder import EPOCH, SiteBuilder, adf
from jira_lab.sim.model import (
    AuditRecord,
    ChangeItem,
    Holder,
    Issue,
    Project,
    RoleActors,
    SecurityLevelMember,
    Site,
    Visibility,
)
from jira_lab.sim.permissions import PermissionEngine

DAY = 86400.0
T = TypeVar("T")

#: Accounts every random site has besides its people: these four, then ``users - 4`` people.
FIXED_ACCOUNTS = ("admin", "analyst", "technical_user", "app")
#: Groups every random site has besides its team groups.
FIXED_GROUPS = (
    "jira-administrators",
    "jira-software-users",
    "jira-servicemanagement-users",
    "atlassian-addons-admin",
    "search-connectors",
    "site-auditors",
)
MIN_USERS = len(FIXED_ACCOUNTS) + 4
MIN_GROUPS = len(FIXED_GROUPS) + 2


@dataclass(frozen=True, slots=True)
class SiteSize:
    """How much a generated site holds; every count is met exactly.

    ``users`` counts every account (the admin, analyst, technical user and app account included), ``groups`` every
    group, ``worklogs`` the worklogs the site still has (about 2% more were logged and later deleted), and
    ``changelog_items`` the change items across all changelog histories (one to three per history).
    """

    projects: int
    issues: int
    comments: int
    worklogs: int
    changelog_items: int
    users: int
    groups: int

    def __post_init__(self) -> None:
        if self.projects < 1:
            raise ValueError("a site needs at least one project")
        if self.issues < self.projects:
            raise ValueError("every project needs an issue: issues must be >= projects")
        if self.users < MIN_USERS:
            raise ValueError(f"users must be >= {MIN_USERS} (the fixed accounts plus a few people)")
        if self.groups < MIN_GROUPS:
            raise ValueError(f"groups must be >= {MIN_GROUPS} (the fixed groups plus two teams)")
        if min(self.comments, self.worklogs, self.changelog_items) < 0:
            raise ValueError("comments, worklogs and changelog_items must not be negative")


DEMO_FILE = "demo-site.toml"


def demo_definition_path() -> Path:
    """Where the demo site's definition is: beside this module when installed (the wheel force-includes it), in
    ``data/`` of a source checkout."""
    packaged = Path(__file__).with_name(DEMO_FILE)
    if packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "data" / DEMO_FILE
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"{DEMO_FILE} is neither at {packaged} nor at {checkout}")


def load_demo_definition() -> dict[str, Any]:
    """The demo site's definition, parsed from ``demo-site.toml`` (see :mod:`jira_lab.sim.demo`)."""
    with demo_definition_path().open("rb") as file:
        return tomllib.load(file)


def demo_size() -> SiteSize:
    """The demo site's volume, as its definition declares it."""
    definition = load_demo_definition()
    volume = definition["volume"]
    return SiteSize(
        projects=len(definition["projects"]),
        issues=volume["issues"],
        comments=volume["comments"],
        worklogs=volume["worklogs"],
        changelog_items=volume["changelog_items"],
        users=len(definition["people"]),
        groups=len(definition["groups"]),
    )


#: Named sizes. ``"demo"`` is the demo site's volume, read from its definition; ``generate_site("demo")`` builds that
#: story site, not a random site of its size.
SIZES: dict[str, SiteSize] = {
    "tiny": SiteSize(projects=3, issues=30, comments=300, worklogs=100, changelog_items=220, users=16, groups=12),
    "small": SiteSize(
        projects=6, issues=600, comments=6_000, worklogs=2_500, changelog_items=9_000, users=60, groups=24
    ),
    "large": SiteSize(
        projects=40,
        issues=10_000,
        comments=100_000,
        worklogs=50_000,
        changelog_items=200_000,
        users=500,
        groups=100,
    ),
    "demo": demo_size(),
}


def generate_site(size: str | SiteSize, seed: int = 0) -> Site:
    """Generate a site, deterministically from ``(size, seed)``.

    Args:
        size: a name from :data:`SIZES`, ``"demo"`` (the story site of ``data/demo-site.toml``), or a
            :class:`SiteSize`.
        seed: varies the permission model and the content; the same seed gives an identical site.

    Returns:
        The site; ``site.accounts`` names its well-known accounts and ``site.story`` says what the technical user
        misses.
    """
    if isinstance(size, str):
        if size == "demo":
            from jira_lab.sim.demo import build_demo_site

            with gc_paused():
                return build_demo_site(seed)
        if size not in SIZES:
            raise ValueError(f"unknown site size {size!r}; use one of {sorted(SIZES)} or a SiteSize")
        label, volume = size, SIZES[size]
    else:
        label, volume = "sim", size
    name = label if seed == 0 else f"{label}-{seed}"
    with gc_paused():
        return _RandomSite(volume, seed, name).build()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a site is ~10^6 new objects and none is garbage, so the collector's
    repeated full passes over them only cost time (a third of a large site's build)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyst_id(site: Site) -> str:
    """The account that sees everything on a generated site."""
    return site.accounts["analyst"]


def technical_user_id(site: Site) -> str:
    """The search connector's account, which misses something on a generated site (``site.story`` says what)."""
    return site.accounts["technical_user"]


# ------------------------------------------------------------------------------------------------------------------
# Words: multilingual on purpose, so that loaders and reports meet accents, CJK, RTL scripts and emoji.

_LATIN_FIRST = (
    "José", "Zoë", "François", "Siobhán", "Łukasz", "Ingrid", "Mateus", "Chloé", "Ayşe", "Jürgen",
    "Søren", "Aoife", "Hannah", "Tomás", "Marta", "Élodie", "Björn", "Ana", "Kofi", "Priya",
)  # fmt: skip
_LATIN_LAST = (
    "Álvarez", "Müller", "Dupont", "O'Brien", "Wróbel", "Bjørnstad", "Conceição", "Lefèvre", "Yılmaz", "Groß",
    "Nørgaard", "Ní Bhriain", "Schmidt", "Ó Briain", "Kowalska", "Mensah", "Raghunathan", "García", "Öztürk", "Novák",
)  # fmt: skip
_OTHER_NAMES = (
    [f"{last}{first}" for last in ("王", "李", "张", "刘", "陈") for first in ("芳", "伟", "娜", "敏", "静", "磊")]
    + [
        f"{last} {first}"
        for last in ("佐藤", "鈴木", "高橋", "田中", "渡辺")
        for first in ("健", "花子", "翔太", "美咲")
    ]
    + [f"{last}{first}" for last in ("김", "이", "박", "최") for first in ("민준", "서연", "지훈", "하은")]
    + [f"{first} {last}" for first in ("Дмитрий", "Анна", "Ελένη", "Νίκος") for last in ("Иванов", "Παπαδόπουλος")]
    + [f"Nguyễn {first}" for first in ("Văn An", "Thị Hoa", "Đức Minh")]
)
_PEOPLE_NAMES = tuple(f"{first} {last}" for first in _LATIN_FIRST for last in _LATIN_LAST) + tuple(_OTHER_NAMES)

_SENTENCES = (
    "Reproduced on staging, the stack trace is attached.",
    "Déployé en préproduction, à vérifier demain matin.",
    "Die Änderung ist rückwärtskompatibel, bitte noch einmal prüfen.",
    "本番環境で再現しました。ログを確認してください。",
    "已在测试环境修复，等待回归测试。",
    "고객에게 회신했습니다. 추가 정보를 기다리는 중입니다.",
    "Looks good to me 👍",
    "Blocked by the database migration 🚧",
    "Can we pair on this tomorrow? ☕",
    "The fix ships with the next release 🚀",
    "Customer confirmed the workaround works — thanks!",
    "Necesitamos la aprobación del equipo de seguridad.",
    "Ótimo trabalho, vou fechar o ticket.",
    "Tämä vaatii vielä dokumentaation päivityksen.",
    "Zgłoszenie przekazane do zespołu infrastruktury.",
    "Περιμένουμε απάντηση από τον προμηθευτή.",
    "Проверил на проде, ошибка больше не воспроизводится.",
    "Bitte beachten: Zeitzone Europe/Zürich, nicht UTC.",
    "Naïve retry loop caused the spike; capped at three attempts.",
    "Moved to the backlog until Q2 🗓️",
    "ממתינים לאישור מהלקוח.",
    "تم تحديث الوثائق.",
    "Logged the time for the incident review ⏱️",
    "Security review done, no findings 🔒",
    "Added a regression test for the edge case with ß and ẞ.",
    "Root cause: the cache key ignored the locale (fr-CA vs fr-FR).",
    "Waiting on legal before we can share the details.",
    "Escalated to the on-call engineer 📟",
    "Merged, monitoring the error rate for 24 h.",
    "Closing as duplicate of the older ticket.",
)
_SUMMARIES = {
    "software": (
        "Crash when saving a profile with an emoji 😀 in the name",
        "Login page layout breaks on small screens",
        "Upgrade the payment SDK to v5",
        "Flaky test in the checkout suite",
        "Übersetzung der Fehlermeldungen ins Deutsche",
        "ログイン画面のレイアウト崩れ",
        "支付回调超时",
        "API returns 500 for café names with accents",
        "Rate limiter drops requests during deploys",
        "Add retries to the webhook dispatcher",
        "Dark mode colours are wrong in Safari",
        "Migrate the search index to the new cluster",
        "Memory leak in the notification worker",
        "Document the release checklist",
        "Señal de error en el formulario de registro",
        "Export to CSV mangles ü, é and ß",
        "Remove the deprecated v1 endpoints",
        "Slow dashboard for projects with many boards",
        "Investigate 429s from the upstream API",
        "Support passkeys on the sign-in page 🔑",
    ),
    "security": (
        "Pen test finding: stored XSS in comments",
        "Rotate the leaked API key 🔐",
        "CVE in the image processing library",
        "Review admin access for contractors",
        "Incident: suspicious logins from a new ASN",
        "Harden the storage bucket policies",
        "Phishing simulation results 🎣",
        "Third-party risk assessment for the CRM vendor",
        "Vulnérabilité dans la bibliothèque de parsing XML",
        "Enable audit logging on the build servers",
    ),
    "hr": (
        "Onboarding for the new hire in Zürich",
        "Update the parental leave policy",
        "Quarterly salary review — Q3",
        "Offboarding checklist for a contractor",
        "Translate the handbook into Français",
        "Benefits enrolment questions",
        "Background check for a candidate",
        "Performance review calibration 📈",
        "Relocation package for a transfer to 東京",
        "Sick leave documentation",
    ),
    "business": (
        "Renew the office lease in Kraków",
        "Prepare the annual compliance training",
        "年度预算审批",
        "Plan the team offsite 🏔️",
        "Update the expense policy for travel ✈️",
        "Contract renewal with the payroll vendor",
        "Review the whistleblowing procedure",
        "Campaign brief for the spring launch 🌸",
        "Invoice dispute with a supplier",
        "Trademark filing in the EU",
    ),
    "service_desk": (
        "Cannot access the VPN from home",
        "Laptop replacement request 💻",
        "Password reset for the finance app",
        "Printer on the 3rd floor is jammed again",
        "Request access to the analytics dashboard",
        "Outlook keeps asking for credentials",
        "New monitor for a remote employee",
        "Wi-Fi drops in the Lisbon office",
        "Mot de passe expiré, impossible de se connecter",
        "パスワードをリセットしたい",
        "Software licence request: IntelliJ",
        "Two-factor device lost",
    ),
}
_ISSUE_TYPES = {
    "software": (("Bug", 3.0), ("Story", 4.0), ("Task", 3.0), ("Epic", 0.4)),
    "business": (("Task", 5.0), ("Epic", 0.3)),
    "service_desk": (("Service Request", 5.0), ("Incident", 2.0), ("Problem", 0.5)),
}
_WORKFLOWS = {
    "software": ("To Do", "In Progress", "In Review", "Done"),
    "business": ("To Do", "In Progress", "Done"),
    "service_desk": ("Waiting for support", "In Progress", "Waiting for customer", "Resolved", "Closed"),
}
STATUS_IDS = {
    "To Do": "10000",
    "In Progress": "3",
    "In Review": "10001",
    "Done": "10002",
    "Waiting for support": "10003",
    "Waiting for customer": "10004",
    "Resolved": "5",
    "Closed": "6",
}
_PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
_LABELS = ("backend", "frontend", "urgent", "customer", "tech-debt", "security", "onboarding", "régression", "国际化")
_STRING_VALUES = ("Gold", "Silver", "Bronze", "Platinum ✨", "Évaluation")
_EMOJI = ((":tada:", "1f389", "🎉"), (":rocket:", "1f680", "🚀"), (":warning:", "26a0", "⚠️"), (":eyes:", "1f440", "👀"))
_TEAM_WORDS = (
    "platform", "payments", "mobile", "web", "data", "infra", "security", "people-ops", "finance", "support",
    "legal", "design", "qa", "sre", "growth", "search", "identity", "billing", "analytics", "devex",
)  # fmt: skip
_PROJECT_POOL = (
    ("ENG", "Engineering", "software", "software"),
    ("SUP", "Customer Support", "service_desk", "service_desk"),
    ("HR", "People Operations", "business", "hr"),
    ("SEC", "Security", "software", "security"),
    ("OPS", "Operations", "software", "software"),
    ("FIN", "Finance", "business", "business"),
    ("ITS", "IT Service Desk", "service_desk", "service_desk"),
    ("MOB", "Mobile Apps", "software", "software"),
    ("WEB", "Web Platform", "software", "software"),
    ("DATA", "Data Platform", "software", "software"),
    ("LEG", "Legal", "business", "business"),
    ("MKT", "Marketing", "business", "business"),
    ("INFRA", "Infrastructure", "software", "software"),
    ("DES", "Design", "business", "business"),
    ("QA", "Quality Assurance", "software", "software"),
    ("PAY", "Payments", "software", "software"),
)
_LEVEL_NAMES = ("Staff only", "Security team", "Management", "Confidential", "Legal hold", "Internal", "Restricted")


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters, digits and dots, for e-mail local parts (empty for names in other scripts)."""
    decomposed = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = ["".join(ch for ch in word if ch.isalnum()) for word in decomposed.lower().split()]
    return ".".join(word for word in words if word)


# ------------------------------------------------------------------------------------------------------------------
# ADF documents


def _text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def _doc(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def _list(kind: Literal["bulletList", "orderedList"], items: Iterable[str]) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": kind,
        "content": [{"type": "listItem", "content": [_paragraph(_text(item))]} for item in items],
    }
    if kind == "orderedList":
        node["attrs"] = {"order": 1}
    return node


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """A random element, several times cheaper than :meth:`random.Random.choice` (hot loops call it ~10^6 times)."""
    return items[int(rng.random() * len(items))]


class Writer:
    """Writes summaries and ADF bodies: mostly plain paragraphs, some with marks, lists, mentions and emoji."""

    def __init__(self, rng: random.Random, site: Site) -> None:
        self.rng = rng
        self.site = site

    def sentence(self) -> str:
        return pick(self.rng, _SENTENCES)

    def text(self) -> str:
        first = pick(self.rng, _SENTENCES)
        return first if self.rng.random() < 0.5 else f"{first} {pick(self.rng, _SENTENCES)}"

    def summary(self, theme: str) -> str:
        return pick(self.rng, _SUMMARIES.get(theme, _SUMMARIES["software"]))

    def body(self, rich_share: float, people: Sequence[str]) -> dict[str, Any]:
        """A plain one-paragraph document, or (with probability ``rich_share``) a richer one."""
        if self.rng.random() >= rich_share:
            return adf(self.text())
        return self.rich(people)

    def rich(self, people: Sequence[str]) -> dict[str, Any]:
        """A document with formatting: marks, a list, a mention, an emoji, a code block or a heading."""
        rng = self.rng
        kind = rng.randrange(5)
        if kind == 0:
            return _doc(
                _paragraph(
                    _text(self.sentence() + " "),
                    _text("Important:", {"type": "strong"}),
                    _text(" "),
                    _text(self.sentence(), {"type": "em"}),
                    _text(" see "),
                    _text("config.yaml", {"type": "code"}),
                )
            )
        if kind == 1 and people:
            account_id = pick(rng, people)
            user = self.site.users[account_id]
            short_name, code, char = pick(rng, _EMOJI)
            return _doc(
                _paragraph(
                    {
                        "type": "mention",
                        "attrs": {"id": account_id, "text": f"@{user.display_name}", "accessLevel": ""},
                    },
                    _text(" " + self.sentence() + " "),
                    {"type": "emoji", "attrs": {"shortName": short_name, "id": code, "text": char}},
                )
            )
        if kind == 2:
            return _doc(
                _paragraph(_text(self.sentence())),
                _list("bulletList", (self.sentence() for _ in range(rng.randint(2, 4)))),
            )
        if kind == 3:
            link = {"type": "link", "attrs": {"href": "https://runbooks.example.com/incident#étape-2"}}
            return _doc(
                _list("orderedList", (self.sentence() for _ in range(rng.randint(2, 3)))),
                _paragraph(_text("Runbook", link), _text(" — " + self.sentence())),
            )
        return _doc(
            {"type": "heading", "attrs": {"level": 3}, "content": [_text("Résumé / 概要")]},
            {
                "type": "codeBlock",
                "attrs": {"language": "python"},
                "content": [_text('print("naïve → ✓")\nraise SystemExit(0)')],
            },
            _paragraph(_text(self.sentence())),
        )


# ------------------------------------------------------------------------------------------------------------------
# Content: issues, comments, worklogs and changelogs for a site whose permission model is already built

VisibilityOption = tuple[Visibility | None, float]


@dataclass(slots=True)
class Guarantee:
    """At least ``count`` comments or worklogs in a project carry this visibility (a story needs them)."""

    kind: Literal["comment", "worklog"]
    visibility: Visibility
    count: int


@dataclass(slots=True)
class ProjectPlan:
    """How one project's content looks: who writes it, how it is restricted, how much of the site it holds."""

    project_id: int
    theme: str
    #: people who report, are assigned, comment and log work (sorted account ids)
    people: list[str]
    #: service desk agents, who write the internal (``jsdPublic: false``) comments
    agents: list[str] = field(default_factory=list)
    comment_options: list[VisibilityOption] = field(default_factory=lambda: [(None, 1.0)])
    worklog_options: list[VisibilityOption] = field(default_factory=lambda: [(None, 1.0)])
    #: security levels issues of this project may have, and the share of issues that have one
    levels: list[int] = field(default_factory=list)
    level_share: float = 0.0
    weight: float = 1.0
    internal_share: float = 0.0
    guarantees: list[Guarantee] = field(default_factory=list)
    #: levels at least one issue of this project must end up in
    forced_levels: list[int] = field(default_factory=list)


@dataclass(slots=True)
class ContentPlan:
    """Everything :func:`populate_content` needs besides the site."""

    projects: list[ProjectPlan]
    issues: int
    comments: int
    worklogs: int
    changelog_items: int
    deleted_worklogs: int = 0
    #: an app account that reports some issues and writes some comments (Automation for Jira)
    automation: str | None = None
    #: groups that group-picker custom fields take their values from
    group_values: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _IssueInfo:
    issue: Issue
    plan_index: int
    created: float  # seconds relative to EPOCH (negative)


#: Content lives in the year before EPOCH; nothing is later than a minute before it.
_START = -365 * DAY
_ISSUE_END = -3 * DAY
_LAST = -60.0


def _moment(offset: float) -> datetime:
    return EPOCH + timedelta(milliseconds=math.floor(offset * 1000))


def _after(rng: random.Random, start: float, span: float = 200 * DAY) -> float:
    """A moment after ``start`` (within ``span``), still before EPOCH."""
    end = min(_LAST, start + span)
    return start + 60.0 + (end - start - 60.0) * rng.random()


def allocate(total: int, bins: int, rng: random.Random, heavy: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """Split ``total`` items over ``bins`` with a long tail; some random bins get at least the ``heavy`` counts.

    Returns the counts and the bins that were given a heavy count.
    """
    counts = [0] * bins
    if bins == 0 or total == 0:
        return counts, []
    wanted = list(heavy)[:bins]
    while wanted and sum(wanted) > total:
        wanted.pop()
    heavy_bins = rng.sample(range(bins), len(wanted))
    for index, count in zip(heavy_bins, wanted, strict=True):
        counts[index] = count
    rest = total - sum(wanted)
    weights = [min(rng.paretovariate(1.4), 30.0) for _ in range(bins)]
    for index in rng.choices(range(bins), cum_weights=list(accumulate(weights)), k=rest):
        counts[index] += 1
    return counts, heavy_bins


def _pick_option(rng: random.Random, cumulative: list[float]) -> int:
    return bisect(cumulative, rng.random() * cumulative[-1])


class _Populator:
    def __init__(self, builder: SiteBuilder, plan: ContentPlan, rng: random.Random) -> None:
        self.b = builder
        self.site = builder.site
        self.plan = plan
        self.rng = rng
        self.writer = Writer(rng, builder.site)
        self.engine = PermissionEngine(builder.site)
        self.issues: list[_IssueInfo] = []
        self.by_project: list[list[int]] = [[] for _ in plan.projects]
        fields = list(self.site.custom_fields.values())
        self.user_fields = [f for f in fields if f.kind == "user"]
        self.group_fields = [f for f in fields if f.kind == "group"]
        self.string_fields = [f for f in fields if f.kind == "string"]
        tracked = [f for f in self.user_fields if not f.multi]
        self.tracked_field = tracked[0] if tracked else None

    # -- issues ------------------------------------------------------------------------------------------------
    def issue_counts(self) -> list[int]:
        projects = self.plan.projects
        counts = [1] * len(projects)
        weights = list(accumulate(p.weight for p in projects))
        for index in self.rng.choices(range(len(projects)), cum_weights=weights, k=self.plan.issues - len(projects)):
            counts[index] += 1
        return counts

    def create_issues(self) -> None:
        rng = self.rng
        moments: list[tuple[float, int]] = []
        for plan_index, count in enumerate(self.issue_counts()):
            moments.extend((_START + rng.random() * (_ISSUE_END - _START), plan_index) for _ in range(count))
        moments.sort()
        for created, plan_index in moments:
            self.create_issue(created, plan_index)
        self.force_levels()

    def create_issue(self, created: float, plan_index: int) -> None:
        rng = self.rng
        plan = self.plan.projects[plan_index]
        project = self.site.projects[plan.project_id]
        kind = project.project_type_key if project.project_type_key in _WORKFLOWS else "software"
        workflow = _WORKFLOWS[kind]
        age = (created - _START) / (_ISSUE_END - _START)
        status = workflow[-1] if rng.random() < 0.8 - 0.6 * age else pick(rng, workflow[:-1])
        types, type_weights = zip(*_ISSUE_TYPES[kind], strict=True)
        automation = self.plan.automation
        reporter = automation if automation and rng.random() < 0.05 else pick(rng, plan.people)
        level = pick(rng, plan.levels) if plan.levels and rng.random() < plan.level_share else None
        issue_id = self.b.issue(
            plan.project_id,
            self.writer.summary(plan.theme),
            reporter=reporter,
            assignee=None if rng.random() < 0.2 else pick(rng, plan.people),
            security_level=level,
            created=_moment(created),
            status=status,
            issue_type=rng.choices(types, weights=type_weights)[0],
            custom_fields=self.custom_values(plan),
        )
        issue = self.site.issues[issue_id]
        if rng.random() < 0.6:
            issue.description = self.writer.body(0.5, plan.people)
        issue.labels = sorted(rng.sample(_LABELS, pick(rng, (0, 0, 1, 1, 2))))
        self.by_project[plan_index].append(len(self.issues))
        self.issues.append(_IssueInfo(issue, plan_index, created))

    def custom_values(self, plan: ProjectPlan) -> dict[str, Any]:
        rng = self.rng
        values: dict[str, Any] = {}
        for user_field in self.user_fields:
            if rng.random() < (0.3 if user_field.multi else 0.45):
                if user_field.multi:
                    values[user_field.id] = sorted(rng.sample(plan.people, min(len(plan.people), rng.randint(1, 3))))
                else:
                    values[user_field.id] = pick(rng, plan.people)
        groups = self.plan.group_values
        for group_field in self.group_fields:
            if groups and rng.random() < (0.2 if group_field.multi else 0.5):
                if group_field.multi:
                    values[group_field.id] = sorted(rng.sample(groups, min(len(groups), rng.randint(1, 2))))
                else:
                    values[group_field.id] = pick(rng, groups)
        for string_field in self.string_fields:
            if rng.random() < 0.4:
                values[string_field.id] = pick(rng, _STRING_VALUES)
        return values

    def force_levels(self) -> None:
        for plan_index, plan in enumerate(self.plan.projects):
            for level_id in plan.forced_levels:
                members = [self.issues[i].issue for i in self.by_project[plan_index]]
                if not any(issue.security_level_id == level_id for issue in members):
                    pick(self.rng, members).security_level_id = level_id

    # -- comments and worklogs ---------------------------------------------------------------------------------
    def eligible_authors(self, plan: ProjectPlan, visibility: Visibility | None) -> list[str]:
        """People of the project who are in the visibility's group or role (Jira only offers those to them)."""
        if visibility is None:
            return plan.people
        project = self.site.projects[plan.project_id]
        if visibility.type == "group":
            members = self.site.group_members.get(visibility.identifier, set())
        else:
            role = self.site.role_by_name(visibility.identifier)
            members = self.engine.role_members(project, role.id) if role is not None else set()
        inside = [person for person in plan.people if person in members]
        if inside:
            return inside
        humans = sorted(m for m in members if self.site.users[m].account_type == "atlassian")
        return humans or plan.people

    def item_specs(
        self, kind: Literal["comment", "worklog"], total: int, heavy: Sequence[int], *, protect_heavy: bool = False
    ) -> tuple[list[list[Any]], set[int]]:
        """``[moment, issue index, option index, internal]`` per item, with the long tail and the guarantees."""
        rng = self.rng
        counts, heavy_bins = allocate(total, len(self.issues), rng, heavy)
        cumulative = [
            list(accumulate(weight for _, weight in (p.comment_options if kind == "comment" else p.worklog_options)))
            for p in self.plan.projects
        ]
        specs: list[list[Any]] = []
        for index, count in enumerate(counts):
            info = self.issues[index]
            plan = self.plan.projects[info.plan_index]
            for _ in range(count):
                internal = kind == "comment" and rng.random() < plan.internal_share
                option = 0 if internal else _pick_option(rng, cumulative[info.plan_index])
                specs.append([_after(rng, info.created), index, option, internal])
        self.apply_guarantees(kind, specs, set(heavy_bins) if protect_heavy else set())
        return specs, set(heavy_bins)

    def apply_guarantees(self, kind: str, specs: list[list[Any]], protected: set[int]) -> None:
        rng = self.rng
        for plan_index, plan in enumerate(self.plan.projects):
            options = plan.comment_options if kind == "comment" else plan.worklog_options
            for guarantee in plan.guarantees:
                if guarantee.kind != kind or not specs:
                    continue
                option = next(i for i, (v, _) in enumerate(options) if v == guarantee.visibility)
                mine = [s for s in specs if self.issues[s[1]].plan_index == plan_index]
                missing = guarantee.count - sum(1 for s in mine if s[2] == option and not s[3])
                if missing <= 0:
                    continue
                # take items of this project first, then move items over from other projects
                spare = [s for s in mine if s[2] != option and not s[3]]
                others = [s for s in specs if self.issues[s[1]].plan_index != plan_index and s[1] not in protected]
                candidates = rng.sample(spare, min(missing, len(spare)))
                candidates += rng.sample(others, min(missing - len(candidates), len(others)))
                for spec in candidates:
                    if self.issues[spec[1]].plan_index != plan_index:
                        spec[1] = pick(rng, self.by_project[plan_index])
                        spec[0] = _after(rng, self.issues[spec[1]].created)
                    spec[2], spec[3] = option, False

    def add_comments(self) -> None:
        rng = self.rng
        total = self.plan.comments
        heavy = [101 + rng.randrange(40) for _ in range(1 + total // 25_000)] if total >= 250 else []
        heavy += [21 + rng.randrange(25) for _ in range(2 + total // 10_000)]
        specs, _ = self.item_specs("comment", total, heavy, protect_heavy=True)
        specs.sort(key=lambda spec: spec[0])
        authors: dict[tuple[int, int], list[str]] = {}
        site = self.site
        for moment, index, option, internal in specs:
            info = self.issues[index]
            plan = self.plan.projects[info.plan_index]
            visibility = None if internal else plan.comment_options[option][0]
            if internal:
                pool = plan.agents or plan.people
            else:
                key = (info.plan_index, option)
                if key not in authors:
                    authors[key] = self.eligible_authors(plan, visibility)
                pool = authors[key]
            automation = self.plan.automation
            author = automation if automation and visibility is None and rng.random() < 0.02 else pick(rng, pool)
            rich = rng.random() < 0.12
            comment_id = self.b.comment(
                info.issue.id,
                author,
                "" if rich else self.writer.text(),
                visibility=None if visibility is None else Visibility(visibility.type, visibility.identifier),
                created=_moment(moment),
                jsd_public=not internal,
            )
            if rich or rng.random() < 0.08:
                comment = site.comment(comment_id)
                assert comment is not None
                if rich:
                    comment.body = self.writer.rich(plan.people)
                else:
                    comment.updated = _moment(_after(rng, moment, 3 * DAY))
                    comment.update_author_account_id = author if rng.random() < 0.8 else pick(rng, pool)
                    info.issue.updated = max(info.issue.updated, comment.updated)

    def add_worklogs(self) -> None:
        rng = self.rng
        total = self.plan.worklogs + self.plan.deleted_worklogs
        heavy = [25 + rng.randrange(20) for _ in range(1 + total // 10_000)] if total >= 40 else []
        specs, heavy_bins = self.item_specs("worklog", total, heavy, protect_heavy=True)
        # deleted worklogs come from ordinary issues and never from a story's guaranteed restrictions
        guaranteed = {
            (plan_index, guarantee.visibility.type, guarantee.visibility.identifier)
            for plan_index, plan in enumerate(self.plan.projects)
            for guarantee in plan.guarantees
            if guarantee.kind == "worklog"
        }

        def deletable(spec: list[Any]) -> bool:
            info = self.issues[spec[1]]
            visibility = self.plan.projects[info.plan_index].worklog_options[spec[2]][0]
            key = None if visibility is None else (info.plan_index, visibility.type, visibility.identifier)
            return spec[1] not in heavy_bins and key not in guaranteed

        candidates = [i for i, spec in enumerate(specs) if deletable(spec)]
        doomed = {id(specs[i]) for i in rng.sample(candidates, min(self.plan.deleted_worklogs, len(candidates)))}
        specs.sort(key=lambda spec: spec[0])
        authors: dict[tuple[int, int], list[str]] = {}
        deletions: list[tuple[float, int]] = []
        for spec in specs:
            moment, index, option, _ = spec
            info = self.issues[index]
            plan = self.plan.projects[info.plan_index]
            visibility = plan.worklog_options[option][0]
            key = (info.plan_index, option)
            if key not in authors:
                authors[key] = self.eligible_authors(plan, visibility)
            started = max(info.created, moment - rng.random() * 2 * DAY)
            text_roll = rng.random()
            worklog_id = self.b.worklog(
                info.issue.id,
                pick(rng, authors[key]),
                pick(rng, (900, 1800, 3600, 3600, 5400, 7200, 10800, 14400, 28800)),
                text=self.writer.text() if text_roll < 0.55 else None,
                visibility=None if visibility is None else Visibility(visibility.type, visibility.identifier),
                started=_moment(started),
                created=_moment(moment),
            )
            if text_roll > 0.92:
                worklog = self.site.worklog(worklog_id)
                assert worklog is not None
                worklog.comment = self.writer.rich(plan.people)
            if id(spec) in doomed:
                deletions.append((moment + (_LAST - moment) * rng.random(), worklog_id))
        for moment, worklog_id in sorted(deletions):
            self.site.delete_worklog(worklog_id, _moment(moment))

    # -- changelogs --------------------------------------------------------------------------------------------
    def add_changelogs(self) -> None:
        rng = self.rng
        total = self.plan.changelog_items
        if total == 0:
            return
        histories = max(1, min(total, math.ceil(total / 1.6)))
        sizes = [1] * histories
        extra = total - histories
        while extra > 0:
            chunk = min(extra, histories)
            for index in rng.sample(range(histories), chunk):
                sizes[index] += 1
            extra -= chunk
        heavy = [21 + rng.randrange(20) for _ in range(1 + histories // 8_000)] if histories >= 40 else []
        counts, _ = allocate(histories, len(self.issues), rng, heavy)
        entries: list[tuple[float, int, str, list[ChangeItem]]] = []
        next_size = iter(sizes)
        for info, count in zip(self.issues, counts, strict=True):
            if count:
                entries.extend(self.issue_history(info, [next(next_size) for _ in range(count)]))
        entries.sort(key=lambda entry: entry[0])
        for moment, issue_id, author, items in entries:
            self.b.change(issue_id, author, items, created=_moment(moment))

    def issue_history(self, info: _IssueInfo, sizes: list[int]) -> list[tuple[float, int, str, list[ChangeItem]]]:
        """Histories that lead, change by change, to the issue's current state (generated backwards from it)."""
        rng = self.rng
        issue = info.issue
        plan = self.plan.projects[info.plan_index]
        project = self.site.projects[plan.project_id]
        state: dict[str, Any] = {
            "status": issue.status,
            "assignee": issue.assignee_account_id,
            "priority": pick(rng, _PRIORITIES),
            "labels": list(issue.labels),
            "security": issue.security_level_id,
            "summary": issue.summary,
        }
        fields = ["status", "status", "status", "assignee", "assignee", "priority", "priority", "labels", "summary"]
        if plan.levels:
            fields.append("security")
        if self.tracked_field is not None:
            state["tracked"] = issue.custom_fields.get(self.tracked_field.id)
            fields.append("tracked")
        moments = sorted(_after(rng, info.created) for _ in sizes)
        entries = []
        automation = self.plan.automation
        distinct = len(set(fields))
        for moment, size in zip(reversed(moments), reversed(sizes), strict=True):
            chosen: list[str] = []
            while len(chosen) < min(size, distinct):
                name = pick(rng, fields)
                if name not in chosen:
                    chosen.append(name)
            items = [self.step_back(name, state, project, plan) for name in chosen]
            author = automation if automation and rng.random() < 0.1 else pick(rng, plan.people)
            entries.append((moment, issue.id, author, items))
        return entries

    def _display(self, account_id: str | None) -> str | None:
        return None if account_id is None else self.site.users[account_id].display_name

    def step_back(self, name: str, state: dict[str, Any], project: Project, plan: ProjectPlan) -> ChangeItem:
        """The change item that set ``state[name]`` to its current value; ``state`` becomes the value before it."""
        if name == "status":
            return self._status_back(state, project)
        if name in ("assignee", "tracked"):
            return self._person_back(name, state, plan)
        if name == "priority":
            return self._priority_back(state)
        if name == "labels":
            return self._labels_back(state)
        if name == "security":
            return self._security_back(state, plan)
        return self._summary_back(state, plan)

    def _status_back(self, state: dict[str, Any], project: Project) -> ChangeItem:
        now: str = state["status"]
        workflow = _WORKFLOWS.get(project.project_type_key, _WORKFLOWS["software"])
        position = workflow.index(now) if now in workflow else 0
        before = workflow[position - 1] if position > 0 and self.rng.random() < 0.8 else pick(self.rng, workflow)
        if before == now:
            before = workflow[(position + 1) % len(workflow)]
        state["status"] = before
        return ChangeItem("status", "jira", "status", STATUS_IDS[before], before, STATUS_IDS[now], now)

    def _person_back(self, name: str, state: dict[str, Any], plan: ProjectPlan) -> ChangeItem:
        now: str | None = state[name]
        before: str | None = pick(self.rng, plan.people)
        if before == now or self.rng.random() < 0.15:
            before = None if now is not None else next((p for p in plan.people if p != now), None)
        state[name] = before
        if name == "assignee":
            return ChangeItem("assignee", "jira", "assignee", before, self._display(before), now, self._display(now))
        tracked = self.tracked_field
        assert tracked is not None
        return ChangeItem(tracked.name, "custom", tracked.id, before, self._display(before), now, self._display(now))

    def _priority_back(self, state: dict[str, Any]) -> ChangeItem:
        now: tuple[str, str] = state["priority"]
        before = _PRIORITIES[(_PRIORITIES.index(now) + self.rng.randrange(1, len(_PRIORITIES))) % len(_PRIORITIES)]
        state["priority"] = before
        return ChangeItem("priority", "jira", "priority", before[0], before[1], now[0], now[1])

    def _labels_back(self, state: dict[str, Any]) -> ChangeItem:
        now: list[str] = state["labels"]
        if now and self.rng.random() < 0.7:
            dropped = pick(self.rng, now)
            before = [label for label in now if label != dropped]
        else:
            before = sorted({*now, pick(self.rng, _LABELS)})
        state["labels"] = before
        return ChangeItem("labels", "jira", "labels", None, " ".join(before), None, " ".join(now))

    def _security_back(self, state: dict[str, Any], plan: ProjectPlan) -> ChangeItem:
        now: int | None = state["security"]
        before = pick(self.rng, [level for level in [None, *plan.levels] if level != now])
        state["security"] = before
        return ChangeItem(
            "security",
            "jira",
            "security",
            None if before is None else str(before),
            self._level_name(before),
            None if now is None else str(now),
            self._level_name(now),
        )

    def _summary_back(self, state: dict[str, Any], plan: ProjectPlan) -> ChangeItem:
        now: str = state["summary"]
        before = self.writer.summary(plan.theme)
        if before == now:
            before = f"{now} (draft)"
        state["summary"] = before
        return ChangeItem("summary", "jira", "summary", None, before, None, now)

    def _level_name(self, level_id: int | None) -> str | None:
        if level_id is None:
            return None
        found = self.site.security_level(level_id)
        return None if found is None else found[1].name


def populate_content(builder: SiteBuilder, plan: ContentPlan, rng: random.Random) -> None:
    """Add issues, comments, worklogs (some deleted) and changelogs to a site whose permission model exists.

    Ids grow with creation time across the site, as Jira's do; per-issue lists are in creation order.
    """
    populator = _Populator(builder, plan, rng)
    populator.create_issues()
    populator.add_comments()
    populator.add_worklogs()
    populator.add_changelogs()


# ------------------------------------------------------------------------------------------------------------------
# Audit log


class AuditTrail(AuditEvents[float]):
    """Collects audit events at moments (seconds relative to EPOCH) and writes them as records ordered by id.

    Names in records are the names *at the moment of the event*: a group renamed later appears under its old name
    in earlier records, as in Jira, where records are never rewritten. The records themselves are shaped by
    :class:`~jira_lab.sim.auditlog.AuditEvents`, shared with changes made at run time (:mod:`jira_lab.sim.mutations`).
    """

    def __init__(self, builder: SiteBuilder, author: str) -> None:
        super().__init__(builder.site, author)
        self.b = builder
        self._events: list[tuple[float, int, AuditRecord]] = []
        #: group id -> (moment of rename, name before it)
        self._renames: dict[str, list[tuple[float, str]]] = {}

    def created_at(self, moment: float) -> datetime:
        return _moment(moment)

    def emit(self, moment: float, record: AuditRecord) -> None:
        self._events.append((moment, len(self._events), record))

    def note_rename(self, moment: float, group_id: str, old_name: str) -> None:
        self._renames.setdefault(group_id, []).append((moment, old_name))

    def group_name_at(self, group_id: str, moment: float) -> str:
        name = self.site.groups[group_id].name
        for renamed_at, old_name in sorted(self._renames.get(group_id, []), reverse=True):
            if moment < renamed_at:
                name = old_name
        return name

    def finish(self) -> None:
        """Write the records, ordered by moment, with ids growing in that order."""
        for _, _, record in sorted(self._events, key=lambda event: (event[0], event[1])):
            record.id = self.b.next_id("audit_record", 10000)
            self.site.audit_records.append(record)
        self._events.clear()


ChangeKind = Literal["renamed", "deactivated", "membership", "role_actor", "grant", "level_member", "global_permission"]


@dataclass(frozen=True, slots=True)
class Change:
    """A change to the permission model at a moment (seconds relative to EPOCH), for the audit log.

    ``added=True`` describes something the site has, which appeared at that moment; ``added=False`` something the
    site no longer has, removed at that moment. Fields by kind: ``renamed`` (group_id, old_name), ``deactivated``
    (account_id), ``membership`` (group_id, account_id), ``role_actor`` (project_id, role_id, and account_id or
    group_id), ``grant`` (scheme_id, permission, holder), ``level_member`` (level_id, holder), ``global_permission``
    (permission, group_id).
    """

    moment: float
    kind: ChangeKind
    added: bool = True
    group_id: str | None = None
    account_id: str | None = None
    project_id: int | None = None
    role_id: int | None = None
    scheme_id: int | None = None
    level_id: int | None = None
    permission: str | None = None
    holder: Holder | None = None
    old_name: str | None = None
    #: who made the change (default: the site's admin)
    author: str | None = None


def _holder_key(holder: Holder | None) -> tuple[str, str | None]:
    assert holder is not None
    return holder.type, holder.parameter


class _HistoryWriter:
    """Writes the audit log of a finished site: its setup (which creates the current state) and its changes.

    Every record agrees with the final state: what was added later is there, what was removed is not; a change that
    contradicts the site raises :class:`ValueError` (a story that does not match its site is a bug).
    """

    def __init__(self, builder: SiteBuilder, author: str, changes: Sequence[Change], rng: random.Random) -> None:
        self.site = builder.site
        self.trail = AuditTrail(builder, author)
        self.changes = sorted(changes, key=lambda change: change.moment)
        self.rng = rng

    def of_kind(self, kind: ChangeKind) -> list[Change]:
        return [change for change in self.changes if change.kind == kind]

    def setup_moment(self) -> float:
        return _SETUP[0] + (_SETUP[1] - _SETUP[0]) * self.rng.random()

    def write(self) -> None:
        trail, site = self.trail, self.site
        # renames first: every other record names groups as they were called at its moment
        for change in self.of_kind("renamed"):
            assert change.group_id is not None and change.old_name is not None
            with self.by(change):
                trail.group_renamed(change.moment, change.group_id, change.old_name)
        for account_id in site.users:
            trail.user_created(self.setup_moment(), account_id)
        for change in self.of_kind("deactivated"):
            assert change.account_id is not None
            if site.users[change.account_id].active:
                raise ValueError(f"{change.account_id} is recorded as deactivated but is active")
            with self.by(change):
                trail.user_deactivated(change.moment, change.account_id)
        for group_id in site.groups:
            trail.group_created(_SETUP[0] + self.rng.random() * DAY, group_id)
        self.memberships()
        self.global_permissions()
        self.projects()
        self.grants()
        self.level_members()
        trail.finish()

    @contextmanager
    def by(self, change: Change | None) -> Iterator[None]:
        """Attribute the records written inside to the change's author."""
        default = self.trail.author
        if change is not None and change.author is not None:
            self.trail.author = change.author
        try:
            yield
        finally:
            self.trail.author = default

    def timed(
        self, kind: ChangeKind, key: Callable[[Change], Any], current: set[Any]
    ) -> tuple[dict[Any, Change], list[tuple[Any, Change]]]:
        """Later additions (by key) and the removals, checked against the current state.

        An addition of something the site no longer has is allowed when a later change removes it.
        """
        changes = self.of_kind(kind)
        removed = [(key(change), change) for change in changes if not change.added]
        removed_keys = {item for item, _ in removed}
        added: dict[Any, Change] = {}
        for change in changes:
            if change.added:
                item = key(change)
                if item not in current and item not in removed_keys:
                    raise ValueError(f"{kind} {item} is recorded as added but the site does not have it")
                added[item] = change
        for item, _ in removed:
            if item in current:
                raise ValueError(f"{kind} {item} is recorded as removed but the site still has it")
        return added, removed

    def at(self, added: dict[Any, Change], item: Any, default: float | None = None) -> tuple[float, Change | None]:
        """When ``item`` was added: its change's moment, else ``default`` (a setup moment when ``None``)."""
        change = added.get(item)
        if change is not None:
            return change.moment, change
        return (self.setup_moment() if default is None else default), None

    def memberships(self) -> None:
        current = {(g, a) for g, members in self.site.group_members.items() for a in members}
        added, removed = self.timed("membership", lambda c: (c.group_id, c.account_id), current)
        for group_id, members in self.site.group_members.items():
            for account_id in sorted(members):
                moment, change = self.at(added, (group_id, account_id))
                with self.by(change):
                    self.trail.membership(moment, group_id, account_id, added=True)
        for (group_id, account_id), removal in removed:
            moment, change = self.at(added, (group_id, account_id))
            with self.by(change):
                self.trail.membership(moment, group_id, account_id, added=True)
            with self.by(removal):
                self.trail.membership(removal.moment, group_id, account_id, added=False)

    def global_permissions(self) -> None:
        current = {(p, g) for p, groups in self.site.global_permissions.items() for g in groups}
        added, removed = self.timed("global_permission", lambda c: (c.permission, c.group_id), current)
        for permission, group_ids in self.site.global_permissions.items():
            for group_id in sorted(group_ids):
                moment, change = self.at(added, (permission, group_id))
                with self.by(change):
                    self.trail.global_permission(moment, permission, group_id, added=True)
        for (permission, group_id), removal in removed:
            moment, change = self.at(added, (permission, group_id))
            with self.by(change):
                self.trail.global_permission(moment, permission, group_id, added=True)
            with self.by(removal):
                self.trail.global_permission(removal.moment, permission, group_id, added=False)

    def projects(self) -> None:
        changes = self.of_kind("role_actor")
        for project in self.site.projects.values():
            created = self.setup_moment()
            self.trail.project_created(created, project)
            for role_id, actors in project.role_actors.items():
                mine = [c for c in changes if (c.project_id, c.role_id) == (project.id, role_id)]
                users = self.actor_history(actors.account_ids, [c for c in mine if c.account_id is not None], "user")
                groups = self.actor_history(actors.group_ids, [c for c in mine if c.group_id is not None], "group")
                self.trail.role_actors(created + 60, project, role_id, users=([], users[0]), groups=([], groups[0]))
                for change, before, after in users[1]:
                    with self.by(change):
                        self.trail.role_actors(change.moment, project, role_id, users=(before, after))
                for change, before, after in groups[1]:
                    with self.by(change):
                        self.trail.role_actors(change.moment, project, role_id, groups=(before, after))

    @staticmethod
    def actor_history(
        current: set[str], changes: list[Change], kind: str
    ) -> tuple[set[str], list[tuple[Change, set[str], set[str]]]]:
        """The actors at setup, and (change, before, after) per change, walking back from the current actors."""
        state = set(current)
        steps = []
        for change in reversed(changes):
            actor = change.account_id if kind == "user" else change.group_id
            assert actor is not None
            if change.added != (actor in state):
                raise ValueError(f"role actor change of {actor} does not match the project's actors")
            before = state - {actor} if change.added else state | {actor}
            steps.append((change, before, state))
            state = before
        return state, steps[::-1]

    def grants(self) -> None:
        schemes = self.site.permission_schemes
        current = {(s.id, g.permission, *_holder_key(g.holder)) for s in schemes.values() for g in s.grants}
        added, removed = self.timed("grant", lambda c: (c.scheme_id, c.permission, *_holder_key(c.holder)), current)
        created_at: dict[int, float] = {}
        for scheme in schemes.values():
            created_at[scheme.id] = created = self.setup_moment()
            self.trail.scheme_created(created, scheme.id)
            for grant in scheme.grants:
                key = (scheme.id, grant.permission, *_holder_key(grant.holder))
                moment, change = self.at(added, key, created + 60 + self.rng.random() * DAY)
                with self.by(change):
                    self.trail.grant(moment, scheme.id, grant.permission, grant.holder, added=True)
        for (scheme_id, permission, holder_type, parameter), removal in removed:
            holder = Holder(holder_type, parameter)
            key = (scheme_id, permission, holder_type, parameter)
            moment, change = self.at(added, key, created_at[scheme_id] + 60 + self.rng.random() * DAY)
            with self.by(change):
                self.trail.grant(moment, scheme_id, permission, holder, added=True)
            with self.by(removal):
                self.trail.grant(removal.moment, scheme_id, permission, holder, added=False)

    def level_members(self) -> None:
        levels = [level for scheme in self.site.security_schemes.values() for level in scheme.levels]
        current = {(level.id, *_holder_key(m.holder)) for level in levels for m in level.members}
        added, removed = self.timed("level_member", lambda c: (c.level_id, *_holder_key(c.holder)), current)
        for level in levels:
            for member in level.members:
                moment, change = self.at(added, (level.id, *_holder_key(member.holder)))
                with self.by(change):
                    self.trail.level_member(moment, level.id, member.holder, added=True)
        for (level_id, holder_type, parameter), removal in removed:
            holder = Holder(holder_type, parameter)
            moment, change = self.at(added, (level_id, holder_type, parameter))
            with self.by(change):
                self.trail.level_member(moment, level_id, holder, added=True)
            with self.by(removal):
                self.trail.level_member(removal.moment, level_id, holder, added=False)


def write_audit_log(builder: SiteBuilder, author: str, changes: Sequence[Change], rng: random.Random) -> None:
    """Write a site's audit log: records of its setup (in the window before its content) and of ``changes``."""
    _HistoryWriter(builder, author, changes, rng).write()


# ------------------------------------------------------------------------------------------------------------------
# Random sites

#: Site setup (accounts, groups, projects, schemes) happens in this window; later changes after it.
_SETUP = (-400 * DAY, -370 * DAY)
_CHANGES = (-360 * DAY, -2 * DAY)
_RECENT = (-90 * DAY, -2 * DAY)

_BROWSE_HOLDERS: tuple[tuple[str, float], ...] = (
    ("role:Users", 4.0),
    ("role:Developers", 3.0),
    ("app:jira-software", 2.0),
    ("app:any", 2.0),
    ("group:jira-software-users", 1.5),
    ("team", 2.0),
    ("user", 0.5),
    ("reporter", 0.7),
    ("assignee", 0.5),
    ("projectLead", 0.5),
    ("userCustomField", 0.4),
    ("groupCustomField", 0.4),
    ("anyone", 0.15),
)
_LEVEL_HOLDERS: tuple[tuple[str, float], ...] = (
    ("team", 3.0),
    ("role:Administrators", 2.0),
    ("role:Developers", 2.0),
    ("user", 1.0),
    ("reporter", 1.0),
    ("assignee", 1.0),
    ("app:jira-software", 0.4),
    ("app:any", 0.3),
    ("projectLead", 0.5),
    ("userCustomField", 0.5),
    ("groupCustomField", 0.5),
    ("group:jira-administrators", 0.5),
    ("group:search-connectors", 1.0),
    ("technical_user", 0.5),
    ("anyone", 0.1),
)
ADMIN_PERMISSIONS = (
    "ADMINISTER_PROJECTS",
    "EDIT_WORKFLOW",
    "EDIT_ISSUE_LAYOUT",
    "SET_ISSUE_SECURITY",
    "DELETE_ISSUES",
    "DELETE_ALL_COMMENTS",
    "EDIT_ALL_COMMENTS",
    "DELETE_ALL_WORKLOGS",
    "EDIT_ALL_WORKLOGS",
    "DELETE_ALL_ATTACHMENTS",
    "MODIFY_REPORTER",
    "MOVE_ISSUES",
    "MANAGE_WATCHERS",
)
WORK_PERMISSIONS = (
    "CREATE_ISSUES",
    "EDIT_ISSUES",
    "ASSIGN_ISSUES",
    "ASSIGNABLE_USER",
    "RESOLVE_ISSUES",
    "CLOSE_ISSUES",
    "TRANSITION_ISSUES",
    "LINK_ISSUES",
    "SCHEDULE_ISSUES",
    "ADD_COMMENTS",
    "EDIT_OWN_COMMENTS",
    "DELETE_OWN_COMMENTS",
    "CREATE_ATTACHMENTS",
    "DELETE_OWN_ATTACHMENTS",
    "WORK_ON_ISSUES",
    "EDIT_OWN_WORKLOGS",
    "DELETE_OWN_WORKLOGS",
    "VIEW_VOTERS_AND_WATCHERS",
    "VIEW_DEV_TOOLS",
    "VIEW_READONLY_WORKFLOW",
    "MANAGE_SPRINTS_PERMISSION",
)
#: Where each holder type is granted when the random grants did not use it, so every site has every type.
_COVERAGE_GRANTS = {
    "anyone": "VIEW_READONLY_WORKFLOW",
    "applicationRole": "CREATE_ISSUES",
    "group": "LINK_ISSUES",
    "projectRole": "ASSIGNABLE_USER",
    "user": "ADMINISTER_PROJECTS",
    "reporter": "EDIT_ISSUES",
    "assignee": "RESOLVE_ISSUES",
    "projectLead": "ADMINISTER_PROJECTS",
    "userCustomField": "TRANSITION_ISSUES",
    "groupCustomField": "ADD_COMMENTS",
}
GAP_KINDS = ("browse", "level", "role", "group")


@dataclass(slots=True)
class _ProjectSetup:
    project_id: int
    theme: str
    teams: list[str]
    people: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)


class _RandomSite:
    """One random site: a permission model varied by the seed, then content, then the audit log."""

    def __init__(self, size: SiteSize, seed: int, name: str) -> None:
        self.size = size
        self.seed = seed
        self.rng = random.Random(f"jira-lab/site/{name}/{seed}")
        self.b = SiteBuilder(name, title=f"Jira ({name})")
        self.site = self.b.site
        self.engine = PermissionEngine(self.site)
        self.groups: dict[str, str] = {}
        self.teams: list[str] = []
        self.people: list[str] = []
        self.inactive: list[str] = []
        self.roles: dict[str, int] = {}
        self.projects: list[_ProjectSetup] = []
        self.gaps: dict[str, Any] = {}
        self.changes: list[Change] = []
        self.tech_admin_via: str = ""
        self.fields: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------------------------------------------
    @property
    def tech(self) -> str:
        return self.site.accounts["technical_user"]

    @property
    def analyst(self) -> str:
        return self.site.accounts["analyst"]

    def moment(self, window: tuple[float, float]) -> float:
        return window[0] + (window[1] - window[0]) * self.rng.random()

    def project(self, setup: _ProjectSetup) -> Project:
        return self.site.projects[setup.project_id]

    # -- build -------------------------------------------------------------------------------------------------
    def build(self) -> Site:
        self.choose_gaps()
        self.add_accounts()
        self.add_groups()
        self.add_access()
        self.add_roles()
        self.add_custom_fields()
        security_schemes = self.add_security_schemes()
        self.add_projects(security_schemes)
        self.add_role_actors()
        self.add_grants()
        self.add_level_members()
        self.open_gaps()
        self.add_coverage_grants()
        self.ensure_analyst_sees_levels()
        plan = self.content_plan()
        populate_content(self.b, plan, random.Random(f"jira-lab/content/{self.site.name}/{self.seed}"))
        self.write_audit_log()
        self.site.story = self.story()
        return self.site

    def choose_gaps(self) -> None:
        rng = self.rng
        kinds = [kind for kind in GAP_KINDS if rng.random() < 0.55]
        if not kinds:
            kinds = [rng.choice(GAP_KINDS)]
        self.gaps = dict.fromkeys(kinds)
        self.tech_admin_via = rng.choices(("search-connectors", "jira-administrators", ""), weights=(6, 2.5, 1.5))[0]

    def add_accounts(self) -> None:
        rng, b, site = self.rng, self.b, self.site
        domain = f"{site.name}.example"
        site.accounts["admin"] = b.user("Jira Admin", email=f"jira.admin@{domain}", api_token="sim-api-token-admin")
        site.accounts["analyst"] = b.user(
            "Audit Analyst", email=f"audit.analyst@{domain}", api_token="sim-api-token-analyst"
        )
        site.accounts["technical_user"] = b.user(
            "Search Connector", email=f"search.connector@{domain}", api_token="sim-api-token-technical-user"
        )
        site.accounts["app"] = b.user("Automation for Jira", email=None, account_type="app")
        count = self.size.users - len(FIXED_ACCOUNTS)
        if count <= len(_PEOPLE_NAMES):
            names = [_PEOPLE_NAMES[i] for i in rng.sample(range(len(_PEOPLE_NAMES)), count)]
        else:
            names = [f"{_PEOPLE_NAMES[i % len(_PEOPLE_NAMES)]} {i // len(_PEOPLE_NAMES) + 1}" for i in range(count)]
        emails: set[str] = set()
        for number, name in enumerate(names, start=1):
            local = ascii_slug(name) or f"user{number}"
            if local in emails:
                local = f"{local}.{number}"
            emails.add(local)
            self.people.append(b.user(name, email=f"{local}@{domain}"))
        inactive_count = max(1, count // 15)
        self.inactive = sorted(rng.sample(self.people, inactive_count))
        for account_id in self.inactive:
            site.users[account_id].active = False
            self.changes.append(Change(self.moment(_CHANGES), "deactivated", account_id=account_id))

    def add_groups(self) -> None:
        rng, b = self.rng, self.b
        accounts = self.site.accounts
        for name in FIXED_GROUPS:
            self.groups[name] = b.group(name)
        team_count = self.size.groups - len(FIXED_GROUPS)
        words = list(_TEAM_WORDS)
        rng.shuffle(words)
        names = [
            f"team-{words[i]}" if i < len(words) else f"team-{words[i % len(words)]}-{i}" for i in range(team_count)
        ]
        self.teams = [b.group(name) for name in names]
        for person in self.people:
            # at most every team: the smallest sites have two (the same draws as before for three or more)
            for team in rng.sample(self.teams, min(len(self.teams), rng.choice((1, 1, 2, 2, 3)))):
                b.add_members(team, person)
        everyone = [*self.people, accounts["admin"], accounts["analyst"], accounts["technical_user"]]
        b.add_members(self.groups["jira-software-users"], *everyone)
        agents = rng.sample(self.people, max(2, len(self.people) // 5))
        b.add_members(self.groups["jira-servicemanagement-users"], accounts["admin"], *agents)
        b.add_members(self.groups["jira-administrators"], accounts["admin"], accounts["analyst"])
        b.add_members(self.groups["atlassian-addons-admin"], accounts["app"])
        b.add_members(self.groups["search-connectors"], accounts["technical_user"])
        b.add_members(self.groups["site-auditors"], accounts["analyst"])
        for team in rng.sample(self.teams, rng.choice((0, 1, 1, 2))):
            b.add_members(team, accounts["technical_user"])
        self.plan_group_changes()

    def plan_group_changes(self) -> None:
        """Changes after the setup: the technical user made admin, renames, people leaving and joining groups."""
        rng = self.rng
        if self.tech_admin_via == "jira-administrators":
            self.b.add_members(self.groups["jira-administrators"], self.tech)
            self.changes.append(
                Change(
                    self.moment(_CHANGES),
                    "membership",
                    group_id=self.groups["jira-administrators"],
                    account_id=self.tech,
                )
            )
        # a renamed group keeps its id and with it its grants, restrictions and memberships
        for team in rng.sample(self.teams, max(1, len(self.teams) // 8)):
            group = self.site.groups[team]
            old = group.name
            group.name = rng.choice((f"{old}-eu", old.replace("team-", "squad-"), f"{old}-global"))
            if self.site.group_by_name(group.name) is not group:
                group.name = f"{old}-renamed"
            self.changes.append(Change(self.moment(_CHANGES), "renamed", group_id=team, old_name=old))
        for team in rng.sample(self.teams, min(len(self.teams), 2 + len(self.teams) // 10)):
            outsiders = [p for p in self.people if p not in self.site.group_members[team]]
            if outsiders:
                person = rng.choice(outsiders)
                self.changes.append(Change(self.moment(_CHANGES), "membership", False, team, person))
        for group_id, members in self.site.group_members.items():
            for account_id in sorted(members):
                if rng.random() < 0.1:
                    self.changes.append(
                        Change(self.moment(_CHANGES), "membership", group_id=group_id, account_id=account_id)
                    )

    def add_access(self) -> None:
        rng, b, groups = self.rng, self.b, self.groups
        b.application_role("jira-software", "Jira", [groups["jira-software-users"], groups["jira-administrators"]])
        b.application_role("jira-servicedesk", "Jira Service Management", [groups["jira-servicemanagement-users"]])
        b.global_permission("ADMINISTER", groups["jira-administrators"])
        if self.tech_admin_via == "search-connectors":
            b.global_permission("ADMINISTER", groups["search-connectors"])
            self.changes.append(
                Change(
                    self.moment(_CHANGES),
                    "global_permission",
                    permission="ADMINISTER",
                    group_id=groups["search-connectors"],
                )
            )
        if rng.random() < 0.7:
            b.global_permission("USER_PICKER", groups["jira-software-users"])
        else:
            b.global_permission("USER_PICKER", groups["jira-administrators"], rng.choice(self.teams))
        b.global_permission("CREATE_SHARED_OBJECTS", groups["jira-software-users"])
        b.global_permission("BULK_CHANGE", groups["jira-software-users"])
        b.global_permission("MANAGE_GROUP_FILTER_SUBSCRIPTIONS", groups["jira-administrators"])
        held = {(p, g) for p, gs in self.site.global_permissions.items() for g in gs}
        candidates = [
            (p, g)
            for p in ("USER_PICKER", "BULK_CHANGE", "ADMINISTER")
            for g in sorted(self.groups.values())
            if (p, g) not in held and g != groups["search-connectors"]
        ]
        permission, group_id = rng.choice(candidates)
        self.changes.append(Change(self.moment(_CHANGES), "global_permission", False, group_id, permission=permission))

    def add_roles(self) -> None:
        rng = self.rng
        names = ["Administrators", "Developers", "Users", "Service Desk Team", "Service Desk Customers"]
        names += rng.sample(("Reviewers", "Auditors", "Release Managers", "Observers"), rng.randint(0, 2))
        descriptions = {
            "Administrators": "A project role that represents administrators in a project",
            "Developers": "A project role that represents developers in a project",
            "Users": "A project role that represents users in a project",
            "Service Desk Team": "Members of the service desk team (agents)",
            "Service Desk Customers": "Customers of the service desk",
        }
        for name in names:
            self.roles[name] = self.b.role(name, descriptions.get(name, f"{name} of a project"))
        self.b.role_default_actor(self.roles["Administrators"], groups=[self.groups["jira-administrators"]])

    def add_custom_fields(self) -> None:
        self.fields = {
            "approver": self.b.custom_field("Approver", "user"),
            "reviewers": self.b.custom_field("Reviewers", "user", multi=True),
            "owning_team": self.b.custom_field("Owning team", "group"),
            "notify_groups": self.b.custom_field("Notify groups", "group", multi=True),
            "tier": self.b.custom_field("Customer tier", "string"),
        }

    def add_security_schemes(self) -> list[int]:
        rng = self.rng
        schemes = []
        for number in range(max(1, min(10, self.size.projects // 3))):
            scheme_id = self.b.security_scheme(
                f"Security scheme {number + 1}" if number else "Default issue security scheme",
                "Who may see sensitive issues",
            )
            names = rng.sample(_LEVEL_NAMES, rng.randint(2, 4))
            default = rng.choice([None, *names]) if rng.random() < 0.3 else None
            for name in names:
                self.b.security_level(scheme_id, name, default=name == default)
            schemes.append(scheme_id)
        return schemes

    def project_catalogue(self) -> list[tuple[str, str, str, str]]:
        rng = self.rng
        pool = list(_PROJECT_POOL)
        head, rest = pool[:2], pool[2:]
        rng.shuffle(rest)
        catalogue = [*head, *rest][: self.size.projects]
        for number in range(len(catalogue), self.size.projects):
            kind = rng.choice(("software", "software", "business", "service_desk"))
            theme = {"software": "software", "business": "business", "service_desk": "service_desk"}[kind]
            catalogue.append((f"PRJ{number + 1}", f"Project {number + 1}", kind, theme))
        return catalogue

    def add_projects(self, security_schemes: list[int]) -> None:
        rng, b = self.rng, self.b
        catalogue = self.project_catalogue()
        count = len(catalogue)
        if "browse" in self.gaps:
            self.gaps["browse"] = rng.randrange(count)
        scheme_ids: list[int] = []
        secured = [rng.random() < 0.5 for _ in catalogue]
        secured[rng.randrange(count)] = True
        active_people = [p for p in self.people if p not in self.inactive]
        for index, (key, name, kind, theme) in enumerate(catalogue):
            shares = index > 0 and rng.random() < 0.25 and self.gaps.get("browse") not in (index, index - 1)
            if shares:
                scheme_id = scheme_ids[-1]
            else:
                scheme_id = b.permission_scheme(f"{key} permission scheme" if index else "Default permission scheme")
            scheme_ids.append(scheme_id)
            security = rng.choice(security_schemes) if secured[index] else None
            teams = sorted(rng.sample(self.teams, min(len(self.teams), rng.randint(1, 3))))
            lead_pool = sorted({m for t in teams for m in self.site.group_members[t]} & set(active_people))
            lead = rng.choice(lead_pool or active_people)
            project_id = b.project(
                key, name, lead=lead, permission_scheme=scheme_id, security_scheme=security, project_type_key=kind
            )
            self.site.projects[project_id].description = f"{name}: work tracked by {len(teams)} team(s)"
            self.projects.append(_ProjectSetup(project_id, theme, teams))

    def add_role_actors(self) -> None:
        rng, b, roles, groups = self.rng, self.b, self.roles, self.groups
        active_people = [p for p in self.people if p not in self.inactive]
        for setup in self.projects:
            project = self.project(setup)
            pid = setup.project_id
            team_people = sorted({m for t in setup.teams for m in self.site.group_members[t]} & set(self.people))
            b.role_actor(pid, roles["Administrators"], users=[project.lead_account_id, *rng.sample(active_people, 1)])
            if rng.random() < 0.5:
                b.role_actor(pid, roles["Administrators"], groups=[groups["jira-administrators"]])
            b.role_actor(
                pid,
                roles["Developers"],
                groups=setup.teams[:2],
                users=rng.sample(team_people or active_people, min(2, len(team_people or active_people))),
            )
            if rng.random() < 0.4:
                b.role_actor(pid, roles["Users"], groups=[groups["jira-software-users"]])
            else:
                b.role_actor(pid, roles["Users"], groups=setup.teams, users=rng.sample(active_people, 2))
            if project.project_type_key == "service_desk":
                agents = sorted(self.site.group_members[groups["jira-servicemanagement-users"]] & set(self.people))
                b.role_actor(pid, roles["Service Desk Team"], groups=[groups["jira-servicemanagement-users"]])
                b.role_actor(
                    pid, roles["Service Desk Customers"], users=rng.sample(self.people, min(4, len(self.people)))
                )
                setup.agents = agents
            for extra in ("Reviewers", "Auditors", "Release Managers", "Observers"):
                if extra in roles and rng.random() < 0.6:
                    b.role_actor(pid, roles[extra], users=rng.sample(active_people, 2))
            # the analyst acts in every role of every project, directly or through the auditors' group
            for role_id in roles.values():
                if rng.random() < 0.5:
                    b.role_actor(pid, role_id, users=[self.analyst])
                else:
                    b.role_actor(pid, role_id, groups=[groups["site-auditors"]])
                if rng.random() < 0.35:
                    if rng.random() < 0.5:
                        b.role_actor(pid, role_id, users=[self.tech])
                    else:
                        b.role_actor(pid, role_id, groups=[groups["search-connectors"]])
            members: set[str] = set()
            for role_name in ("Administrators", "Developers", "Users", "Service Desk Team"):
                members |= self.engine.role_members(project, roles[role_name])
            setup.people = sorted(members & set(self.people)) or sorted(rng.sample(self.people, 3))
            if len(setup.people) < 2:
                setup.people = sorted({*setup.people, *rng.sample(self.people, 2)})

    def holder(self, token: str, setup: _ProjectSetup) -> Holder:
        """A holder from a short token of the candidate tables."""
        rng = self.rng
        kind, _, value = token.partition(":")
        if kind == "role":
            return Holder("projectRole", str(self.roles[value]))
        if kind == "app":
            return Holder("applicationRole", None if value == "any" else value)
        if kind == "group":
            return Holder("group", self.groups[value])
        if kind == "team":
            return Holder("group", rng.choice(setup.teams))
        if kind == "user":
            return Holder("user", rng.choice(setup.people))
        if kind == "technical_user":
            return Holder("user", self.tech)
        if kind == "userCustomField":
            return Holder("userCustomField", self.fields[rng.choice(("approver", "reviewers"))])
        if kind == "groupCustomField":
            return Holder("groupCustomField", self.fields[rng.choice(("owning_team", "notify_groups"))])
        return Holder(kind)

    def random_holders(self, table: tuple[tuple[str, float], ...], count: int, setup: _ProjectSetup) -> list[Holder]:
        tokens, weights = zip(*table, strict=True)
        holders: list[Holder] = []
        for token in self.rng.choices(tokens, weights=weights, k=count):
            holder = self.holder(token, setup)
            if holder not in holders:
                holders.append(holder)
        return holders

    def add_grants(self) -> None:
        rng, roles = self.rng, self.roles
        filled: set[int] = set()
        admins = Holder("projectRole", str(roles["Administrators"]))
        for setup in self.projects:
            project = self.project(setup)
            scheme_id = project.permission_scheme_id
            if scheme_id in filled:
                continue
            filled.add(scheme_id)
            grant = self.b.grant
            grant(scheme_id, "BROWSE_PROJECTS", admins)
            for holder in self.random_holders(_BROWSE_HOLDERS, rng.randint(1, 3), setup):
                grant(scheme_id, "BROWSE_PROJECTS", holder)
            for permission in ADMIN_PERMISSIONS:
                grant(scheme_id, permission, admins)
            workers = [
                Holder("projectRole", str(roles["Developers"])),
                Holder("projectRole", str(roles["Users"])),
                Holder("applicationRole", None),
                Holder("applicationRole", "jira-software"),
            ]
            for permission in WORK_PERMISSIONS:
                grant(scheme_id, permission, rng.choice(workers))
            if project.project_type_key == "service_desk":
                team = Holder("projectRole", str(roles["Service Desk Team"]))
                grant(scheme_id, "SERVICEDESK_AGENT", team)
                grant(scheme_id, "BROWSE_PROJECTS", team)

    def projects_of_security_scheme(self, scheme_id: int) -> list[_ProjectSetup]:
        return [s for s in self.projects if self.project(s).security_scheme_id == scheme_id]

    def add_level_members(self) -> None:
        rng = self.rng
        for scheme in self.site.security_schemes.values():
            users = self.projects_of_security_scheme(scheme.id)
            for level in scheme.levels:
                setup = rng.choice(users) if users else self.projects[0]
                for holder in self.random_holders(_LEVEL_HOLDERS, rng.randint(2, 4), setup):
                    self.add_level_member(level.id, holder)

    def add_level_member(self, level_id: int, holder: Holder) -> None:
        found = self.site.security_level(level_id)
        assert found is not None
        found[1].members.append(SecurityLevelMember(self.b.next_id("level_member", 10000), holder))

    # -- the technical user's gaps -----------------------------------------------------------------------------
    def may_include_tech(self, holder: Holder, projects: Iterable[Project]) -> bool:
        """Whether a grant or level holder can include the technical user, in any of the projects."""
        if holder.type in ("reporter", "assignee", "userCustomField", "projectLead"):
            return False  # the technical user never reports, is never assigned and is never a field value
        if holder.type == "groupCustomField":
            return not self.engine.groups_of(self.tech).isdisjoint(self.teams)
        return any(self.engine.holder_matches(self.tech, holder, project, None) for project in projects)

    def open_gaps(self) -> None:
        rng = self.rng
        candidates = list(range(len(self.projects)))
        browse_gap = self.gaps.get("browse")
        if browse_gap is not None:
            self.close_browse(self.projects[browse_gap])
        others = [i for i in candidates if i != browse_gap] or candidates
        if "role" in self.gaps:
            setup = self.projects[rng.choice(others)]
            role_names = ["Developers", "Administrators", "Users"]
            if self.project(setup).project_type_key == "service_desk":
                role_names.append("Service Desk Team")
            role_name = rng.choice(role_names)
            self.remove_tech_actor(self.project(setup), self.roles[role_name])
            self.gaps["role"] = (setup.project_id, role_name)
        if "group" in self.gaps:
            outside = [t for t in self.teams if self.tech not in self.site.group_members[t]]
            team = rng.choice(outside or self.teams)
            self.site.group_members[team].discard(self.tech)
            self.changes.append(Change(self.moment(_RECENT), "membership", False, team, self.tech))
            self.gaps["group"] = (self.projects[rng.choice(others)].project_id, team)
        if "level" in self.gaps:
            self.open_level_gap([self.projects[i] for i in others])

    def close_browse(self, setup: _ProjectSetup) -> None:
        project = self.project(setup)
        scheme = self.site.permission_schemes[project.permission_scheme_id]
        for role_id in list(project.role_actors):
            self.remove_tech_actor(project, role_id, keep_groups=role_id != self.roles["Administrators"])
        kept = []
        for grant in scheme.grants:
            if grant.permission == "BROWSE_PROJECTS" and self.may_include_tech(grant.holder, [project]):
                continue
            kept.append(grant)
        scheme.grants[:] = kept
        phantom = Holder("applicationRole", None)
        self.changes.append(
            Change(
                self.moment(_RECENT), "grant", False, scheme_id=scheme.id, permission="BROWSE_PROJECTS", holder=phantom
            )
        )

    def remove_tech_actor(self, project: Project, role_id: int, *, keep_groups: bool = False) -> None:
        """Take the technical user out of a role in a project (and, unless kept, groups that bring it in)."""
        actors = project.role_actors.setdefault(role_id, RoleActors())
        moment = self.moment(_RECENT)
        if self.tech in actors.account_ids:
            actors.account_ids.discard(self.tech)
            self.changes.append(
                Change(moment, "role_actor", False, account_id=self.tech, project_id=project.id, role_id=role_id)
            )
        connectors = self.groups["search-connectors"]
        if connectors in actors.group_ids:
            actors.group_ids.discard(connectors)
            self.changes.append(Change(moment, "role_actor", False, connectors, project_id=project.id, role_id=role_id))
        if keep_groups:
            return
        for group_id in sorted(actors.group_ids):
            if self.tech in self.site.group_members[group_id] and group_id != self.groups["site-auditors"]:
                actors.group_ids.discard(group_id)
                self.changes.append(
                    Change(moment, "role_actor", False, group_id, project_id=project.id, role_id=role_id)
                )

    def open_level_gap(self, preferred: list[_ProjectSetup]) -> None:
        rng = self.rng
        secured = [s for s in preferred if self.project(s).security_scheme_id is not None]
        secured = secured or [s for s in self.projects if self.project(s).security_scheme_id is not None]
        setup = rng.choice(secured)
        scheme_id = self.project(setup).security_scheme_id
        assert scheme_id is not None
        scheme = self.site.security_schemes[scheme_id]
        level = rng.choice(scheme.levels)
        projects = [self.project(s) for s in self.projects_of_security_scheme(scheme_id)]
        level.members[:] = [m for m in level.members if not self.may_include_tech(m.holder, projects)]
        if not level.members:
            self.add_level_member(level.id, Holder("group", self.groups["site-auditors"]))
        connectors = Holder("group", self.groups["search-connectors"])
        self.changes.append(Change(self.moment(_RECENT), "level_member", False, level_id=level.id, holder=connectors))
        self.gaps["level"] = (setup.project_id, level.id)

    def add_coverage_grants(self) -> None:
        used = {g.holder.type for s in self.site.permission_schemes.values() for g in s.grants}
        used_any_app = any(
            g.holder == Holder("applicationRole", None) for s in self.site.permission_schemes.values() for g in s.grants
        )
        setup = self.projects[self.rng.randrange(len(self.projects))]
        scheme_id = self.project(setup).permission_scheme_id
        for holder_type, permission in _COVERAGE_GRANTS.items():
            if holder_type not in used:
                token = {"group": "team", "projectRole": "role:Developers", "user": "user"}.get(
                    holder_type, holder_type
                )
                if holder_type == "applicationRole":
                    token = "app:jira-software"
                self.b.grant(scheme_id, permission, self.holder(token, setup))
        if not used_any_app:
            self.b.grant(scheme_id, "CREATE_ISSUES", Holder("applicationRole", None))

    def ensure_analyst_sees_levels(self) -> None:
        for scheme in self.site.security_schemes.values():
            projects = [self.project(s) for s in self.projects_of_security_scheme(scheme.id)] or [
                self.project(self.projects[0])
            ]
            for level in scheme.levels:
                if not all(
                    any(self.engine.holder_matches(self.analyst, m.holder, p, None) for m in level.members)
                    for p in projects
                ):
                    self.add_level_member(level.id, Holder("group", self.groups["site-auditors"]))

    # -- content -----------------------------------------------------------------------------------------------
    def restriction_options(self, setup: _ProjectSetup, share: float) -> list[VisibilityOption]:
        rng = self.rng
        project = self.project(setup)
        role_names = [name for name, rid in self.roles.items() if rid in project.role_actors and name != "Users"]
        roles = rng.sample(role_names, min(len(role_names), rng.randint(1, 2)))
        groups = rng.sample([*setup.teams, self.groups["jira-administrators"]], rng.randint(0, 2))
        restricted: list[Visibility] = [Visibility("role", name) for name in roles]
        restricted += [Visibility("group", gid) for gid in groups]
        options: list[VisibilityOption] = [(None, 1.0 - share)]
        options += [(visibility, share / len(restricted)) for visibility in restricted]
        return options

    def content_plan(self) -> ContentPlan:
        rng = self.rng
        plans = []
        for setup in self.projects:
            project = self.project(setup)
            levels = []
            if project.security_scheme_id is not None:
                levels = [level.id for level in self.site.security_schemes[project.security_scheme_id].levels]
            plan = ProjectPlan(
                project_id=setup.project_id,
                theme=setup.theme,
                people=setup.people,
                agents=setup.agents,
                comment_options=self.restriction_options(setup, rng.uniform(0.08, 0.3)),
                worklog_options=self.restriction_options(setup, rng.uniform(0.05, 0.25)),
                levels=levels,
                level_share=rng.uniform(0.05, 0.3) if levels else 0.0,
                weight=rng.uniform(0.3, 3.0),
                internal_share=0.3 if project.project_type_key == "service_desk" else 0.0,
            )
            plans.append(plan)
        by_project = {plan.project_id: plan for plan in plans}
        if self.gaps.get("role"):
            project_id, role_name = self.gaps["role"]
            self.guarantee(by_project[project_id], Visibility("role", role_name))
        if self.gaps.get("group"):
            project_id, team = self.gaps["group"]
            self.guarantee(by_project[project_id], Visibility("group", team))
        if self.gaps.get("level"):
            project_id, level_id = self.gaps["level"]
            by_project[project_id].forced_levels.append(level_id)
        # the analyst is a member of every group anything is restricted to
        for plan in plans:
            for visibility, _ in [*plan.comment_options, *plan.worklog_options]:
                if visibility is not None and visibility.type == "group":
                    self.b.add_members(visibility.identifier, self.analyst)
        size = self.size
        return ContentPlan(
            projects=plans,
            issues=size.issues,
            comments=size.comments,
            worklogs=size.worklogs,
            changelog_items=size.changelog_items,
            deleted_worklogs=max(1, size.worklogs // 40) if size.worklogs else 0,
            automation=self.site.accounts["app"],
            group_values=list(self.teams),
        )

    def guarantee(self, plan: ProjectPlan, visibility: Visibility) -> None:
        for options in (plan.comment_options, plan.worklog_options):
            if all(v != visibility for v, _ in options):
                options.append((visibility, 0.05))
        plan.guarantees.append(Guarantee("comment", visibility, 3))
        plan.guarantees.append(Guarantee("worklog", visibility, 2))

    # -- audit log ---------------------------------------------------------------------------------------------
    def write_audit_log(self) -> None:
        write_audit_log(self.b, self.site.accounts["admin"], self.changes, self.rng)

    def story(self) -> str:
        site = self.site
        lines = [f"Random site {site.name!r} (seed {self.seed}). The technical user, Search Connector:"]
        if self.tech_admin_via:
            lines.append(f"- holds Jira Administrators through the group {self.tech_admin_via}")
        else:
            lines.append("- does NOT hold Jira Administrators")
        if self.gaps.get("browse") is not None:
            project = self.project(self.projects[self.gaps["browse"]])
            lines.append(f"- has no Browse Projects in {project.key}")
        if self.gaps.get("level"):
            project_id, level_id = self.gaps["level"]
            found = site.security_level(level_id)
            assert found is not None
            lines.append(f"- is not a member of the security level {found[1].name!r} ({found[0].name})")
        if self.gaps.get("role"):
            project_id, role_name = self.gaps["role"]
            key = site.projects[project_id].key
            lines.append(f"- is not an actor of the role {role_name} in {key}, which comments and worklogs there use")
        if self.gaps.get("group"):
            project_id, team = self.gaps["group"]
            key = site.projects[project_id].key
            lines.append(
                f"- is not a member of the group {site.groups[team].name}, which comments and worklogs in {key} use"
            )
        return "\n".join(lines)
