"""The dashboard in a real browser: Playwright for Python driving Debian's chromium (browser_support.py:
without chromium the test skips; under CI=true it fails).

DASHBOARD_SCREENSHOT=docs/img/dashboard.png also writes the docs' screenshot.
"""

from __future__ import annotations

import os

import pytest
from browser_support import chromium, serving
from demo_data import load_demo

from oversight.console import create_app
from streams.settings import Settings

TOKENS = {"tok-centre": "centre", "tok-ps01": "station:ZK01-PS01", "tok-bank": "bank:ICBC"}


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def console(ledger_engine):
    load_demo(ledger_engine)
    with serving(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as url:
        yield url


def sign_in(page, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#token", token)
    page.click("#login button")


def test_dashboard_shows_warnings_charts_and_timelines(browser, console):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in(page, console, "tok-centre")
    page.wait_for_selector("#who:has-text('centre')")
    page.wait_for_function("document.querySelectorAll('#alerts tbody tr').length > 0")
    page.wait_for_function("document.querySelector('#kpi-warnings').textContent !== '–'")

    assert page.locator("#alerts tbody tr").count() == 20  # one page
    assert page.inner_text("#total") == "90 in view"
    assert page.inner_text("#kpi-warnings") == "90"
    assert "%" in page.inner_text("#kpi-success")
    assert page.locator("#chart-type rect.bar").count() >= 5
    assert page.locator("#chart-area rect.bar").count() >= 5
    assert page.locator("#chart-time rect.bar").count() >= 7 and page.locator("#chart-time polyline.rate").count() == 1
    assert page.locator("#audits tbody tr").count() >= 1
    # The demo's audits are weeks old: the units that owe an explanation are shown overdue, in red.
    owed = page.locator("#audits tbody tr td:nth-child(6)").all_inner_texts()
    assert any("OVERDUE" in cell for cell in owed), owed
    assert page.locator("#audits tbody td.status-unreachable").count() >= 1
    assert "+86138" not in page.content()  # phones are masked

    # The timeline of a warning: signals -> alert -> actions -> outcomes.
    page.locator("#alerts tbody tr").first.click()
    page.wait_for_selector("#timeline li.kind-outcome")
    kinds = page.eval_on_selector_all("#timeline li", "items => items.map(li => li.className)")
    assert kinds[0] == "kind-signal" and "kind-alert" in kinds and "kind-action" in kinds and kinds[-1] != "kind-signal"

    # Filters: high tier only.
    page.select_option("select[name=tier]", "high")
    page.click("#filters button")
    page.wait_for_function(
        "[...document.querySelectorAll('#alerts tbody tr td:nth-child(2)')].every(td => td.textContent === 'high')")
    page.wait_for_function("document.querySelector('#kpi-warnings').textContent !== '90'")
    assert 0 < int(page.inner_text("#kpi-warnings")) < 90

    if os.environ.get("DASHBOARD_SCREENSHOT"):
        page.select_option("select[name=tier]", "")
        page.click("#filters button")
        page.wait_for_function("document.querySelector('#kpi-warnings').textContent === '90'")
        page.locator("#alerts tbody tr").nth(2).click()
        page.wait_for_selector("#timeline li.kind-outcome")
        page.screenshot(path=os.environ["DASHBOARD_SCREENSHOT"], full_page=True)

    assert errors == []
    assert all(u.startswith(console) for u in requests), "the dashboard fetched something from elsewhere"
    page.close()


def test_a_station_sees_its_jurisdiction_and_a_bank_nothing(browser, console):
    page = browser.new_page()
    sign_in(page, console, "tok-ps01")
    page.wait_for_function("document.querySelectorAll('#alerts tbody tr').length > 0")
    areas = page.eval_on_selector_all("#alerts tbody tr td:nth-child(4)", "tds => tds.map(td => td.textContent)")
    assert set(areas) == {"ZK01/ZK01-PS01"}
    page.close()

    page = browser.new_page()
    sign_in(page, console, "tok-bank")
    page.wait_for_selector("#error:not([hidden])")
    assert "403" in page.inner_text("#error")
    assert page.is_hidden("#app")
    page.close()


def test_retro_alerts_are_marked_and_counted_per_source(browser, console):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, console, "tok-centre")
    page.wait_for_function("document.querySelector('#kpi-retro').textContent !== '–'")
    assert page.inner_text("#kpi-retro") == "13 / 13"  # every seventh demo warning (demo_data.demo_reach_back)
    assert page.locator("#retro-sources tbody tr").count() == 4
    page.wait_for_function("document.querySelector('#kpi-backlog').textContent !== '–'")
    assert "no broker" in page.inner_text("#kpi-backlog")  # the centre's figure, honest without a broker

    page.select_option("select[name=retro]", "true")
    page.click("#filters button")
    page.wait_for_function("document.querySelector('#total').textContent === '13 in view'")
    marks = page.eval_on_selector_all("#alerts tbody tr td:last-child", "tds => tds.map(td => td.textContent)")
    assert len(marks) == 13 and all(m.startswith("↩ 回溯 listed ") and ", contacted " in m for m in marks)
    page.locator("#alerts tbody tr").first.click()
    page.wait_for_selector("#timeline-retro:not([hidden])")
    text = page.inner_text("#timeline-retro")
    assert "listed at" in text and "contacted at" in text and "+86138" not in page.content()
    assert errors == []
    page.close()

    page = browser.new_page()
    sign_in(page, console, "tok-ps01")
    page.wait_for_function("document.querySelector('#kpi-retro').textContent !== '–'")
    assert page.is_hidden("#backlog-card")  # city-wide: not a station's
    page.close()
