"""The web page of `knowrec serve` (knowrec.serve.page) in a real headless Chromium, driven
by Selenium through the system's chromedriver (Debian's `chromium` and `chromium-driver`;
nothing is downloaded): search a title, see the item's recommendations, pick a user, see
their history and news, open a run's report. Each step's screenshot is written to
test-artifacts/page/."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.test_explore_pipeline import ROOT
from tests.test_serve import runs, server, url  # noqa: F401 (module fixtures: the served runs)

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts" / "page"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or not CHROMEDRIVER.is_file(),
        reason="needs Chromium and /usr/bin/chromedriver: apt-get install chromium chromium-driver",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def until(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 30) -> Any:
    """What ``check`` returns once it is truthy (a timeout fails the test)."""
    return WebDriverWait(driver, timeout).until(check)


def shown(css: str, count: int) -> Callable[[WebDriver], list[WebElement] | None]:
    """A check for :func:`until`: exactly ``count`` elements match ``css``."""

    def check(driver: WebDriver) -> list[WebElement] | None:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found if len(found) == count else None

    return check


def visible(element_id: str) -> Callable[[WebDriver], WebElement | None]:
    """A check for :func:`until`: the element ``element_id`` is displayed."""

    def check(driver: WebDriver) -> WebElement | None:
        element = driver.find_element(By.ID, element_id)
        return element if element.is_displayed() else None

    return check


def titles(cards: list[WebElement]) -> list[str]:
    return [c.find_element(By.CLASS_NAME, "title").text for c in cards]


def test_page_clicks_through(url: str, browser: WebDriver) -> None:  # noqa: F811 (fixture)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    browser.get(f"{url}/")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert "explore (explore)" in browser.find_element(By.ID, "runs-summary").text

    # Search a title fragment, pick the item, see its k recommendations and why.
    k = 4
    expected = httpx.get(f"{url}/runs/explore/recommend", params={"item": "7", "k": k}).json()
    browser.find_element(By.ID, "explore-k").clear()
    browser.find_element(By.ID, "explore-k").send_keys(str(k))
    browser.find_element(By.ID, "search").send_keys("HIGHWAY")
    found = until(browser, shown("#search-results button", 2))
    assert titles(found) == ["Bitter Highway", "After the Highway"]  # shorter title first
    shot("01-search")
    found[1].click()
    cards = until(browser, shown("#explore-recs .rec", k))
    assert titles(cards) == [item["title"] for item in expected["items"]]
    assert [c.get_attribute("data-item-id") for c in cards] == [
        item["item_id"] for item in expected["items"]
    ]
    assert "After the Highway" in browser.find_element(By.ID, "trigger").text
    why = cards[0].find_element(By.CLASS_NAME, "why").text
    assert "found by" in why and "stage scores" in why
    assert all(path in why for path in expected["items"][0]["paths"])
    shot("02-recommendations")

    # Pick a user: their history and HKNR's news beside it (the TRAWL run's movie users are
    # others: its column says so).
    user = httpx.get(f"{url}/runs/news/users", params={"limit": 1}).json()["users"][0]["user_id"]
    history = httpx.get(f"{url}/runs/news/users/{user}").json()["history"]
    news = httpx.get(f"{url}/runs/news/news/recommend", params={"user": user, "k": 5}).json()
    browser.find_element(By.ID, "tab-users").click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#user-select [value='{user}']"))
    Select(browser.find_element(By.ID, "user-select")).select_by_value(user)
    clicks = until(browser, shown("#history li", len(history)))
    assert titles(clicks) == [click["title"] for click in history]
    cards = until(browser, shown("#hknr-recs .rec", 5))
    assert titles(cards) == [item["title"] for item in news["items"]]
    assert "knowledge share" in cards[0].text and news["items"][0]["found_by"] in cards[0].text
    until(browser, lambda d: "not a user of run trawl" in d.find_element(By.ID, "trawl-meta").text)
    shot("03-user")

    # A TRAWL user: their ratings, and TRAWL's recommendations with the items' knowledge.
    Select(browser.find_element(By.ID, "user-run")).select_by_value("trawl")
    user = httpx.get(f"{url}/runs/trawl/users", params={"limit": 1}).json()["users"][0]["user_id"]
    history = httpx.get(f"{url}/runs/trawl/users/{user}").json()["history"]
    movies = httpx.get(f"{url}/runs/trawl/ctr/recommend", params={"user": user, "k": 5}).json()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#user-select [value='{user}']"))
    Select(browser.find_element(By.ID, "user-select")).select_by_value(user)
    rated = until(browser, shown("#history li", len(history)))
    assert titles(rated) == [h["title"] for h in history] and "★" in rated[0].text
    cards = until(browser, shown("#trawl-recs .rec", 5))
    assert titles(cards) == [item["title"] for item in movies["items"]]
    assert movies["items"][0]["found_by"] in cards[0].text and "knowledge" in cards[0].text
    until(browser, lambda d: "not a user of run news" in d.find_element(By.ID, "hknr-meta").text)
    shot("04-trawl-user")

    # An unknown user: the API's error is on the page.
    field = browser.find_element(By.ID, "user-input")
    field.clear()
    field.send_keys("nobody")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    alert = until(browser, visible("history-error"))
    assert alert.text == "404: unknown user 'nobody': not in the run's data"
    assert not browser.find_elements(By.CSS_SELECTOR, "#trawl-recs .rec")
    shot("05-unknown-user")

    # A run's report: its report.html in a frame, its files linked.
    browser.find_element(By.ID, "tab-report").click()
    Select(browser.find_element(By.ID, "report-run")).select_by_value("news")
    frame = until(browser, visible("report-frame"))
    assert frame.get_attribute("src").endswith("/runs/news/files/report.html")
    links = browser.find_elements(By.CSS_SELECTOR, "#report-files a")
    assert [a.text.split()[0] for a in links] == ["report.html", "results.md", "results.json"]
    browser.switch_to.frame(frame)
    assert until(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text)
    browser.switch_to.default_content()
    shot("06-report")

    # No script error on the way (the unknown user's 404 is a logged failed load, not one).
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert not errors
