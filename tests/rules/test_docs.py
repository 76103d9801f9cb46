"""The per-rule documentation pages are rendered from the rules and committed: they must match."""

from __future__ import annotations

from dac.docs import render_pages, stale_pages
from dac.lock import VersionLock
from dac.render.environment import Templates
from tests.repository import PROJECT, REPO


def test_docs_pages_match_the_rules(repository_rules) -> None:
    pages = render_pages(repository_rules, Templates(PROJECT.templates), VersionLock.load(PROJECT.lock))
    assert len(pages) == len(repository_rules)
    stale = stale_pages(pages, REPO / "docs" / "rules")
    assert not stale, "run `dac docs`: " + "; ".join(map(str, stale))


def test_a_page_shows_the_rule_query_and_scenarios(repository_rules) -> None:
    pages = render_pages(repository_rules, Templates(PROJECT.templates), VersionLock.load(PROJECT.lock))
    for rule in repository_rules:
        page = pages[f"{rule.rule.path.stem}.md"]
        assert rule.kibana["query"] in page
        assert all(scenario["name"] in page for scenario in rule.rule.tests)
        assert "{{" not in page and "{%" not in page
