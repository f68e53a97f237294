"""Run a file of LLM requests somewhere else (a GPU machine) and bring the answers back.

The requests of a job (e.g. knowledge generation) are written to JSON lines with the
cache key each will have under the backend that is to answer them; on the other machine

    python -m knowrec.llm.batch requests.jsonl --backend transformers --cache answers.sqlite

answers them into a cache file (only ``knowrec.llm`` and its backend are imported, so the
machine needs neither the data nor the rest of knowrec's dependencies). Back home, the
same job run with that backend and that cache finds every answer there.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from knowrec.errors import DataFormatError
from knowrec.llm.base import LLM, Request, build_messages


def export_requests(llm: LLM, requests: Iterable[Request], path: str | Path) -> int:
    """Write ``requests`` with ``llm``'s cache keys to a JSON-lines file; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in requests:
            row = {
                "key": llm.key(r),
                "id": r.id,
                "messages": build_messages(r.prompt, r.system),
                "schema": r.schema,
                "labels": list(r.labels) if r.labels else None,
                "max_tokens": r.max_tokens,
                "temperature": r.temperature,
                "seed": r.seed,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_requests(path: str | Path) -> list[tuple[str, Request]]:
    """The (expected key, request) pairs of a file written by :func:`export_requests`."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                request = Request(
                    prompt=row["messages"],
                    schema=row["schema"],
                    labels=tuple(row["labels"]) if row["labels"] else None,
                    max_tokens=row["max_tokens"],
                    temperature=row["temperature"],
                    seed=row["seed"],
                    id=row["id"],
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(f"{path}:{line_no}: not a request line ({exc})") from None
            out.append((row["key"], request))
    return out


def run_requests(llm: LLM, path: str | Path, limit: int | None = None) -> dict[str, float]:
    """Answer the requests of ``path`` into ``llm``'s cache; a summary with throughput.

    Raises :class:`DataFormatError` when a key differs from the exported one (another
    backend, model or setting would answer into keys the job will never read).
    """
    pairs = read_requests(path)[:limit]
    wrong = sum(llm.key(r) != key for key, r in pairs)
    if wrong:
        raise DataFormatError(
            f"{wrong} of {len(pairs)} requests get another cache key here: export them with "
            f"the same backend, model and settings ({llm.backend}, {llm.model_id})"
        )
    started = time.perf_counter()
    results = llm.map([r for _, r in pairs])
    wall = time.perf_counter() - started
    computed = [r for r in results if not r.cached]
    return {
        "requests": len(pairs),
        "computed": len(computed),
        "failed": sum(not r.ok for r in results),
        "wall_s": round(wall, 1),
        "items_per_s": round(len(computed) / wall, 3) if wall > 0 else 0.0,
        "completion_tokens_per_s": round(sum(r.completion_tokens or 0 for r in computed) / wall, 1)
        if wall > 0
        else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    from knowrec.llm import make_llm

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=Path)
    parser.add_argument("--backend", default="transformers")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=32, help="transformers only")
    parser.add_argument("--device", default=None, help="transformers only")
    parser.add_argument("--parallel", type=int, default=None, help="llamacpp: prompts together")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    extra = {}
    if args.backend == "transformers":
        extra = {"batch_size": args.batch_size, "device": args.device}
    elif args.backend == "llamacpp" and args.parallel is not None:
        extra = {"parallel": args.parallel}
    llm = make_llm(args.backend, model=args.model, cache=args.cache, **extra)
    with llm:
        print(json.dumps(run_requests(llm, args.requests, args.limit)))


if __name__ == "__main__":
    main()
