"""The paper's detector against the design that replaced it, on the same data and budget.

Ours is section 8's R-CNN-style detector exactly as ``googlenet train-detector`` builds it
(:func:`googlenet.detection.train_detector`, one member): Selective Search proposals
(``selective-search-2x``), each region warped with context padding and classified by a GoogLeNet
with ``N + 1`` outputs, then per-class NMS; no box regression. The peer
is torchvision's Faster R-CNN (Ren, He, Girshick, Sun, NIPS 2015, arXiv:1506.01497;
``torchvision.models.detection.FasterRCNN``) with OUR GoogLeNet as its backbone: ``forward_features``
(N x 1024 x H/32 x W/32) feeds a region proposal network with one feature map and anchors sized to
the training boxes, ``MultiScaleRoIAlign(['0'], 7, 2)`` pools each region, and torchvision's
default two-layer box head classifies it and regresses its box. One network runs once per image,
where ours runs once per proposal.

Same data: the train split of ``--data`` for both, evaluated on its val split with OUR metric
(:func:`googlenet.detection.metrics.evaluate_detections`, rules ilsvrc and voc12). Same budget:
``--budget epochs`` (default) trains both for ``--epochs`` epochs over the same train images -- an
epoch of ours is one pass over the positive regions (R-CNN's sampling), one of the peer one pass
over the images; ``--budget seconds`` gives the peer the wall-clock seconds ours took (proposals
included) instead. Both start from the same random initial backbone (``--seed``), or from the same
classification weights (``--init-from``: :func:`googlenet.training.finetune.load_pretrained` loads
them into both, ours through ``TrainConfig.init_from`` as ``googlenet train-detector`` does).

Inference runs interleaved, image by image, on the val split with the same torch (and OpenCV)
threads: ours from the raw image (Selective Search, warping, the network over every region, NMS)
and the peer from the raw image. Both in fp32; the peer keeps detections with a score of at least
ours' ``min_score`` (torchvision's default 0.05 would cut the low end of the precision/recall
curve that AP integrates) and at most 100 per image, as ours.

    python benchmarks/detection.py --data DIR --epochs 4 --json out.json
    python benchmarks/detection.py --tiny --json out.json            # 4 + 2 images, 1 epoch (tests)
    python benchmarks/detection.py --data DIR --init-from runs/cls    # both from classification weights

``--stage-costs DET_DIR`` measures instead what a trained detector (``googlenet train-detector``)
spends per image on each stage -- Selective Search, warping, the network over every region, NMS --
for each ``--backends`` (torch, onnxruntime, openvino; fp32) and each ``--members`` count, on the
val split of ``--data``: the proposals are computed once per image (their cost does not depend on
the backend) and every setting then runs on the same boxes, the settings' order rotating image by
image; the ILSVRC mAP of each setting is reported too (the backends should agree).

    python benchmarks/detection.py --data DIR --stage-costs DET_DIR --backends torch onnxruntime \
        --members 1 2 --threads 1 --json costs.json
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common as C
import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

import googlenet
from googlenet.detection.boxes import from_continuous, to_continuous
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detections import Detection, detections_of
from googlenet.detection.metrics import evaluate_detections
from googlenet.detection.scoring import MIN_SCORE, ScoringSettings
from googlenet.errors import GoogLeNetError
from googlenet.training.finetune import load_pretrained

# Version 2: "environment" is the benchmarks' common record (common.environment); version 1 had its own.
FORMAT_VERSION = 2
OURS = "ours: R-CNN + GoogLeNet (section 8)"
PEER = "peer: Faster R-CNN + GoogLeNet"
RULES = ("ilsvrc", "voc12")
PROPOSALS = "selective-search-2x"  # train-detector's default: the paper's superpixels x2
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # Faster R-CNN's three shapes (section 3.1 of Ren et al.)
# Ren et al. section 3.2 / 4: Fast R-CNN's 64 sampled regions per image in training (R = 128 over a
# batch of 2), 300 proposals per image at test; torchvision's defaults (512, 1000) cost 4-8x more
# in the box head, which with 1024-channel features dominates everything else.
PEER_REGIONS_PER_IMAGE = 64
PEER_TEST_PROPOSALS = 300
TINY_DATA = {"classes": 2, "train_images": 4, "val_images": 2, "image_size": 64}
# Faster R-CNN's SGD settings scaled from torchvision's reference (lr 0.02 for 16 images) to the batch.
PEER_SGD_LR_PER_IMAGE = 0.02 / 16
PEER_ADAMW_LR = 1e-4
PEER_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}
OURS_ADAMW = {"lr": 0.002, "weight_decay": 0.05}  # docs/training.md's short-run AdamW
# configs/detector_demo.yaml's fine-tuning rate (R-CNN fine-tunes below pre-training's rate) and its
# Polyak decay: the detector keeps the averaged weights, and the default 0.999 (1000 steps) would
# leave a run of a few hundred steps mostly at its initial weights; the peer keeps its raw weights.
OURS_FINETUNE_LR = 0.001
OURS_EMA_DECAY = 0.98


# --------------------------------------------------------------------------- the peer


class GoogLeNetBackbone(nn.Module):
    """Our GoogLeNet up to inception5b as a torchvision detection backbone (stride 32, 1024 channels)."""

    out_channels = 1024

    def __init__(self, model: googlenet.GoogLeNet) -> None:
        super().__init__()
        self.body = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)  # N x 1024 x H/32 x W/32


def anchor_sizes(train_set: Any, scale: float) -> tuple[int, ...]:
    """Powers of two spanning the training boxes' sides (sqrt of the area) at the peer's scale."""
    boxes = np.concatenate([t.boxes for t in train_set.targets()]).reshape(-1, 4)
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)) * scale
    low, high = math.floor(math.log2(max(sides.min(), 4.0))), math.ceil(math.log2(max(sides.max(), 4.0)))
    return tuple(2**k for k in range(low, high + 1))


def image_sides(dataset: Any) -> tuple[int, int]:
    """(median shorter side, largest longer side) of a dataset's images, from the annotations."""
    shorter = [min(t.width, t.height) for t in dataset.targets()]
    longer = [max(t.width, t.height) for t in dataset.targets()]
    return int(np.median(shorter)), int(max(longer))


def build_peer(args: argparse.Namespace, train_set: Any) -> tuple[FasterRCNN, str | None]:
    """The peer and, with ``--init-from``, what :func:`load_pretrained` loaded into its backbone (the
    same call ours' ``TrainConfig.init_from`` makes; a variant that does not fit is an error here,
    before ours trains)."""
    num_classes = len(train_set.class_names)
    torch.manual_seed(args.seed)  # the same random backbone as ours' (fit seeds the init the same way)
    body = googlenet.create_model(args.model, num_classes=num_classes + 1)
    init = load_pretrained(body, args.init_from).summary() if args.init_from else None
    shorter, longer = image_sides(train_set)
    min_size = round(args.peer_scale * shorter)
    anchors = AnchorGenerator(
        sizes=(anchor_sizes(train_set, min_size / shorter),), aspect_ratios=(ASPECT_RATIOS,)
    )
    peer = FasterRCNN(
        GoogLeNetBackbone(body),
        num_classes=num_classes + 1,  # torchvision's class 0 is the background
        min_size=min_size,
        max_size=max(round(args.peer_scale * longer), min_size),
        image_mean=list(body.meta.mean),
        image_std=list(body.meta.std),
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_batch_size_per_image=PEER_REGIONS_PER_IMAGE,
        rpn_post_nms_top_n_test=PEER_TEST_PROPOSALS,
        box_score_thresh=MIN_SCORE,
        box_detections_per_img=ScoringSettings().max_detections,
    )
    return peer, init


def peer_sample(dataset: Any, i: int, flip: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image ``i`` as a 0..1 tensor and its torchvision target (labels + 1), flipped if asked."""
    image, target = dataset[i]
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    boxes = torch.as_tensor(to_continuous(target.boxes), dtype=torch.float32)
    if flip:
        x = x.flip(-1)
        boxes = torch.stack(
            [target.width - boxes[:, 2], boxes[:, 1], target.width - boxes[:, 0], boxes[:, 3]], 1
        )
    labels = torch.as_tensor(np.asarray(target.labels) + 1, dtype=torch.int64)
    return x, {"boxes": boxes.reshape(-1, 4), "labels": labels}


def peer_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    wd = PEER_WEIGHT_DECAY[args.optimizer]
    if args.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=args.peer_lr or PEER_ADAMW_LR, weight_decay=wd)
    lr = args.peer_lr or PEER_SGD_LR_PER_IMAGE * args.peer_batch_size
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)


class PeerTrainer:
    """torchvision's detection reference loop (``references/detection/engine.py``: sum of the four
    losses, one optimizer step per batch, a linear warm-up over the first epoch's first steps), one
    epoch per :meth:`train_epoch`; the optimizer, the step count and the data order's generator carry
    over from one call to the next, so N calls train exactly as one run of N epochs."""

    def __init__(self, args: argparse.Namespace, model: FasterRCNN, train_set: Any, device: torch.device):
        self.model, self.train_set, self.device = model.to(device), train_set, device
        self.batch_size = args.peer_batch_size
        self.optimizer = peer_optimizer(args, model)
        self.steps_per_epoch = math.ceil(len(train_set) / self.batch_size)
        self.warmup = min(1000, self.steps_per_epoch - 1)
        self.generator = torch.Generator().manual_seed(args.seed)
        self.step, self.images, self.seconds = 0, 0, 0.0
        self.losses: list[float] = []

    def train_epoch(self, deadline: float | None = None) -> float:
        """One pass over the train images in a new random order with random flips, stopped early at
        ``deadline`` (a ``time.perf_counter()`` value) if given; the epoch's mean loss."""
        self.model.train()
        start, first = time.perf_counter(), len(self.losses)
        n = len(self.train_set)
        order = torch.randperm(n, generator=self.generator).tolist()
        flips = torch.rand(n, generator=self.generator) < 0.5
        for b in range(0, n, self.batch_size):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            batch = [peer_sample(self.train_set, i, bool(flips[i])) for i in order[b : b + self.batch_size]]
            xs = [x.to(self.device) for x, _ in batch]
            ts = [{k: v.to(self.device) for k, v in t.items()} for _, t in batch]
            factor = (
                1.0 if self.step >= self.warmup else 0.001 + (1 - 0.001) * self.step / max(self.warmup, 1)
            )
            for group in self.optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
                group["lr"] = group["base_lr"] * factor
            loss = sum(self.model(xs, ts).values())
            if not torch.isfinite(loss):
                raise GoogLeNetError(
                    f"Faster R-CNN: the loss is {loss.item()} at step {self.step}; lower --peer-lr"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.losses.append(float(loss.detach()))
            self.step, self.images = self.step + 1, self.images + len(batch)
        self.seconds += time.perf_counter() - start
        return float(np.mean(self.losses[first:])) if len(self.losses) > first else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "epochs": self.images / len(self.train_set),
            "steps": self.step,
            "images": self.images,
            "final_loss": float(np.mean(self.losses[-self.steps_per_epoch :]))
            if self.losses
            else float("nan"),
            "optimizer": type(self.optimizer).__name__,
            "lr": self.optimizer.param_groups[0].get("base_lr", self.optimizer.param_groups[0]["lr"]),
        }


def train_peer(
    args: argparse.Namespace, model: FasterRCNN, train_set: Any, device: torch.device, seconds: float | None
) -> dict[str, Any]:
    """:class:`PeerTrainer` for ``args.epochs`` epochs or, with ``seconds`` set, until that wall-clock
    budget is spent (the last epoch may stop early)."""
    trainer = PeerTrainer(args, model, train_set, device)
    deadline = None if seconds is None else time.perf_counter() + seconds
    epoch = 0
    while (epoch < args.epochs) if deadline is None else (time.perf_counter() < deadline):
        trainer.train_epoch(deadline)
        epoch += 1
    return trainer.summary()


# --------------------------------------------------------------------------- ours


def ours_config(args: argparse.Namespace, data: str, out: Path, **fields: Any) -> Any:
    """Ours' TrainConfig from the flags; ``fields`` override any of its fields."""
    from googlenet.training.config import resolve_config

    overrides: dict[str, Any] = {
        "data": data,
        "out": str(out),
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "optimizer": args.optimizer,
        "seed": args.seed,
        "device": args.device,
        "precision": "fp32",  # the peer trains in fp32: compare designs, not the engines' precision
        "num_threads": args.threads,
        "workers": args.workers,
        "log_every": 10**6,
        "init_from": args.init_from,
        "ema_decay": OURS_EMA_DECAY,
        **(OURS_ADAMW if args.optimizer == "adamw" else {}),
    }
    if args.optimizer == "adamw" and args.init_from:
        overrides["lr"] = OURS_FINETUNE_LR
    if args.lr is not None:
        overrides["lr"] = args.lr
    config = resolve_config(None, {**overrides, **fields})
    config.validate()
    return config


def train_ours(args: argparse.Namespace, data: str, out: Path) -> dict[str, Any]:
    """Train one region classifier (:func:`googlenet.detection.train_detector`, one member), which
    writes ``detector.json``; proposals are computed (and cached) first so their cost is reported apart."""
    from googlenet.detection import train_detector
    from googlenet.detection.proposals import cached_proposals, proposal_method

    config = ours_config(args, data, out / "detector")
    method = proposal_method(PROPOSALS)
    train_set = open_detection_dataset(data, "train")
    val_set = open_detection_dataset(data, "val", classes=train_set.class_names)
    t0 = time.perf_counter()
    for ds in (train_set, val_set):  # region_task reads them back from the cache
        cached_proposals(ds, method, workers=args.proposal_workers)
    proposal_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_detector(config, members=1, proposals=method, proposal_workers=args.proposal_workers)
    fit_seconds = time.perf_counter() - t0
    return {
        "detector": config.out,
        "seconds": proposal_seconds + fit_seconds,
        "proposal_seconds": proposal_seconds,
        "fit_seconds": fit_seconds,
        "epochs": args.epochs,
        "optimizer": config.optimizer,
        "lr": config.lr,
    }


# --------------------------------------------------------------------------- inference, interleaved


@torch.inference_mode()
def peer_detect(peer: FasterRCNN, x: torch.Tensor, image_id: str, device: torch.device) -> list[Detection]:
    """The peer (in eval mode) on one 0..1 image tensor: its detections in our convention
    (inclusive boxes, labels from 0)."""
    (out,) = peer([x.to(device)])
    boxes = from_continuous(out["boxes"].cpu().double().numpy())  # .cpu() synchronises a GPU
    labels, scores = out["labels"].cpu().numpy() - 1, out["scores"].cpu().numpy()
    return [Detection(image_id, int(c), float(s), b) for b, c, s in zip(boxes, labels, scores, strict=True)]


@torch.inference_mode()
def detect_interleaved(
    ours: Any, peer: FasterRCNN, val_set: Any, device: torch.device
) -> tuple[dict[str, list[Detection]], dict[str, list[float]]]:
    """Both detectors image by image (ours first on even images, the peer first on odd ones, so
    neither always runs on a warm cache); detections in our convention and seconds per image."""
    peer.to(device).eval()
    found: dict[str, dict[str, Any]] = {"ours": {}, "peer": []}
    seconds: dict[str, list[float]] = {"ours": [], "peer": []}
    image, _ = val_set[0]
    ours.detect(image)  # warm-up: first calls allocate, and OpenCV and torch set up their pools
    peer([peer_sample(val_set, 0, False)[0].to(device)])
    ours.times = type(ours.times)()

    def run_ours(image: Any, target: Any) -> None:
        t0 = time.perf_counter()
        found["ours"][target.image_id] = ours.detect(image)
        seconds["ours"].append(time.perf_counter() - t0)

    def run_peer(x: torch.Tensor, target: Any) -> None:
        t0 = time.perf_counter()
        detections = peer_detect(peer, x, target.image_id, device)
        seconds["peer"].append(time.perf_counter() - t0)
        found["peer"].extend(detections)

    for i in range(len(val_set)):
        image, target = val_set[i]
        x = peer_sample(val_set, i, False)[0]
        first, second = (run_ours, run_peer) if i % 2 == 0 else (run_peer, run_ours)
        first(image if first is run_ours else x, target)
        second(image if second is run_ours else x, target)
    return {"ours": detections_of(found["ours"]), "peer": found["peer"]}, seconds


# --------------------------------------------------------------------------- ours' cost per stage


def use_threads(threads: int | None) -> int:
    """torch's and OpenCV's threads (Selective Search runs in OpenCV) set to ``threads``, or left at
    torch's default when None; the count both detectors then run on."""
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    return torch.get_num_threads()


def stage_costs(args: argparse.Namespace, data: str, command: str) -> dict[str, Any]:
    """``--stage-costs``: seconds per image by stage for every (members, backend) of ``args``."""
    from googlenet.detection.detector import Detector, StageTimes, read_manifest
    from googlenet.detection.proposals import propose

    threads = use_threads(args.threads)
    env = C.environment()
    manifest = read_manifest(args.stage_costs)
    val_set = open_detection_dataset(data, "val")
    if list(val_set.class_names) != list(manifest.class_names):
        raise GoogLeNetError(
            f"--stage-costs {args.stage_costs}: trained on classes {manifest.class_names}; {data} has "
            f"{val_set.class_names}"
        )
    members = args.members or [len(manifest.members)]
    settings = [(k, b) for k in members for b in args.backends]
    detectors = {
        (k, b): Detector.load(args.stage_costs, members=k, backend=b, precision="fp32", threads=threads)
        for k, b in settings
    }
    count = len(val_set) if args.images is None else min(args.images, len(val_set))
    method = manifest.proposal_method()
    image, _ = val_set[0]
    boxes = propose(np.asarray(image), method)
    for detector in detectors.values():  # warm-up: first calls allocate, sessions set up their pools
        detector.detect(image, boxes)
        detector.times = StageTimes()
    proposal_seconds, found = 0.0, {key: {} for key in settings}
    for i in range(count):
        image, target = val_set[i]
        t0 = time.perf_counter()
        boxes = propose(np.asarray(image), method)
        proposal_seconds += time.perf_counter() - t0
        shift = i % len(settings)
        for key in settings[shift:] + settings[:shift]:
            found[key][target.image_id] = detectors[key].detect(image, boxes)
    targets = val_set.targets()[:count]
    rows = []
    for (k, backend), detector in detectors.items():
        t = detector.times
        per_image = {"proposals": proposal_seconds / count, **t.seconds_per_image(("warp", "network", "nms"))}
        evaluation = evaluate_detections(
            detections_of(found[(k, backend)]), targets, val_set.class_names, "ilsvrc",
            blacklist=val_set.blacklist,
        )  # fmt: skip
        predictor = detector.predictors[0]
        rows.append(
            {
                "members": k,
                "backend": f"{predictor.backend}/{predictor.precision}",
                "seconds_per_image": per_image,
                "total_seconds_per_image": sum(per_image.values()),
                "overhead_ratio": t.overhead_ratio(),
                "regions_per_image": t.regions_per_image(),
                "mAP_ilsvrc": evaluation.mAP,
            }
        )
    env["load_average_after"] = C.load_average()
    return {
        "format": "googlenet-benchmark-detection-stages",
        "format_version": FORMAT_VERSION,
        "command": command,
        "settings": {
            "detector": str(args.stage_costs),
            "data": data,
            "val_images": count,
            "proposals": method.name,
            "image_size": manifest.image_size,
            "members": members,
            "backends": list(args.backends),
        },
        "rows": rows,
        "environment": env,
    }


def format_stage_table(report: dict[str, Any]) -> str:
    s, env = report["settings"], report["environment"]
    lines = [
        f"{s['val_images']} val images, {s['proposals']}, {s['image_size']} px regions; {env['cpu']}, "
        f"{env['torch_threads']} threads",
        "| members | backend | proposals s | warp s | network s | NMS s | total s | warp + NMS / network "
        "| regions | mAP ILSVRC (%) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        t = r["seconds_per_image"]
        lines.append(
            f"| {r['members']} | {r['backend']} | {t['proposals']:.3f} | {t['warp']:.3f} | "
            f"{t['network']:.3f} | {t['nms']:.4f} | {r['total_seconds_per_image']:.3f} | "
            f"{100 * r['overhead_ratio']:.1f}% | {r['regions_per_image']:.0f} | {100 * r['mAP_ilsvrc']:.2f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- to the plateau

# The plateau mode's result is in the benchmarks' common format (common.header / check_result), which
# benchmarks/render.py re-renders by this NAME; the other modes keep their own "format".
NAME = "detection"
SCHEMA_VERSION = 1
STOP_RULE = "ilsvrc"  # the val mAP whose plateau stops a side (the paper's rule, section 8)
COCO_KEYS = ("AP", "AP50", "AP75")  # COCOeval's summary numbers kept in the curve (pycocotools' names)

_SCORES = {"mAP": {"?": float}, "coco": {"?": float}}
_POINT = {
    "epoch": int,
    "training_seconds": float,  # cumulative: the training loops (ours: and its proposals), not evaluation
    "wall_seconds": float,  # cumulative wall time of the training calls (ours: its setup and validation too)
    "eval_seconds": float,  # this epoch's val evaluation
    "train_loss": float,
    **_SCORES,
}
_CONTENDER = {
    "name": str,
    "curve": [_POINT],
    "best_epoch": int,
    "epochs": int,
    "stopped_by": str,  # "patience", or "max_epochs" / "max_minutes" (then it may still have been climbing)
    "seconds_to_best": float,
    "training_seconds": float,
    "training": dict,
    "final": {
        **_SCORES,
        "AP": {"?": {"?": float}},  # rule -> class -> AP
        "num_detections": int,
        "images_per_s": float,
        "seconds_per_image": float,
    },
}
SCHEMA: dict[str, Any] = {
    "settings": {
        "data": str,
        "train_images": int,
        "val_images": int,
        "classes": [str],
        "model": str,
        "init_from?": str,
        "image_size": int,
        "peer_scale": float,
        "peer_min_size": int,
        "peer_max_size": int,
        "optimizer": str,
        "lr": float,
        "peer_lr": float,
        "batch_size": int,
        "peer_batch_size": int,
        "max_epochs": int,
        "max_minutes?": float,
        "patience": int,
        "stop_rule": str,
        "proposals": str,
        "threads": int,
        "device": str,
        "seed": int,
    },
    "contenders": {"ours": _CONTENDER, "peer": _CONTENDER},
    "ratios": {"?": float},  # ours / peer; a ratio whose denominator is 0 is left out
}


def best_epoch(values: Sequence[float]) -> int:
    """The 1-based epoch of the highest value (the first of equal ones: a later epoch has to be
    strictly better), 0 for no values."""
    best = 0
    for epoch, value in enumerate(values, 1):
        if best == 0 or value > values[best - 1]:
            best = epoch
    return best


def stop_reason(
    values: Sequence[float],
    patience: int,
    max_epochs: int,
    *,
    minutes: float = 0.0,
    max_minutes: float | None = None,
) -> str | None:
    """Early stopping: ``"patience"`` once ``patience`` epochs passed without a better value than the
    best, ``"max_epochs"`` at ``max_epochs`` epochs, ``"max_minutes"`` once the run's ``minutes``
    reach ``max_minutes`` (None: no limit), else None (train another epoch)."""
    if values and len(values) - best_epoch(values) >= patience:
        return "patience"
    if len(values) >= max_epochs:
        return "max_epochs"
    return "max_minutes" if max_minutes is not None and minutes >= max_minutes else None


def scores_of(comparison: Any) -> dict[str, Any]:
    """``{"mAP": {rule: mAP}, "coco": {AP, AP50, AP75}}`` of a :class:`RuleComparison` (every rule)."""
    coco = comparison.evaluations["coco"].summary
    return {
        "mAP": {rule: e.mAP for rule, e in comparison.evaluations.items()},
        "coco": {k: coco[k] for k in COCO_KEYS if coco.get(k) is not None},
    }


class OursTrainer:
    """Ours one epoch at a time. Epoch 1 is :func:`googlenet.detection.train_detector` with one member
    (its proposals computed and cached first, timed apart, as :func:`train_ours` does); each later
    epoch continues that member with :func:`googlenet.fit` on its run directory and ``epochs`` one
    larger. The schedule does not depend on the epoch count and the resume is exact, so after N calls
    the member is what one run of N epochs gives; ``keep_checkpoints="last"`` keeps what it resumes from."""

    def __init__(self, args: argparse.Namespace, data: str, out: Path, class_names: Sequence[str]) -> None:
        from googlenet.detection.proposals import proposal_method
        from googlenet.detection.training import member_dirs

        self.args, self.data, self.out = args, data, out
        self.config = ours_config(args, data, out, epochs=1, keep_checkpoints="last")
        self.method = proposal_method(PROPOSALS)
        self.member = out / member_dirs(out, 1)[0]
        self.class_names = list(class_names)
        self.epochs, self.seconds, self.wall_seconds, self.proposal_seconds = 0, 0.0, 0.0, 0.0

    def train_epoch(self) -> float:
        """Train one more epoch; its mean training loss."""
        from googlenet import fit
        from googlenet.detection import train_detector
        from googlenet.detection.proposals import cached_proposals
        from googlenet.detection.training import region_task
        from googlenet.runs import read_metrics
        from googlenet.training.config import resume_config
        from googlenet.training.ensemble import EnsembleInterrupted

        workers = self.args.proposal_workers
        t0 = time.perf_counter()
        if self.epochs == 0:
            train_set = open_detection_dataset(self.data, "train")
            for ds in (train_set, open_detection_dataset(self.data, "val", classes=train_set.class_names)):
                cached_proposals(ds, self.method, workers=workers)
            self.proposal_seconds = time.perf_counter() - t0
            self.seconds += self.proposal_seconds
            t0 = time.perf_counter()
            train_detector(self.config, members=1, proposals=self.method, proposal_workers=workers)
        else:
            task = region_task(self.method, proposal_workers=workers, classes=self.class_names)
            result = fit(resume_config(self.member, {"epochs": self.epochs + 1}), task=task)
            if result.interrupted:
                raise EnsembleInterrupted(0, self.member, result.interrupted, result.exit_code)
        self.wall_seconds += time.perf_counter() - t0
        record = read_metrics(self.member)[-1]
        self.epochs += 1
        self.seconds += record["epoch_time_s"]
        return float(record["train_loss"])

    def scores(self) -> Any:
        """The detector as it is now on the val split, every rule (:func:`googlenet.detection.
        evaluate_detector` on the cached proposals, in this process)."""
        from googlenet.detection import evaluate_detector

        result = evaluate_detector(
            self.out, self.data, rule="all", workers=0, backend="torch", precision="fp32",
            threads=self.args.threads, device=self.args.device,
        )  # fmt: skip
        return result.runs[0].comparison

    def keep_best(self, best: Path) -> None:
        """Copy the detector as it is now (its manifest and the member's weights) to ``best``."""
        shutil.rmtree(best, ignore_errors=True)
        shutil.copytree(self.out, best, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "*.pt"))

    def summary(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "proposal_seconds": self.proposal_seconds,
            "fit_wall_seconds": self.wall_seconds,
            "optimizer": self.config.optimizer,
            "lr": self.config.lr,
            "ema_decay": self.config.ema_decay,
        }


def peer_scores(peer: FasterRCNN, val_set: Any, device: torch.device) -> Any:
    """The peer as it is now on the val split, every rule."""
    from googlenet.detection.rule_comparison import compare_rules

    peer.eval()
    targets = val_set.targets()
    found = [
        d
        for i, t in enumerate(targets)
        for d in peer_detect(peer, peer_sample(val_set, i, False)[0], t.image_id, device)
    ]
    return compare_rules(found, targets, val_set.class_names, val_set.blacklist)


def comparison_setup(args: argparse.Namespace) -> tuple[int, dict, torch.device, str, Any, Any, tuple]:
    """What both comparisons start from: the threads, the environment, the device, the data and its
    two splits, and the peer built on the train split (first: a bad ``--init-from`` stops here)."""
    threads = use_threads(args.threads)
    env = C.environment(args.device)
    device = torch.device(args.device)
    data = resolve_data(args)
    train_set = open_detection_dataset(data, "train")
    val_set = open_detection_dataset(data, "val", classes=train_set.class_names)
    return threads, env, device, data, train_set, val_set, build_peer(args, train_set)


def plateau(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """``--budget plateau``: both sides epoch by epoch (interleaved, so both see the same load on a
    shared machine), each scored on the val split after every epoch and stopped by
    :func:`stop_reason`; then both at their best epoch's weights, timed interleaved from the raw image."""
    import copy

    from googlenet.detection.detector import Detector
    from googlenet.detection.rule_comparison import compare_rules

    threads, env, device, data, train_set, val_set, (peer, peer_init) = comparison_setup(args)
    curves: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
    stopped: dict[str, str | None] = {"ours": None, "peer": None}
    with tempfile.TemporaryDirectory(prefix="bench-detection-plateau-") as tmp:
        ours = OursTrainer(args, data, Path(tmp) / "detector", train_set.class_names)
        peer_trainer = PeerTrainer(args, peer, train_set, device)
        best_ours, best_peer = Path(tmp) / "best", None
        started = time.perf_counter()
        while not all(stopped.values()):
            for key in ("ours", "peer"):
                if stopped[key]:
                    continue
                if key == "ours":
                    loss = ours.train_epoch()
                    torch.set_num_threads(threads)  # fit may change it; evaluation runs on the same threads
                    seconds, wall = ours.seconds, ours.wall_seconds
                else:
                    loss = peer_trainer.train_epoch()
                    seconds = wall = peer_trainer.seconds
                t0 = time.perf_counter()
                comparison = ours.scores() if key == "ours" else peer_scores(peer, val_set, device)
                point = {
                    "epoch": len(curves[key]) + 1,
                    "training_seconds": seconds,
                    "wall_seconds": wall,
                    "eval_seconds": time.perf_counter() - t0,
                    "train_loss": loss,
                    **scores_of(comparison),
                }
                curves[key].append(point)
                values = [p["mAP"][STOP_RULE] for p in curves[key]]
                if best_epoch(values) == len(values):
                    if key == "ours":
                        ours.keep_best(best_ours)
                    else:
                        best_peer = copy.deepcopy(peer.state_dict())
                minutes = (time.perf_counter() - started) / 60
                stopped[key] = stop_reason(
                    values, args.patience, args.max_epochs, minutes=minutes, max_minutes=args.max_minutes
                )
                if args.json is not None:  # the curves so far survive a run stopped before its plateau
                    so_far = {"curves": curves, "stopped": stopped}
                    C.write_json(args.json.with_suffix(".curves.json"), so_far)
                end = f"; stopped ({stopped[key]})" if stopped[key] else ""
                C.log(
                    f"{key} epoch {point['epoch']}: mAP {STOP_RULE} {100 * values[-1]:.2f}%, COCO AP "
                    f"{100 * point['coco'].get('AP', math.nan):.2f}%, loss {loss:.4f}, training "
                    f"{seconds:.0f} s{end}"
                )
        peer.load_state_dict(best_peer)
        detector = Detector.load(
            best_ours, backend="torch", precision="fp32", threads=threads, device=args.device
        )
        detections, seconds_per = detect_interleaved(detector, peer, val_set, device)
    contenders = {}
    for key, name, trainer in (("ours", OURS, ours), ("peer", PEER, peer_trainer)):
        comparison = compare_rules(detections[key], val_set.targets(), val_set.class_names, val_set.blacklist)
        total = sum(seconds_per[key])
        values = [p["mAP"][STOP_RULE] for p in curves[key]]
        best = best_epoch(values)
        training = trainer.summary()
        if key == "peer":
            training["init"] = peer_init
        contenders[key] = {
            "name": name,
            "curve": curves[key],
            "best_epoch": best,
            "epochs": len(values),
            "stopped_by": stopped[key],
            "seconds_to_best": curves[key][best - 1]["training_seconds"],
            "training_seconds": curves[key][-1]["training_seconds"],
            "training": training,
            "final": {
                **scores_of(comparison),
                "AP": {rule: e.ap for rule, e in comparison.evaluations.items()},
                "num_detections": len(detections[key]),
                "images_per_s": len(seconds_per[key]) / total,
                "seconds_per_image": total / len(seconds_per[key]),
            },
        }
    env["load_average_after"] = C.load_average()
    o, p = contenders["ours"], contenders["peer"]
    pairs = {
        **{f"mAP_{rule}": (o["final"]["mAP"][rule], p["final"]["mAP"][rule]) for rule in o["final"]["mAP"]},
        **{f"{k}_coco": (o["final"]["coco"].get(k, 0.0), p["final"]["coco"].get(k, 0.0)) for k in COCO_KEYS},
        "images_per_s": (o["final"]["images_per_s"], p["final"]["images_per_s"]),
        "seconds_to_best": (o["seconds_to_best"], p["seconds_to_best"]),
        "epochs_to_best": (o["best_epoch"], p["best_epoch"]),
    }
    settings = {
        "data": data,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "classes": list(train_set.class_names),
        "model": args.model,
        **({"init_from": str(args.init_from)} if args.init_from else {}),
        "image_size": args.image_size,
        "peer_scale": float(args.peer_scale),
        "peer_min_size": int(peer.transform.min_size[0]),
        "peer_max_size": int(peer.transform.max_size),
        "optimizer": args.optimizer,
        "lr": float(ours.config.lr),
        "peer_lr": float(peer_trainer.summary()["lr"]),
        "batch_size": args.batch_size,
        "peer_batch_size": args.peer_batch_size,
        "max_epochs": args.max_epochs,
        **({"max_minutes": args.max_minutes} if args.max_minutes is not None else {}),
        "patience": args.patience,
        "stop_rule": STOP_RULE,
        "proposals": PROPOSALS,
        "threads": threads,
        "device": args.device,
        "seed": args.seed,
    }
    return {
        **C.header(NAME, SCHEMA_VERSION, command, env),
        "settings": settings,
        "contenders": contenders,
        "ratios": {k: float(a / b) for k, (a, b) in pairs.items() if b > 0},
    }


def render(result: dict[str, Any]) -> str:
    """The plateau result as markdown: the machine and command, the settings, the table ours / peer."""
    C.check_result(result, NAME, SCHEMA_VERSION, SCHEMA)
    s, c, r = result["settings"], result["contenders"], result["ratios"]
    both = (c["ours"], c["peer"])

    def pct(get: Any) -> list[str]:
        return [f"{100 * v:.2f}" if (v := get(x)) is not None else "-" for x in both]

    rows = [
        ("mAP, ILSVRC rule (%)", *pct(lambda x: x["final"]["mAP"]["ilsvrc"]), r.get("mAP_ilsvrc")),
        ("mAP, VOC2012 rule (%)", *pct(lambda x: x["final"]["mAP"]["voc12"]), r.get("mAP_voc12")),
        ("COCO AP .50:.95 (%)", *pct(lambda x: x["final"]["coco"].get("AP")), r.get("AP_coco")),
        ("COCO AP50 (%)", *pct(lambda x: x["final"]["coco"].get("AP50")), r.get("AP50_coco")),
        ("best epoch / trained", *(f"{x['best_epoch']} / {x['epochs']} ({x['stopped_by']})" for x in both),
         r.get("epochs_to_best")),
        ("training s to the best epoch", *(f"{x['seconds_to_best']:.0f}" for x in both),
         r.get("seconds_to_best")),
        ("training s in all", *(f"{x['training_seconds']:.0f}" for x in both), None),
        ("images/s (inference)", *(f"{x['final']['images_per_s']:.3f}" for x in both), r.get("images_per_s")),
    ]  # fmt: skip
    lines = [
        C.machine_line(result),
        "",
        f"{s['train_images']} train / {s['val_images']} val images, {len(s['classes'])} classes; both "
        f"from {s.get('init_from', 'the same random backbone')} ({s['model']}); ours' regions at "
        f"{s['image_size']} px, the peer's images at {s['peer_min_size']}-{s['peer_max_size']} px; stop "
        f"after {s['patience']} epochs without a better val mAP ({s['stop_rule']}) or at "
        f"{s['max_epochs']} epochs"
        + (f" or after {s['max_minutes']:g} minutes" if "max_minutes" in s else "")
        + "; scores at the best epoch's weights.",
        "",
        C.table(
            [{"name": n, "ours": a, "peer": b, "ratio": q} for n, a, b, q in rows],
            [
                C.Column("", lambda x: x["name"], numeric=False),
                C.Column("ours (R-CNN)", lambda x: x["ours"]),
                C.Column("peer (Faster R-CNN)", lambda x: x["peer"]),
                C.Column("ours / peer", C.field("ratio", "{:.2f}x")),
            ],
        ),
    ]
    return "\n".join(lines)


def plot_plateau(result: dict[str, Any], path: Path) -> Path:
    """The two learning curves: val mAP (ILSVRC rule, and COCO's AP .50:.95 dashed) against the epoch
    and against the training seconds, the best epoch of each side marked."""
    from googlenet.evaluation.plots import new_figure, save_figure

    fig = new_figure(10.0, 4.0)
    by_epoch, by_time = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for n, (key, label) in enumerate((("ours", "ours (R-CNN)"), ("peer", "peer (Faster R-CNN)"))):
        contender, colour = result["contenders"][key], f"C{n}"
        curve = contender["curve"]
        epochs = [p["epoch"] for p in curve]
        minutes = [p["training_seconds"] / 60 for p in curve]
        ilsvrc = [100 * p["mAP"][STOP_RULE] for p in curve]
        coco = [100 * p["coco"].get("AP", float("nan")) for p in curve]
        by_epoch.plot(epochs, ilsvrc, "-o", color=colour, ms=3, label=f"{label}: mAP, ILSVRC rule")
        by_epoch.plot(epochs, coco, "--", color=colour, lw=1, label=f"{label}: COCO AP .50:.95")
        by_time.plot(minutes, ilsvrc, "-o", color=colour, ms=3, label=label)
        b = contender["best_epoch"] - 1
        by_epoch.plot([epochs[b]], [ilsvrc[b]], "*", color=colour, ms=12)
        by_time.plot([minutes[b]], [ilsvrc[b]], "*", color=colour, ms=12)
    by_epoch.set_xlabel("epoch (ours: a pass over the positive regions; peer: over the images)")
    by_time.set_xlabel("training minutes (ours: Selective Search included)")
    by_epoch.set_ylabel("val mAP / AP, %")
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", default="builtin", help="detection dataset folder (VOC layout etc.) or 'builtin'"
    )
    p.add_argument("--epochs", type=int, default=4, help="epochs for both (see --budget)")
    p.add_argument("--budget", choices=("epochs", "seconds", "plateau"), default="epochs",
                   help="epochs: both train --epochs; seconds: the peer gets ours' seconds; plateau: each "
                   "trains until its val mAP stops improving (--patience, --max-epochs)")  # fmt: skip
    p.add_argument("--max-epochs", type=int, default=30, help="--budget plateau: at most this many epochs")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="--budget plateau: stop every side still training once this many minutes of the "
                   "whole run have passed (then its best epoch so far is scored)")  # fmt: skip
    p.add_argument("--patience", type=int, default=3,
                   help="--budget plateau: stop a side after this many epochs without a gain")  # fmt: skip
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="--budget plateau: draw the two learning curves here")  # fmt: skip
    p.add_argument("--docs", type=Path, default=None, metavar="MD",
                   help="--budget plateau: write the table as the result's section of this file")  # fmt: skip
    p.add_argument("--image-size", type=int, default=96, help="ours: the side regions are warped to")
    p.add_argument("--peer-scale", type=float, default=2.0,
                   help="peer: images resized by this factor (Faster R-CNN upsamples VOC)")  # fmt: skip
    p.add_argument("--model", default="googlenet_bn", help="GoogLeNet variant of both")
    p.add_argument("--init-from", default=None, metavar="WEIGHTS", help="classification weights for both")
    p.add_argument(
        "--optimizer", choices=("sgd", "adamw"), default="adamw", help="both sides' optimizer family"
    )
    p.add_argument(
        "--lr", type=float, default=None,
        help=f"ours' (default: AdamW {OURS_ADAMW['lr']}; {OURS_FINETUNE_LR} with --init-from)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="ours: regions per batch")
    p.add_argument("--peer-lr", type=float, default=None, help=f"peer's (default: AdamW {PEER_ADAMW_LR})")
    p.add_argument("--peer-batch-size", type=int, default=2, help="peer: images per batch (torchvision: 2)")
    p.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: torch's)")
    p.add_argument("--workers", type=int, default=0, help="ours' DataLoader workers in training")
    p.add_argument("--proposal-workers", type=int, default=1, help="processes computing ours' proposals")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results as JSON")
    p.add_argument("--tiny", action="store_true", help="a few images, 1 epoch, small sizes (the test mode)")
    p.add_argument("--stage-costs", type=Path, default=None, metavar="DET_DIR",
                   help="measure this detector's cost per stage, backend and members instead")  # fmt: skip
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"],
                   choices=("torch", "onnxruntime", "openvino"), help="with --stage-costs")  # fmt: skip
    p.add_argument("--members", type=int, nargs="+", default=None, metavar="K",
                   help="with --stage-costs: the first K members, for each K (default: all)")  # fmt: skip
    p.add_argument("--images", type=int, default=None, help="with --stage-costs: the first N val images")
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.image_size, args.batch_size, args.peer_scale = 1, 64, 16, 1.0
    if args.images is not None and args.images < 1:
        p.error(f"--images must be at least 1. Got {args.images}")
    for name in ("epochs", "image_size", "batch_size", "peer_batch_size", "max_epochs", "patience"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1. Got {getattr(args, name)}")
    if args.max_minutes is not None and args.max_minutes < 0:
        p.error(f"--max-minutes must be >= 0. Got {args.max_minutes}")
    if args.peer_scale <= 0:
        p.error(f"--peer-scale must be > 0. Got {args.peer_scale}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def resolve_data(args: argparse.Namespace) -> str:
    from googlenet.detection.builtin import ensure_builtin_detection, resolve_detection_data

    if args.data == "builtin":
        return str(ensure_builtin_detection(**({**TINY_DATA, "workers": 1} if args.tiny else {})))
    return str(resolve_detection_data(args.data))


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from googlenet.detection.detector import Detector

    threads, env, device, data, train_set, val_set, (peer, peer_init) = comparison_setup(args)
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        ours_training = train_ours(args, data, Path(tmp))
        torch.set_num_threads(threads)  # fit may change it; inference runs both on the same threads
        budget = ours_training["seconds"] if args.budget == "seconds" else None
        peer_training = train_peer(args, peer, train_set, device, budget)
        ours = Detector.load(
            ours_training["detector"], backend="torch", precision="fp32", threads=threads, device=args.device
        )
        detections, seconds = detect_interleaved(ours, peer, val_set, device)
        stages = ours.times
    ours_training["detector"] = "(temporary)"
    contenders = {}
    for key, name, training in (("ours", OURS, ours_training), ("peer", PEER, peer_training)):
        evaluations = {
            rule: evaluate_detections(
                detections[key], val_set.targets(), val_set.class_names, rule, blacklist=val_set.blacklist
            )
            for rule in RULES
        }
        total = sum(seconds[key])
        contenders[key] = {
            "name": name,
            "mAP": {rule: e.mAP for rule, e in evaluations.items()},
            "AP": {rule: e.ap for rule, e in evaluations.items()},
            "num_detections": len(detections[key]),
            "images_per_s": len(seconds[key]) / total,
            "seconds_per_image": total / len(seconds[key]),
            "training": training,
        }
    # "scoring" is this file's name of the NMS stage (its recorded results keep it).
    contenders["ours"]["stage_seconds_per_image"] = {
        ("scoring" if k == "nms" else k): v for k, v in stages.seconds_per_image().items()
    }
    contenders["ours"]["regions_per_image"] = stages.regions_per_image()
    contenders["peer"]["architecture"] = {
        "min_size": peer.transform.min_size[0],
        "max_size": peer.transform.max_size,
        "anchor_sizes": list(peer.rpn.anchor_generator.sizes[0]),
        "aspect_ratios": list(ASPECT_RATIOS),
        "parameters": sum(p.numel() for p in peer.parameters()),
        "init": peer_init,
    }
    env["load_average_after"] = C.load_average()
    return {
        "format": "googlenet-benchmark-detection",
        "format_version": FORMAT_VERSION,
        "command": command,
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "data": data,
            "proposals": PROPOSALS,
            "train_images": len(train_set),
            "val_images": len(val_set),
            "classes": list(train_set.class_names),
        },
        "contenders": contenders,
        "ratios": {
            "mAP_ilsvrc": _ratio(contenders["ours"]["mAP"]["ilsvrc"], contenders["peer"]["mAP"]["ilsvrc"]),
            "mAP_voc12": _ratio(contenders["ours"]["mAP"]["voc12"], contenders["peer"]["mAP"]["voc12"]),
            "images_per_s": contenders["ours"]["images_per_s"] / contenders["peer"]["images_per_s"],
            "training_seconds": ours_training["seconds"] / peer_training["seconds"],
        },
        "environment": env,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def format_table(report: dict[str, Any]) -> str:
    c, r = report["contenders"], report["ratios"]
    both = ("ours", "peer")
    rows = [
        ("mAP, ILSVRC rule (%)", *(f"{100 * c[k]['mAP']['ilsvrc']:.2f}" for k in both), r["mAP_ilsvrc"]),
        ("mAP, VOC2012 rule (%)", *(f"{100 * c[k]['mAP']['voc12']:.2f}" for k in both), r["mAP_voc12"]),
        ("images/s (inference)", *(f"{c[k]['images_per_s']:.2f}" for k in both), r["images_per_s"]),
        ("training s", *(f"{c[k]['training']['seconds']:.0f}" for k in both), r["training_seconds"]),
        ("training epochs", *(f"{c[k]['training']['epochs']:.2f}" for k in both), None),
    ]  # fmt: skip
    s = report["settings"]
    lines = [
        f"{s['train_images']} train / {s['val_images']} val images, {len(s['classes'])} classes; "
        f"{report['environment']['cpu']}, {report['environment']['torch_threads']} threads, {s['device']}",
        f"| {'':<22} | {'ours (R-CNN)':>12} | {'peer (Faster R-CNN)':>19} | {'ours / peer':>11} |",
        f"|{'-' * 24}|{'-' * 13}:|{'-' * 20}:|{'-' * 12}:|",
    ]
    for name, ours, peer, ratio in rows:
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {name:<22} | {ours:>12} | {peer:>19} | {shown:>11} |")
    st = c["ours"]["stage_seconds_per_image"]
    lines.append(
        f"ours per image: proposals {st['proposals']:.3f} s, warp {st['warp']:.3f} s, "
        f"network {st['network']:.3f} s, NMS {st['scoring']:.4f} s, "
        f"{c['ours']['regions_per_image']:.0f} regions"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from googlenet.training.ensemble import EnsembleInterrupted

    args = parse_args(argv)
    command = C.shown_command("detection.py", list(sys.argv[1:] if argv is None else argv), hidden=())
    try:
        if args.stage_costs is not None:
            report = stage_costs(args, resolve_data(args), command)
        elif args.budget == "plateau":
            report = plateau(args, command)
        else:
            report = run(args, command)
    except GoogLeNetError as exc:
        C.log(f"benchmarks/detection.py: error: {exc}")
        return 2
    except EnsembleInterrupted as stop:  # SIGINT/SIGTERM while ours trains: the run is temporary
        C.log(f"benchmarks/detection.py: stopped by {stop.signal_name} while training ours")
        return stop.exit_code
    if args.stage_costs is None and args.budget == "plateau":
        if args.plot is not None:
            plot_plateau(report, args.plot)
        C.publish(report, render(report), args.json, args.docs)
        return 0
    print(format_stage_table(report) if args.stage_costs is not None else format_table(report))
    if args.json is not None:
        C.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
