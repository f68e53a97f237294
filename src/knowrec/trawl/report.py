"""TRAWL's report: the protocol caption, Table 1, Table 2, the floors, the sensitivity
curves, and what the vectors hold (nearest items, the knowledge probe)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from rich.console import Console

from knowrec.errors import ConfigError
from knowrec.report import Section as ReportSection
from knowrec.report import mean_std, print_rows, summary_figure
from knowrec.trawl.config import TrawlConfig


def protocol_text(cfg: TrawlConfig) -> str:
    p = cfg.protocol
    return (
        f"data={cfg.data.source}; users split {':'.join(f'{r:g}' for r in p.split)} "
        f"(seed {p.split_seed}) into train/valid/test users; the first {p.history_first} "
        f"interactions of each user are history only (behaviour sequences and user "
        f"knowledge), never samples; label = {p.label}; behaviour sequence = last "
        f"{p.max_len} (item, rating) pairs strictly before the sample; metrics on test users"
        + (
            f"; cold start: {p.cold_items:.0%} of items have no training samples "
            "(cold AUC = test AUC on their samples)"
            if p.cold_items
            else ""
        )
        + (f"; {p.train_users:.0%} of the training users kept" if p.train_users < 1 else "")
    )


def summarise(
    cfg: TrawlConfig, results: list[dict[str, Any]], floor_rows: list[dict[str, Any]]
) -> list[ReportSection]:
    frame = pl.DataFrame(results)
    full = frame.filter(pl.col("variant") == "full")
    at_default = [pl.col(c) == v for c, v in cfg.loss_settings.items()]
    default = full.filter(*at_default)
    table1 = []
    for method in cfg.knowledge.methods:
        row: dict[str, Any] = {"method": method}
        for backbone in cfg.backbones:
            sel = default.filter((pl.col("method") == method) & (pl.col("backbone") == backbone))
            row |= table1_cells(sel, backbone)
        table1.append(row)
    best = best_sweep_point(cfg, full) if cfg.sweep_refit else None
    if best is not None:  # the refit models: the best point on every seed
        param, value = best
        at_best = {**cfg.loss_settings, param: value}
        sel = full.filter(
            pl.col("method") == cfg.sweep_method,
            *(pl.col(c) == v for c, v in at_best.items()),
        )
        row = {"method": f"{cfg.sweep_method}, best sweep point ({param} = {value:g})"}
        for backbone in cfg.backbones:  # only sweep_backbone has them
            row |= table1_cells(sel.filter(pl.col("backbone") == backbone), backbone)
        table1.append(row)
    missing = "undefined (no test sample of cold items with both labels)"
    if best is not None and len(cfg.backbones) > 1:
        missing += f" or not trained (the best sweep point is on {cfg.sweep_backbone} only)"
    figures = [
        summary_figure(default, "method", "test_auc", hue="backbone", ylabel="test AUC",
                       title="test AUC by method (mean ± std over seeds)"),
        summary_figure(default, "method", "test_cold_auc", hue="backbone",
                       ylabel="cold-item test AUC",
                       title="cold items (no training samples), mean ± std over seeds"),
    ]  # fmt: skip
    sections = [
        ReportSection("Protocol", notes=protocol_text(cfg)),
        ReportSection(
            "Table 1 — knowledge method × backbone (test, mean ± std over seeds)",
            table1,
            figures=[f for f in figures if f is not None],
            missing=missing,
        ),
        ReportSection("Floors", floor_rows),
    ]
    abl = frame.filter(pl.col("method") == "trawl")
    if cfg.ablations and abl.height:
        rows = []
        for backbone in cfg.ablation_backbones or cfg.backbones:
            row = {"backbone": backbone}
            for variant, label in (
                ("full", "TRAWL"),
                ("no_cl", "w/o CL"),
                ("no_adapter", "w/o adapter"),
            ):
                sel = abl.filter((pl.col("backbone") == backbone) & (pl.col("variant") == variant))
                if variant == "full":
                    sel = sel.filter(*at_default)
                row[label] = mean_std(sel["test_auc"].to_list())
            rows.append(row)
        sections.append(ReportSection("Table 2 — ablations (test AUC)", rows))
    if cfg.sweep:
        from matplotlib.figure import Figure

        figs, rows = [], []
        for param, points in sweep_points(cfg, full).items():
            default = getattr(cfg, param)
            rows += [
                {"parameter": param, "value": f"{value:g}" + (" (default)" * (value == default)),
                 "valid AUC": valid, "test AUC": test}
                for value, valid, test in points
            ]  # fmt: skip
            fig = Figure(figsize=(4, 3))
            ax = fig.subplots()
            values = [p[0] for p in points]
            ax.plot(values, [p[1] for p in points], marker="o")
            if all(v > 0 for v in values):
                ax.set_xscale("log")  # the values are usually spread by factors
                ax.minorticks_off()
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.set_xlabel(param)
            ax.set_ylabel("validation AUC")
            ax.set_title(f"{cfg.sweep_backbone}: sensitivity to {param}")
            figs.append(fig)
        sections.append(
            ReportSection(
                "Sensitivity",
                rows,
                figures=figs,
                notes=f"{cfg.sweep_method} on {cfg.sweep_backbone}, seed {cfg.seeds[0]}: one "
                "loss setting changed at a time, the others at their defaults",
            )
        )
    return sections


def sweep_points(
    cfg: TrawlConfig, full: pl.DataFrame
) -> dict[str, list[tuple[float, float, float]]]:
    """``(value, valid AUC, test AUC)`` of each swept loss setting, the default value
    included: the sweep method's model on ``sweep_backbone`` and the first seed, every
    other setting at its default."""
    out = {}
    mine = full.filter(
        (pl.col("method") == cfg.sweep_method)
        & (pl.col("backbone") == cfg.sweep_backbone)
        & (pl.col("seed") == cfg.seeds[0])
    )
    for param, values in cfg.sweep.items():
        others = [pl.col(c) == v for c, v in cfg.loss_settings.items() if c != param]
        points = []
        for value in sorted({*values, getattr(cfg, param)}):
            sel = mine.filter(pl.col(param) == value, *others)
            if sel.height:
                points.append((value, float(sel["valid_auc"][0]), float(sel["test_auc"][0])))
        out[param] = points
    return out


def table1_cells(sel: pl.DataFrame, backbone: str) -> dict[str, str]:
    """A Table 1 row's cells of ``backbone``: mean ± std over the selected models."""
    cells = {
        f"{backbone} AUC": mean_std(sel["test_auc"].to_list()),
        f"{backbone} LogLoss": mean_std(sel["test_logloss"].to_list()),
    }
    if "test_cold_auc" in sel.columns:
        cells[f"{backbone} cold AUC"] = mean_std(sel["test_cold_auc"].drop_nulls().to_list())
    return cells


def best_sweep_point(cfg: TrawlConfig, full: pl.DataFrame) -> tuple[str, float] | None:
    """The swept ``(setting, value)`` with the highest validation AUC; None when no
    point beats the model at the default settings (or that model is missing)."""
    default, others = None, []
    for param, points in sweep_points(cfg, full).items():
        for value, valid, _ in points:
            if value == getattr(cfg, param):
                default = valid
            else:
                others.append((valid, param, value))
    if default is None or not others:
        return None
    valid, param, value = max(others)
    return (param, value) if valid > default else None


def print_table(console: Console, section: ReportSection) -> None:
    print_rows(console, section.title, section.rows, missing=section.missing)


def swing_examples(
    partners: dict[str, pl.DataFrame], items: pl.DataFrame, n: int = 8
) -> ReportSection:
    """The highest-SWING positive of the ``n`` items with the strongest one: what the
    contrastive loss pulls together."""
    title: dict[str, str] = {}
    if "title" in items.columns:
        title = dict(zip(*items.select("item_id", "title").cast(pl.String), strict=True))
    top = partners["item"].drop_nulls("positive_id").sort("score", descending=True).head(n)
    rows = [
        {
            "item": title.get(str(r["id"]), str(r["id"])),
            "SWING positive": title.get(str(r["positive_id"]), str(r["positive_id"])),
            "score": r["score"],
        }
        for r in top.iter_rows(named=True)
    ]
    return ReportSection(
        "SWING positives (examples)",
        rows,
        notes="each training item's highest-SWING other item is its contrastive positive",
        empty="no item has a SWING positive",
    )


def pick_items(
    items: pl.DataFrame, train: pl.DataFrame, wanted: list[str], n: int = 5
) -> list[str]:
    """Item ids for the neighbour examples: ``wanted`` (ids or titles, any case, "The
    Godfather" or "Godfather, The"), by default the ``n`` items with the most training
    samples."""
    from knowrec.knowledge.inputs import display_title

    if not wanted:
        top = train.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
        return top["item_id"].cast(pl.String).head(n).to_list()
    ids = set(items["item_id"].cast(pl.String).to_list())
    by_title: dict[str, str] = {}
    if "title" in items.columns:
        for i, t in items.select(pl.col("item_id").cast(pl.String), "title").iter_rows():
            for form in (str(t), display_title(str(t))):
                by_title.setdefault(form.casefold(), i)
    picked, unknown = [], []
    for name in wanted:
        item = name if name in ids else by_title.get(name.casefold())
        (picked if item else unknown).append(item or name)
    if unknown:
        raise ConfigError(f"neighbour_items: no item has the id or title {unknown}")
    return picked


def neighbour_examples(
    items: pl.DataFrame,
    sources: dict[str, tuple[list[str], np.ndarray]],
    picks: list[str],
    k: int = 5,
) -> ReportSection:
    """The ``k`` nearest items (cosine) of each picked item under each vector source: what
    each kind of knowledge (and the adapter trained on it) considers similar."""
    title = {i: i for i in items["item_id"].cast(pl.String).to_list()}
    if "title" in items.columns:
        named = items.select("item_id", "title").cast(pl.String).drop_nulls()
        title |= dict(zip(*named, strict=True))
    units = {
        name: (
            {str(i): n for n, i in enumerate(ids)},
            ids,
            x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12),
        )
        for name, (ids, x) in sources.items()
    }
    rows = []
    for item in picks:
        for name, (where, ids, unit) in units.items():
            if item not in where:
                continue
            sims = unit @ unit[where[item]]
            sims[where[item]] = -np.inf
            near = np.argsort(-sims, kind="stable")[:k]
            rows.append(
                {
                    "item": title.get(item, item),
                    "vectors": name,
                    "nearest": "; ".join(title.get(str(ids[n]), str(ids[n])) for n in near),
                }
            )
    return ReportSection(
        "Nearest items by vector source",
        rows,
        notes=f"the {k} most cosine-similar items; 'adapted' = the trained TRAWL adapter's "
        "output for the item's knowledge vector",
        empty="no item vectors",
    )


def probe_section(rows: list[dict[str, Any]], column: str | None) -> ReportSection:
    if column is None:
        return ReportSection("Knowledge probe", empty="the items have no list column to probe")
    return ReportSection(
        f"Knowledge probe — {column} from the vectors (linear, out-of-fold AUC)",
        rows,
        notes=f"item {column}: does the item have this value; item liked: is its positive "
        f"rate above the median item's; user liked {column}: is the value's share among the "
        f"user's liked items above the average user's; user {column} vs own rate: does the "
        "user like the value more than their average item (user vectors from the reserved "
        "history, targets from the CTR samples). AUC of ridge regression over 5 folds, "
        f"averaged over values; 0.5 = nothing readable; the first row reads the {column} "
        "column alone",
        missing="no vectors of that side, or no value with enough rows of both classes",
    )
