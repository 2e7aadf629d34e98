"""Proposal recall as Hosang et al. (TPAMI 2016) measure it: recall against the number of proposals and
average recall, on cases worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from googlenet.detection.boxes import box_iou
from googlenet.detection.proposal_recall import (
    AR_IOU_THRESHOLDS,
    BUDGETS,
    ProposalRecall,
    average_recall,
    average_recall_integral,
    best_overlaps,
    coverage,
    plot_proposal_recall,
    proposal_counts,
    proposal_recall,
    recall,
)
from googlenet.detection.proposals import read_proposals
from googlenet.errors import GoogLeNetError

from .helpers import QUADRANT_CLASSES, Target, cli_in_process, quadrants_scene, write_scene_voc

GT = [1, 1, 100, 100]  # 100 x 100 px
FAR = [301, 301, 400, 400]
AT_060 = [1, 1, 60, 100]  # IoU 0.6 with GT
AT_080 = [1, 1, 80, 100]  # IoU 0.8


def test_the_hand_worked_boxes_have_their_iou() -> None:
    assert box_iou([FAR, AT_060, AT_080], [GT])[:, 0].tolist() == [0.0, 0.6, 0.8]


def test_best_overlap_over_the_first_n_proposals_in_their_order() -> None:
    counts = [0, 1, 2, 3, 10]
    best = best_overlaps([GT], [FAR, AT_060, AT_080], counts)
    # 0 proposals: nothing; the first is far; the second reaches 0.6, the third 0.8; 10 > 3: all three.
    assert best.tolist() == [[0.0, 0.0, 0.6, 0.8, 0.8]]
    # The same boxes best first: one proposal is enough. Order decides the curve, not its end.
    assert best_overlaps([GT], [AT_080, AT_060, FAR], counts).tolist() == [[0.0, 0.8, 0.8, 0.8, 0.8]]
    assert best_overlaps([GT], np.zeros((0, 4)), counts).tolist() == [[0.0] * 5]
    assert best_overlaps(np.zeros((0, 4)), [GT], counts).shape == (0, 5)


def test_recall_is_the_share_of_objects_at_or_above_the_iou() -> None:
    best = np.array([[0.6], [0.8], [0.3]])
    assert recall(best, 0.5).tolist() == [pytest.approx(2 / 3)]
    assert recall(best, 0.7).tolist() == [pytest.approx(1 / 3)]
    assert np.isnan(recall(np.zeros((0, 1)), 0.5)).all()


def test_average_recall_by_hand() -> None:
    assert AR_IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    # One object at 0.72: found at 0.5 ... 0.7 (5 of 10 thresholds) -> AR 0.5; Hosang's integral
    # 2 * (0.72 - 0.5) = 0.44 (the mean over thresholds is its left Riemann sum: never below it).
    assert average_recall([[0.72]])[0] == pytest.approx(0.5)
    assert average_recall_integral([[0.72]])[0] == pytest.approx(0.44)
    # Two objects at 0.72 and 1.0: AR (0.5 + 1) / 2, integral (0.44 + 1) / 2; one under 0.5 adds 0.
    assert average_recall([[0.72], [1.0], [0.4]])[0] == pytest.approx(1.5 / 3)
    assert average_recall_integral([[0.72], [1.0], [0.4]])[0] == pytest.approx(1.44 / 3)
    # Exactly 0.6 and 0.7 reach their thresholds (np.arange(0.5, 1, 0.05) would put them one ulp above).
    assert average_recall([[0.6]])[0] == pytest.approx(0.3)
    assert average_recall([[0.7]])[0] == pytest.approx(0.5)


def test_proposal_counts_are_a_log_grid_with_the_budgets() -> None:
    counts = proposal_counts(1500)
    assert counts[0] == 1 and counts[-1] == 1500 and set(BUDGETS) <= set(counts.tolist())
    assert (np.diff(counts) > 0).all()
    small = proposal_counts(250).tolist()
    assert small[-1] == 250 and 100 in small and 300 not in small and proposal_counts(0).tolist() == [0]


def test_method_recall_over_images_and_budgets_by_hand() -> None:
    targets = [Target("a", np.array([GT, [201, 1, 300, 100]])), Target("b", np.array([GT]))]
    proposals = {
        "a": np.array(
            [FAR, AT_060, [201, 1, 300, 100]]
        ),  # object 1 at 0.6 from the 2nd; object 2 exact from the 3rd
        "b": np.array([AT_080]),
    }
    result = proposal_recall("m", proposals, targets, counts=[1, 2, 3], seconds_per_image=0.5)
    assert result.num_objects == 3 and result.num_images == 2
    assert result.proposals_per_image == 2.0 and result.max_proposals == 3
    assert result.best.tolist() == [[0.0, 0.6, 0.6], [0.0, 0.0, 1.0], [0.8, 0.8, 0.8]]
    assert result.recall(0.5) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert result.recall(0.7) == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    # AR with all 3: objects at 0.6 (3 of 10), 1.0 (10), 0.8 (7) -> 20 / 30.
    assert result.at(None)["AR"] == pytest.approx(2 / 3)
    assert result.at(1000) == result.at(None)  # fewer proposals than the budget: all of them
    assert result.at(None)["recall_0.5"] == pytest.approx(coverage(proposals, targets, 0.5))
    assert result.at(None)["AR_integral"] == pytest.approx(2 * (0.1 + 0.5 + 0.3) / 3)
    record = json.loads(json.dumps(result.to_json()))
    assert record["budgets"]["all"]["AR"] == pytest.approx(2 / 3) and record["counts"] == [1, 2, 3]
    assert record["recall_0.5"] == pytest.approx([1 / 3, 2 / 3, 1.0]) and record["seconds_per_image"] == 0.5
    with pytest.raises(GoogLeNetError, match="no proposals for image 'b'"):
        proposal_recall("m", {"a": proposals["a"]}, targets)


def test_table_json_and_plot_of_several_methods(tmp_path: Path) -> None:
    targets = [Target("a", np.array([GT]))]
    ranked = proposal_recall("ranked", {"a": np.array([AT_080, FAR])}, targets)
    unranked = proposal_recall("unranked", {"a": np.array([FAR, AT_080])}, targets)
    both = ProposalRecall([ranked, unranked], data="/data/set", split="val")
    table = both.format_table()
    assert "ranked" in table and "unranked" in table and "cached" in table
    (line,) = [row for row in table.splitlines() if row.startswith("recall IoU 0.7, all proposals")]
    assert line.split()[-2:] == ["100.0%", "100.0%"]
    markdown = both.markdown().splitlines()
    assert markdown[0] == "|  | ranked | unranked |" and len(markdown) == 2 + len(both.rows())
    assert "| recall IoU 0.5, 100 proposals | 100.0% | 100.0% |" in markdown
    record = both.to_json()
    assert [m["method"] for m in record["methods"]] == ["ranked", "unranked"]
    assert record["methods"][1]["recall_0.5"] == [0.0, 1.0]  # counts 1, 2: the unranked one needs both
    path = plot_proposal_recall(both, tmp_path / "recall.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500


def test_cli_compares_several_methods_in_one_run(tmp_path: Path) -> None:
    voc = write_scene_voc(tmp_path / "voc", quadrants_scene, range(2), "val", QUADRANT_CLASSES)
    out, plot = tmp_path / "props-{method}.json", tmp_path / "recall.png"
    result = cli_in_process(
        "proposals", "--data", voc, "--method", "selective-search", "--method", "selective-search-2x",
        "--out", out, "--workers", "1", "--json", tmp_path / "recall.json", "--plot", plot, "--no-estimate",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "recall.json").read_text())
    assert [m["method"] for m in record["methods"]] == ["selective-search", "selective-search-2x"]
    for m in record["methods"]:
        # The recall curve ends at the coverage the command prints, and the file holds what was scored.
        written = read_proposals(tmp_path / f"props-{m['method']}.json")
        assert m["proposals_per_image"] == sum(len(b) for b in written.values()) / 2
        assert (
            f"coverage (ground-truth boxes with a proposal at IoU >= 0.5): {100 * m['recall_0.5'][-1]:.1f}%"
            in (result.stdout)
        )
        assert m["seconds_per_image"] > 0 and set(m["budgets"]) == {"100", "300", "1000", "all"}
    lines = result.stdout.splitlines()
    (title,) = [i for i, line in enumerate(lines) if line.startswith("Proposal recall")]
    assert lines[title + 1].split() == ["selective-search", "selective-search-2x"]
    assert any(line.startswith("AR, 100 proposals") for line in lines[title:])
    with Image.open(plot) as image:
        assert image.format == "PNG"
    one_file = cli_in_process(
        "proposals", "--data", voc, "--method", "selective-search", "selective-search-2x", "--out",
        tmp_path / "p.json",
    )  # fmt: skip
    assert one_file.returncode == 2 and "{method}" in one_file.stderr and one_file.stderr.count("\n") == 1
