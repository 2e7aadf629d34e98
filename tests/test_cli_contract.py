"""The command line's contract on bad input, for every sub-command at once (issue 12).

Each sub-command of :func:`googlenet.cli.build_parser` is run with the paths it reads replaced by
a nonexistent path, a directory where a file is expected (or a file where a directory is), a text
file for weights, a truncated weights file and a training checkpoint (``.pt``) where weights are
expected. Every case must end with exit status 2 (1 where the command documents per-file errors and
goes on), exactly one ``googlenet CMD: error:`` line on stderr that names the bad path, no
traceback, and nothing written where the output was asked for.

The table ``PATH_ARGUMENTS`` says, per command, which argument takes which kind of path; a new
sub-command fails :func:`test_every_command_is_in_the_table` until it is described there. Importing
the package costs seconds, so every command's cases run in one subprocess (``HARNESS``: the real
``googlenet.cli.main`` with argv, as ``python -m googlenet`` calls it, its stdout and stderr
captured per case; an exception escaping ``main`` is printed as the interpreter would).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from .helpers import REPO, run_cli

HARNESS = r"""
import contextlib, io, json, sys, traceback
from googlenet.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # what the interpreter would print, and its exit status
            traceback.print_exc()
            code = 1
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""

# Kinds of bad path. For an argument that reads a file: MISSING, DIR (a directory), TEXT (a text
# file named like weights), TRUNCATED (the first half of a real .safetensors), CKPT (a training
# checkpoint). For one that reads a directory, FILE-like kinds stand for "a file where a directory
# is expected": TEXT, TRUNCATED, CKPT.
MISSING, DIR, TEXT, TRUNCATED, CKPT = "missing", "dir", "text", "truncated", "checkpoint"
READS_FILE = (MISSING, DIR, TEXT, TRUNCATED, CKPT)
READS_DIR = (MISSING, TEXT, TRUNCATED, CKPT)


@dataclass(frozen=True)
class PathArgument:
    """One argument of a command that reads a path: ``argv`` with ``{bad}`` where the path goes and
    ``{out}`` where the command's output goes; the kinds to try; the exit status for them."""

    argv: str
    kinds: tuple[str, ...]
    status: int = 2  # 1: the command reports the bad file and goes on with the others


# Placeholders of the good inputs: {data} a 3-class ImageFolder, {weights} its model, {voc} a
# VOC detection folder, {image} a JPEG. Commands that accept a training checkpoint as a model
# (evaluate, predict, export, train-multibox --init-from) leave CKPT out.
MODEL_FILE = (MISSING, DIR, TEXT, TRUNCATED)
PATH_ARGUMENTS: dict[str, list[PathArgument]] = {
    "summary": [PathArgument("summary --json {bad}", (DIR,))],  # reads nothing: its output
    "convert": [PathArgument("convert torchvision {bad} -o {out}.safetensors", READS_FILE)],
    "data make-builtin": [PathArgument("data make-builtin {bad} --classes 2", (TEXT,))],
    "data make-builtin-detection": [PathArgument("data make-builtin-detection {bad}", (TEXT,))],
    "train": [
        PathArgument("train --data {bad} --out {out} --epochs 1 --workers 0", READS_DIR),
        PathArgument("train --data {data} --init-from {bad} --out {out} --workers 0", READS_FILE),
        PathArgument("train --resume {bad}", READS_DIR),
    ],
    "train-ensemble": [PathArgument("train-ensemble --data {bad} --out {out} --n 1", READS_DIR)],
    "evaluate": [
        PathArgument("evaluate --data {data} --checkpoint {bad} --json {out}.json", (*MODEL_FILE, "failed")),
        PathArgument("evaluate --data {bad} --checkpoint {weights} --json {out}.json", READS_DIR),
    ],
    "report": [PathArgument("report {bad} --out {out}", READS_DIR)],
    "prune": [PathArgument("prune {bad} --dry-run", READS_DIR)],
    "predict": [
        PathArgument("predict {image} --checkpoint {bad} --json {out}.json", MODEL_FILE),
        PathArgument("predict {bad} --checkpoint {weights} --image-size 64", (MISSING, TEXT), status=1),
    ],
    "export": [PathArgument("export {bad} -o {out}.onnx", MODEL_FILE)],
    "proposals": [
        PathArgument("proposals --data {bad} --method selective-search --out {out}.json", READS_DIR),
        PathArgument("proposals --data {voc} --method multibox --multibox {bad} --out {out}.json", READS_DIR),
    ],
    "train-multibox": [
        PathArgument("train-multibox --data {bad} --out {out}", READS_DIR),
        PathArgument(
            "train-multibox --data {voc} --init-from {bad} --batch-size 1 --head pool --num-priors 1 "
            "--out {out}",
            MODEL_FILE,
        ),
    ],
    "train-detector": [
        PathArgument("train-detector --data {bad} --out {out} --members 1", READS_DIR),
        PathArgument("train-detector --data {voc} --proposals paper --multibox {bad} --out {out}", READS_DIR),
    ],
    "detect": [PathArgument("detect {image} --detector {bad} --json {out}.json", READS_DIR)],
    "evaluate-detection": [
        PathArgument("evaluate-detection --data {bad} --detections {image} --rule voc07", READS_DIR),
        PathArgument("evaluate-detection --data {voc} --detections {bad} --rule voc07 -o {out}", READS_FILE),
        PathArgument("evaluate-detection --data {voc} --detector {bad} --rule voc07 -o {out}", READS_DIR),
    ],
}


def command_names(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every leaf command of ``parser`` ("train", "data make-builtin", ...), in --help order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [n for name, sub in action.choices.items() for n in command_names(sub, f"{prefix}{name} ")]
    return [prefix.strip()]


def test_every_command_is_in_the_table() -> None:
    from googlenet.cli import build_parser

    assert sorted(command_names(build_parser())) == sorted(PATH_ARGUMENTS)


# --------------------------------------------------------------------------- the inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import PIL.Image

    import googlenet
    from googlenet.data.builtin import make_builtin
    from googlenet.training.checkpoint import CHECKPOINT_FORMAT

    root = tmp_path_factory.mktemp("contract")
    (root / "outputs").mkdir()  # where every case's output would go (each its own name)
    data = make_builtin(
        root / "data", classes=3, train_per_class=1, val_per_class=1, image_size=72, seed=0, workers=1
    )
    names = (data / "classes.txt").read_text().split()
    model = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False, class_names=names)
    weights = googlenet.save(model, root / "model.safetensors")
    blob = Path(weights).read_bytes()
    (root / "truncated.safetensors").write_bytes(blob[: len(blob) // 2])
    (root / "text.safetensors").write_text("these are not weights\n")
    (root / "a_folder.safetensors").mkdir()
    # A training checkpoint where its run directory keeps it (RUN/checkpoints/best.pt).
    (root / "run" / "checkpoints").mkdir(parents=True)
    torch.save(
        {"format": CHECKPOINT_FORMAT, "epoch": 1, "model": model.state_dict()},
        root / "run" / "checkpoints" / "best.pt",
    )
    image = root / "image.jpg"
    PIL.Image.new("RGB", (96, 80), (120, 30, 200)).save(image)
    voc = root / "voc"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    for split, image_id in (("train", "000001"), ("val", "000002")):
        PIL.Image.new("RGB", (96, 80), (20, 200, 40)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>96</width><height>80</height>"
            "<depth>3</depth></size><object><name>disc</name><difficult>0</difficult><bndbox><xmin>10"
            "</xmin><ymin>10</ymin><xmax>60</xmax><ymax>50</ymax></bndbox></object></annotation>"
        )
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{image_id}\n")
    (voc / "classes.txt").write_text("disc\n")
    # An ensemble whose second member failed (train-ensemble records it so in ensemble.json).
    ensemble = root / "ensemble"
    (ensemble / "member_00").mkdir(parents=True)
    googlenet.save(model, ensemble / "member_00" / "model.safetensors")
    (ensemble / "ensemble.json").write_text(
        json.dumps(
            {
                "members": [
                    {"index": 0, "run_dir": "member_00", "status": "complete"},
                    {
                        "index": 1,
                        "run_dir": "member_01",
                        "status": "failed",
                        "error": "loss is nan at step 3",
                    },
                ]
            }
        )
    )
    return {
        "root": root,
        "data": data,
        "weights": Path(weights),
        "image": image,
        "voc": voc,
        MISSING: root / "no_such_path",
        DIR: root / "a_folder.safetensors",
        TEXT: root / "text.safetensors",
        TRUNCATED: root / "truncated.safetensors",
        CKPT: root / "run" / "checkpoints" / "best.pt",
        "failed": ensemble,
    }


def run_in_one_process(argvs: list[list[str]]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_cases(command: str, inputs: dict[str, Path]) -> list[tuple[str, PathArgument, list[str], Path]]:
    """``(kind, argument, argv, out)`` for every bad-path case of ``command``."""
    cases = []
    for arg_number, argument in enumerate(PATH_ARGUMENTS[command]):
        for kind in argument.kinds:
            out = inputs["root"] / "outputs" / f"{command.replace(' ', '_')}_{arg_number}_{kind}"
            text = argument.argv.format(
                bad="\0", out=out, **{k: inputs[k] for k in ("data", "weights", "image", "voc")}
            )
            argv = [str(inputs[kind]) if word == "\0" else word for word in text.split()]
            cases.append((kind, argument, argv, out))
    return cases


@pytest.fixture(scope="module")
def results(inputs: dict[str, Path]) -> dict[str, list[dict]]:
    """Every command's cases, run in ONE subprocess (importing the package costs seconds per process)."""
    before = inputs[TEXT].read_bytes()
    flat = [(c, case[2]) for c in sorted(PATH_ARGUMENTS) for case in command_cases(c, inputs)]
    outcome = run_in_one_process([argv for _, argv in flat])
    assert inputs[TEXT].read_bytes() == before, "a command wrote into the file it was given as input"
    by_command: dict[str, list[dict]] = {}
    for (command, _), result in zip(flat, outcome, strict=True):
        by_command.setdefault(command, []).append(result)
    return by_command


@pytest.mark.parametrize("command", sorted(PATH_ARGUMENTS))
def test_bad_paths_get_one_line_naming_them(
    command: str, inputs: dict[str, Path], results: dict[str, list[dict]]
) -> None:
    cases = command_cases(command, inputs)
    prefix = f"googlenet {command.split()[0]}: error:"
    for (kind, argument, argv, out), result in zip(cases, results[command], strict=True):
        where = f"{kind}: googlenet {' '.join(argv)}\n--- stderr:\n{result['stderr']}"
        assert "Traceback" not in result["stderr"], where
        assert result["code"] == argument.status, where
        errors = [line for line in result["stderr"].splitlines() if line.startswith(prefix)]
        assert len(errors) == 1, where
        assert str(inputs[kind]) in errors[0], where
        written = [p for p in out.parent.glob(f"{out.name}*")] if out.parent.exists() else []
        assert written == [], f"{where}\nwritten: {written}"


# --------------------------------------------------------------------------- the conventions


def test_version_flag() -> None:
    import googlenet

    for flag in ("--version", "-V"):
        proc = run_cli(flag)
        assert proc.returncode == 0 and proc.stdout.strip() == f"googlenet {googlenet.__version__}"


def test_help_shows_every_default_and_lists_commands_by_layer() -> None:
    from googlenet.cli import build_parser

    parser = build_parser()

    def parsers(p: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                return [x for n, sub in action.choices.items() for x in parsers(sub, f"{name} {n}".strip())]
        return [(name, p)]

    for name, sub in parsers(parser, ""):
        formatter = sub._get_formatter()
        for action in sub._actions:
            if action.help in (None, argparse.SUPPRESS) or action.default in (None, False, argparse.SUPPRESS):
                continue
            if isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.required:
                continue
            shown = formatter._expand_help(action)
            assert "default" in shown.lower(), f"googlenet {name} {action.option_strings}: {shown!r}"
    order = command_names(parser)
    layers = [
        ("summary", "convert"),
        ("data make-builtin",),
        ("train", "train-ensemble"),
        ("evaluate", "report"),
        ("predict", "export"),
        ("proposals", "train-multibox", "train-detector", "detect", "evaluate-detection"),
    ]
    positions = [[order.index(c) for c in layer] for layer in layers]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(positions)), order


def test_output_and_json_flags_mean_the_same_everywhere(tmp_path: Path) -> None:
    # -o/--out names what a command writes; --json alone is stdout, --json FILE a file.
    from googlenet.cli import build_parser

    parser = build_parser()
    subs = {
        n: p
        for a in parser._actions
        if isinstance(a, argparse._SubParsersAction)
        for n, p in a.choices.items()
    }
    writers = "convert train train-ensemble train-detector train-multibox report proposals export evaluate"
    writers += " evaluate-detection predict summary detect"
    for name in writers.split():
        flags = {s for a in subs[name]._actions for s in a.option_strings}
        assert {"-o", "--out"} <= flags, name
    for name in ("summary", "predict", "evaluate", "evaluate-detection", "detect"):
        (json_action,) = [a for a in subs[name]._actions if "--json" in a.option_strings]
        assert json_action.nargs == "?" and json_action.const == "-", name
    out = tmp_path / "summary.json"
    results = run_in_one_process(
        [
            ["summary", "--model", "googlenet_bn", "--json"],
            ["summary", "--model", "googlenet_bn", "-o", str(out)],
        ]
    )
    assert [r["code"] for r in results] == [0, 0], results
    assert json.loads(results[0]["stdout"])["totals"] == json.loads(out.read_text())["totals"]
    assert results[1]["stdout"] == ""  # the JSON went to the file, and the text table with it
