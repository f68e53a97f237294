"""Run directories (stage caching, keys, partial folders) and config validation."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pytest

from knowrec.config import Section, apply_overrides, load_config, read_toml
from knowrec.errors import ConfigError
from knowrec.runs import Run


def _writer(calls: list[str], name: str):
    def build(work: Path) -> None:
        calls.append(name)
        (work / "value.txt").write_text(name)

    return build


def _read(folder: Path) -> str:
    return (folder / "value.txt").read_text()


def test_stages_are_cached_and_keyed_by_params_and_dependencies(tmp_path: Path) -> None:
    calls: list[str] = []
    run = Run(tmp_path, {"x": 1})
    assert run.stage("a", {"p": 1}, _writer(calls, "a1"), _read) == "a1"
    assert run.stage("b", {"q": 1}, _writer(calls, "b1"), _read, after=["a"]) == "b1"

    again = Run(tmp_path)
    assert again.stage("a", {"p": 1}, _writer(calls, "a-other"), _read) == "a1"
    assert again.stage("b", {"q": 1}, _writer(calls, "b-other"), _read, after=["a"]) == "b1"
    assert calls == ["a1", "b1"]  # nothing rebuilt
    assert again.manifest["stages"]["a"]["cached"] is True

    changed = Run(tmp_path)
    assert changed.stage("a", {"p": 2}, _writer(calls, "a2"), _read) == "a2"
    # b's parameters are the same but its input changed: rebuilt
    assert changed.stage("b", {"q": 1}, _writer(calls, "b2"), _read, after=["a"]) == "b2"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stages"]["b"]["cached"] is False and "python" in manifest["versions"]


def test_a_failed_stage_leaves_only_a_partial_folder(tmp_path: Path) -> None:
    def crash(work: Path) -> None:
        (work / "checkpoint").write_text("half done")
        raise RuntimeError("killed")

    run = Run(tmp_path)
    with pytest.raises(RuntimeError):
        run.stage("train", {"lr": 0.1}, crash, _read)
    partial = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert len(partial) == 1 and partial[0].endswith(".partial")

    seen: list[str] = []

    def resume(work: Path) -> None:
        seen.append((work / "checkpoint").read_text())  # the work so far is still there
        (work / "value.txt").write_text("done")

    assert run.stage("train", {"lr": 0.1}, resume, _read) == "done"
    assert seen == ["half done"]
    with pytest.raises(ConfigError, match="not run yet"):
        run.stage("eval", {}, resume, _read, after=["missing"])


def _write_pid(value: str, work: Path) -> None:  # module level: a worker process unpickles it
    (work / "value.txt").write_text(f"{value} {os.getpid()}")


def _crash(work: Path) -> None:
    (work / "checkpoint").write_text("half done")
    raise RuntimeError("killed")


def _never(work: Path) -> None:
    raise AssertionError("a prebuilt stage was built again")


def test_prebuild_builds_the_missing_stages_in_worker_processes(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.stage("data", {}, partial(_write_pid, "data"), _read)
    stages = [(f"m{i}", {"i": i}, partial(_write_pid, f"m{i}"), ["data"]) for i in range(3)]
    run.stage("m0", {"i": 0}, partial(_write_pid, "m0"), _read, after=["data"])  # finished
    run.prebuild(stages, workers=2)
    values = [run.stage(n, p, _never, _read, after=a).split() for n, p, _, a in stages]
    assert [v[0] for v in values] == ["m0", "m1", "m2"]
    assert values[0][1] == str(os.getpid())  # built here before, not again
    assert {v[1] for v in values[1:]} - {str(os.getpid())} == {v[1] for v in values[1:]}
    manifest = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert [manifest[f"m{i}"]["cached"] for i in range(3)] == [True, False, False]
    assert run.folder("m1").name.startswith("m1-")

    with pytest.raises(RuntimeError, match="killed"):
        run.prebuild([("bad", {}, _crash, ["data"])], workers=2)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("bad-")]
    assert len(left) == 1 and left[0].endswith(".partial")  # a rerun resumes in it


class Train(Section):
    lr: float = 1e-3
    epochs: int = 1


class Config(Section):
    name: str
    train: Train = Train()


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\n[train]\nlr = 0.5\n')
    assert load_config(good, Config).train.lr == 0.5

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[train]\nlr = "fast"\nepoch = 3\n')
    with pytest.raises(ConfigError, match=r"bad.toml: train.lr: .*; train.epoch: Extra"):
        load_config(bad, Config)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, Config)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml", Config)


def test_config_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\nitems = [{a = 1}, {a = 2}]\n[train]\nlr = 0.5\n')
    data = apply_overrides(
        read_toml(path),
        ["train.lr=0.1", "name=plain words", "items.1.a=5", 'new.deep.key="s"', "flag=true"],
    )
    assert data["train"]["lr"] == 0.1 and data["name"] == "plain words"
    assert data["items"] == [{"a": 1}, {"a": 5}] and data["new"] == {"deep": {"key": "s"}}
    assert data["flag"] is True
    simple = tmp_path / "d.toml"
    simple.write_text('name = "x"\n')
    assert load_config(simple, Config, ["train.lr=2"]).train.lr == 2.0
    cfg = load_config(simple, Config)
    assert load_config(cfg, Config) is cfg
    assert load_config(cfg, Config, ["train.lr=3"]).train.lr == 3.0
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        apply_overrides({}, ["lr"])
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides(read_toml(path), ["items.2.a=1"])
    with pytest.raises(ConfigError, match="is a value"):
        apply_overrides(read_toml(path), ["name.first=1"])
    with pytest.raises(ConfigError, match=r"train.lr: Input should be a valid number"):
        load_config(simple, Config, ["train.lr=fast"])
