"""`knowrec serve` over an Explore Further and an HKNR run side by side: a real uvicorn
server in a subprocess, queried over HTTP (knowrec.serve)."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from knowrec.errors import ConfigError
from knowrec.explore.pipeline import run_explore
from knowrec.explore.service import ExploreService
from knowrec.runs import Run
from knowrec.serve import create_app
from tests.serving import free_port, running_server
from tests.test_explore_pipeline import KNOWREC, ROOT, knowrec, one_line_error, tiny_config
from tests.test_hknr import TINY_RUN

HKNR_TINY = [*TINY_RUN, "ablations=false", "baselines=[]"]
USER = "U83"  # a reader of the tiny news world, with a history
NEWS_FIELDS = {
    "rank", "item_id", "title", "score", "found_by", "topic", "entities", "knowledge_share",
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Explore Further run and a tiny HKNR run (about 15 s each here)."""
    from knowrec.hknr.pipeline import run_hknr

    base = tmp_path_factory.mktemp("serve")
    run_explore(tiny_config(), base / "explore")
    run_hknr(ROOT / "configs" / "hknr_synthetic.toml", base / "news", overrides=HKNR_TINY)
    return base / "explore", base / "news"


@pytest.fixture(scope="module")
def url(runs: tuple[Path, Path]) -> Iterator[str]:
    explore, news = runs
    port = free_port()
    serve = [*KNOWREC, "serve", "--run", explore, "--run", news, "--port", str(port)]
    with running_server(list(map(str, serve)), port, cwd=ROOT) as url:
        yield url


def error(response: httpx.Response, status: int) -> str:
    """The ``error`` of a JSON error answer with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    (message,) = response.json().values()
    return message


def raw_get(url: str, path: str) -> tuple[int, Any]:
    """Status and JSON body of GET ``path`` sent as written (httpx would resolve ``..``)."""
    connection = http.client.HTTPConnection(httpx.URL(url).host, httpx.URL(url).port)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.slow
def test_runs_side_by_side(url: str, runs: tuple[Path, Path]) -> None:
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200
    assert ready.json()["runs"] == {"explore": "ready", "news": "ready"}
    listed = httpx.get(f"{url}/runs").json()["runs"]
    assert [(r["name"], r["kind"], r["path"]) for r in listed] == [
        ("explore", "explore", str(runs[0])),
        ("news", "hknr", str(runs[1])),
    ]
    explore, news = listed
    assert explore["components"]["stage1"] == "knowrec.ranking.lgbm:LGBMRanker"
    assert news["components"]["weights"].endswith("/model.pt")
    assert all(r["versions"]["knowrec"] and r["state"] == "ready" for r in listed)
    assert httpx.get(f"{url}/runs/news").json() == news

    # An Explore run answers item to item, under its name and at the short route.
    short = httpx.get(f"{url}/recommend", params={"item": "7", "k": 3}).json()
    named = httpx.get(f"{url}/runs/explore/recommend", params={"item": "7", "k": 3}).json()
    assert [r["item_id"] for r in short["items"]] == [r["item_id"] for r in named["items"]]
    assert len(short["items"]) == 3
    assert httpx.get(f"{url}/runs/explore/items/7").json()["title"] == short["trigger_title"]


@pytest.mark.slow
def test_news_recommend(url: str, runs: tuple[Path, Path]) -> None:
    from knowrec.hknr.recommend import POPULAR, HknrRecommender

    expected = HknrRecommender(runs[1]).recommend(USER, 4)
    answer = httpx.get(f"{url}/news/recommend", params={"user": USER, "k": 4}).json()
    assert answer["user_id"] == USER and answer["cold"] is False and answer["latency_ms"] > 0
    items = answer["items"]
    assert [r["item_id"] for r in items] == [r.item_id for r in expected]
    assert [r["score"] for r in items] == pytest.approx([r.score for r in expected])
    for rank, r in enumerate(items, start=1):
        assert set(r) == NEWS_FIELDS and r["rank"] == rank and r["title"]
        assert 0 < r["score"] < 1 and 0 <= r["knowledge_share"] <= 1
        by = r["found_by"]
        assert by in ("profile", POPULAR) or by.startswith("recent click: ")
        assert isinstance(r["entities"], list) and isinstance(r["topic"], str)
    named = httpx.get(f"{url}/runs/news/news/recommend", params={"user": USER, "k": 4}).json()
    assert [r["item_id"] for r in named["items"]] == [r["item_id"] for r in items]
    assert len(httpx.get(f"{url}/news/recommend", params={"user": USER}).json()["items"]) == 5


@pytest.mark.slow
def test_errors_are_json_and_name_the_field(url: str) -> None:
    news, item = f"{url}/news/recommend", f"{url}/recommend"
    assert error(httpx.get(news, params={"user": "nobody"}), 404) == (
        "unknown user 'nobody': not in the run's data"
    )
    long_unknown = error(httpx.get(news, params={"user": "x" * 200}), 404)
    assert f"'{'x' * 64}…'" in long_unknown and "x" * 65 not in long_unknown
    for k in (0, 1000):
        assert error(httpx.get(news, params={"user": USER, "k": k}), 422).startswith("k: ")
        assert error(httpx.get(item, params={"item": "7", "k": k}), 422).startswith("k: ")
    assert error(httpx.get(news, params={"user": USER, "k": "many"}), 422).startswith("k: ")
    too_long = error(httpx.get(news, params={"user": "u" * 300}), 422)
    assert too_long == "user: String should have at most 256 characters"
    assert error(httpx.get(item, params={"item": "i" * 300}), 422).startswith("item: ")
    assert error(httpx.get(f"{url}/items/{'i' * 300}"), 422).startswith("item_id: ")
    assert error(httpx.get(news), 422) == "user: Field required"
    assert "unknown run 'nope'" in error(httpx.get(f"{url}/runs/nope/recommend?item=7"), 404)
    wrong_kind = error(httpx.get(f"{url}/runs/news/recommend", params={"item": "7"}), 404)
    assert "has kind hknr, not explore" in wrong_kind
    assert error(httpx.get(f"{url}/no/such/route"), 404) == "Not Found"


@pytest.mark.slow
def test_metrics(url: str) -> None:
    for _ in range(2):
        httpx.get(f"{url}/runs/news/news/recommend", params={"user": USER, "k": 2})
    httpx.get(f"{url}/news/recommend", params={"user": USER, "k": 0})
    text = httpx.get(f"{url}/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.text)
        for s in family.samples
    }

    def requests(route: str, status: str) -> float:
        labels = (("method", "GET"), ("route", route), ("status", status))
        return samples.get(("knowrec_http_requests_total", labels), 0.0)

    assert requests("/runs/{run}/news/recommend", "200") >= 2  # the template, not the URL
    assert requests("/news/recommend", "422") >= 1
    assert not any(USER in str(labels) for _, labels in samples)
    histogram = (("method", "GET"), ("route", "/runs/{run}/news/recommend"), ("status", "200"))
    assert samples[("knowrec_http_request_duration_seconds_count", histogram)] >= 2
    info = {
        dict(labels)["run"]: dict(labels) for name, labels in samples if name == "knowrec_run_info"
    }
    assert {run: i["kind"] for run, i in info.items()} == {"explore": "explore", "news": "hknr"}
    assert all(i["knowrec_version"] for i in info.values())


@pytest.mark.slow
def test_docs_are_offline(url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{url}{page}").text
        assets = re.findall(r'<(?:script|link)[^>]*?(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            assert asset.startswith("/"), asset  # served here, not by a CDN
            assert httpx.get(f"{url}{asset}").status_code == 200, asset
    assert httpx.get(f"{url}/openapi.json").json()["paths"]["/news/recommend"]


@pytest.mark.slow
def test_item_search(url: str, runs: tuple[Path, Path]) -> None:
    def search(route: str = "/items", **params: object) -> list[str]:
        answer = httpx.get(f"{url}{route}", params=params).json()
        return [r["title"] for r in answer["items"]]

    # A word starting with the text, shorter titles first (a tie: by title).
    assert search(q="ROAD") == [
        "Echo Road", "Crown Road", "Empire Road", "Citadel Road", "Kingdom Road",
        "Carousel Road", "Meridian Road", "Meridian Road II",
    ]  # fmt: skip
    assert search(q="  meridian   ROAD") == ["Meridian Road", "Meridian Road II"]  # exact first
    assert search(q="the", limit=3) == ["The Daughter", "The Cathedral", "The Labyrinth"]
    assert search(q="daughter") == [
        "The Daughter",
        "Elena's Daughter",
        "The Daughter and the Canyon",
    ]
    assert search(q="ro", limit=50)[-2:] == ["After the Crown", "Promise of the Orchard"]  # inside
    with_e = sum("e" in t.casefold() for t in ExploreService.load(runs[0]).titles.values() if t)
    assert len(search(q="e")) == 10 and len(search(q="E", limit=50)) == with_e > 10
    assert search(q="no such title") == []
    named = httpx.get(f"{url}/runs/explore/items", params={"q": "road", "limit": 1}).json()
    assert named == {"q": "road", "items": [{"item_id": "8", "title": "Echo Road"}]}
    assert search("/runs/news/items", q="red carpet") == [
        "Red carpet moment: Ines Northcott speaks out",
        "Inside Tessa Ravenshurst's red carpet moment",
    ]  # an HKNR run's articles

    items = f"{url}/items"
    assert error(httpx.get(items), 422) == "q: Field required"
    assert error(httpx.get(items, params={"q": ""}), 422).startswith("q: String should have at")
    assert error(httpx.get(items, params={"q": "x" * 201}), 422).startswith("q: String should")
    assert error(httpx.get(items, params={"q": "   "}), 422).startswith("q: ")
    for limit in (0, 51, "all"):
        assert error(httpx.get(items, params={"q": "a", "limit": limit}), 422).startswith("limit: ")


@pytest.mark.slow
def test_users_and_histories(url: str, runs: tuple[Path, Path]) -> None:
    from knowrec.hknr.recommend import HknrRecommender

    users = httpx.get(f"{url}/users", params={"limit": 5}).json()["users"]
    assert len(users) == 5 and set(users[0]) == {"user_id", "clicks"}
    clicks = [u["clicks"] for u in users]
    assert clicks == sorted(clicks, reverse=True) and clicks[-1] > 0
    assert httpx.get(f"{url}/runs/news/users", params={"limit": 5}).json()["users"] == users
    assert len(httpx.get(f"{url}/users").json()["users"]) == 50

    history = HknrRecommender(runs[1]).proto.history.filter(user_id=USER)
    answer = httpx.get(f"{url}/runs/news/users/{USER}").json()
    assert answer["user_id"] == USER and answer["clicks"] == history.height > 1
    times = [click["time"] for click in answer["history"]]
    assert times == sorted(times, reverse=True)  # most recent first
    assert {c["item_id"] for c in answer["history"]} == set(history["item_id"])
    assert all(set(c) == {"item_id", "title", "time"} and c["title"] for c in answer["history"])
    assert httpx.get(f"{url}/users/{USER}").json() == answer

    busiest = httpx.get(f"{url}/users/{users[0]['user_id']}").json()
    assert len(busiest["history"]) == min(busiest["clicks"], 50)

    assert error(httpx.get(f"{url}/users/nobody"), 404) == (
        "unknown user 'nobody': not in the run's data"
    )
    assert error(httpx.get(f"{url}/users/{'u' * 300}"), 422).startswith("user_id: ")
    assert error(httpx.get(f"{url}/users", params={"limit": 0}), 422).startswith("limit: ")
    wrong_kind = error(httpx.get(f"{url}/runs/explore/users"), 404)
    assert "has kind explore, not hknr" in wrong_kind


@pytest.mark.slow
def test_report_files(url: str, runs: tuple[Path, Path]) -> None:
    report = httpx.get(f"{url}/runs/explore/report").json()
    assert report["run"] == "explore"
    files = {f["name"]: f for f in report["files"]}
    assert list(files) == ["report.html", "results.md", "results.json"]
    page = httpx.get(f"{url}{files['report.html']['url']}")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == (runs[0] / "report.html").read_bytes()
    assert len(page.content) == files["report.html"]["bytes"]
    assert "sandbox" in page.headers["content-security-policy"]
    assert httpx.get(f"{url}/runs/explore/files/results.md").text.startswith("# Explore")

    # Only the listed names: nothing else of the run, nothing outside it.
    assert "no file 'manifest.json'" in error(
        httpx.get(f"{url}/runs/explore/files/manifest.json"), 404
    )
    for path in ("..%2Fnews%2Freport.html", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        assert error(httpx.get(f"{url}/runs/explore/files/{path}"), 404)
    for path in ("../news/report.html", "../../../../etc/passwd", "./../explore/manifest.json"):
        assert raw_get(url, f"/runs/explore/files/{path}") == (404, {"error": "Not Found"})
    status, answer = raw_get(url, "/runs/explore/files/..")
    assert status == 404 and answer["error"].startswith("no file '..' to show in run 'explore'")
    (runs[1] / "escape.png").symlink_to(runs[0] / "report.html")
    try:
        assert "escape.png" not in str(httpx.get(f"{url}/runs/news/report").json())
        assert error(httpx.get(f"{url}/runs/news/files/escape.png"), 404)
    finally:
        (runs[1] / "escape.png").unlink()
    assert "unknown run" in error(httpx.get(f"{url}/runs/nope/report"), 404)


@pytest.mark.slow
def test_page_is_served(url: str) -> None:
    from knowrec.serve import MAX_ID, page

    assert page.MAX_ID == MAX_ID
    html = httpx.get(f"{url}/")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assets = re.findall(r'<(?:script|link)[^>]*?(?:src|href)="([^"]+)"', html.text)
    assert sorted(assets) == ["/page/app.js", "/page/style.css", "data:,"]  # here, no CDN
    for asset in ("/page/app.js", "/page/style.css"):
        assert httpx.get(f"{url}{asset}").status_code == 200, asset
    assert raw_get(url, "/page/../served.py") == (404, {"error": "Not Found"})
    assert raw_get(url, "/page/%2e%2e/served.py") == (404, {"error": "Not Found"})


def test_unservable_runs_fail_at_start(tmp_path: Path) -> None:
    Run(tmp_path / "trawl", {"pipeline": "trawl", "name": "t"})
    with pytest.raises(ConfigError, match="is a trawl run: knowrec serve answers from explore"):
        create_app([tmp_path / "trawl"])
    with pytest.raises(ConfigError, match="does not exist"):
        create_app([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a knowrec run"):
        create_app([tmp_path / "empty"])
    Run(tmp_path / "explore", {"pipeline": "explore", "name": "e"})  # started, not finished
    with pytest.raises(ConfigError, match="not a finished Explore Further run"):
        create_app([tmp_path / "explore"])
    Run(tmp_path / "news", {"pipeline": "hknr", "name": "n", "seeds": [0]})
    with pytest.raises(ConfigError, match="no trained 'hknr' for seed 0"):
        create_app(tmp_path / "news")
    with pytest.raises(ConfigError, match="no run to serve"):
        create_app([])
    one_line_error(knowrec("serve", "--run", tmp_path / "trawl"), "is a trawl run")


@pytest.mark.slow
def test_two_runs_of_one_name(runs: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="two runs named 'explore'"):
        create_app([runs[0], runs[0]])
