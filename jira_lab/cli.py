"""The ``jira-lab`` command line: thin commands that gather options and call the library."""

from __future__ import annotations

import threading

import click
import httpx

from jira_lab.demo import comparison_rows, visible_counts
from jira_lab.sim.cloud import SimCloud
from jira_lab.sim.generator import SIZES, generate_site
from jira_lab.sim.limits import RateLimits
from jira_lab.sim.model import Site
from jira_lab.sim.server import SimURLs, serve


@click.group()
@click.version_option(package_name="jira-lab")
def main() -> None:
    """Audit what a Jira Cloud technical user can and cannot see."""


def _print_site(site: Site, urls: SimURLs) -> None:
    click.echo(f"Simulated Jira Cloud site {site.name!r} (cloud id {site.cloud_id})")
    click.echo(f"  site URL (Basic auth: email + API token): {urls.site_url(site)}")
    click.echo(f"  API gateway (3LO Bearer tokens):           {urls.gateway_url(site)}")
    click.echo(f"  accessible resources:                      {urls.api_url}/oauth/token/accessible-resources")
    click.echo()
    if site.story:
        click.echo(site.story)
        click.echo()
    click.echo("Accounts (simulated; their API tokens are not secrets):")
    for role, account_id in site.accounts.items():
        user = site.users[account_id]
        token = user.api_token or "(no API token)"
        click.echo(f"  {role:<15} {user.display_name:<22} {user.email or '':<40} {token}")
    example = site.users.get(site.accounts.get("analyst", ""))
    if example is not None and example.api_token:
        click.echo()
        click.echo("Try:")
        click.echo(f"  curl -s -u '{example.email}:{example.api_token}' {urls.site_url(site)}/rest/api/3/myself")


def _wait_for_interrupt() -> None:
    click.echo("\nServing until Ctrl-C.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("Stopped.")


@main.command()
@click.option("--site", "size", type=click.Choice(sorted(SIZES)), default="demo", show_default=True, help="Which site.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated site.")
@click.option("--port", type=int, default=8080, show_default=True, help="Loopback port (0: any free port).")
def sim(size: str, seed: int, port: int) -> None:
    """Serve a simulated Jira Cloud site on loopback and print how to reach it."""
    site = generate_site(size, seed=seed)
    cloud = SimCloud(site, limits=RateLimits())  # Atlassian's rate limits, as a real site enforces them
    with serve(cloud, port=port) as urls:
        _print_site(site, urls)
        _wait_for_interrupt()


@main.command()
@click.option("--serve", "keep_serving", is_flag=True, help="Keep the simulated site up afterwards.")
@click.option("--port", type=int, default=0, show_default=True, help="Loopback port (0: any free port).")
def demo(keep_serving: bool, port: int) -> None:
    """Start the simulated demo site and compare what the analyst and the technical user can see.

    The comparison is measured over HTTP with each account's own credentials, exactly as a connector would see the
    site. Loading into DuckDB and the audits that explain each gap build on this.
    """
    site = generate_site("demo", seed=0)
    cloud = SimCloud(site, limits=RateLimits())  # Atlassian's rate limits, as a real site enforces them
    with serve(cloud, port=port) as urls:
        _print_site(site, urls)
        counts = {}
        for role in ("analyst", "technical_user"):
            user = site.users[site.accounts[role]]
            assert user.email is not None and user.api_token is not None
            with httpx.Client(base_url=urls.site_url(site), auth=(user.email, user.api_token), timeout=30) as client:
                counts[role] = visible_counts(client)
        rows = comparison_rows(counts["analyst"], counts["technical_user"])
        click.echo()
        click.echo("What each account sees (analyst / technical user), measured over HTTP:")
        click.echo(f"  {'project':<10}{'issues':>16}{'comments':>18}{'worklogs':>18}")
        for key, ia, it, ca, ct, wa, wt in rows:
            click.echo(f"  {key:<10}{f'{ia} / {it}':>16}{f'{ca} / {ct}':>18}{f'{wa} / {wt}':>18}")
        analyst, technical = counts["analyst"], counts["technical_user"]
        hidden = [analyst.total(kind) - technical.total(kind) for kind in ("issues", "comments", "worklogs")]
        click.echo(
            f"\nHidden from the technical user: {hidden[0]} issues, {hidden[1]} comments, {hidden[2]} worklogs."
            "\nJira reports none of this to it: the connector's index silently misses them."
        )
        if keep_serving:
            _wait_for_interrupt()
        else:
            click.echo("\nRun `uv run jira-lab demo --serve` (or `jira-lab sim --site demo`) to keep the site up.")


if __name__ == "__main__":
    main()
