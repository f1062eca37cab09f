"""The report in a real headless Chromium (Debian's, driven by Playwright): it loads without
console or page errors and without a network request, its tables are sortable and searchable,
the expert browser filters and searches, links reveal cards, and planted markup stays text."""

from __future__ import annotations

import pytest
from browsertools import PageLog, chromium, launch
from report_fakes import EVIL, EVIL_NAME, make_run

from moelens.report.build import build


@pytest.fixture(scope="module")
def browser():
    path, why = chromium()
    if path is None:
        pytest.skip(why)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = launch(p, path)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build(make_run(tmp_path_factory.mktemp("browser") / "run", evil=True)).path


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = PageLog(page)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-tables-ready]", timeout=15000)
    return page, log


def _visible_cards(page):
    return page.eval_on_selector_all(
        ".expert-card",
        "cs => cs.filter(c => !c.hidden).map(c => [c.dataset.model, c.dataset.layer])")


def test_loads_clean_and_planted_markup_stays_text(browser, report):
    page, log = open_page(browser, report)
    assert log.problems() == []
    assert [u for u in log.requests if not u.startswith(("file:", "data:"))] == []
    assert page.evaluate("window.__pwned") is None
    # the planted strings are on the page as text: in a model name, a concept name, an
    # expert's label and a token of its activating window (corpus text)
    text = page.inner_text("main")
    assert EVIL_NAME in text and EVIL in text
    card = page.locator(".expert-card", has_text="castling moves")
    assert card.count() == 1
    assert f"castling moves {EVIL}" in card.locator(".label").inner_text()
    assert EVIL in card.locator(".window").first.inner_text()
    assert page.locator("main img[src='x']").count() == 0
    # the comparison table is a Grid.js table with one row per model
    assert page.locator("#comparison-table .gridjs-table").count() == 1
    assert page.locator("#comparison-table tbody tr").count() == 2
    page.close()


def test_tables_sort_and_search(browser, report):
    page, log = open_page(browser, report)
    box = page.locator("#probe-best-units")
    rows = box.locator("tbody tr")
    assert rows.count() >= 2
    box.locator(".gridjs-search-input").fill("move_dot")
    page.wait_for_timeout(400)  # Grid.js debounces its search
    assert rows.count() >= 1
    assert all("move_dot" in rows.nth(i).inner_text() for i in range(rows.count()))
    box.locator(".gridjs-search-input").fill("")
    page.wait_for_timeout(400)
    col = box.locator("th").filter(has_text="F1")
    col.locator("button").click()
    values = [float(rows.nth(i).locator("td").nth(4).inner_text()) for i in range(rows.count())]
    assert values == sorted(values) or values == sorted(values, reverse=True)
    assert log.problems() == []
    page.close()


def test_expert_browser_filters_searches_and_follows_links(browser, report):
    page, log = open_page(browser, report)
    cards = _visible_cards(page)
    assert len(cards) == 8 and {l for _, l in cards} == {"0", "1"}
    page.select_option("#expert-layer", "1")
    assert {l for _, l in _visible_cards(page)} == {"1"} and len(_visible_cards(page)) == 4
    assert page.inner_text("#expert-count").startswith("4 of 8")
    page.select_option("#expert-layer", "")
    page.fill("#expert-search", "expert 3")
    assert len(_visible_cards(page)) == 2  # expert 3 of layers 0 and 1
    page.fill("#expert-search", "CASTLING")  # a label, any case
    assert [l for _, l in _visible_cards(page)] == ["1"]
    page.fill("#expert-search", "no such label anywhere")
    assert _visible_cards(page) == []
    # a link from a table to a card hidden by the filters clears them and shows the card
    link = page.locator("#probe-best-units a").first
    target = link.get_attribute("href")
    link.click()
    page.wait_for_timeout(200)
    assert page.locator(target).is_visible()
    assert log.problems() == []
    page.close()
