"""``googlenet predict`` through its real ``main`` in this process (``cli_in_process``): good and broken
files, folders, globs, JSON, exit status. ``python -m googlenet`` itself is tested in test_cli_contract.py."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from .helpers import cli_in_process, one_error_line

CLASSES = ["cat", "dog", "fox"]


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels: a decompression bomb for PIL."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import googlenet

    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    model = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False, class_names=CLASSES)
    googlenet.save(model, root / "model.safetensors")
    rng = np.random.default_rng(0)
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "sub/c.jpeg"):
        PIL.Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(images / name)
    (images / "notes.txt").write_text("not an image, and not picked from the folder\n")
    broken = root / "broken"
    broken.mkdir()
    (broken / "text.jpg").write_text("this is text, not a JPEG\n")
    (broken / "empty.jpg").write_bytes(b"")
    jpeg = (images / "a.jpg").read_bytes()
    (broken / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (broken / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    return {"root": root, "model": root / "model.safetensors", "images": images, "broken": broken}


def test_predict_good_and_broken_files(files) -> None:
    broken = files["broken"]
    bad = [broken / n for n in ("text.jpg", "truncated.jpg", "empty.jpg", "bomb.png")]
    proc = cli_in_process(
        "predict", str(files["images"]), str(bad[0]), str(bad[1]), str(files["images"] / "a.*"), str(bad[2]),
        str(bad[3]), str(files["root"] / "missing.jpg"),
        "--checkpoint", str(files["model"]), "--image-size", "64", "--crops", "10", "--topk", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = proc.stderr.strip().splitlines()
    # One line per bad input, naming it; nothing else on stderr.
    assert len(errors) == 5, errors
    for path in [*bad, files["root"] / "missing.jpg"]:
        assert sum(str(path) in line for line in errors) == 1, (path, errors)
    assert all(line.startswith("googlenet predict: error: ") for line in errors)
    assert "DecompressionBomb" in next(line for line in errors if "bomb.png" in line)
    records = json.loads(proc.stdout)
    images = files["images"]
    # Every failed input is a record too, with its error (the same line as on stderr).
    failed = {r["path"]: r["error"] for r in records if "error" in r}
    assert set(failed) == {str(p) for p in [*bad, files["root"] / "missing.jpg"]}
    assert all(f"googlenet predict: error: {message}" in errors for message in failed.values())
    # The folder (recursively, image extensions only), then the glob; broken files left out.
    records = [r for r in records if "predictions" in r]
    expected = [images / "a.jpg", images / "b.png", images / "sub" / "c.jpeg", images / "a.jpg"]
    assert [r["path"] for r in records] == [str(p) for p in expected]
    for record in records:
        preds = record["predictions"]
        assert len(preds) == 2
        assert preds[0]["probability"] >= preds[1]["probability"]
        assert all(p["class_name"] == CLASSES[p["class_index"]] for p in preds)
    assert records[0]["predictions"] == records[3]["predictions"]  # same file, same answer

    # The top classes match the model run by hand on the same 10 crops.
    import googlenet
    from googlenet.data.datasets import open_image
    from googlenet.data.multicrop import multicrop

    model = googlenet.load(files["model"])
    mean, std = torch.tensor(model.meta.mean).view(1, 3, 1, 1), torch.tensor(model.meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        crops = (multicrop(open_image(images / "b.png"), "10", 64) - mean) / std
        probs = torch.softmax(model(crops), -1).mean(0)
    want = probs.topk(2)
    got = records[1]["predictions"]
    assert [p["class_index"] for p in got] == want.indices.tolist()
    assert [p["probability"] for p in got] == pytest.approx(want.values.tolist(), abs=1e-4)


def test_predict_text_output(files, capsys) -> None:
    from googlenet.cli import main

    # main() itself, its output read through capsys.
    assert (
        main(
            [
                "predict",
                str(files["images"] / "b.png"),
                "--checkpoint",
                str(files["model"]),
                "--image-size",
                "64",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(files["images"] / "b.png") and len(lines) == 1 + 3  # top-5 of 3 classes
    assert {line.split()[1] for line in lines[1:]} == set(CLASSES)


def test_predict_unknown_checkpoint_exits_2_naming_it(files) -> None:
    missing = files["root"] / "no_such_run"
    proc = cli_in_process("predict", str(files["images"] / "b.png"), "--checkpoint", str(missing))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"googlenet predict: error: checkpoint {missing} does not exist"
    assert proc.stdout == ""


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_predict_bad_device_is_one_line(files, device: str) -> None:
    proc = cli_in_process(
        "predict", str(files["images"] / "b.png"), "--checkpoint", str(files["model"]), "--device", device
    )
    one_error_line(proc, "predict", repr(device))


def _dataset(root: Path, per_class: int = 4) -> Path:
    """A tiny ImageFolder dataset (train/ only) of noise images, for calibration."""
    rng = np.random.default_rng(1)
    for name in CLASSES:
        (root / "train" / name).mkdir(parents=True)
        for i in range(per_class):
            PIL.Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(
                root / "train" / name / f"{i}.png"
            )
    return root


def test_predict_int8_calibrates_from_a_folder_or_the_run(files, tmp_path: Path) -> None:
    import yaml

    image = str(files["images"] / "b.png")
    common = ("--backend", "onnxruntime", "--precision", "int8", "--image-size", "64", "--json")
    # A bare weights file names no training data: the error says what to pass.
    proc = cli_in_process("predict", image, "--checkpoint", str(files["model"]), *common)
    one_error_line(proc, "predict", "--calibration DIR", str(files["model"]))
    proc = cli_in_process(
        "predict",
        image,
        "--checkpoint",
        str(files["model"]),
        *common,
        "--calibration",
        str(tmp_path / "nope"),
    )
    one_error_line(proc, "predict", "--calibration", "does not exist")

    data = _dataset(tmp_path / "data")
    proc = cli_in_process(
        "predict", image, "--checkpoint", str(files["model"]), *common, "--calibration", str(data)
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    assert record["path"] == image and len(record["predictions"]) == 3

    # A run directory whose config.yaml names its training data calibrates on it, no flag needed
    # (without it: the one-line error above); and without --backend, int8 goes to a backend that
    # runs it (auto's int8 path), not torch.
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(files["model"].read_bytes())
    (run / "config.yaml").write_text(
        yaml.safe_dump({"data": str(data), "layout": "imagefolder", "image_size": 64})
    )
    proc = cli_in_process("predict", image, "--checkpoint", str(run), "--precision", "int8", "--json")
    assert proc.returncode == 0, proc.stderr
    (from_run,) = json.loads(proc.stdout)
    assert from_run["path"] == image and len(from_run["predictions"]) == 3


def test_predict_progress_only_on_a_terminal_and_for_long_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from googlenet.evaluation import predict as predict_module
    from googlenet.progress import progress_bar

    def predict_bar() -> object:  # as predict makes it
        return progress_bar(1000, "predict", piped_every_s=None, delay=predict_module.PROGRESS_DELAY_S)

    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: no bar at all
    assert predict_bar().disable
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", tty)
    bar = predict_bar()
    assert not bar.disable and bar.delay == predict_module.PROGRESS_DELAY_S  # shown once a run lasts
    bar.close()


def test_predict_accepts_a_training_checkpoint(files, tmp_path: Path) -> None:
    import googlenet
    from googlenet.training.checkpoint import CHECKPOINT_FORMAT

    # As train saves it: the variant's default auxiliary heads present, the backbone as in the file.
    model = googlenet.create_model("googlenet_bn", num_classes=3, class_names=CLASSES)
    missing, unexpected = model.load_state_dict(googlenet.load(files["model"]).state_dict(), strict=False)
    assert not unexpected and all(k.startswith("aux") for k in missing)
    state = model.state_dict()
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "epoch": 2,
            "config": {"model": "googlenet_bn", "image_size": 64},
            "class_names": CLASSES,
            "model": state,
            "ema": {**{f"module.{k}": v for k, v in state.items()}, "n_averaged": torch.tensor(2)},
        },
        best,
    )
    image = str(files["images"] / "b.png")
    from_weights = cli_in_process(
        "predict", image, "--checkpoint", str(files["model"]), "--image-size", "64", "--json"
    )
    from_best = cli_in_process("predict", image, "--checkpoint", str(best), "--json")
    assert from_best.returncode == 0, from_best.stderr
    # Same weights (the averaged copy), and the checkpoint's trained size (64) by default.
    assert json.loads(from_best.stdout) == json.loads(from_weights.stdout)


def test_library_predict_paths_pil_images_and_unreadable_files(files) -> None:
    import googlenet
    from googlenet.data.datasets import open_image
    from googlenet.evaluation.predict import ClassScore, Prediction

    path = files["images"] / "b.png"
    broken = files["broken"] / "text.jpg"
    pil = open_image(path)  # the same pixels as the file, in memory
    got = googlenet.predict([pil, str(path), broken], files["model"], image_size=64, crops=10, topk=2)
    assert [type(p) for p in got] == [Prediction] * 3
    from_pil, from_path, failed = got
    assert from_pil.path is None and from_path.path == str(path) and failed.path == str(broken)
    assert from_pil.ok and from_path.ok and not failed.ok and failed.predictions == []
    assert str(broken) in failed.error
    assert len(from_path.predictions) == 2 and isinstance(from_path.predictions[0], ClassScore)
    assert [s.class_index for s in from_pil.predictions] == [s.class_index for s in from_path.predictions]
    assert [s.probability for s in from_pil.predictions] == pytest.approx(
        [s.probability for s in from_path.predictions], abs=1e-6
    )
    assert all(s.class_name == CLASSES[s.class_index] for s in from_path.predictions)
    # to_dict() is the command's --json record, exactly.
    proc = cli_in_process(
        "predict", path, broken, "--checkpoint", files["model"], "--image-size", "64", "--crops", "10",
        "--topk", "2", "--json",
    )  # fmt: skip
    assert json.loads(proc.stdout) == [from_path.to_dict(), failed.to_dict()]
    # A model in memory, and one image on its own.
    (alone,) = googlenet.predict(path, googlenet.load(files["model"]), image_size=64, crops="10", topk=2)
    assert alone.to_dict() == from_path.to_dict()


def test_library_predict_checks_arguments_before_loading(files) -> None:
    import googlenet
    from googlenet.errors import GoogLeNetError

    missing = files["root"] / "no_such_run"
    image = files["images"] / "b.png"
    for kwargs, message in [
        ({"topk": 0}, "--topk must be at least 1. Got 0"),
        ({"crops": 5}, "crops: crop scheme must be one of 1, 10, 144. Got 5"),
        ({"calibration": files["root"]}, "--calibration applies to --precision int8, not fp32"),
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'"),
        ({"workers": -1}, "--workers at least 0"),
    ]:
        with pytest.raises(GoogLeNetError, match=re.escape(message)):
            googlenet.predict(image, missing, **kwargs)
    with pytest.raises(GoogLeNetError, match=re.escape("images[1]: expected a file path or a PIL image")):
        googlenet.predict([image, 3], files["model"])
    with pytest.raises(GoogLeNetError, match=f"checkpoint {re.escape(str(missing))} does not exist"):
        googlenet.predict(image, missing)
    assert googlenet.predict([], files["model"]) == []
