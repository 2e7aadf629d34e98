"""Section 7 protocol: crop/model averaging against hand computation, Table 3 rows, the evaluate CLI."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from googlenet.data.multicrop import multicrop
from googlenet.evaluation.metrics import topk_errors
from googlenet.evaluation.protocol import (
    EvalModel,
    crop_probabilities,
    table3,
    table3_spread,
)
from googlenet.evaluation.tables import format_spread, format_table3
from googlenet.training.loading import load_model

from .helpers import (
    ChannelMeans,
    cli_in_process,
    noise_images,
    one_error_line,
    what_was_evaluated,
    write_evaluation_runs,
)

SIZE = 32


def hand_probabilities(image, scheme, mean, std, combine):
    """Softmax of each crop's logits in float64 (exp and sums by hand), combined over crops."""
    crops = multicrop(image, scheme, SIZE).double()
    feats = (
        (crops - torch.tensor(mean).double()[:, None, None]) / torch.tensor(std).double()[:, None, None]
    ).mean((2, 3))
    per_crop = []
    for logits in (feats @ ChannelMeans.W.double()).tolist():
        exps = [math.exp(z - max(logits)) for z in logits]
        per_crop.append([e / sum(exps) for e in exps])
    columns = list(zip(*per_crop, strict=True))
    return [sum(c) / len(c) if combine == "mean" else max(c) for c in columns]


@pytest.mark.parametrize("combine", ["mean", "max"])
def test_crop_probabilities_match_hand_computation(combine) -> None:
    a, b = ChannelMeans(), ChannelMeans()
    # Two models with different preprocessing: each must normalise the crops its own way.
    models = [
        EvalModel("a", a, (0.5, 0.4, 0.3), (0.25, 0.2, 0.5)),
        EvalModel("b", b, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ]
    result = crop_probabilities(noise_images(), models, ["1", "10", "144"], SIZE, combine, batch_size=15)
    assert result.unreadable == [] and result.num_images == 3 and result.combine == combine
    for m, model in enumerate(models):
        for scheme in ("1", "10", "144"):
            got = result.probs[(m, scheme)]
            assert got.shape == (3, 3)
            for i, image in enumerate(noise_images()):
                want = hand_probabilities(image, scheme, model.mean, model.std, combine)
                assert got[i].tolist() == pytest.approx(want, abs=1e-5), (m, scheme, i)
    # Batching: several images per batch for "1" (batch 15 holds all three), one image's crops
    # never split ("10": 10 + 10 > 15), a 144-crop image alone.
    # Flushed as they fill: "10" and "144" at images 1 and 2, the rest at the end.
    assert a.batches == [10, 144, 10, 144, 3, 10, 144]
    assert a.batches == b.batches


def test_unreadable_images_are_reported_and_counted_as_errors(tmp_path) -> None:
    good = tmp_path / "good.png"
    noise_images()[0].save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a jpeg")
    model = EvalModel("a", ChannelMeans(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    strip = PIL.Image.new("RGB", (300_000, 1))  # decodes, but cannot be resized to the crop scales
    result = crop_probabilities([good, bad, strip], [model], ["1"], SIZE)
    assert [i for i, _ in result.unreadable] == [1, 2]
    assert str(bad) in result.unreadable[0][1] and "too elongated" in result.unreadable[1][1]
    probs = result.probs[(0, "1")]
    assert torch.isnan(probs[1:]).all() and not torch.isnan(probs[0]).any()
    label = int(probs[0].argmax())
    # The readable image is right, the unreadable ones are wrong: 2/3, not 0% over one image.
    assert topk_errors(probs, torch.tensor([label] * 3), ks=(1, 3)) == pytest.approx([2 / 3, 2 / 3])


V = [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]


def ranked(*orders: list[int]) -> torch.Tensor:
    """Rows of probabilities where class ``order[j]`` gets ``V[j]``."""
    out = torch.zeros(len(orders), 6)
    for row, order in enumerate(orders):
        for j, c in enumerate(order):
            out[row, c] = V[j]
    return out


def hand_made_probs() -> dict[tuple[int, str], torch.Tensor]:
    right = ranked([0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5], [2, 0, 1, 3, 4, 5], [3, 0, 1, 2, 4, 5])
    return {
        # model 0 at 1 crop: images 0, 1 right; image 2 top-5 only; image 3 (label 6th) wrong.
        (0, "1"): ranked([0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5], [0, 2, 1, 3, 4, 5], [0, 1, 2, 4, 5, 3]),
        # model 1 at 1 crop: only image 1 wrong at top-1 -> the better single model.
        (1, "1"): ranked([0, 1, 2, 3, 4, 5], [0, 2, 1, 3, 4, 5], [2, 1, 0, 3, 4, 5], [3, 0, 1, 2, 4, 5]),
        (0, "10"): right,
        (1, "10"): right,
    }


LABELS = torch.tensor([0, 1, 2, 3])


def test_topk_errors_by_hand() -> None:
    probs = hand_made_probs()
    assert topk_errors(probs[(0, "1")], LABELS) == [0.5, 0.25]
    assert topk_errors(probs[(1, "1")], LABELS) == [0.25, 0.0]


def test_table3_rows_costs_and_deltas() -> None:
    rows = table3(hand_made_probs(), LABELS, model_names=["m0", "m1"])
    got = [(r.models, r.crops, r.cost, r.topk_error, r.top1_error, r.model_names) for r in rows]
    # Ensemble at 1 crop, averaging the two models' probabilities by hand:
    # image 1: class 0 (0.25 + 0.40) / 2 = 0.325 beats class 1 (0.40 + 0.15) / 2 = 0.275 -> wrong;
    # image 2: class 2 (0.25 + 0.40) / 2 = 0.325 beats class 0 (0.40 + 0.15) / 2 = 0.275 -> right;
    # image 3: class 0 0.325 beats class 3 (0.04 + 0.40) / 2 = 0.22, which is 2nd -> top-5 right.
    assert got == [
        (1, 1, 1, 0.0, 0.25, ("m1",)),
        (1, 10, 10, 0.0, 0.0, ("m1",)),
        (2, 1, 2, 0.0, 0.5, ("m1", "m0")),
        (2, 10, 20, 0.0, 0.0, ("m1", "m0")),
    ]
    assert [r.delta_top1 for r in rows] == [0.0, -0.25, 0.25, -0.25]
    assert [r.delta_topk for r in rows] == [0.0] * 4
    assert {r.k for r in rows} == {5}  # six classes: top-5
    text = format_table3(rows)
    assert "base" in text and "+25.00%" in text and "-25.00%" in text
    assert len(table3(hand_made_probs(), LABELS, model_counts="every")) == 4
    assert [r.models for r in table3(hand_made_probs(), LABELS, model_counts=[1])] == [1, 1]
    with pytest.raises(ValueError, match="model counts"):
        table3(hand_made_probs(), LABELS, model_counts=[3])


def test_spread_over_every_subset_by_hand() -> None:
    probs = hand_made_probs()
    # A third member: model 0's probabilities, so the three single-model top-1 errors at 1 crop are
    # 0.5 (m0), 0.25 (m1), 0.5 (m2 = m0).
    probs[(2, "1")], probs[(2, "10")] = probs[(0, "1")], probs[(0, "10")]
    rows = table3_spread(probs, LABELS)
    assert [(r.models, r.crops, r.subsets) for r in rows] == [
        (1, 1, 3), (1, 10, 3), (2, 1, 3), (2, 10, 3), (3, 1, 1), (3, 10, 1),
    ]  # fmt: skip
    one = rows[0]
    assert one.top1_mean == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert one.top1_std == pytest.approx(np.std([0.5, 0.25, 0.5], ddof=1))
    assert (one.top1_min, one.top1_max) == (0.25, 0.5)
    # Pairs: (m0, m1) is the 2-model ensemble of test_table3_rows_costs_and_deltas (0.5 at 1 crop);
    # (m0, m2) averages two copies of m0 (0.5); (m1, m2) is again m0 + m1 (0.5).
    assert rows[2].top1_mean == pytest.approx(0.5) and rows[2].top1_std == 0.0
    assert rows[4].subsets == 1 and rows[4].top1_std == 0.0
    # Table 3's 1-model row takes the best member; the spread row does not pick.
    assert table3(probs, LABELS)[0].top1_error == one.top1_min < one.top1_mean
    assert "41.67 ± 14.43%" in format_spread(rows)
    assert table3_spread(probs, LABELS, max_subsets=2)[0].subsets == 2


def test_nan_rows_count_as_errors() -> None:
    probs = ranked([0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5])
    probs[1] = math.nan
    assert topk_errors(probs, torch.tensor([0, 1])) == [0.5, 0.5]


# ---------------------------------------------------------------------------------------------
# The CLI, end to end through its real main in this process, on a tiny built-in set with tiny checkpoints.


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return write_evaluation_runs(tmp_path_factory.mktemp("evaluate"))


def test_evaluate_cli_table3_json(tiny) -> None:
    from googlenet.data.datasets import build_dataset
    from googlenet.runs import resolve_checkpoints

    out = tiny["root"] / "eval.json"
    proc = cli_in_process(
        "evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["run_a"]), str(tiny["ens"]),
        "--crops", "10", "1", "--json", str(out), "--workers", "0", "--batch-size", "20",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    # 2 readable images per class + the broken one, which is reported and counted as wrong.
    assert record["num_images"] == 7 and record["num_unreadable"] == 1
    assert record["unreadable"][0]["path"].endswith("zz_broken.jpg")
    assert "zz_broken.jpg" in proc.stderr
    assert record["image_size"] == 64  # from the runs' config.yaml
    assert record["schemes"] == [1, 10] and record["combine"] == "mean"
    assert [c["weights"] for c in record["checkpoints"]] == [
        str(tiny["run_a"] / "model.safetensors"),
        str(tiny["ens"] / "../run_b" / "model.safetensors"),
    ]
    rows = record["rows"]
    assert [(r["models"], r["crops"], r["cost"]) for r in rows] == [
        (1, 1, 1),
        (1, 10, 10),
        (2, 1, 2),
        (2, 10, 20),
    ]
    assert rows[0]["delta_topk"] is None and rows[0]["delta_top1"] is None
    # The single-crop rows again in-process, from the same files with the library's own pieces
    # (plain torch models, no Predictor): the CLI's wiring (labels, ensemble, image size) is right.
    dataset = build_dataset(tiny["data"], "val")
    models = [
        EvalModel.from_model(load_model(c), name=c.name)
        for c in resolve_checkpoints([tiny["run_a"], tiny["ens"]])
    ]
    labels = torch.tensor([label for _, label in dataset.samples])
    expected = table3(crop_probabilities([p for p, _ in dataset.samples], models, ["1"], 64), labels)
    for got, want in zip(rows[::2], expected, strict=True):
        assert got["top1_err"] == pytest.approx(want.top1_error) and got["topk_err"] == pytest.approx(
            want.topk_error
        )
        assert got["model_names"] == list(want.model_names)
    assert rows[0]["top1_err"] >= 1 / 7  # the unreadable image is in the denominator, and wrong
    table = proc.stdout
    # Three classes: the column is top-2 (top-3 is always right), as top_k says.
    assert "top-2 error" in table and "top-5" not in table and "base" in table and "cost" in table
    assert (
        record["top_k"] == 2 and record["class_names"] == (tiny["data"] / "classes.txt").read_text().split()
    )
    # Two models: the spread over every subset is printed and written too.
    assert [(r["models"], r["crops"], r["subsets"]) for r in record["spread"]] == [
        (1, 1, 2), (1, 10, 2), (2, 1, 1), (2, 10, 1),
    ]  # fmt: skip
    per_1crop = [m["top1_err"] for m in record["per_model"] if m["crops"] == 1]
    assert record["spread"][0]["top1_mean"] == pytest.approx(sum(per_1crop) / 2)
    assert record["spread"][2]["top1_mean"] == pytest.approx(rows[2]["top1_err"])
    assert "every k-subset" in table


def test_evaluate_cli_144_crops_max(tiny) -> None:
    out = tiny["root"] / "eval144.json"
    proc = cli_in_process(
        "evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["run_a"] / "model.safetensors"),
        "--crops", "144", "--limit", "1", "--combine", "max", "--image-size", "64", "--json", str(out),
        "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["num_images"] == 1 and record["combine"] == "max" and record["image_size"] == 64
    assert [(r["models"], r["crops"], r["cost"]) for r in record["rows"]] == [(1, 144, 144)]


def test_evaluate_cli_bad_checkpoint_names_it(tiny, capsys) -> None:
    from googlenet.cli import main

    assert main(["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["root"])]) == 2
    err = capsys.readouterr().err
    assert str(tiny["root"]) in err and "neither model.safetensors" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["root"] / "nope")]) == 2
    assert f"checkpoint {tiny['root'] / 'nope'} does not exist" in capsys.readouterr().err


def test_library_evaluate_is_what_the_cli_writes(tiny) -> None:
    import googlenet

    out = tiny["root"] / "eval_library.json"
    args = ("--data", tiny["data"], "--checkpoint", tiny["run_a"], tiny["ens"], "--crops", "10", "1")
    proc = cli_in_process("evaluate", *args, "--json", out, "--workers", "0", "--batch-size", "20")
    assert proc.returncode == 0, proc.stderr
    seen: list[int] = []
    result = googlenet.evaluate(
        tiny["data"],
        [tiny["run_a"], tiny["ens"]],
        crops=[10, 1],
        workers=0,
        batch_size=20,
        device="cpu",
        progress=seen.append,
    )
    assert isinstance(result, googlenet.EvaluationResult)
    assert sum(seen) == result.num_images == 7
    got, want = what_was_evaluated(result.to_dict()), what_was_evaluated(json.loads(out.read_text()))
    want["data_arg"] = str(tiny["data"])  # the CLI's argument is the same folder as a string
    assert got == want
    # What the command prints comes from the result: the title above Table 3, the unreadable file.
    assert result.title in proc.stdout and result.title.startswith("Table 3 (section 7) on 7 images")
    assert [u["path"] for u in result.unreadable] == [str(p) for p in tiny["data"].rglob("zz_broken.jpg")]
    assert result.unreadable[0]["error"] in proc.stderr


def test_library_evaluate_takes_models_in_memory_and_checks_arguments_first(tiny) -> None:
    import googlenet
    from googlenet.errors import GoogLeNetError

    model = googlenet.load(tiny["run_a"] / "model.safetensors")
    in_memory = googlenet.evaluate(tiny["data"], model, crops=[1], image_size=64, workers=0, device="cpu")
    from_file = googlenet.evaluate(tiny["data"], tiny["run_a"], crops=[1], workers=0, device="cpu")
    errors = [[(r.topk_error, r.top1_error) for r in e.rows] for e in (in_memory, from_file)]
    assert errors[0] == errors[1]
    (info,) = in_memory.checkpoints
    assert info["kind"] == "in memory" and info["weights"] is None and info["name"] == "googlenet_bn"
    assert info["sha256"] == from_file.checkpoints[0]["sha256"]  # the same tensors
    missing = tiny["root"] / "no_such_run"
    # Bad values are refused before the checkpoint is even looked at.
    for kwargs, message in [
        ({"limit": 0}, "--limit must be at least 1. Got 0"),
        ({"crops": [7]}, "crops: crop scheme must be one of 1, 10, 144. Got 7"),
        ({"split": "test"}, "split must be one of val, train. Got 'test'"),
        ({"image_size": 10}, "--image-size must be an integer of at least"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"backend": "torch", "precision": "int8"}, "int8 runs on onnxruntime or openvino"),
        ({"progress": "yes"}, "progress must be True, False, None or a callable"),
    ]:
        with pytest.raises(GoogLeNetError, match=re.escape(message)):
            googlenet.evaluate(tiny["data"], missing, **kwargs)
    with pytest.raises(GoogLeNetError, match=f"checkpoint {re.escape(str(missing))} does not exist"):
        googlenet.evaluate(tiny["data"], missing)


def test_resolve_checkpoints(tmp_path) -> None:
    from googlenet.errors import GoogLeNetError
    from googlenet.runs import resolve_checkpoints

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"resolved, not loaded")
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"x")
    (run / "config.yaml").write_text("image_size: 96\n")
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps([{"run_dir": "../runs/r1"}, str(weights)]))
    got = resolve_checkpoints([str(weights), str(run), str(ens)])
    assert [(c.weights, c.run_dir, c.image_size) for c in got] == [
        (weights, None, None),
        (run / "model.safetensors", run, 96),
        (ens / "../runs/r1" / "model.safetensors", ens / "../runs/r1", 96),
        (weights, None, None),
    ]
    assert [c.name for c in got] == ["w", "r1", "r1", "w"]
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "outer").mkdir()
    (tmp_path / "outer" / "ensemble.json").write_text(json.dumps({"members": ["../ens"]}))
    (tmp_path / "badyaml").mkdir()
    (tmp_path / "badyaml" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "badyaml" / "config.yaml").write_text("image_size: big\n")
    for arg, message in [
        (tmp_path / "notes.txt", "neither a .safetensors weights file nor a .pt training checkpoint"),
        (tmp_path / "outer", "nested in another ensemble"),
        (tmp_path / "badyaml", "image_size must be a positive integer"),
        (tmp_path / "runs", "holds neither model.safetensors"),
        (tmp_path / "gone", "does not exist"),
    ]:
        with pytest.raises(GoogLeNetError, match=message) as info:
            resolve_checkpoints([arg])
        assert str(arg) in str(info.value) or str(tmp_path / "ens") in str(info.value)


def test_evaluate_ilsvrc_flat_val_layout(tiny, tmp_path, capsys) -> None:
    import shutil

    import googlenet
    from googlenet.cli import main
    from googlenet.data.datasets import build_dataset

    # The built-in val images rearranged as ILSVRC2012's flat val/ with Kaggle's label files.
    folder = build_dataset(tiny["data"], "val")
    root = tmp_path / "ilsvrc"
    (root / "val").mkdir(parents=True)
    wnids = [f"n{i + 1:08d}" for i in range(len(folder.classes))]
    (root / "LOC_synset_mapping.txt").write_text(
        "".join(f"{w} {c}\n" for w, c in zip(wnids, folder.classes, strict=True))
    )
    lines = ["ImageId,PredictionString"]
    for k, (path, label) in enumerate(folder.samples, 1):
        shutil.copy(path, root / "val" / f"ILSVRC2012_val_{k:08d}.JPEG")
        lines.append(f"ILSVRC2012_val_{k:08d},{wnids[label]} 0 0 10 10")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "ilsvrc.json"
    args = [
        "evaluate",
        "--data",
        str(root),
        "--checkpoint",
        str(tiny["run_a"]),
        "--crops",
        "1",
        "--workers",
        "0",
    ]
    assert main([*args, "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["layout"] == "ilsvrc" and record["num_images"] == len(folder.samples)
    assert record["num_unreadable"] == 1  # the broken file came along
    model = EvalModel.from_model(googlenet.load(tiny["run_a"] / "model.safetensors"))
    probs = crop_probabilities([p for p, _ in folder.samples], [model], ["1"], 64).probs[(0, "1")]
    top1, top5 = topk_errors(probs, torch.tensor(folder.targets), (1, record["top_k"]))
    assert record["rows"][0]["top1_err"] == pytest.approx(top1) and record["rows"][0][
        "topk_err"
    ] == pytest.approx(top5)
    assert "Table 3" in capsys.readouterr().out


def test_evaluate_cli_refuses_other_class_names(tiny, tmp_path) -> None:
    import shutil

    # The same three classes, upper-cased folder names: refused, both lists shown.
    names = (tiny["data"] / "classes.txt").read_text().split()
    upper = tmp_path / "upper"
    for split in ("train", "val"):
        for name in names:
            shutil.copytree(tiny["data"] / split / name, upper / split / name.upper())
    args = [
        "evaluate",
        "--data",
        str(upper),
        "--checkpoint",
        str(tiny["run_a"]),
        "--crops",
        "1",
        "--workers",
        "0",
    ]
    line = one_error_line(
        cli_in_process(*args), "evaluate", ", ".join(names), ", ".join(n.upper() for n in names)
    )
    assert "--allow-class-mismatch" in line
    proc = cli_in_process(*args, "--allow-class-mismatch")  # explicitly mapped by position
    assert proc.returncode == 0, proc.stderr
    assert "Table 3" in proc.stdout


def test_evaluate_cli_checks_outputs_and_sizes_before_work(tiny, tmp_path) -> None:
    # An unusable --json path is refused before any image is read, naming it.
    base = ["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["run_a"]), "--crops", "1"]
    folder = tmp_path / "a_folder"
    folder.mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        cases = [
            (["--json", str(folder)], [str(folder), "is a directory"]),
            (["--json", str(tmp_path / "missing" / "e.json")], [str(tmp_path / "missing" / "e.json")]),
            (["--image-size", "10"], ["--image-size", "10"]),
        ]
        if not os.access(locked, os.W_OK):  # root writes anywhere: then the case cannot be made
            cases.append((["--json", str(locked / "e.json")], [str(locked / "e.json"), "not writable"]))
        for extra, needles in cases:
            proc = cli_in_process(*base, *extra)
            one_error_line(proc, "evaluate", *needles)
            assert proc.stdout == "", "the evaluation ran before the bad argument was refused"
        assert list(folder.iterdir()) == [] and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_evaluation_result_round_trip_and_old_files() -> None:
    from googlenet.errors import GoogLeNetError
    from googlenet.evaluation.result import EvaluationResult, read_evaluation

    # The format 1 file in docs/results (top5_* keys) reads as it is and prints the same table.
    old_path = (
        Path(__file__).resolve().parents[1] / "docs" / "results" / "table3_builtin_googlenet_5seeds.json"
    )
    old = json.loads(old_path.read_text())
    result = read_evaluation(old_path)
    assert result.top_k == 5 and len(result.rows) == len(old["rows"]) and result.num_classes == 10
    assert [r.topk_error for r in result.rows] == [r["top5_err"] for r in old["rows"]]
    assert [r.topk_mean for r in result.spread] == [r["top5_mean"] for r in old["spread"]]
    assert result.checkpoints == old["checkpoints"] and result.num_unreadable == old["num_unreadable"]
    again = EvaluationResult.from_json(result.to_json())
    assert again.to_dict() == result.to_dict()
    assert format_table3(again.rows) == format_table3(result.rows)
    assert format_spread(again.spread) == format_spread(result.spread)
    for bad, message in [
        ({"rows": []}, "no 'rows' list"),
        ({"rows": [{"models": 1, "crops": 1}]}, "row 0 lacks"),
        ({"rows": [{"models": 0, "crops": 1, "topk_err": 0.1}]}, "row 0 models must be a positive integer"),
        ({"format": "other", "rows": []}, "pass a file written by googlenet evaluate --json"),
        ({**old, "class_names": ["a"]}, "names 1 classes but counts 10"),
        ({**old, "spread": [{"models": 2}]}, "spread row 0 is malformed"),
    ]:
        with pytest.raises(GoogLeNetError, match=message):
            EvaluationResult.from_json(bad, source="x.json")


def test_paired_effects_by_hand() -> None:
    from googlenet.evaluation.protocol import paired_effects

    # 4 images, 2 classes, 2 models x (1, 144) crops; label 0 everywhere. Per-image 0/1 errors:
    #   model 0 @1: 1 1 0 0   model 1 @1: 1 0 1 0   -> mean member @1: 1, .5, .5, 0
    #   model 0 @144: 0 1 0 0 model 1 @144: 0 0 1 0 -> mean member @144: 0, .5, .5, 0
    def p(errors: list[int], margin: float = 0.3) -> torch.Tensor:
        return torch.tensor(
            [[0.5 - margin, 0.5 + margin] if e else [0.5 + margin, 0.5 - margin] for e in errors]
        )

    probs = {(0, "1"): p([1, 1, 0, 0]), (1, "1"): p([1, 0, 1, 0]),
             (0, "144"): p([0, 1, 0, 0]), (1, "144"): p([0, 0, 1, 0])}  # fmt: skip
    labels = torch.zeros(4, dtype=torch.long)
    crops, ens1, ens144 = paired_effects(probs, labels, draws=2000)
    d = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 1-crop minus 144-crop mean-member error per image
    assert crops.mean == pytest.approx(0.25) and crops.n == 4
    half = 1.959964 * float(d.std()) / 2
    assert (crops.low, crops.high) == pytest.approx((0.25 - half, 0.25 + half))
    assert not crops.excludes_zero  # 4 images cannot show it
    # Equal margins: the ensemble's average keeps ties at 0.5/0.5 for images 2 and 3 -> argmax class 0.
    assert ens1.mean == pytest.approx((1 + 0.5 + 0.5 + 0) / 4 - 0.25)
    assert "ensemble" in ens144.name and crops.to_dict()["excludes_zero"] is False
