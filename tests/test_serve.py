"""`knowrec serve` over an Explore Further and an HKNR run side by side: a real uvicorn
server in a subprocess, queried over HTTP (knowrec.serve)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from knowrec.errors import ConfigError
from knowrec.explore.pipeline import run_explore
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
