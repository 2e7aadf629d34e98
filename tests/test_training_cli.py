"""The training commands as a user meets them: flags derived from TrainConfig, setup errors before any
run directory exists (issue 12), the machine-fitted worker default, ``-o``.

The setup errors run ``googlenet train`` through its real ``main`` in this process: exit status 2, one
stderr line naming the value, no traceback, nothing written.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from googlenet import cpu
from googlenet.cli import build_parser
from googlenet.cli.train_cmd import recipe_overrides
from googlenet.errors import GoogLeNetError
from googlenet.training.config import TrainConfig, default_workers, resolve_config

from .helpers import cli_in_process


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def _option_dests(command: str) -> dict[str, list[str]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.option_strings for a in sub.choices[command]._actions}


def test_both_commands_take_every_recipe_field() -> None:
    cli_fields = {f.name for f in fields(TrainConfig) if f.metadata.get("cli", True)}
    train, ensemble = _option_dests("train"), _option_dests("train-ensemble")
    assert cli_fields <= set(train)
    assert cli_fields - {"resume"} <= set(ensemble) and "resume" not in ensemble
    assert train["out"] == ensemble["out"] == ["-o", "--out"]
    assert train["model_options"] == ["--model-option"]


def test_help_shows_the_defaults() -> None:
    proc = cli_in_process("train", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "decay factor (section 6: 4% less) (default: 0.96)" in text
    assert "(default: runs/train)" in text and "(default: googlenet)" in text


def test_train_ensemble_takes_builtin_and_mappings_merge() -> None:
    # `train-ensemble --builtin train_per_class=200` once failed with "builtin must be a mapping"
    args = _parse(
        "train-ensemble", "-o", "ens", "--builtin", "train_per_class=200", "--builtin", "classes=3",
        "--augment", "scale=[0.35,1]", "--no-channels-last", "--workers", "0",
    )  # fmt: skip
    overrides = recipe_overrides(args)
    assert overrides == {
        "builtin": {"train_per_class": 200, "classes": 3},
        "augment": {"scale": [0.35, 1]},
        "out": "ens",
        "channels_last": False,
        "workers": 0,
    }
    config = resolve_config(None, overrides)
    assert config.builtin == {"train_per_class": 200, "classes": 3} and config.workers == 0
    assert config.augment == {"scale": [0.35, 1]}
    with pytest.raises(GoogLeNetError, match=r"--builtin 'classes': expected KEY=VALUE"):
        recipe_overrides(_parse("train", "--builtin", "classes"))


def test_values_are_coerced_by_their_annotation() -> None:
    c = TrainConfig.from_dict({"lr": 1, "val_batch_size": None, "init_seed": 4, "data": Path("/d")})
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.val_batch_size is None and c.init_seed == 4
    assert c.data == "/d"
    with pytest.raises(GoogLeNetError, match=r"init_seed must be an integer. Got '4'"):
        TrainConfig.from_dict({"init_seed": "4"})
    with pytest.raises(GoogLeNetError, match="builtin must be a mapping"):
        TrainConfig.from_dict({"builtin": ["classes=3"]})
    with pytest.raises(GoogLeNetError, match="epochs must not be empty"):
        TrainConfig.from_dict({"epochs": None})
    with pytest.raises(GoogLeNetError, match="deterministic must be true or false"):
        TrainConfig.from_dict({"deterministic": 1})


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 2), (4, 3), (16, 4)])
def test_worker_default_fits_the_machine(monkeypatch: pytest.MonkeyPatch, cores: int, workers: int) -> None:
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert default_workers() == workers
    assert TrainConfig().workers == workers


@pytest.fixture
def empty_data(tmp_path: Path) -> Path:
    for split in ("train", "val"):
        (tmp_path / "empty" / split).mkdir(parents=True)
    return tmp_path / "empty"


SETUP_ERRORS = {
    "no classes": (["--data", "{empty}"], "{empty}"),
    "unknown model": (["--model", "nope"], "'nope'"),
    "unknown augment key": (["--augment", "bogus=1"], "'bogus'"),
    "image too small": (["--image-size", "32"], "image_size=32"),
    "unknown builtin key": (["--builtin", "colours=3"], "colours"),
}


@pytest.mark.parametrize("case", SETUP_ERRORS)
def test_setup_errors_leave_nothing_behind(case: str, empty_data: Path, tmp_path: Path) -> None:
    args, named = SETUP_ERRORS[case]
    out = tmp_path / "runs" / "b"
    argv = [a.format(empty=empty_data) for a in args]
    proc = cli_in_process("train", *argv, "-o", out, "--workers", "0")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("googlenet train: error:") and named.format(empty=empty_data) in line
    assert not (tmp_path / "runs").exists()


def test_out_that_is_a_file_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out in (afile, afile / "run"):
        proc = cli_in_process("train", "--out", out)
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
        assert f"--out {out}" in line and "is a file" in line
    assert afile.read_text() == "keep me"
