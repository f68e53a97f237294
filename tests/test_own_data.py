"""A new user's own data, end to end through the command line (issue 20): a click log and
an item file in; `knowrec data convert`, `knowrec run` (Explore Further and TRAWL),
`knowrec recommend` and `knowrec serve` out. Real subprocesses, real files, a real HTTP
server; a malformed item file ends in one clear line."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

import knowrec as package
from tests.serving import free_port, running_server

KNOWREC = [sys.executable, "-m", "knowrec"]
# The commands run in a scratch directory: they import the knowrec this test imports.
ENV = {**os.environ, "PYTHONPATH": str(Path(package.__file__).parents[1])}
TOPICS = {
    "hiking": "trail boots summit backpack ridge camping map",
    "baking": "flour oven dough sourdough yeast crust butter",
    "cycling": "bike gears saddle chain helmet route tyres",
    "gardening": "soil seeds compost tomatoes pruning roses watering",
}
# The mapping of the click log (user,session,page,ts with ISO times) and of the items
# file (id,title,text: title and text need no mapping).
MAP = ["--map", "user_id=user", "--map", "item_id=page", "--map", "timestamp=ts"]
MAP += ["--map", "timestamp_unit=iso", "--map", "session_id=session"]
ITEM_MAP = ["--item-map", "item_id=id"]


def write_own_data(root: Path, users: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """A web-navigation log as a new user has it: ~600 clicks of 60 users in sessions
    that mostly stay in one topic, and one row of text per page."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    pages = [(f"p{t * 10 + k + 1:02d}", topic) for t, topic in enumerate(topics) for k in range(10)]
    items = root / "items.csv"
    with items.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "title", "text"])
        for page, topic in pages:
            words = ", ".join(rng.choice(TOPICS[topic].split(), size=3, replace=False))
            out.writerow([page, f"{topic.title()} guide {page}", f"A page about {topic}: {words}."])
    clicks = root / "clicks.csv"
    start, n = datetime(2024, 3, 1), 0
    with clicks.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["user", "session", "page", "ts"])
        for user in range(users):
            taste = int(rng.integers(len(topics)))
            for _ in range(int(rng.integers(2, 4))):
                n += 1
                t = start + timedelta(hours=float(rng.uniform(0, 24 * 30)))
                topic = taste if rng.random() < 0.8 else int(rng.integers(len(topics)))
                for k in rng.choice(10, size=int(rng.integers(3, 6)), replace=False):
                    t += timedelta(minutes=float(rng.uniform(1, 5)))
                    page = pages[topic * 10 + int(k)][0]
                    out.writerow([f"u{user}", f"s{n}", page, t.isoformat(timespec="seconds")])
    return clicks, items


EXPLORE = """pipeline = "explore"
name = "my clicks"

[data]
source = "{data}"

[sessions]
rule = "all"          # a click log: every click counts
split = [0.6, 0.8]

[recall]
k = 10

[[recall.paths]]
kind = "coclick"

[[recall.paths]]
kind = "cf"
params = {{factors = 8, iterations = 5}}

[[recall.paths]]
kind = "semantic"
online = true

[stage1]
params = {{objective = "lambdarank", n_estimators = 20, num_leaves = 3, min_child_samples = 5}}

[judge]
eval_triggers = 0
train_triggers = 0

[final]
quality = "none"

[serve]
k = 5
"""

TRAWL = """pipeline = "trawl"
name = "my clicks (TRAWL)"
backbones = ["din"]
seeds = [0]
ablations = false

[data]
source = "{data}"

[protocol]
label = "all"         # every click is a positive; negatives are sampled
split = [0.6, 0.2, 0.2]
history_first = 2
max_len = 5
cold_items = 0.2

[knowledge]
methods = ["none", "raw"]
sides = ["item"]

[embedding]
dim = 8

[train]
epochs = 2
batch_size = 64
threads = 1
progress = false
"""


def knowrec(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KNOWREC, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=ENV
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def no_missing_words(run: Path) -> None:
    """results.md and report.html name a missing value ("—" + legend), never nan/None."""
    for name in ("results.md", "report.html"):
        text = (run / name).read_text(encoding="utf-8")
        assert not re.search(r"\b(nan|NaN|None)\b", text), (name, re.findall(r".{40}\bnan\b", text))


def test_new_user_clicks_to_http(tmp_path: Path) -> None:
    clicks, items = write_own_data(tmp_path)
    # The command of the issue: texts from a separate file joined onto a bare click log.
    out = ok(
        knowrec(
            "data", "convert", clicks, "--format", "table", *MAP, "--text", items,
            "--text-on", "id", "--text-columns", "text", "--id-column", "id",
            "--out", "texts", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "items.csv: texts for 40 of 40 items (100.0%)" in out
    # The items file itself: titles and texts.
    out = ok(
        knowrec(
            "data", "convert", clicks, "--format", "table", *MAP, "--items", items, *ITEM_MAP,
            "--out", "data", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "items.csv: rows for 40 of 40 logged items (100.0%)" in out
    assert re.search(r"wrote data: 6\d\d interactions, 60 users, 40 items", out), out
    stats = json.loads(ok(knowrec("data", "inspect", "data", "--json", cwd=tmp_path)))
    assert stats["text"]["coverage"] == 1.0 and stats["positives"] == stats["interactions"]

    (tmp_path / "explore.toml").write_text(EXPLORE.format(data=tmp_path / "data"))
    (tmp_path / "trawl.toml").write_text(TRAWL.format(data=tmp_path / "data"))
    out = ok(knowrec("run", "explore.toml", "--out", "runs/explore", cwd=tmp_path))
    assert "Table 5" in out and "…" not in out  # no value cut at 80 columns
    results = json.loads((tmp_path / "runs/explore/results.json").read_text())
    (row,) = results["table5"]["rows"]
    assert 0 < row["ClickNDCG@5"] <= 1 and row["impressions"] > 0
    assert all(r["recall@10"] > 0 for r in results["recall"]["rows"])
    no_missing_words(tmp_path / "runs/explore")
    page = (tmp_path / "runs/explore/report.html").read_text()
    assert page.count("data:image/png;base64,") >= 1  # the per-path recall bars
    assert "not run: no pair to judge" in page  # an empty section says why

    out = ok(knowrec("run", "trawl.toml", "--out", "runs/trawl", cwd=tmp_path))
    trawl = json.loads((tmp_path / "runs/trawl/results.json").read_text())
    assert {r["method"] for r in trawl["runs"]} == {"none", "raw"}
    assert all(0 < r["test_auc"] < 1 for r in trawl["runs"])
    no_missing_words(tmp_path / "runs/trawl")
    assert (tmp_path / "runs/trawl/report.html").read_text().count("data:image/png") >= 2

    rec = json.loads(
        ok(knowrec("recommend", "--run", "runs/explore", "--item", "p03", "--json", cwd=tmp_path))
    )
    assert rec["trigger_title"] == "Hiking guide p03" and len(rec["items"]) == 5
    assert "p03" not in {r["item_id"] for r in rec["items"]}
    table = ok(knowrec("recommend", "--run", "runs/explore", "--item", "p03", cwd=tmp_path))
    assert "Hiking guide p03 (p03)" in table and "…" not in table

    port = free_port()
    serve = [*KNOWREC, "serve", "--run", "runs/explore", "--port", str(port)]
    with running_server(serve, port, cwd=tmp_path, env=ENV, timeout=60) as (url, _):
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        (run,) = httpx.get(f"{url}/runs").json()["runs"]
        assert (run["title"], run["kind"], run["state"]) == ("my clicks", "explore", "ready")
        served = httpx.get(f"{url}/recommend", params={"item": "p03", "k": 3}).json()
        assert [r["item_id"] for r in served["items"]] == [r["item_id"] for r in rec["items"]][:3]
        assert httpx.get(f"{url}/items/p03").json()["title"] == "Hiking guide p03"
        missing = httpx.get(f"{url}/recommend", params={"item": "p99"})
        assert missing.status_code == 404 and "unknown item id 'p99'" in missing.json()["error"]


MALFORMED = [
    pytest.param(
        lambda text: text + "p03,Again,a second row for p03\n",
        "items.csv, line 42, column 'id': duplicate id 'p03'",
        id="duplicate-id",
    ),
    pytest.param(
        lambda text: text.replace("id,title,text", "page_id,title,text", 1),
        "items.csv, line 1, column 'id': missing column 'id' (mapped to item_id); "
        "available columns: ['page_id', 'title', 'text']",
        id="missing-column",
    ),
    pytest.param(
        lambda text: text.replace("Hiking guide p02", "Hiking guide p02 caf\udce9", 1),
        "items.csv, line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        id="bad-encoding",
    ),
]


@pytest.mark.parametrize(("spoil", "message"), MALFORMED)
def test_malformed_item_file_is_one_clear_line(tmp_path: Path, spoil, message: str) -> None:
    clicks, items = write_own_data(tmp_path, users=4)
    text = spoil(items.read_text(encoding="utf-8"))
    items.write_bytes(text.encode("utf-8", errors="surrogateescape"))  # \udce9: a raw 0xe9
    convert = ["data", "convert", clicks, "-f", "table", *MAP, "--items", items, *ITEM_MAP]
    # The same file named by a config: [data] items with the mappings.
    config = tmp_path / "explore.toml"
    config.write_text(
        EXPLORE.format(data=clicks).replace(
            "[sessions]",
            'mapping = {user_id = "user", item_id = "page", timestamp = "ts", '
            'timestamp_unit = "iso", session_id = "session"}\n'
            f'items = "{items}"\nitem_mapping = {{item_id = "id"}}\n\n[sessions]',
        )
    )
    for args in ([*convert, "--out", "data"], ["run", config, "--out", "runs/x"]):
        out = knowrec(*args, cwd=tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        assert out.stderr.splitlines() == [f"error: {items}{message.removeprefix('items.csv')}"]
