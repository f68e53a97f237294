"""The knowledge probe's user rows (trawl/probe.py) on the users a partial ML-1M user table
already has: while the knowledge job runs, how much of a user's later liked genres the
user knowledge (from the 5 reserved history movies) carries, against the genres of those
5 movies alone and the raw history text, on the same users.

    .venv/bin/python benchmarks/trawl_user_probe.py [trawl kar]
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, write_result
from knowrec.config import load_config
from knowrec.data.config import load_data
from knowrec.encoders import Encoder
from knowrec.knowledge import read_knowledge_texts
from knowrec.trawl.config import TrawlConfig
from knowrec.trawl.probe import knowledge_probes
from knowrec.trawl.stages import knowledge_table, make_protocol, table_path

WORK = ROOT / "runs" / "trawl_user_probe"


def main() -> None:
    methods = sys.argv[1:] or ["trawl"]
    cfg = load_config(ROOT / "configs" / "trawl_ml1m.toml", TrawlConfig)
    data = load_data(cfg.data)
    samples = make_protocol(data, cfg.protocol)
    tables = {m: read_knowledge_texts(table_path(cfg.knowledge, m, "user")) for m in methods}
    users = sorted(set.intersection(*(set(t["id"].cast(pl.String)) for t in tables.values())))
    history = samples["history"]
    tables["raw"] = knowledge_table(
        data, history, cfg.knowledge, "raw", "user", WORK / "llm.sqlite"
    )
    keep = pl.Series(users).implode()
    on_users = pl.col("user_id").cast(pl.String).is_in(keep)
    every = pl.concat([samples[k] for k in ("train", "valid", "test")], how="diagonal_relaxed")
    encoder = Encoder(cfg.encoder, cache=WORK / "vectors.sqlite")
    vectors = {}
    for method, table in tables.items():
        table = table.filter(pl.col("id").cast(pl.String).is_in(keep)).drop_nulls("text")
        ids = table["id"].cast(pl.String).to_list()
        vectors[method] = {"user": (ids, encoder.encode(table["text"].to_list()))}
    rows = knowledge_probes(
        data.items, every.filter(on_users), history.filter(on_users), vectors, "genres"
    )
    rows = [{k: v for k, v in r.items() if k == "vectors" or k.startswith("user")} for r in rows]
    for row in rows:
        print(row)
    write_result("trawl_user_probe", {"users": len(users), "methods": methods, "rows": rows})


if __name__ == "__main__":
    main()
