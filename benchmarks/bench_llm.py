"""Local LLM throughput on real prompts: a bare llama-cpp-python loop, knowrec one sequence at
a time, and knowrec's batched decoding, side by side in one run.

Prompts: the real ML-1M knowledge prompts of ``knowledge_ml1m.py`` (TML1M raw text,
its token budgets): TRAWL items (``item_trawl``), TRAWL users (``user_trawl``: profile and
the 5 reserved-history movies, longer input) and KAR items (``item_kar``: shorter), the
first ``--items`` of each in that script's order; and the judge (``judge``: the first
``--judge-pairs`` pairs of the golden set, variant B, ``--personas`` judges each).
Paths, each in a fresh process (so that its peak RSS is its own), one after another:

- ``bare``: ``Llama.create_chat_completion`` in a plain loop with the same JSON-schema
  ``response_format`` (llama-cpp-python reuses the prompt prefix of the previous call);
- ``sequential``: ``LlamaCppLLM(parallel=1).map`` (parsing, validation, retries on);
- ``batched``: ``LlamaCppLLM(parallel=N).map``, N = ``--parallel`` (and every N of
  ``--sweep`` on the ``item_trawl`` prompts).

Reported per path: items/s, prompt tokens evaluated and generated tokens per second of wall
time, valid answers, agreement of the answer fields with the sequential path's, peak RSS.
No answer cache: every path computes everything. Run it on a quiet machine.

    .venv/bin/python benchmarks/bench_llm.py                       # everything (~1 h on 2 cores)
    .venv/bin/python benchmarks/bench_llm.py --kinds item_trawl --sweep 1,2,4,8,16,32
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, write_result

KINDS = ("item_trawl", "user_trawl", "item_kar", "judge")
GOLDEN = ROOT / "benchmarks" / "golden" / "ml1m_golden.csv"


def export(args: argparse.Namespace, path: Path) -> None:
    """Write the knowledge requests of every kind as JSON lines (data loaded once)."""
    from knowledge_ml1m import CONFIG, load_ml1m_with_plots
    from knowrec.data.protocol import reserve_history
    from knowrec.knowledge import KnowledgeGenerator

    data = load_ml1m_with_plots(args.data_dir) if args.data_dir else load_ml1m_with_plots()
    counts = data.interactions.group_by("item_id").len().sort(["len", "item_id"], descending=True)
    items = counts["item_id"].head(args.items).to_list()
    users = sorted(data.interactions["user_id"].unique().to_list(), key=int)[: args.items]
    history = reserve_history(data.interactions, CONFIG.k)["history"]
    gen = KnowledgeGenerator(CONFIG, llm=None, progress=False)
    with path.open("w") as f:
        for kind in {*args.kinds, *(["item_trawl"] if args.sweep else [])}:
            if kind == "judge":
                continue
            side, method = kind.split("_")
            ids = items if side == "item" else users
            for r in gen.llm_requests(data, method, side, ids=ids, history=history):
                f.write(json.dumps({"kind": kind, **asdict(r)}) + "\n")
    data.items.select("item_id", "title", "year", "text").write_parquet(path.with_suffix(".items"))


def worker(path: str, kind: str, parallel: int, threads: int, out: str, extra: str) -> None:
    """Run one path on one kind's prompts; write answers and measurements to ``out``."""
    from knowrec.llm import LlamaCppLLM, Request
    from knowrec.llm.base import build_messages, check_schema, parse_json

    opts = json.loads(extra)
    llm = LlamaCppLLM(n_ctx=2048, n_threads=threads, parallel=max(parallel, 1), progress=False)
    started = time.perf_counter()
    if kind == "judge":
        import polars as pl

        from knowrec.judge import Judge, load_golden

        items = pl.read_parquet(Path(path).with_suffix(".items"))
        golden = load_golden(GOLDEN, items=items).head(opts["judge_pairs"])
        judge = Judge(llm, noun="movie", personas=opts["personas"], variants="B", progress=False)
        started = time.perf_counter()
        scores = judge.score(golden.select("trigger_id", "candidate_id"), items)
        answers = scores["score_b"].to_list()
        n, valid = scores.height, int((scores["status"] == "ok").sum())
        prompt_eval = gen_tokens = None
    else:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        requests = [
            Request(**{k: v for k, v in r.items() if k != "kind"})
            for r in rows
            if r["kind"] == kind
        ]
        for r in requests:  # JSON made the tuples lists
            object.__setattr__(r, "labels", tuple(r.labels) if r.labels else None)
        n = len(requests)
        if parallel == 0:  # the bare loop
            raw = llm._llm
            raw.chat_format = "chat_template.default"
            started = time.perf_counter()
            answers, valid, prompt_eval, gen_tokens = [], 0, 0, 0
            for r in requests:
                llm._lib.llama_perf_context_reset(raw.ctx)
                fmt = None if r.schema is None else {"type": "json_object", "schema": r.schema}
                response: Any = raw.create_chat_completion(
                    messages=build_messages(r.prompt, r.system),  # type: ignore[arg-type]
                    temperature=0.0,
                    max_tokens=r.max_tokens,
                    response_format=fmt,  # type: ignore[arg-type]
                )
                perf = llm._lib.llama_perf_context(raw.ctx)
                prompt_eval += perf.n_p_eval
                gen_tokens += response["usage"]["completion_tokens"]
                text = response["choices"][0]["message"]["content"] or ""
                try:
                    value = text if r.schema is None else parse_json(text)
                    if r.schema is not None:
                        check_schema(value, r.schema)
                    answers.append(value if text.strip() else None)
                    valid += bool(text.strip())
                except Exception:
                    answers.append(None)
        else:
            started = time.perf_counter()
            results = llm.map(requests, progress=False)
            answers = [r.raw if r.ok else None for r in results]
            valid = sum(r.ok for r in results)
            prompt_eval = sum(r.prompt_eval_tokens or 0 for r in results)
            gen_tokens = sum(r.completion_tokens or 0 for r in results)
    wall = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(
        json.dumps(
            {
                "items": n,
                "wall_s": round(wall, 2),
                "items_per_s": round(n / wall, 4),
                "prompt_eval_tokens": prompt_eval,
                "generated_tokens": gen_tokens,
                "prompt_tok_per_s": None if prompt_eval is None else round(prompt_eval / wall, 1),
                "gen_tok_per_s": None if gen_tokens is None else round(gen_tokens / wall, 1),
                "valid": valid,
                "peak_rss_mb": round(rss),
                "answers": answers,
            }
        )
    )


def decode_sweep(widths: list[int], threads: int) -> dict[str, Any]:
    """Raw llama.cpp speed through knowrec's BatchDecoder: prefill of one 480-token prompt,
    then 8 decode steps of ``k`` sequences with 300 tokens of context each."""
    from knowrec.llm import LlamaCppLLM
    from knowrec.llm.llamacpp_batch import BatchDecoder

    llm = LlamaCppLLM(n_ctx=512, n_threads=threads, parallel=1, progress=False)
    toks = llm._llm.tokenize(("The quick brown fox jumps over the lazy dog. " * 60).encode())
    toks = toks[:480]
    d = BatchDecoder(llm._llm, n_seq=max(widths), n_ctx_seq=512, n_threads=threads)
    started = time.perf_counter()
    d._decode([(0, toks, 0)], logits=False)
    prefill = len(toks) / (time.perf_counter() - started)
    out: dict[str, Any] = {"prefill_tok_per_s": round(prefill, 1)}
    llm._lib.llama_memory_seq_rm(d.mem, 0, 300, -1)  # every sequence: 300 tokens of context
    del d.seqs[0][300:]
    for s in range(1, max(widths)):
        d._decode([(s, toks[:300], 0)], logits=False)
    for k in widths:
        started = time.perf_counter()
        for step in range(8):
            d._decode([(s, [toks[step]], len(d.seqs[s])) for s in range(k)], logits=True)
        took = (time.perf_counter() - started) / 8
        out[str(k)] = {"gen_tok_per_s": round(k / took, 1), "ms_per_step": round(took * 1000)}
        print("decode", k, out[str(k)], flush=True)
    d.close()
    return out


def agreement(a: list[Any], b: list[Any]) -> float | None:
    """Share of answer fields (JSON) equal in both, or of judge scores within 0.01."""
    same = total = 0
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in x.keys() | y.keys():
                total += 1
                same += _norm(x.get(key)) == _norm(y.get(key))
        elif isinstance(x, float) and isinstance(y, float):
            total += 1
            same += abs(x - y) <= 0.01
        elif isinstance(x, str) and isinstance(y, str):
            total += 1
            same += x.strip() == y.strip()
        else:
            total += 1
    return round(same / total, 3) if total else None


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--paths", default="bare,sequential,batched")
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--judge-pairs", type=int, default=60)
    parser.add_argument("--personas", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=None, help="default: knowrec's")
    parser.add_argument("--sweep", default="", help="e.g. 1,2,4,8,16,32 (item_trawl prompts)")
    parser.add_argument("--decode-sweep", default="", help="e.g. 1,2,4,8,16,32,64: raw steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--name", default="llm_batched")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        path, kind, parallel, threads, out, extra = args.worker
        worker(path, kind, int(parallel), int(threads), out, extra)
        return
    from knowrec.llm.llamacpp import DEFAULT_PARALLEL

    if args.decode_sweep:
        widths = [int(w) for w in args.decode_sweep.split(",")]
        how = f"BatchDecoder: 8 decode steps of k sequences, 300 tokens of context each; {args.threads} threads"  # noqa: E501
        result = {"protocol": how, **decode_sweep(widths, args.threads)}
        write_result("llm_decode_sweep", result)
        return
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    n = args.parallel or DEFAULT_PARALLEL
    widths = {"bare": 0, "sequential": 1, "batched": n}
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="bench_llm_"))
    requests = tmp / "requests.jsonl"
    export(args, requests)
    extra = json.dumps({"judge_pairs": args.judge_pairs, "personas": args.personas})

    def run(kind: str, parallel: int) -> dict[str, Any]:
        out = tmp / f"{kind}_{parallel}.json"
        cmd = [sys.executable, __file__, "--worker", str(requests), kind, str(parallel)]
        subprocess.run([*cmd, str(args.threads), str(out), extra], check=True)
        got = json.loads(out.read_text())
        print(kind, parallel, {k: v for k, v in got.items() if k != "answers"}, flush=True)
        return got

    report: dict[str, Any] = {
        "protocol": f"first {args.items} ML-1M knowledge prompts per kind (knowledge_ml1m.py "
        f"order and budgets), judge: first {args.judge_pairs} golden pairs, variant B, "
        f"{args.personas} judges; {args.threads} threads; no cache; one process per path",
        "parallel": n,
        "kinds": {},
    }
    for kind in args.kinds:
        todo = [p for p in paths if not (kind == "judge" and p == "bare")]
        runs = {p: run(kind, widths[p]) for p in todo}
        ref = runs.get("sequential")
        rows = {}
        for p, got in runs.items():
            row = {k: v for k, v in got.items() if k != "answers"}
            if ref is not None:
                row["agreement_with_sequential"] = agreement(got["answers"], ref["answers"])
            rows[p] = row
        if "bare" in rows:
            base = rows["bare"]["items_per_s"]
            for row in rows.values():
                row["x_bare"] = round(row["items_per_s"] / base, 2)
        report["kinds"][kind] = rows
        write_result(args.name, report)
    if args.sweep:
        sweep = {}
        for width in [int(w) for w in args.sweep.split(",")]:
            got = run("item_trawl", width)
            sweep[width] = {k: v for k, v in got.items() if k != "answers"}
            report["sweep"] = sweep
            write_result(args.name, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
