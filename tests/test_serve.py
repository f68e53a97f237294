"""`knowrec serve` over an Explore Further and an HKNR run side by side: a real uvicorn
server in a subprocess, queried over HTTP (knowrec.serve)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from knowrec.errors import ConfigError, KnowrecError
from knowrec.explore.config import StoreConfig
from knowrec.explore.pipeline import run_explore
from knowrec.explore.service import ExploreService
from knowrec.runs import Run
from knowrec.serve import ScoreRequest, create_app
from knowrec.serve.admin import loopback
from knowrec.serve.limits import MAX_BODY, MAX_FIELD, MAX_PROBLEMS
from tests.serving import free_port, redis_server, running_server
from tests.test_explore_pipeline import KNOWREC, ROOT, knowrec, one_line_error, tiny_config
from tests.test_hknr import TINY_RUN
from tests.test_trawl_recommend import tiny_trawl_run

HKNR_TINY = [*TINY_RUN, "ablations=false", "baselines=[]"]
USER = "U83"  # a reader of the tiny news world, with a history
TRAWL_USER = "17"  # a user of the tiny movie world
NEWS_FIELDS = {
    "rank", "item_id", "title", "score", "found_by", "topic", "entities", "knowledge_share",
}  # fmt: skip
TOKEN = "test-admin-token"
RELOADS = 3  # reloads of every run under traffic
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny Explore Further run, a tiny HKNR run and a tiny TRAWL run (about 15 s each
    here)."""
    from knowrec.hknr.pipeline import run_hknr

    base = tmp_path_factory.mktemp("serve")
    run_explore(tiny_config(), base / "explore")
    run_hknr(ROOT / "configs" / "hknr_synthetic.toml", base / "news", overrides=HKNR_TINY)
    return base / "explore", base / "news", tiny_trawl_run(base / "trawl")


@pytest.fixture(scope="module")
def server(runs: tuple[Path, Path, Path]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The runs served by a real server with an admin token: its URL and process."""
    port = free_port()
    serve = [*KNOWREC, "serve", *(a for run in runs for a in ("--run", run)), "--port", str(port)]
    env = {**os.environ, "KNOWREC_ADMIN_TOKEN": TOKEN}
    with running_server(list(map(str, serve)), port, cwd=ROOT, env=env) as served:
        yield served


@pytest.fixture(scope="module")
def url(server: tuple[str, subprocess.Popen[str]]) -> str:
    return server[0]


def error(response: httpx.Response, status: int) -> str:
    """The ``error`` of a JSON error answer with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str)
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
def test_runs_side_by_side(url: str, runs: tuple[Path, Path, Path]) -> None:
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200
    assert ready.json()["runs"] == {"explore": "ready", "news": "ready", "trawl": "ready"}
    listed = httpx.get(f"{url}/runs").json()["runs"]
    assert [(r["name"], r["kind"], r["path"]) for r in listed] == [
        ("explore", "explore", str(runs[0])),
        ("news", "hknr", str(runs[1])),
        ("trawl", "trawl", str(runs[2])),
    ]
    explore, news, trawl = listed
    assert trawl["components"]["model"] == "raw din seed 0"
    assert explore["components"]["stage1"] == "knowrec.ranking.lgbm:LGBMRanker"
    assert news["components"]["weights"].endswith("/model.pt")
    assert all(r["versions"]["knowrec"] and r["state"] == "ready" for r in listed)
    assert all(re.fullmatch("[0-9a-f]{12}", r["version"]) and r["loaded"] for r in listed)
    assert httpx.get(f"{url}/runs/news").json() == news

    # An Explore run answers item to item, under its name and at the short route.
    short = httpx.get(f"{url}/recommend", params={"item": "7", "k": 3}).json()
    named = httpx.get(f"{url}/runs/explore/recommend", params={"item": "7", "k": 3}).json()
    assert [r["item_id"] for r in short["items"]] == [r["item_id"] for r in named["items"]]
    assert len(short["items"]) == 3
    assert httpx.get(f"{url}/runs/explore/items/7").json()["title"] == short["trigger_title"]


@pytest.mark.slow
def test_news_recommend(url: str, runs: tuple[Path, Path, Path]) -> None:
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
def test_trawl_recommend_and_score(url: str, runs: tuple[Path, Path, Path]) -> None:
    from knowrec.trawl.recommend import TrawlRecommender

    expected = TrawlRecommender(runs[2]).recommend(TRAWL_USER, 4)
    answer = httpx.get(f"{url}/ctr/recommend", params={"user": TRAWL_USER, "k": 4}).json()
    assert answer["model"] == "raw din seed 0" and answer["cold"] is False
    items = answer["items"]
    assert [r["item_id"] for r in items] == [r.item_id for r in expected]
    assert [r["rank"] for r in items] == [1, 2, 3, 4]
    assert all(r["found_by"].startswith("like: ") and r["knowledge"] for r in items)
    named = httpx.get(f"{url}/runs/trawl/ctr/recommend", params={"user": TRAWL_USER, "k": 4})
    assert [r["item_id"] for r in named.json()["items"]] == [r["item_id"] for r in items]

    # scores of any items, in the order asked: the recommendation's for the same items
    ids = [r["item_id"] for r in reversed(items)]
    scored = httpx.post(f"{url}/ctr/score", json={"user": TRAWL_USER, "items": ids}).json()
    assert [s["item_id"] for s in scored["scores"]] == ids
    want = [r.score for r in reversed(expected)]
    assert [s["score"] for s in scored["scores"]] == pytest.approx(want)
    unknown = httpx.post(f"{url}/ctr/score", json={"user": TRAWL_USER, "items": ["1", "x" * 99]})
    assert error(unknown, 404) == f"1 unknown item ids: '{'x' * 64}…'"
    too_many = httpx.post(f"{url}/ctr/score", json={"user": TRAWL_USER, "items": ["1"] * 501})
    assert error(too_many, 422).startswith("items: List should have at most 500 items")
    user = httpx.get(f"{url}/runs/trawl/users/{TRAWL_USER}").json()
    assert user["history"] and all("rating" in h for h in user["history"])
    assert "unknown user" in error(httpx.get(f"{url}/ctr/recommend", params={"user": "U1"}), 404)


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
    kinds = {run: i["kind"] for run, i in info.items()}
    assert kinds == {"explore": "explore", "news": "hknr", "trawl": "trawl"}
    runs = httpx.get(f"{url}/runs").json()["runs"]
    assert {r["name"]: r["version"] for r in runs} == {r: i["version"] for r, i in info.items()}
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
def test_item_search(url: str, runs: tuple[Path, Path, Path]) -> None:
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
def test_users_and_histories(url: str, runs: tuple[Path, Path, Path]) -> None:
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
    assert "has kind explore: no users" in wrong_kind


@pytest.mark.slow
def test_report_files(url: str, runs: tuple[Path, Path, Path]) -> None:
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
    html = httpx.get(f"{url}/")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assets = re.findall(r'<(?:script|link)[^>]*?(?:src|href)="([^"]+)"', html.text)
    assert sorted(assets) == ["/page/app.js", "/page/style.css", "data:,"]  # here, no CDN
    for asset in ("/page/app.js", "/page/style.css"):
        assert httpx.get(f"{url}{asset}").status_code == 200, asset
    assert raw_get(url, "/page/../served.py") == (404, {"error": "Not Found"})
    assert raw_get(url, "/page/%2e%2e/served.py") == (404, {"error": "Not Found"})


def test_unservable_runs_fail_at_start(tmp_path: Path) -> None:
    Run(tmp_path / "trawl", {"pipeline": "trawl", "name": "t"})  # started, not finished
    with pytest.raises(ConfigError, match="the TRAWL run has not finished"):
        create_app([tmp_path / "trawl"])
    Run(tmp_path / "other", {"pipeline": "other", "name": "o"})
    with pytest.raises(ConfigError, match="is a other run: knowrec serve answers from explore"):
        create_app([tmp_path / "other"])
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
    one_line_error(knowrec("serve", "--run", tmp_path / "trawl"), "has not finished")


@pytest.mark.slow
def test_two_runs_of_one_name(runs: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ConfigError, match="two runs named 'explore'"):
        create_app([runs[0], runs[0]])


# --------------------------------------------------------------------------- reload


def copy_run(run: Path, to: Path) -> Path:
    """A copy of ``run`` (its name kept), to change or damage."""
    shutil.copytree(run, to / run.name)
    return to / run.name


Damage = Literal["delete", "truncate", "garble"]


def damage(run: Path, part: str, how: Damage) -> None:
    """Delete ``part`` (a glob in ``run``), cut it to half its size or zero its first
    bytes (its size kept)."""
    (target,) = run.glob(part)
    if how == "delete":
        target.unlink()
    elif how == "truncate":
        os.truncate(target, target.stat().st_size // 2)
    else:
        with target.open("r+b") as f:
            f.write(bytes(8))


def served(url: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in httpx.get(f"{url}/runs").json()["runs"]}


def reload(url: str, **what: str) -> httpx.Response:
    return httpx.post(f"{url}/admin/reload", json=what or None, headers=ADMIN, timeout=60)


def run_infos(url: str) -> dict[str, dict[str, str]]:
    """The labels of ``knowrec_run_info`` by run, from /metrics."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    samples = [s for family in families for s in family.samples]
    return {s.labels["run"]: s.labels for s in samples if s.name == "knowrec_run_info"}


@pytest.mark.slow
def test_reload_under_traffic(
    server: tuple[str, subprocess.Popen[str]], runs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Reloads, refused reloads and SIGHUP while a steady stream of requests (bounded)
    goes on: not one request fails; a damaged run never replaces a served one."""
    url, process = server
    explore = runs[0]
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(20_000):
                if stop.is_set():
                    return
                if i % 10 == 9:
                    answer = client.get("/news/recommend", params={"user": USER, "k": 2})
                else:
                    answer = client.get("/runs/explore/recommend", params={"item": "7", "k": 3})
                statuses[answer.status_code] += 1

    first = served(url)
    stream = threading.Thread(target=traffic)
    stream.start()
    try:
        for _ in range(RELOADS):
            answer = reload(url)
            assert answer.status_code == 200, answer.text
            assert [(r["run"], r["reloaded"]) for r in answer.json()["runs"]] == [
                ("explore", True),
                ("news", True),
                ("trawl", True),
            ]
        now = served(url)
        assert all(now[n]["loaded"] > first[n]["loaded"] for n in now)
        assert all(now[n]["version"] == first[n]["version"] for n in now)  # the same files

        # A new version in another directory: swapped in, its version shown everywhere.
        newer = copy_run(explore, tmp_path / "newer")
        manifest = json.loads((newer / "manifest.json").read_text())
        (newer / "manifest.json").write_text(json.dumps({**manifest, "started": "later"}))
        answer = reload(url, run="explore", path=str(newer)).json()
        (swapped,) = answer["runs"]
        assert swapped["reloaded"] and swapped["path"] == str(newer)
        assert swapped["version"] != first["explore"]["version"]
        assert served(url)["explore"]["version"] == swapped["version"]
        assert run_infos(url)["explore"]["version"] == swapped["version"]

        # Damaged copies, one the check refuses and one the load does: the old one serves.
        for part, how, why in [
            ("candidates-*/candidates.sqlite", "truncate", "cut short"),
            ("recall-serve-*/paths/semantic/index/index.faiss", "garble", "not a readable ANN"),
        ]:
            bad = copy_run(explore, tmp_path / how)
            damage(bad, part, how)
            message = error(reload(url, run="explore", path=str(bad)), 422)
            assert message.startswith("not reloaded, the previous version keeps serving: run")
            assert why in message
            run = served(url)["explore"]
            assert run["path"] == str(newer) and run["state"] == "ready"
            assert why in run["reload_error"]

        # SIGHUP reloads every run from its directory, as served now.
        before = served(url)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while any(r["loaded"] == before[n]["loaded"] for n, r in served(url).items()):
            assert time.monotonic() < deadline, "SIGHUP reloaded nothing"
            time.sleep(0.1)
        assert "reload_error" not in served(url)["explore"]  # a good reload clears it
    finally:
        stop.set()
        stream.join()
        assert reload(url, run="explore", path=str(explore)).status_code == 200  # as before
    assert statuses.total() > 20 and set(statuses) == {200}, statuses


@pytest.mark.slow
def test_admin_needs_the_token(url: str) -> None:
    assert "admin token" in error(httpx.post(f"{url}/admin/reload"), 401)
    wrong = {"Authorization": "Bearer not-the-token"}
    assert error(httpx.post(f"{url}/admin/reload", headers=wrong), 401)
    assert reload(url, run="news").json()["runs"][0]["reloaded"]


@pytest.mark.slow
def test_admin_answers_loopback_only(runs: tuple[Path, Path, Path]) -> None:
    """Without a token, the admin routes answer loopback clients (in process here)."""
    app = create_app(list(runs))
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        wait_loaded(local)
        assert local.post("/admin/reload", json={"run": "explore"}).status_code == 200
    for host in ("203.0.113.9", "testclient"):
        remote = TestClient(app, client=(host, 50000))
        assert "loopback" in error(remote.post("/admin/reload"), 403)


def test_loopback() -> None:
    assert all(map(loopback, ["127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(loopback, ["10.0.0.1", "::ffff:10.0.0.1", "localhost", ""]))


def wait_loaded(client: TestClient) -> httpx.Response:
    """``/ready`` once no run is loading any more."""
    deadline = time.monotonic() + 60
    while "loading" in (ready := client.get("/ready")).json()["runs"].values():
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.05)
    return ready


# --------------------------------------------------------------------------- faults

DAMAGES = [
    ("explore", "serving.json", "delete", "no serving.json"),
    ("explore", "serving.json", "truncate", "serving.json: not valid JSON"),
    ("explore", "candidates-*/candidates.sqlite", "truncate", "candidates.sqlite: damaged (cut"),
    ("explore", "serving/scores.sqlite", "delete", "scores.sqlite: missing"),
    ("explore", "stage1-*/ranker_full/model.txt", "truncate", "model.txt: damaged (cut short"),
    ("explore", "vectors-*/vectors.npz", "truncate", "vectors.npz: damaged"),
    ("explore", "recall-serve-*/paths/semantic/index/vectors.npy", "truncate", "npy: damaged"),
    ("explore", "stage1-*/features/pairs.parquet", "garble", "pairs.parquet: damaged"),
    ("news", "train-hknr-s0-*/model.pt", "truncate", "model.pt: damaged"),
    ("news", "train-hknr-s0-*/model.pt", "delete", "no trained 'hknr' for seed 0"),
    ("news", "protocol-*/history.parquet", "truncate", "history.parquet: damaged"),
    ("news", "knowledge-*/knowledge.json", "delete", "knowledge.json: missing"),
    ("trawl", "train-raw-din-full-s0-*/model/weights.pt", "truncate", "weights.pt: damaged"),
    ("trawl", "results.json", "delete", "has not finished (no results.json)"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "part", "how", "message", "recorded"),
    # Without the recorded sizes, a file missing from inside a folder is the load's to find.
    [(*d, r) for d in DAMAGES for r in (True, False) if r or not d[1].startswith("knowledge")],
)
def test_damaged_runs_fail_at_start(
    runs: tuple[Path, Path, Path],
    tmp_path: Path,
    kind: str,
    part: str,
    how: Damage,
    message: str,
    recorded: bool,
) -> None:
    """A file the run serves from deleted, cut short or garbled: the server does not
    start. The file sizes the run recorded tell any deleted or cut file; without them (a
    run written before) each file is checked by its format."""
    run = copy_run(runs[("explore", "news", "trawl").index(kind)], tmp_path)
    if not recorded:
        manifest = json.loads((run / "manifest.json").read_text())
        del manifest["files"]
        (run / "manifest.json").write_text(json.dumps(manifest))
    damage(run, part, how)
    with pytest.raises(KnowrecError, match=re.escape(message)):
        create_app([run])


@pytest.mark.slow
def test_damaged_run_is_one_line(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = copy_run(runs[1], tmp_path)
    damage(run, "train-hknr-s0-*/model.pt", "truncate")
    one_line_error(knowrec("serve", "--run", run), "model.pt: damaged (cut short: ")


@pytest.mark.slow
def test_damage_the_load_finds(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A garbled FAISS index passes the checks; the load fails and says why."""
    run = copy_run(runs[0], tmp_path)
    damage(run, "recall-serve-*/paths/semantic/index/index.faiss", "garble")
    with TestClient(create_app([run])) as client:
        ready = wait_loaded(client)
        assert ready.status_code == 503 and ready.json()["runs"] == {"explore": "failed"}
        message = error(client.get("/recommend", params={"item": "7"}), 503)
        assert message.startswith("run 'explore' failed to load: ")
        assert "not a readable ANN index" in message
        (listed,) = client.get("/runs").json()["runs"]
        assert listed["state"] == "failed" and "ANN index" in listed["error"]


@pytest.mark.slow
def test_redis_store_that_goes_away(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """An Explore run whose candidates live in Redis: Redis killed mid-traffic, every
    answer after is a prompt 503 saying so (never a hang), the rest of the API answers."""
    with redis_server(tmp_path) as (redis_url, redis):
        run = copy_run(runs[0], tmp_path)  # only the stages the store changes run again
        run_explore(tiny_config(store=StoreConfig(backend="redis", url=redis_url)), run)
        assert json.loads((run / "serving.json").read_text())["store"]["backend"] == "redis"
        port = free_port()
        serve = [*KNOWREC, "serve", "--run", str(run), "--port", str(port), "--no-access-log"]
        with running_server(serve, port, cwd=ROOT) as (url, _):
            answers: list[httpx.Response] = []
            stop = threading.Event()

            def traffic() -> None:
                with httpx.Client(base_url=url, timeout=5) as client:  # a hang fails
                    while not stop.is_set() and len(answers) < 20_000:
                        answers.append(client.get("/recommend", params={"item": "7"}))

            stream = threading.Thread(target=traffic)
            stream.start()
            try:
                while len(answers) < 20:
                    time.sleep(0.01)
                redis.kill()
                redis.wait(10)
                served_before = len(answers)
                while len(answers) < served_before + 20:
                    time.sleep(0.01)
            finally:
                stop.set()
                stream.join()
            statuses = Counter(a.status_code for a in answers)
            assert set(statuses) == {200, 503} and statuses[200] >= 20, statuses
            assert all(a.status_code == 503 for a in answers[served_before + 1 :])
            gone = next(a for a in answers if a.status_code == 503)
            assert "Redis at 127.0.0.1:" in error(gone, 503) and gone.headers["Retry-After"]
            assert max(a.elapsed.total_seconds() for a in answers) < 2
            assert httpx.get(f"{url}/health").status_code == 200
            assert httpx.get(f"{url}/items/7").status_code == 200  # titles are in memory


# --------------------------------------------------------------------------- abuse


@pytest.mark.slow
def test_bounds(url: str) -> None:
    post = f"{url}/admin/reload"
    too_big = httpx.post(post, headers=ADMIN, content=b"{}" + b" " * MAX_BODY)
    assert error(too_big, 413) == "request body over 16,384 bytes"
    chunked = httpx.post(post, headers=ADMIN, content=iter([b"{}"]))  # no Content-Length
    assert error(chunked, 411) == "send the request body with a Content-Length"
    unknown = {f"{i}{'k' * 1000}": i for i in range(10)}  # ten unknown keys, each echoed cut
    message = error(httpx.post(post, headers=ADMIN, json=unknown), 422)
    assert message.count("body: unknown key") == MAX_PROBLEMS
    assert message.endswith("; 5 more") and "k" * MAX_FIELD not in message
    not_json = httpx.post(post, headers={**ADMIN, "Content-Type": "application/json"}, content="{")
    assert error(not_json, 422) == "body: JSON decode error"
    assert error(reload(url, run="r" * 300), 422).startswith("run: String should have at most")
    assert error(reload(url, run="explore", path="p" * 2000), 422).startswith("path: ")
    assert error(reload(url, path=str(ROOT)), 422) == "path: name the run it is for (run)"
    unknown_run = error(reload(url, run="x" * 200), 404)
    assert f"unknown run '{'x' * 64}…'" in unknown_run and "x" * 65 not in unknown_run
    long_url = httpx.get(f"{url}/recommend", params={"item": "i" * 60_000})
    assert long_url.status_code in (400, 414, 422) and "i" * 300 not in long_url.text


# --------------------------------------------------------------------------- fuzz

FUZZ_EXAMPLES = 40  # per route, valid and invalid requests: about 30 s for all of them
FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.slow
def test_fuzz(url: str) -> None:
    """Requests generated from the OpenAPI schema, valid and not, on every route (with the
    admin token; both runs loaded): no server error, answers as documented, every 4xx JSON
    with an ``error`` that names the field."""
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        fuzz(operation)


def fuzz(operation: schemathesis.APIOperation) -> None:
    """``FUZZ_EXAMPLES`` requests to one route: anything the schema allows, anything it
    does not, and (to reach the answers past the ids) the schema's with ids the runs know."""
    where = {p.name: p.location for p in operation.iter_parameters()}
    trawl = "/ctr/" in operation.path
    known = {"item": "7", "item_id": "7", "user": TRAWL_USER if trawl else USER}
    known["run"] = "news" if "/news/" in operation.path else "trawl" if trawl else "explore"
    path = {name: v for name, v in known.items() if where.get(name) == "path"}
    query = {name: v for name, v in known.items() if where.get(name) == "query"}
    cases = [operation.as_strategy(mode) for mode in GenerationMode]
    cases.append(operation.as_strategy(path_parameters=path or None, query=query or None))
    fields = [*where, "run", "path", "body", *ScoreRequest.model_fields]

    @given(case=st.one_of(cases))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def requests(case: schemathesis.Case) -> None:
        answer = case.call_and_validate(headers=ADMIN, checks=FUZZ_CHECKS)
        if 400 <= answer.status_code < 500:
            message = answer.json()["error"]
            assert isinstance(message, str) and len(message) < 2000, message
            if answer.status_code == 422:
                assert any(name in message for name in fields), message

    requests()
