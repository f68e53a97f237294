"""One registry per kind of component: names, overwrite policy, parameter checks, lazy
imports, and third-party components from a config's ``plugins`` or from entry points."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from knowrec.config import load_config, pipeline_runner
from knowrec.errors import ConfigError, RegistryError
from knowrec.registry import (
    BACKBONES,
    LLM_BACKENDS,
    PIPELINES,
    RANKERS,
    RECALL_PATHS,
    Registry,
)

KNOWREC = [sys.executable, "-m", "knowrec"]
REGISTRIES = (BACKBONES, RECALL_PATHS, RANKERS, LLM_BACKENDS, PIPELINES)

# A third-party module: a recall path and a pipeline that register themselves on import.
PLUGIN = '''
import json
from pathlib import Path

from knowrec.registry import PIPELINES, RECALL_PATHS
from knowrec.retrieval import Candidate, RecallPath


@RECALL_PATHS.register("test_popular")
class PopularPath(RecallPath):
    """The most engaged items, the same for every trigger."""

    def __init__(self, *, rule: str | None = None, top: int = 10, name: str | None = None):
        super().__init__(name=name)
        self.rule, self.top = rule, top

    def fit(self, interactions=None, items=None):
        counts = interactions.group_by("item_id").len()
        ranked = counts.sort(["len", "item_id"], descending=[True, False])["item_id"]
        self.ranked = ranked.to_list()[: self.top]
        self.corpus = set(interactions["item_id"].to_list())
        return self

    def _recall_known(self, triggers, k):
        return {
            t: [Candidate(i, 1.0, {self.name: 1.0}) for i in self.ranked if i != t][:k]
            for t in triggers
        }


@PIPELINES.register("test_echo")
def run_echo(config, out, console=None, *, overrides=()):
    Path(out).mkdir(parents=True, exist_ok=True)
    record = {"config": str(config), "overrides": list(overrides)}
    (Path(out) / "echo.json").write_text(json.dumps(record))
    return record
'''

# An entry-point plugin: a plain class, named only by its package's metadata.
EP_MODULE = """
class Widget:
    def __init__(self, *, size: int = 1):
        self.size = size
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin modules; what they register is forgotten after."""
    before = {id(r): set(r.names()) for r in REGISTRIES}
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(folder)
    yield folder
    for registry in REGISTRIES:
        for name in set(registry.names()) - before[id(registry)]:
            with contextlib.suppress(KeyError):
                del registry[name]
    for module in [m for m in sys.modules if m.startswith("knowrec_test_")]:
        del sys.modules[module]


def write_dist(folder: Path, group: str, name: str, target: str) -> None:
    """An installed distribution (``*.dist-info``) declaring one entry point."""
    info = folder / "knowrec_test_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: knowrec-test-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


# ----------------------------------------------------------------------------- names


def test_an_unknown_name_lists_the_known_ones() -> None:
    widgets = Registry("widget", lazy={"b": "json:dumps", "a": "json:loads"})
    with pytest.raises(ConfigError, match=r"^unknown widget 'c'; known widgets are a, b$"):
        widgets.get("c")
    with pytest.raises(RegistryError, match=r"^unknown backbone 'gru4rec'; known backbones are "):
        BACKBONES.get("gru4rec")
    msg = r"^unknown LLM backend 'vllm'; known LLM backends are llamacpp, openai, transformers"
    with pytest.raises(RegistryError, match=msg):
        LLM_BACKENDS.build("vllm")
    assert widgets.get("c", None) is None and "c" not in widgets
    assert widgets.get("A") is json.loads  # names are case-insensitive


def test_a_taken_name_needs_replace_for_another_component() -> None:
    widgets = Registry("widget")

    @widgets.register("w")
    def first() -> int:
        return 1

    def second() -> int:
        return 2

    widgets.register("w", first)  # the same component again is fine
    with pytest.raises(RegistryError, match=r"widget 'w' is already registered as .*first"):
        widgets.register("w", second)
    widgets.register("w", second, replace=True)
    assert widgets.get("w") is second
    widgets["w"] = first  # item assignment replaces, like a dict
    assert widgets.get("w") is first and list(widgets) == ["w"]
    with pytest.raises(RegistryError, match="is not 'module:attr'"):
        widgets.register("x", "json")


def test_a_base_class_is_enforced_and_names_are_set() -> None:
    with pytest.raises(RegistryError, match=r"recall path 'x': .* is not a subclass of"):
        RECALL_PATHS.register("x", dict)
    assert RECALL_PATHS.get("coclick").kind == "coclick"


# ----------------------------------------------------------------------------- parameters


def test_build_checks_parameters_against_the_signature() -> None:
    widgets = Registry("widget")

    @widgets.register("box")
    class Box:
        def __init__(self, size: int, *, colour: str = "red") -> None:
            self.size, self.colour = size, colour

    box = widgets.build("box", size=2, colour="blue")
    assert (box.size, box.colour) == (2, "blue")
    assert widgets.build("box", 3).size == 3  # positional arguments pass through
    msg = r"^unknown parameter 'color' for widget 'box'; known parameters are size, colour$"
    with pytest.raises(ConfigError, match=msg):
        widgets.build("box", size=2, color="blue")
    with pytest.raises(ConfigError, match=r"^unknown parameters 'a', 'b' for widget 'box'"):
        widgets.check("box", {"a": 1, "b": 2})
    with pytest.raises(ConfigError, match=r"^missing parameter 'size' for widget 'box'$"):
        widgets.build("box")
    widgets.register("any", dict)  # a builtin without a signature: nothing to check
    assert widgets.build("any", x=1) == {"x": 1}
    with pytest.raises(ConfigError, match=r"known parameters are rule, factors, regularization"):
        RECALL_PATHS.check("cf", {"factor": 8})


# ----------------------------------------------------------------------------- lazy imports


def test_a_lazy_entry_is_imported_on_first_get_only(plugins: Path) -> None:
    (plugins / "knowrec_test_lazy.py").write_text(EP_MODULE)
    widgets = Registry("widget", lazy={"widget": "knowrec_test_lazy:Widget"})
    assert widgets.names() == ["widget"] and "widget" in widgets
    assert "knowrec_test_lazy" not in sys.modules
    assert widgets.build("widget", size=3).size == 3
    assert "knowrec_test_lazy" in sys.modules
    assert widgets.get("widget") is sys.modules["knowrec_test_lazy"].Widget
    broken = Registry("widget", lazy={"gone": "knowrec_test_absent:Widget"})
    msg = r"^widget 'gone': cannot import knowrec_test_absent:Widget \(ModuleNotFoundError"
    with pytest.raises(ConfigError, match=msg):
        broken.get("gone")


def test_listing_the_built_in_names_imports_none_of_them() -> None:
    code = (
        "import sys; from knowrec.registry import BACKBONES, RECALL_PATHS, LLM_BACKENDS;"
        "names = BACKBONES.names() + RECALL_PATHS.names() + LLM_BACKENDS.names();"
        "print(len(names), sorted(m for m in sys.modules if m.split('.')[0] == 'torch'"
        " or m.startswith(('knowrec.models', 'knowrec.retrieval', 'knowrec.llm'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split(maxsplit=1) == ["11", "[]\n"], out.stderr


def test_cli_backend_help_comes_from_the_registry() -> None:
    from knowrec.cli import BackendOpt

    assert BackendOpt.__metadata__[0].help == "LLM backend: llamacpp | openai | transformers"


# ----------------------------------------------------------------------------- plugins


def test_a_config_plugin_registers_a_recall_path_the_pipeline_accepts(plugins: Path) -> None:
    from knowrec.explore.config import ExploreConfig
    from knowrec.explore.pipeline import run_explore
    from knowrec.explore.stages import Resources, build_path

    (plugins / "knowrec_test_plugin.py").write_text(PLUGIN)
    config = plugins / "popular.toml"
    config.write_text(
        'plugins = ["knowrec_test_plugin"]\npipeline = "explore"\n\n'
        '[final]\nquality = "none"\n\n[[recall.paths]]\nkind = "test_popular"\n'
        "params = {top = 2}\n"
    )
    assert pipeline_runner(config) is run_explore  # what `knowrec run` does first
    cfg = load_config(config, ExploreConfig)
    res = Resources(cfg, plugins, ([], np.zeros((0, 4), dtype=np.float32)), llm=None)
    path = build_path(cfg.recall.paths[0], res)
    assert (path.kind, path.top, path.rule) == ("test_popular", 2, cfg.sessions.rule)
    log = pl.DataFrame({"item_id": ["a", "b", "b", "c", "c", "c"]})
    recs = path.fit(log).recall(["c", "a"], k=5)
    assert {t: [c.item_id for c in cands] for t, cands in recs.items()} == {
        "c": ["b"],
        "a": ["c", "b"],
    }

    config.write_text(config.read_text().replace("top = 2", "tpo = 2"))  # fails at load
    msg = "recall.paths.0.params: unknown parameter 'tpo' for recall path 'test_popular'; known"
    with pytest.raises(ConfigError, match=msg):
        load_config(config, ExploreConfig)
    config.write_text('plugins = ["knowrec_test_absent"]\npipeline = "explore"\n')
    msg = (
        f"^{config}: plugins: cannot import plugin 'knowrec_test_absent' "
        r"\(ModuleNotFoundError: No module named 'knowrec_test_absent'\)$"
    )
    with pytest.raises(ConfigError, match=msg):
        load_config(config, ExploreConfig)
    config.write_text('plugins = "knowrec_test_plugin"\npipeline = "explore"\n')
    with pytest.raises(ConfigError, match="plugins: expected a list of module names"):
        pipeline_runner(config)


def test_an_entry_point_component_loads_when_first_named(plugins: Path) -> None:
    (plugins / "knowrec_test_ep.py").write_text(EP_MODULE)
    write_dist(plugins, "knowrec.ranker", "test_widget", "knowrec_test_ep:Widget")
    assert "test_widget" in RANKERS.names() and "knowrec_test_ep" not in sys.modules
    assert RANKERS.build("test_widget", size=4).size == 4
    with pytest.raises(ConfigError, match="unknown parameter 'sise' for ranker 'test_widget'"):
        RANKERS.build("test_widget", sise=4)


def test_knowrec_run_with_a_plugin_pipeline(plugins: Path, tmp_path: Path) -> None:
    (plugins / "knowrec_test_plugin.py").write_text(PLUGIN)
    config = tmp_path / "echo.toml"
    config.write_text('plugins = ["knowrec_test_plugin"]\npipeline = "test_echo"\n')
    paths = [str(plugins), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    args = [*KNOWREC, "run", str(config), "--out", str(tmp_path / "out"), "--set", "x=1"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    echo = json.loads((tmp_path / "out" / "echo.json").read_text())
    assert echo == {"config": str(config), "overrides": ["x=1"]}

    config.write_text('plugins = ["knowrec_test_plugin"]\npipeline = "test_echoo"\n')
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"error: {config}: unknown pipeline 'test_echoo'; known pipelines are explore, hknr, "
        "test_echo, trawl"
    ]
