"""The page in a real headless Chromium (Debian's, driven by Playwright) against the real CPU vLLM
reranker: type a query, rerank, read the ranked table and chart; an error case; no request ever
leaves loopback (the page must render in air-gapped clusters). Screenshots go to artifacts/."""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rerank_ui_harness import ARTIFACTS, rerank_backend, running_ui, status_file  # noqa: F401 - a fixture

from rerank_ui.config import Settings
from rerank_ui.examples import CHINESE_CSV, ENGLISH_RAG

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000

# Rows of Gradio's (virtualised) data grid as lists of cell texts; the header row has no gridcells.
READ_ROWS = """() => [...document.querySelectorAll('#ranked-table [role=row]')]
    .map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))
    .filter(cells => cells.length > 0)"""


@pytest.fixture(scope="module")
def page(rerank_backend, tmp_path_factory):  # noqa: F811
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh with WITH_BROWSER=1)")
    from playwright.sync_api import sync_playwright

    status = status_file(tmp_path_factory.mktemp("status"), ready=1, desired=1)
    settings = Settings(endpoint=rerank_backend.endpoint, model=rerank_backend.model, status_file=status,
                        default_instruction=rerank_backend.default_instruction)
    with running_ui(settings) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.outside_requests = []
        page.on("request", lambda request: page.outside_requests.append(request.url)
                if urlsplit(request.url).hostname not in ("127.0.0.1", "localhost")
                and not request.url.startswith(("data:", "blob:")) else None)
        page.goto(url)
        page.locator("#rerank-button").wait_for()
        yield page
        browser.close()


def ranked_rows(page, count):
    page.wait_for_function(f"() => ({READ_ROWS})().length === {count}")
    return page.evaluate(READ_ROWS)


def assert_ordered_by_score(rows, documents):
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    scores = [float(row[1]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert sorted(int(row[3]) for row in rows) == list(range(1, len(documents) + 1))
    for row in rows:
        assert row[2] == documents[int(row[3]) - 1]


def test_typed_query_is_ranked(page):
    page.get_by_text(ENGLISH_RAG.label).click()  # fills the query and documents boxes
    page.locator("#documents textarea").wait_for()
    page.wait_for_function("() => document.querySelector('#documents textarea').value.split('\\n').length === 5")
    query = page.locator("#query textarea")
    query.fill("")
    query.press_sequentially("why put a reranker after vector search?")
    query.press("Enter")
    page.locator("#rerank-usage").get_by_text("Ranked 5 documents").wait_for()
    assert_ordered_by_score(ranked_rows(page, 5), list(ENGLISH_RAG.documents))


def test_chinese_example_is_ranked_and_charted(page):
    page.get_by_text(CHINESE_CSV.label).click()
    page.wait_for_function(f"() => document.querySelector('#query textarea').value === {CHINESE_CSV.query!r}")
    page.locator("#rerank-button").click()
    page.locator("#rerank-usage").get_by_text("Ranked 6 documents").wait_for()
    rows = ranked_rows(page, 6)
    assert_ordered_by_score(rows, list(CHINESE_CSV.documents))
    # One bar per rank, drawn once the chart has laid out its axis.
    page.locator("#score-chart").get_by_text("#6", exact=True).wait_for()
    assert page.locator("#status-banner").inner_text().startswith("✅ Ready — 1 of 1 replica ready")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui-screenshot.png", full_page=True)


def test_empty_documents_show_an_error_instead_of_results(page):
    page.locator("#documents textarea").fill("")
    page.locator("#rerank-button").click()
    error = page.locator("#rerank-error")
    error.get_by_text("Add at least one document").wait_for()
    assert error.inner_text().startswith("Could not rerank.")
    page.wait_for_function(f"() => ({READ_ROWS})().length === 0")
    assert "Traceback" not in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui-screenshot-error.png", full_page=True)


def test_page_made_no_request_beyond_loopback(page):
    assert page.outside_requests == []
