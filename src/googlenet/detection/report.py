"""The detector's report (paper section 8): mAP tables, a precision-recall curve per class, and
validation images with their detections and ground truth drawn.

``googlenet report DETECTOR_DIR --out R`` writes ``R/index.md`` and ``R/index.html``. The detector
runs on the validation split (or ``max_images`` of it, spread evenly as ``evaluate --limit``
picks them), or its detections are read from a detections file (``--detections``: what
``evaluate-detection --detections-out`` wrote, so that the networks do not run twice); an
``evaluate-detection --detector --json`` file adds its comparison table (members x proposal
methods) and the seconds of the run that wrote that file. The folder is built beside ``R`` and
swapped in whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from ..evaluation.plots import new_figure, save_figure
from ..evaluation.protocol import select_images
from ..evaluation.report import build_report_folder, check_report_out
from ..evaluation.tables import markdown_table
from .detections import detections_of
from .draw import draw_detections

DETECTOR_REPORT_FILES = ("index.md", "index.html", "pr_curves.png", "detections.png", "proposal_recall.png")
# rows x columns of validation images in detections.png, and the longer side of each (px): the sheet
# is 1104 px wide, shown unscaled on the report's page (72rem wide).
GRID = (4, 3)
GRID_CELL = 360
GRID_GAP = 6
GRID_BACKGROUND = (128, 128, 128)  # mid grey: the edge of a white or a black image shows against it
SHOWN_SCORE = 0.3  # detections drawn in the grid: softmax score at least this


def plot_pr_curves(evaluation: Any, path: Path) -> Path:
    """One precision-recall curve per class (the curve its AP is the area under)."""
    fig = new_figure(9.0, 4.5)
    ax = fig.add_subplot()
    for name, (recall, precision) in evaluation.curves.items():
        # The monotone envelope the AP integrates, drawn as a step: what the devkits score.
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        ax.step(np.r_[0.0, recall], np.r_[envelope[:1] if len(envelope) else [0.0], envelope], where="pre",
                label=f"{name} (AP {100 * evaluation.ap[name]:.1f}%)")  # fmt: skip
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"Precision-recall per class, rule {evaluation.rule}: mAP {100 * evaluation.mAP:.1f}%")
    ax.grid(alpha=0.3)
    # Beside the axes: inside, it would hide the curves' low-precision tails.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def detection_grid(dataset: Any, found: dict[str, Any], class_names: Sequence[str], path: Path) -> Path:
    """Validation images with their detections (class colours, score >= SHOWN_SCORE) and ground truth
    (dashed white), each scaled (up or down) to fill its GRID_CELL square, as one PNG."""
    from PIL import Image

    from ..atomic import atomic_write

    rows, cols = GRID
    count = min(len(dataset), rows * cols)
    picks = select_images(len(dataset), count)
    step = GRID_CELL + GRID_GAP
    sheet = Image.new("RGB", (cols * step + GRID_GAP, -(-count // cols) * step + GRID_GAP), GRID_BACKGROUND)
    for k, i in enumerate(picks):
        try:
            image, target = dataset[i]
        except GoogLeNetError:  # an image that cannot be decoded (scored without detections): no picture
            continue
        drawn = draw_detections(image, found[target.image_id], class_names, ground_truth=target,
                                min_score=SHOWN_SCORE, side=GRID_CELL)  # fmt: skip
        x = (k % cols) * step + GRID_GAP + (GRID_CELL - drawn.width) // 2
        y = (k // cols) * step + GRID_GAP + (GRID_CELL - drawn.height) // 2
        sheet.paste(drawn, (x, y))
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG", optimize=True))


def _evaluation_record(evaluation_file: Path, detector_dir: Path) -> dict[str, Any]:
    """The ``evaluate-detection --detector --json`` record ``evaluation_file``, read once for every
    section that uses it; one line when it holds no runs or is of another detector."""
    from ..manifest import read_json

    record = read_json(evaluation_file, what="--evaluation")
    runs = record.get("runs") if isinstance(record, dict) else None
    if not isinstance(runs, list) or not runs:
        raise GoogLeNetError(
            f"--evaluation {evaluation_file} holds no detector runs: pass the --json of "
            "googlenet evaluate-detection --detector"
        )
    if Path(str(record.get("detector", ""))).resolve() != detector_dir.resolve():
        raise GoogLeNetError(
            f"--evaluation {evaluation_file} evaluated the detector {record.get('detector')}, "
            f"not {detector_dir}"
        )
    return record


def _comparison(record: dict[str, Any]) -> str:
    """The record's runs (members x proposal methods) and their intervals as markdown."""
    rows = []
    for r in record["runs"]:
        # Member i alone (an evaluate_detector(each_member=True) run) shows its index.
        indices = r.get("member_indices")
        first_k = not isinstance(indices, list) or indices == list(range(len(indices)))
        members = r["members"] if first_k else f"[{','.join(map(str, indices))}]"
        rows.append(
            [str(members), r["proposals"], _run_map(r), f"{r['proposals_per_image']:.0f}",
             f"{100 * r['coverage']:.1f}%", f"{100 * r['overhead_ratio']:.1f}%"]
        )  # fmt: skip
    header = ["members", "proposals", "mAP", "proposals / image", "coverage", "warp + NMS / network"]
    return (
        f"Rule {record.get('rule')}, {record.get('num_images')} images of `{record.get('data')}` "
        f"[{record.get('split')}]\n\n" + markdown_table(header, rows, left={1}) + _intervals(record)
    )


def _intervals(record: dict[str, Any]) -> str:
    """The record's paired bootstrap intervals (:mod:`.bootstrap`) as a markdown table, or nothing."""
    from .bootstrap import BEST_MEMBER_NOTE, MapInterval, draws_line, interval_cells

    try:
        intervals = [MapInterval.from_dict(x) for x in record.get("intervals", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise GoogLeNetError(f"--evaluation: an interval of the record is malformed: {exc}") from None
    if not intervals:
        return ""
    first = intervals[0]
    rows = [[x.what, *interval_cells(x), "yes" if x.excludes_zero else "no"] for x in intervals]
    best = f" {BEST_MEMBER_NOTE}" if any(x.reference == "best member" for x in intervals) else ""
    return (
        f"\n\nmAP differences in points with their 95% paired bootstrap intervals over {draws_line(first)}; "
        f"both sides scored on each draw).{best}\n\n"
        + markdown_table(["comparison", "difference", "95% interval", "excludes 0"], rows, left={0})
    )


def _run_map(run: dict[str, Any]) -> str:
    """A run's mAP, or with ``--rule all`` each rule's (COCO's: AP over IoU .50:.95)."""
    if "evaluations" not in run:
        return f"{100 * run['mAP']:.2f}%"
    return " / ".join(f"{rule} {100 * e['mAP']:.2f}%" for rule, e in run["evaluations"].items())


def _proposal_recall(
    dataset: Any, own: Any, proposals: dict[str, Any], record: dict[str, Any] | None, path: Path
) -> tuple[str, str, str]:
    """The recall curves (Hosang et al.) of the detector's proposals and of the other methods the
    ``--evaluation`` record compared, those whose proposals of these images are in the cache (so the
    section costs no Selective Search), as a table and ``path``."""
    from .proposal_recall import ProposalRecall, plot_proposal_recall, proposal_recall
    from .proposals import cached_proposals, proposal_method, proposals_cache_path

    boxes = {own.name: proposals}
    record = record or {}
    for name in dict.fromkeys(r.get("proposals") for r in record.get("runs", []) if isinstance(r, dict)):
        if not isinstance(name, str) or name in boxes:
            continue
        try:
            method = proposal_method(name)  # a MultiBox method names no folder here: left out
        except GoogLeNetError:
            continue
        if proposals_cache_path(dataset, method).is_file():
            boxes[name] = cached_proposals(dataset, method)
    targets = dataset.targets()
    recalls = [proposal_recall(name, b, targets) for name, b in boxes.items()]
    result = ProposalRecall(recalls, data=str(dataset.root), split=dataset.split)
    plot_proposal_recall(result, path)
    text = (
        f"{result.title()}. Each method's proposals in its own order (Selective Search: OpenCV's "
        "ranking, docs/detection.md); the detector classifies all of them.\n\n" + result.markdown()
    )
    return "Proposals: recall against their number", path.name, text


def _ap_table(result: Any) -> str:
    """Per class: AP, the other per-class APs the rule reports (COCO's AP50 / AP75), ground-truth
    objects; then the mean, as a markdown table with a line on what the mean is over."""
    extra = list(getattr(result, "per_class", {}) or {})

    def percent(values: dict[str, float], name: str) -> str:
        return f"{100 * values[name]:.2f}%" if name in values else "-"

    rows = [
        [name, percent(result.ap, name), *(percent(result.per_class[k], name) for k in extra), str(n)]
        for name, n in result.num_gt.items()
    ]
    summary = getattr(result, "summary", {}) or {}  # the rule's own means of those (COCO's summarize)
    means = [percent(summary, k) if summary.get(k) is not None else "-" for k in extra]
    rows.append(["mean (mAP)", f"{100 * result.mAP:.2f}%", *means, str(sum(result.num_gt.values()))])
    table = markdown_table(["class", "AP", *extra, "ground-truth objects"], rows, left={0})
    without = [name for name in result.num_gt if name not in result.ap]
    note = (
        f" Classes without ground truth here ({', '.join(without)}) have no AP and are left out of the mean."
        if without
        else ""
    )
    return (
        f"{table}\nRule {result.rule}, {result.num_detections} detections; the mAP is the mean AP over the "
        f"{len(result.ap)} classes with ground truth.{note}"
    )


def _recorded_run(record: dict[str, Any], detections: Path) -> dict[str, Any] | None:
    """The ``evaluate-detection --json`` record's run whose detections it wrote to the file
    ``detections`` (its ``detections_file``), or None when it wrote no such file."""
    written = record.get("detections_file")
    if not isinstance(written, dict) or Path(str(written.get("path"))).resolve() != detections.resolve():
        return None
    for run in record.get("runs", []):
        if run.get("member_indices") == written.get("member_indices") and run.get("proposals") == written.get(
            "proposals"
        ):
            return run
    return None


def _seconds(seconds_per_image: dict[str, float], overhead_ratio: float) -> str:
    s = seconds_per_image
    return (
        f"warp {s['warp']:.3f}, network {s['network']:.3f}, NMS {s['nms']:.3f} (warping + NMS = "
        f"{100 * overhead_ratio:.1f}% of the network's time)"
    )


def write_detector_report(
    detector_dir: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "val",
    rule: str = "ilsvrc",
    evaluation: str | Path | None = None,
    detections: str | Path | None = None,
    max_images: int | None = None,
    workers: int = 0,
    **predictor_options: Any,
) -> Path:
    """Write the report of the detector in ``detector_dir`` into ``out``; returns ``out/index.md``.

    ``detections``: a detections file of the split (:mod:`.detections`, e.g. what
    ``evaluate-detection --detections-out`` wrote) whose detections the AP table, the curves and the
    pictures show instead of the detector's own run here (which is then not loaded); the seconds per
    image are those the ``evaluation`` record timed for the run that wrote the file, if it did."""
    from .datasets import open_detection_dataset
    from .detections import read_detections, scored_boxes_of
    from .detector import Detector, read_manifest
    from .metrics import RULES, evaluate_detections
    from .proposals import cached_proposals

    detector_dir, out = Path(detector_dir), Path(out)
    manifest = read_manifest(detector_dir)
    if rule not in RULES:
        raise GoogLeNetError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    check_report_out(out, DETECTOR_REPORT_FILES)
    record = _evaluation_record(Path(evaluation), detector_dir) if evaluation is not None else None
    comparison = _comparison(record) if record is not None else None
    source = data if data is not None else manifest.data
    if source is None:
        raise GoogLeNetError(f"{detector_dir}: the manifest names no data; pass --data")
    dataset = open_detection_dataset(source, split, classes=manifest.class_names)
    # Checked against the whole split: a file of it stays valid with max_images.
    read = (
        None if detections is None else read_detections(detections, manifest.class_names, dataset.image_ids)
    )
    if max_images is not None:
        dataset = dataset.subset(select_images(len(dataset), max_images))
    members = f"({manifest.variant}, {manifest.image_size} px regions)"
    images = f"{len(dataset)} images of `{dataset.root}` [{split}]"
    if read is None:
        # The reference numbers by default (torch fp32), as evaluate-detection computes them.
        options = {"backend": "torch", "precision": "fp32", **predictor_options}
        detector = Detector.load(detector_dir, **options)
        method = detector.method
        proposals = cached_proposals(dataset, method, workers=workers)
        found = detector.detect_dataset(dataset, proposals, workers=min(workers, 4))
        scored = detections_of(found)
        t = detector.times
        summary = (
            f"{len(manifest.members)} member(s) {members}, proposals {method.name}: "
            f"{t.regions_per_image():.0f} regions per image; {images}. Seconds per image: "
            f"{_seconds(t.seconds_per_image(), t.overhead_ratio())}."
        )
    else:
        method = manifest.proposal_method()
        proposals = cached_proposals(dataset, method, workers=workers)
        found = scored_boxes_of(read, dataset.image_ids)
        scored = [d for d in read if d.image_id in found]  # the file's order: evaluate-detection's mAP
        run = _recorded_run(record, Path(detections)) if record is not None else None
        if run is None:
            summary = (
                f"{len(manifest.members)} member(s) {members}, proposals {method.name}; {images}. "
                f"Detections read from `{detections}`; no --evaluation record says which run wrote them, "
                "so they were not timed in this report."
            )
        else:  # the seconds evaluate-detection measured, over the images it ran on
            summary = (
                f"{run['members']} of {len(manifest.members)} member(s) {members}, proposals "
                f"{run['proposals']}: {run['proposals_per_image']:.0f} regions per image; {images}. "
                f"Detections read from `{detections}`. Seconds per image, as evaluate-detection timed "
                f"that run over {record.get('num_images')} images: "
                f"{_seconds(run['seconds_per_image'], run['overhead_ratio'])}."
            )
    result = evaluate_detections(
        scored, dataset.targets(), dataset.class_names, rule, blacklist=dataset.blacklist
    )

    def draw(build: Path) -> list[tuple[str, str | None, str]]:
        plot_pr_curves(result, build / "pr_curves.png")
        detection_grid(dataset, found, manifest.class_names, build / "detections.png")
        sections: list[tuple[str, str | None, str]] = [("Detector", None, summary)]
        if comparison is not None:
            sections.append(("Members and proposals (evaluate-detection)", None, comparison))
        recall_png = build / "proposal_recall.png"
        sections.append(_proposal_recall(dataset, method, proposals, record, recall_png))
        sections += [
            ("Average precision per class", None, _ap_table(result)),
            ("Precision-recall curves", "pr_curves.png", f"mAP {100 * result.mAP:.2f}% under rule {rule}."),
            (
                "Validation images",
                "detections.png",
                f"Detections scoring at least {SHOWN_SCORE}: a box in their class's colour, labelled with "
                "the class and its score; ground truth: dashed white and black boxes.",
            ),
        ]
        return sections

    return build_report_folder(
        out, draw, title="GoogLeNet detector report", items=("Detector", [detector_dir])
    )
