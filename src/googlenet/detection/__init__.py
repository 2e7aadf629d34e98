"""Section 8 of the paper: GoogLeNet's detector (R-CNN with the Inception network as region classifier).

Detection data (:mod:`.datasets`), region proposals (:mod:`.proposals`, Selective Search and
MultiBox; a split's, with their recall: :func:`propose_split`), the detector (:class:`Detector`,
its directory's :class:`DetectorManifest`), training it (:func:`train_detector`), evaluating it over
members x proposal methods (:func:`evaluate_detector`) and scoring detections under the ILSVRC /
PASCAL VOC / COCO rules (:func:`evaluate_detections`; all of them side by side:
:func:`compare_rules`; the detections file: :func:`read_detections`, :func:`write_detections`)::

    from googlenet.detection import Detector, evaluate_detector, train_detector

    train_detector(data="builtin", out="runs/det", init_from="runs/cls", members=2, epochs=1)
    found = Detector.load("runs/det").detect(image)          # ScoredBoxes: boxes, labels, scores
    result = evaluate_detector("runs/det", "builtin", members=[1, 2], rule="ilsvrc")
    print(result.format_table())

This package is a consumer of the classifier code: it imports models, data, training and
inference; nothing outside it (but the CLI) imports it. The names above are imported on first use.
"""

from importlib import import_module
from typing import Any

# name -> module that defines it; imported lazily so that `import googlenet.detection.boxes` stays light.
_LAZY = {
    "Detector": "googlenet.detection.detector",
    "DetectorManifest": "googlenet.detection.detector",
    "StageTimes": "googlenet.detection.detector",
    "read_manifest": "googlenet.detection.detector",
    "train_detector": "googlenet.detection.training",
    "estimate_train_detector": "googlenet.detection.training",
    "evaluate_detector": "googlenet.detection.evaluation",
    "estimate_detector_evaluation": "googlenet.detection.evaluation",
    "DetectorShardPart": "googlenet.detection.evaluation_parts",
    "fill_proposals": "googlenet.detection.proposals",
    "proposals_job": "googlenet.detection.proposal_job",
    "propose_split": "googlenet.detection.proposal_job",
    "estimate_propose_split": "googlenet.detection.proposal_job",
    "ProposalsResult": "googlenet.detection.proposal_job",
    "MethodProposals": "googlenet.detection.proposal_job",
    "estimate_proposals": "googlenet.detection.estimates",
    "evaluate_detections_file": "googlenet.detection.evaluation",
    "DetectionResult": "googlenet.detection.evaluation",
    "DetectorRun": "googlenet.detection.evaluation",
    "evaluate_detections": "googlenet.detection.metrics",
    "DetectionEvaluation": "googlenet.detection.metrics",
    "compare_rules": "googlenet.detection.rule_comparison",
    "RuleComparison": "googlenet.detection.rule_comparison",
    "Detection": "googlenet.detection.detections",
    "read_detections": "googlenet.detection.detections",
    "write_detections": "googlenet.detection.detections",
    "ScoredBoxes": "googlenet.detection.scoring",
    "ScoringSettings": "googlenet.detection.scoring",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'googlenet.detection' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
