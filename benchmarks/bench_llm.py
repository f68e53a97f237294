"""LLM knowledge-extraction throughput: knowrec's LlamaCppLLM against a bare llama-cpp-python
loop over the same prompts, side by side in one run.

Ten extraction prompts shaped like TRAWL's (a fixed instruction prefix first, the item's
text last, a short JSON answer constrained by a schema) go through three paths:

- ``bare``: ``Llama.create_chat_completion`` in a plain loop, ``reset()`` before each call
  (no prefix reuse);
- ``knowrec``: ``LlamaCppLLM(prefix_reuse=False).map`` (cache, parsing, validation, all on);
- ``knowrec+reuse``: ``LlamaCppLLM(prefix_reuse=True).map``: the KV cache of the shared
  instruction prefix is kept between items.

Each path has its own model instance (weights are memory-mapped once), and the paths are
interleaved item by item so that noise from other work on the machine hits all alike.
Times per call come from llama.cpp's counters (prompt evaluation vs generation).

    .venv/bin/python benchmarks/bench_llm.py [--threads 2] [--items 10] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
import llama_cpp

from common import write_result
from knowrec.llm import DEFAULT_MODEL, LlamaCppLLM, Request, pull

SYSTEM = "You extract recommendation knowledge from item descriptions. Answer in JSON only."
INSTRUCTION = """\
Read the movie description at the end and extract what matters for recommending it.
Fill each field from the description; infer a field from common sense only when the
description clearly implies it; never copy wording from these instructions.

Fields:
- genres: one or two genres from the allowed list that best describe the movie.
- mood: the dominant emotional tone of the movie for a viewer.
- audience: the viewers most likely to enjoy it. "kids" means children under 12 with
  their families, "teens" means viewers aged 12 to 17, "adults" means mature viewers
  (violence, sexuality or complex themes), "everyone" when no group stands out.
- era: when the story takes place, not when the movie was made.
- pace: how fast the story moves: "slow" for contemplative films, "steady" for most
  dramas, "fast" for action and thrillers.
- themes: at most two short themes (one to three words each) that a viewer would use to
  describe what the movie is about, e.g. its central conflict or subject.

Rules: be concise; use only the allowed values where a list is given; do not explain.
Description:
"""
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "genres": {
            "type": "array",
            "items": {
                "type": "string",
                "enum": [
                    "action", "adventure", "animation", "comedy", "crime", "drama",
                    "fantasy", "horror", "romance", "science fiction", "thriller", "war",
                ],
            },
            "maxItems": 2,
        },
        "mood": {"type": "string", "enum": ["light", "dark", "tense", "warm", "sad"]},
        "audience": {"type": "string", "enum": ["kids", "teens", "adults", "everyone"]},
        "era": {"type": "string", "enum": ["past", "present", "future"]},
        "pace": {"type": "string", "enum": ["slow", "steady", "fast"]},
        "themes": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 2},
    },
    "required": ["genres", "mood", "audience", "era", "pace", "themes"],
}  # fmt: skip
ITEMS = [
    "Starfall (2031). When a mining colony on a frozen moon loses contact with Earth, a "
    "young engineer and a disgraced pilot must repair the relay before the air runs out. "
    "Tense survival science fiction with spectacular effects.",
    "The Baker of Rue Clair (1958). In post-war Paris a shy baker falls for the florist "
    "across the street, while her grandmother schemes to bring them together. A gentle "
    "romantic comedy full of music and pastries.",
    "Hollow Creek (2019). Five friends rent a cabin in the woods and find a diary that "
    "predicts their deaths one by one. Gory, relentless horror for hardened fans.",
    "Paws on Patrol (2016). A clumsy puppy joins the town's rescue team and learns that "
    "courage means helping others. Colourful animated fun for the whole family.",
    "The Last Telegram (1917). A young soldier crosses no man's land to deliver an order "
    "that could save a thousand lives. A harrowing, sombre war drama.",
    "Neon Ledger (2024). A forensic accountant uncovers money laundering at a Hong Kong "
    "bank and is hunted across the city by the men she exposed. Fast crime thriller.",
    "Summer of Kites (1994). Two teenage brothers spend their last summer at their late "
    "father's seaside house, quarrelling and healing. A quiet coming-of-age drama.",
    "Dragon's Oath (1200). A blacksmith's daughter bonds with the last dragon and leads a "
    "rebellion against a tyrant king. Epic fantasy adventure for teens and adults.",
    "Office Party (2022). An overworked manager must survive the company's disastrous "
    "holiday party while hiding that she was just fired. Sharp, silly workplace comedy.",
    "Tidewater (1862). A freed slave returns to the plantation to find his sister, "
    "facing old enemies in the chaos after the war. A powerful, painful historical drama.",
]


def prompt(text: str) -> str:
    return INSTRUCTION + text


def perf(llm: llama_cpp.Llama) -> tuple[float, int, float, int]:
    p = llama_cpp.llama_perf_context(llm.ctx)
    return p.t_p_eval_ms, p.n_p_eval, p.t_eval_ms, p.n_eval


def bare_call(llm: llama_cpp.Llama, text: str, max_tokens: int) -> dict[str, Any]:
    """One extraction with llama-cpp-python alone, from a fresh KV cache."""
    started = time.perf_counter()
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    out: Any = llm.create_chat_completion(
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt(text)},
        ],
        temperature=0.0,
        seed=0,
        max_tokens=max_tokens,
        repeat_penalty=1.0,
        response_format={"type": "json_object", "schema": SCHEMA},
    )
    wall = (time.perf_counter() - started) * 1000
    p_ms, p_n, g_ms, g_n = perf(llm)
    answer = out["choices"][0]["message"]["content"] or ""
    try:
        value = json.loads(answer)
        jsonschema.validate(value, SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        value = None
    return {
        "wall_ms": wall,
        "prompt_ms": p_ms,
        "prompt_eval_tokens": p_n,
        "prompt_tokens": out["usage"]["prompt_tokens"],
        "gen_ms": g_ms,
        "completion_tokens": g_n,
        "value": value,
    }


def knowrec_call(llm: LlamaCppLLM, text: str, max_tokens: int) -> dict[str, Any]:
    """The same extraction through knowrec's batch API (one item per map call)."""
    request = Request(prompt(text), system=SYSTEM, schema=SCHEMA, max_tokens=max_tokens)
    started = time.perf_counter()
    (result,) = llm.map([request], progress=False)
    wall = (time.perf_counter() - started) * 1000
    return {
        "wall_ms": wall,
        "prompt_ms": result.prompt_ms,
        "prompt_eval_tokens": result.prompt_eval_tokens,
        "prompt_tokens": result.prompt_tokens,
        "gen_ms": result.gen_ms,
        "completion_tokens": result.completion_tokens,
        "value": result.value if result.ok else None,
        "attempts": result.attempts,
    }


def summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    def total(name: str) -> float:
        return float(sum(c[name] for c in calls))

    wall_s = total("wall_ms") / 1000
    tokens = total("prompt_eval_tokens") + total("completion_tokens")
    return {
        "items": len(calls),
        "valid": sum(c["value"] is not None for c in calls),
        "items_per_s": len(calls) / wall_s,
        "tokens_per_s": tokens / wall_s,
        "prompt_tokens_per_s": total("prompt_eval_tokens") / total("prompt_ms") * 1000,
        "gen_tokens_per_s": total("completion_tokens") / total("gen_ms") * 1000,
        "mean_prompt_tokens": total("prompt_tokens") / len(calls),
        "mean_prompt_eval_tokens": total("prompt_eval_tokens") / len(calls),
        "mean_completion_tokens": total("completion_tokens") / len(calls),
        "median_wall_ms": statistics.median(c["wall_ms"] for c in calls),
        "mean_wall_ms": total("wall_ms") / len(calls),
        "mean_prompt_ms": total("prompt_ms") / len(calls),
        "mean_gen_ms": total("gen_ms") / len(calls),
        "mean_other_ms": (total("wall_ms") - total("prompt_ms") - total("gen_ms")) / len(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--items", type=int, default=len(ITEMS))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    texts = (ITEMS * (args.items // len(ITEMS) + 1))[: args.items]
    path = pull(args.model)
    n_ctx = 2048
    load_avg_start = os.getloadavg()

    bare = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_batch=512,
        logits_all=False,
        chat_format="chat_template.default",
        verbose=False,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_llm_"))
    paths: dict[str, Any] = {
        "knowrec": LlamaCppLLM(
            args.model, n_ctx=n_ctx, n_threads=args.threads, prefix_reuse=False,
            cache=tmp / "plain.sqlite", progress=False,
        ),
        "knowrec+reuse": LlamaCppLLM(
            args.model, n_ctx=n_ctx, n_threads=args.threads, prefix_reuse=True,
            cache=tmp / "reuse.sqlite", progress=False,
        ),
    }  # fmt: skip
    # Warm up each instance on an unrelated prompt (the first item pays for the prefix).
    bare.create_chat_completion([{"role": "user", "content": "Say hi."}], max_tokens=4)
    for llm in paths.values():
        llm.chat("Say hi.", max_tokens=4)

    calls: dict[str, list[dict[str, Any]]] = {"bare": [], "knowrec": [], "knowrec+reuse": []}
    for i, text in enumerate(texts):
        calls["bare"].append(bare_call(bare, text, args.max_tokens))
        for name, llm in paths.items():
            calls[name].append(knowrec_call(llm, text, args.max_tokens))
        print(f"item {i + 1}/{len(texts)}: " + ", ".join(
            f"{name} {c[-1]['wall_ms'] / 1000:.1f} s" for name, c in calls.items()
        ), flush=True)  # fmt: skip

    # A re-run of the batch is served from the cache.
    reuse = paths["knowrec+reuse"]
    requests = [Request(prompt(t), system=SYSTEM, schema=SCHEMA, max_tokens=args.max_tokens)
                for t in texts]  # fmt: skip
    before = reuse.calls
    started = time.perf_counter()
    rerun = reuse.map(requests, progress=False)
    rerun_s = time.perf_counter() - started
    assert reuse.calls == before and all(r.cached for r in rerun)

    rows = {name: summary(c) for name, c in calls.items()}
    same = {
        name: sum(a["value"] == b["value"] for a, b in zip(calls["bare"], c, strict=True))
        for name, c in calls.items()
        if name != "bare"
    }
    header = (
        f"{'path':15s} {'items/s':>8s} {'tok/s':>7s} {'prompt tok':>10s} {'evaluated':>9s} "
        f"{'gen tok':>7s} {'prompt ms':>9s} {'gen ms':>7s} {'other ms':>8s} {'valid':>5s}"
    )
    print(header)
    for name, r in rows.items():
        print(
            f"{name:15s} {r['items_per_s']:8.3f} {r['tokens_per_s']:7.1f} "
            f"{r['mean_prompt_tokens']:10.0f} {r['mean_prompt_eval_tokens']:9.0f} "
            f"{r['mean_completion_tokens']:7.1f} {r['mean_prompt_ms']:9.0f} "
            f"{r['mean_gen_ms']:7.0f} {r['mean_other_ms']:8.0f} {r['valid']:>3d}/{r['items']}"
        )
    speed = {name: r["items_per_s"] / rows["bare"]["items_per_s"] for name, r in rows.items()}
    print("items/s relative to bare: " + ", ".join(f"{k} {v:.2f}" for k, v in speed.items()))
    print(f"answers equal to bare: {same} of {len(texts)}")
    print(f"cached re-run of {len(texts)} items: {rerun_s * 1000:.1f} ms")
    write_result(
        "llm",
        {
            "model": args.model,
            "threads": args.threads,
            "max_tokens": args.max_tokens,
            "n_ctx": n_ctx,
            "load_avg_start": load_avg_start,
            "load_avg_end": os.getloadavg(),
            "summary": rows,
            "items_per_s_relative_to_bare": speed,
            "answers_equal_to_bare": same,
            "cached_rerun_ms": rerun_s * 1000,
            "calls": calls,
        },
    )


if __name__ == "__main__":
    main()
