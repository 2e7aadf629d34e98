"""googlenet.evaluation.report and `googlenet report`: pure pieces against hand computations, the whole report
from hand-written run directories (real safetensors models, real JPEGs, the command's real main)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import googlenet
from googlenet.data.builtin import make_builtin
from googlenet.errors import GoogLeNetError
from googlenet.evaluation.metrics import confusion_matrix, topk_errors
from googlenet.evaluation.report import markdown_page, predict_validation, write_report
from googlenet.evaluation.result import EvaluationResult
from googlenet.evaluation.tables import markdown_table, spread_markdown, table3_markdown
from googlenet.runs import read_metrics

from .helpers import check_report_page, cli_in_process, one_error_line

CLASSES = 3
VAL_PER_CLASS = 2
IMAGE_SIZE = 64

EVALUATION = {
    "dataset": "hand-written",
    "rows": [
        {"models": 1, "crops": 1, "cost": 1, "top5_err": 0.1007, "top1_err": 0.3125},
        {"models": 1, "crops": 10, "cost": 10, "top5_err": 0.0915},
        {"models": 7, "crops": 144, "top5_err": 0.0667, "top1_err": 0.25},
    ],
}


def _metrics(epochs: int, offset: float) -> list[dict]:
    return [
        {
            "epoch": e,
            "step": 10 * e,
            "lr": 0.01 * 0.96 ** (e // 8),
            "train_loss": 1.5 - 0.1 * e + offset,
            "train_top1_err": 0.6 - 0.05 * e,
            "val_loss": 1.6 - 0.1 * e + offset,
            "val_top1_err": 0.65 - 0.05 * e,
            "val_top5_err": 0.2 - 0.02 * e,
            "avg_val_top1_err": 0.63 - 0.05 * e,
            "avg_val_top5_err": 0.19 - 0.02 * e,
            "images_per_s": 50.0,
            "epoch_time_s": 1.0,
            "skipped_files": 0,
        }
        for e in range(1, epochs + 1)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("report")
    data = make_builtin(
        root / "data",
        classes=CLASSES,
        train_per_class=1,
        val_per_class=VAL_PER_CLASS,
        image_size=48,
        workers=1,
    )
    names = (data / "classes.txt").read_text().split()
    run_dirs = []
    for i in range(2):
        run = root / f"run{i}"
        run.mkdir()
        torch.manual_seed(i)
        model = googlenet.create_model("googlenet_bn", num_classes=CLASSES, class_names=names)
        googlenet.save(model, run / "model.safetensors")
        lines = [json.dumps(r) for r in _metrics(4, 0.05 * i)]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (run / "config.yaml").write_text(f"data: {data}\nimage_size: {IMAGE_SIZE}\n")
        run_dirs.append(run)
    # the index `googlenet train-ensemble` writes, reduced to what the report reads
    (root / "ensemble.json").write_text(json.dumps({"members": [{"run_dir": r.name} for r in run_dirs]}))
    return data, run_dirs


def test_confusion_matrix_matches_hand_count() -> None:
    labels = [0, 0, 1, 2, 2, 2, 1]
    preds = [0, 1, 1, 2, 0, 2, 1]
    expected = np.array(
        [
            [1, 1, 0],  # class 0: once right, once called 1
            [0, 2, 0],  # class 1: twice right
            [1, 0, 2],  # class 2: once called 0, twice right
        ]
    )
    matrix = confusion_matrix(labels, preds, 3)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == len(labels)
    # a class that never occurs still gets its row and column
    assert confusion_matrix([0], [0], 4).shape == (4, 4)
    with pytest.raises(ValueError, match=r"preds must lie in \[0, 3\)"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], 3)


def test_topk_errors_hand_computed() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 2])
    top1, top2 = topk_errors(probs, labels, ks=(1, 2))
    assert top1 == pytest.approx(2 / 3)  # rows 1 and 2 wrong at top-1
    assert top2 == pytest.approx(1 / 3)  # row 2: class 2 is last


def test_table3_markdown_numbers_and_base_delta() -> None:
    rows = EvaluationResult.from_json(EVALUATION).rows
    assert [r.cost for r in rows] == [1, 10, 7 * 144]  # cost defaults to models x crops
    md = table3_markdown(rows).splitlines()
    assert md[0].startswith("| Number of models | Number of crops | Cost | Top-5 error | Top-5 vs base")
    assert md[2] == "| 1 | 1 | 1 | 10.07% | base | 31.25% | base |"
    assert md[3] == "| 1 | 10 | 10 | 9.15% | -0.92% |  |  |"  # no top-1 error given: left empty
    assert md[4] == "| 7 | 144 | 1008 | 6.67% | -3.40% | 25.00% | -6.25% |"
    # deltas given in the file win over the computed ones (evaluate writes both)
    given = EvaluationResult.from_json(
        {"rows": [EVALUATION["rows"][0], {**EVALUATION["rows"][2], "delta_top5": -0.0345}]}
    ).rows
    assert table3_markdown(given).splitlines()[3].split(" | ")[4] == "-3.45%"
    with pytest.raises(GoogLeNetError, match="rows"):
        EvaluationResult.from_json({"table": []})
    assert spread_markdown(EvaluationResult.from_json(EVALUATION).spread) is None  # one model: no spread
    with pytest.raises(GoogLeNetError, match="spread row 0"):
        EvaluationResult.from_json({**EVALUATION, "spread": [{"models": 2}]})


def test_read_metrics_drops_partial_last_line_only(tmp_path: Path) -> None:
    good = json.dumps({"epoch": 1, "train_loss": 1.0})
    (tmp_path / "metrics.jsonl").write_text(good + "\n" + '{"epoch": 2, "train_lo')
    assert read_metrics(tmp_path) == [{"epoch": 1, "train_loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("oops\n" + good + "\n")
    with pytest.raises(GoogLeNetError, match=r"metrics.jsonl:1"):
        read_metrics(tmp_path)


def test_ensemble_probabilities_are_the_mean_of_the_models(runs: tuple[Path, list[Path]]) -> None:
    data, run_dirs = runs
    paths = [r / "model.safetensors" for r in run_dirs]
    a = predict_validation(paths[:1], data, IMAGE_SIZE, max_images=CLASSES)
    b = predict_validation(paths[1:], data, IMAGE_SIZE, max_images=CLASSES)
    both = predict_validation(paths, data, IMAGE_SIZE, max_images=CLASSES)
    # a cap takes evenly spaced images, so every class of the sorted folder dataset appears
    assert sorted(both.labels.tolist()) == list(range(CLASSES))
    np.testing.assert_array_equal(both.labels, a.labels)
    np.testing.assert_allclose(both.probs, (a.probs + b.probs) / 2, atol=1e-6)
    np.testing.assert_allclose(both.probs.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(a.probs, b.probs)  # different weights, different answers


def _evaluated(runs: tuple[Path, list[Path]]) -> dict:
    """What `googlenet evaluate --json` records of the runs' models and data (checked by the report)."""
    from googlenet.weights.store import read_metadata

    data, run_dirs = runs
    weights = [r / "model.safetensors" for r in run_dirs]
    return {
        "checkpoints": [{"weights": str(w), "sha256": read_metadata(w)["sha256"]} for w in weights],
        "data": str(data),
        "class_names": (data / "classes.txt").read_text().split(),
    }


def test_report_cli_writes_every_picture_and_index(runs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, run_dirs = runs
    evaluation = tmp_path / "eval.json"
    spread = [
        {"models": 1, "crops": 1, "subsets": 2, "top5_mean": 0.105, "top5_std": 0.007, "top1_mean": 0.33,
         "top1_std": 0.025, "top1_min": 0.3125, "top1_max": 0.3475},
    ]  # fmt: skip
    evaluation.write_text(json.dumps({**EVALUATION, "spread": spread, **_evaluated(runs)}))
    out = tmp_path / "report"
    ensemble = run_dirs[0].parent  # an ensemble directory stands for its members
    result = cli_in_process("report", str(ensemble), "--out", str(out), "--evaluation", str(evaluation))
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == out / "index.md"

    for name in ("curves.png", "confusion.png", "predictions.png", "table3.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert image.width >= 400 and image.height >= 150, (name, image.size)
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
        assert pixels.std() > 10, f"{name} looks blank"

    index = (out / "index.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", index)
    assert set(links) == {"curves.png", "confusion.png", "predictions.png", "table3.png"}
    assert all((out / link).is_file() for link in links)
    # index.html: the report's title, Table 3 and the spread as HTML tables, every picture present
    check_report_page(out, "GoogLeNet training report")
    assert "ensemble of 2 models" in index.lower()
    assert all(f"`{r}`" in index for r in run_dirs)
    assert "| 7 | 144 | 1008 | 6.67% | -3.40% | 25.00% | -6.25% |" in (out / "table3.md").read_text()
    assert "| 1 | 10 | 10 | 9.15% | -0.92% |  |  |" in index
    assert "| 1 | 1 | 2 | 10.50 ± 0.70% | 33.00 ± 2.50% | 31.25-34.75% |" in index  # the seed spread
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_report_cli_run_without_metrics_is_a_one_line_error(
    runs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, run_dirs = runs
    bare = tmp_path / "not_a_run"
    bare.mkdir()
    result = cli_in_process("report", str(run_dirs[0]), str(bare), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        lines[0].startswith("googlenet report: error:")
        and str(bare) in lines[0]
        and "metrics.jsonl" in lines[0]
    )


def test_report_without_weights_draws_curves_and_says_why(tmp_path: Path) -> None:
    run = tmp_path / "interrupted_run"
    run.mkdir()
    # an older or interrupted run: no weights yet, and no learning rate / averaged-weights columns
    records = [{"epoch": e, "train_loss": 2.0 / e, "val_top1_err": 0.5 / e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    index = write_report([run], tmp_path / "out")
    text = index.read_text()
    assert "![Training curves](curves.png)" in text
    assert "Left out: no weights at" in text and str(run / "model.safetensors") in text
    assert not (tmp_path / "out" / "confusion.png").exists()
    with Image.open(tmp_path / "out" / "curves.png") as image:
        assert image.size[0] >= 400


def test_table3_picture_is_titled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import googlenet.evaluation.report as report

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics(2, 0.0)))
    titles: list[str] = []
    real = report.plot_table3
    monkeypatch.setattr(
        report, "plot_table3", lambda rows, path, title: real(rows, path, title=titles.append(title) or title)
    )
    checkpoints = [{"weights": str(run / "model.safetensors")}]  # no weights yet: matched by path
    evaluate_title = "Table 3 (section 7) on 3 images of data [val], 64px crops, mean over crops; models: run"
    write_report(
        [run], tmp_path / "a", evaluation={**EVALUATION, "title": evaluate_title, "checkpoints": checkpoints}
    )
    write_report([run], tmp_path / "b", evaluation={**EVALUATION, "checkpoints": checkpoints})  # hand-written
    assert titles == [evaluate_title, "Table 3 (hand-written)"]


def test_report_page_is_the_markdown_rendered() -> None:
    text = "# My <report>\n\n" + markdown_table(["class", "AP"], [["a<b|c", "1.00%"]], left={0})
    page = markdown_page("My <report>", text + "\nText with <script>x</script> & more.\n")
    # Paths and class names are text: nothing in them becomes markup.
    assert "<title>My &lt;report&gt;</title>" in page and "<h1>My &lt;report&gt;</h1>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<table>") == 1 and "<td>a&lt;b|c</td>" in page
    assert '<td style="text-align: right;">1.00%</td>' in page


def test_report_refuses_bad_input_before_any_work(
    runs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run_dirs = runs
    out = tmp_path / "out"
    # Issue 12 point 4: the image size is validated like the other commands', nothing is written.
    proc = cli_in_process("report", run_dirs[0], "--out", out, "--image-size", "10")
    one_error_line(proc, "report", "--image-size", "10")
    # A training checkpoint or a weights file where a run directory is expected: what it is, what to pass.
    best = tmp_path / "r" / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"x")
    proc = cli_in_process("report", best, "--out", out)
    one_error_line(proc, "report", str(best), "training checkpoint", str(tmp_path / "r"))
    weights = run_dirs[0] / "model.safetensors"
    with pytest.raises(GoogLeNetError, match="is a weights file; the report takes run directories"):
        write_report([weights], out)
    # Issue 12 point 8: an evaluation of other checkpoints, data or classes is refused, naming both.
    other = tmp_path / "other.json"
    evaluated = _evaluated(runs)
    cases = [
        (
            {**evaluated, "checkpoints": evaluated["checkpoints"][:1]},
            [str(run_dirs[1] / "model.safetensors")],
        ),
        ({**evaluated, "data": str(tmp_path)}, [str(tmp_path), str(data)]),
        ({**evaluated, "class_names": ["A", "B", "C"]}, ["A, B, C", "--allow-class-mismatch"]),
        ({**evaluated, "class_names": ["a", "b"]}, ["a, b"]),
        ({}, ["records no checkpoints"]),
    ]
    from googlenet.cli import main

    for extra, needles in cases:  # in-process: the same parser and error handler, without 5 start-ups
        other.write_text(json.dumps({**EVALUATION, **extra}))
        assert main(["report", *map(str, run_dirs), "--out", str(out), "--evaluation", str(other)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("googlenet report: error:") and str(other) in err[0]
        assert all(n in err[0] for n in needles), (needles, err[0])
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_report_replaces_an_earlier_report_whole(runs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, run_dirs = runs
    out = tmp_path / "report"
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({**EVALUATION, **_evaluated(runs)}))
    write_report(run_dirs, out, evaluation=evaluation, max_images=3)
    assert (out / "table3.md").is_file() and (out / "table3.png").is_file()
    earlier = (out / "index.md").read_text()
    # A failure half-way (no validation split in --data) leaves the earlier report as it was.
    empty = tmp_path / "no_val"
    (empty / "val").mkdir(parents=True)
    with pytest.raises(GoogLeNetError):
        write_report(run_dirs, out, data=empty)
    assert (out / "index.md").read_text() == earlier and (out / "table3.png").is_file()
    # Issue 12 point 4: a new report in the same folder leaves no stale table3.* behind.
    write_report(run_dirs[:1], out, max_images=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.md", "index.html", "curves.png", "confusion.png", "predictions.png"]
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # A folder holding anything but a report is never replaced.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(GoogLeNetError, match=r"notes\.txt"):
        write_report(run_dirs[:1], out)
    assert (out / "notes.txt").read_text() == "mine"


def test_report_max_images_and_evaluate_limit_see_the_same_images(
    runs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    import shutil

    # Issue 13 point 3: one selection and one rule for unreadable images, so the report's numbers are
    # those of `evaluate --limit N` on the same model (a broken file lands among the picked images).
    data, run_dirs = runs
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    first = sorted(p for p in (copy / "val").iterdir() if p.is_dir())[0]
    (first / "aa_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "eval.json"
    limit = "4"  # of 7 images: indices 0, 1, 3, 5 -> the broken file (index 0) is among them
    result = cli_in_process(
        "evaluate", "--data", copy, "--checkpoint", run_dirs[0], "--crops", "1", "--limit", limit,
        "--workers", "0", "--json", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["num_unreadable"] == 1 and record["num_images"] == 4
    report = tmp_path / "report"
    result = cli_in_process(
        "report", str(run_dirs[0]), "--out", str(report), "--data", str(copy), "--max-images", limit,
        "--evaluation", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    index = (report / "index.md").read_text()
    row = record["rows"][0]
    assert f"top-1 error {100 * row['top1_err']:.2f}%, top-2 error {100 * row['topk_err']:.2f}%" in index
    assert "over 4 validation images (1 unreadable, counted as errors" in index
