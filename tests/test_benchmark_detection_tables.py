"""benchmarks/detection_tables.py: its ``--tiny`` run follows its schema and its arithmetic holds.

The script runs in this process (``main``) on 4 train / 2 val images: a classifier pre-trained for one
epoch, two 2-member detectors (fine-tuned and from scratch), both proposal methods, the torch cost
rows. The checks are on the JSON and its rendering, never on the accuracy: every summary number is
the per-member rows' arithmetic, the first-k rows are what ``googlenet evaluate-detection --members``
gives, and the recorded result of docs/results is the section of docs/detection.md.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

from googlenet.cli import main as googlenet

from .helpers import REPO as ROOT
from .helpers import threads_kept

sys.path.insert(0, str(ROOT / "benchmarks"))

import common as C
import detection_tables as DT
import render as R

RECORDED = sorted((ROOT / "docs" / "results").glob("detection_tables*.json"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("detection-tables")
    doc = tmp / "doc.md"
    doc.write_text("# Detection\n\nhand-written text\n")
    with threads_kept(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOOGLENET_CACHE", str(tmp / "cache"))
        argv = [
            "--tiny",
            "--out",
            str(tmp / "work"),
            "--backends",
            "torch",
            "--json",
            str(tmp / "r.json"),
        ]
        assert DT.main([*argv, "--docs", str(doc)]) == 0
    return tmp, json.loads((tmp / "r.json").read_text())


def test_result_follows_the_schema_and_is_the_docs_section(tiny) -> None:
    tmp, result = tiny
    C.check_result(result, DT.NAME, DT.VERSION, DT.SCHEMA)
    text = (tmp / "doc.md").read_text()
    assert text.startswith("# Detection\n\nhand-written text\n")
    assert C.section(tmp / "doc.md", C.section_name(result)) == DT.render(result).strip()
    assert "--out" not in result["command"] and "--json" not in result["command"]
    s = result["settings"]
    assert (s["train_images"], s["val_images"], s["members"], s["tiny"]) == (4, 2, 2, True)
    assert "pretrain" in result and "init_from" not in s
    assert set(result["wall_seconds"]) >= {"data", "pretrain", "train fine-tuned", "train scratch", "total"}


def test_summary_is_the_per_member_rows_arithmetic(tiny) -> None:
    _, result = tiny
    n = result["settings"]["members"]
    runs = {(r["init"], r["proposals"], tuple(r["members"])): r for r in result["runs"]}
    for r in result["runs"]:
        if r["AP"]:
            assert r["mAP"] == pytest.approx(statistics.fmean(r["AP"].values()))
    assert {row["init"] for row in result["summary"]} == set(DT.INITS)
    assert {row["proposals"] for row in result["summary"]} == {"selective-search", "selective-search-2x"}
    for row in result["summary"]:
        key = (row["init"], row["proposals"])
        singles = [runs[(*key, (i,))]["mAP"] for i in range(n)]
        assert row["single"] == singles
        assert row["single_mean"] == pytest.approx(statistics.fmean(singles))
        assert row["single_sd"] == pytest.approx(statistics.stdev(singles))
        assert row["ensembles"] == {str(k): runs[(*key, tuple(range(k)))]["mAP"] for k in range(2, n + 1)}
    singles = {(row["init"], row["proposals"]): row["single"] for row in result["summary"]}
    paired = {p["what"]: p for p in result["paired"]}
    a, b = singles[("fine-tuned", "selective-search-2x")], singles[("scratch", "selective-search-2x")]
    diff = paired["selective-search-2x: fine-tuned - scratch"]
    assert diff["diffs"] == pytest.approx([x - y for x, y in zip(a, b, strict=True)])
    assert diff["mean"] == pytest.approx(statistics.fmean(diff["diffs"]))
    assert diff["sd"] == pytest.approx(statistics.stdev(diff["diffs"]))
    assert len(paired) == 4  # x2 vs R-CNN's per init, fine-tuned vs scratch per method


def test_first_k_rows_are_what_evaluate_detection_gives(tiny, tmp_path: Path, monkeypatch) -> None:
    tmp, result = tiny
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp / "cache"))  # the proposals the run cached
    out = tmp_path / "eval.json"
    argv = [
        "evaluate-detection",
        "--data",
        tmp / "work" / "data",
        "--detector",
        tmp / "work" / "det_finetuned",
        "--members",
        "1",
        "2",
        "--proposals",
        "selective-search",
        "--rule",
        "ilsvrc",
        "--workers",
        "0",
        "--json",
        out,
        "--no-estimate",
    ]
    assert googlenet([str(a) for a in argv]) == 0
    runs = json.loads(out.read_text())["runs"]
    theirs = {(r["proposals"], r["members"]): (r["mAP"], r["num_detections"]) for r in runs}
    ours = {
        (r["proposals"], len(r["members"])): (r["mAP"], r["num_detections"])
        for r in result["runs"]
        if r["init"] == "fine-tuned"
        and r["proposals"] == "selective-search"
        and r["members"] == list(range(len(r["members"])))
    }
    assert set(theirs) == set(ours)
    for key, (m_ap, count) in theirs.items():
        assert ours[key][0] == pytest.approx(m_ap, abs=1e-9), key
        assert ours[key][1] == count, key


def test_cost_rows_add_up(tiny) -> None:
    _, result = tiny
    assert [(c["backend"], c["members"]) for c in result["cost"]] == [("torch", 1), ("torch", 2)]
    for c in result["cost"]:
        s = c["seconds_per_image"]
        assert s["total"] == pytest.approx(s["warp"] + s["network"] + s["nms"])
        assert c["resolved"] == "torch/fp32" and c["images"] == 1 and c["regions_per_image"] > 0
    assert [p["method"] for p in result["proposal_cost"]] == ["selective-search", "selective-search-2x"]
    assert all(p["seconds_per_image"] > 0 for p in result["proposal_cost"])


def test_bad_argument_is_a_one_line_error(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        DT.main(["--members", "0"])
    assert stop.value.code == 2
    assert "--members" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("path", RECORDED, ids=[p.name for p in RECORDED])
def test_recorded_result_is_the_section_of_docs_detection(path: Path) -> None:
    result = json.loads(path.read_text())
    assert C.section(ROOT / "docs" / "detection.md", C.section_name(result)) == DT.render(result).strip()
    assert R.render(result) == DT.render(result)  # render.py finds the script by the result's name
