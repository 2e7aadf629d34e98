"""MultiBox (Erhan et al. 2014, paper section 8): priors, matching, loss, decoding, proposals, training.

Hand-worked cases for the maths; a real VOC folder (JPEG + XML in tmp_path) for the training data
and the command line, run as a subprocess (and under a real ``torchrun`` of two processes).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from googlenet.cli import main
from googlenet.data.config import resolve_data_config
from googlenet.detection.boxes import box_iou, denormalise_boxes, normalise_boxes
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.multibox import (
    LABEL_INDEX,
    LABEL_MATCHED,
    LABEL_RESIDUAL,
    MULTIBOX_MANIFEST,
    MULTIBOX_RECIPE,
    MultiBox,
    MultiBoxHead,
    MultiBoxNetwork,
    MultiBoxOptions,
    MultiBoxSamples,
    create_multibox_network,
    decode_boxes,
    encode_targets,
    fit_grid_priors,
    fit_priors,
    grid_size,
    label_loss,
    load_multibox,
    match_cost,
    match_priors,
    multibox_loss,
    multibox_task,
    positive_share,
    resume_options,
    save_multibox,
    split_outputs,
    train_multibox,
    training_boxes,
)
from googlenet.detection.proposals import multibox_proposals
from googlenet.errors import GoogLeNetError
from googlenet.models.registry import create_model
from googlenet.runs import MULTIBOX_FILE, RunLayout, read_metrics
from googlenet.training.config import TrainConfig, resolve_config
from googlenet.weights.store import load_weights, read_metadata, save_weights

from .helpers import cli_in_process, rectangles_scene, run_cli, threads_kept, torchrun, write_scene_voc

CLASSES = ("square", "bar")


def random_boxes01(n: int, seed: int) -> np.ndarray:
    corners = np.random.default_rng(seed).random((n, 2, 2))
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)


# --------------------------------------------------------------------------- coordinates


def test_normalised_corners_cover_the_inclusive_pixels() -> None:
    # Pixels 1..W of a W-wide image are the interval [0, W]: the whole image is [0, 0, 1, 1].
    assert normalise_boxes([[1, 1, 70, 50]], 70, 50).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert normalise_boxes([[11, 6, 20, 25]], 100, 50).tolist() == [[0.1, 0.1, 0.2, 0.5]]
    boxes = np.array([[3, 5, 10, 20], [1, 1, 1, 1], [7, 2, 70, 50]], dtype=float)
    assert np.array_equal(denormalise_boxes(normalise_boxes(boxes, 70, 50), 70, 50), boxes)
    # Outside the image, swapped or empty: clipped, ordered, at least one pixel.
    out = denormalise_boxes([[-0.5, 0.2, 1.5, 0.1], [0.5, 0.5, 0.5, 0.5]], 10, 20)
    assert out.tolist() == [[1.0, 3.0, 10.0, 4.0], [6.0, 11.0, 6.0, 11.0]]


def test_boxes_are_residuals_to_their_priors() -> None:
    priors = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    raw = torch.tensor([[0.01, 0.02, 0.03, 0.04, -0.1, 0.0, 0.0, 0.1, 2.0, -3.0]])
    residuals, logits = split_outputs(raw, 2)
    assert residuals.shape == (1, 2, 4) and logits.tolist() == [[2.0, -3.0]]
    expected = [[[0.11, 0.22, 0.53, 0.64], [-0.1, 0.0, 1.0, 1.1]]]
    assert torch.allclose(decode_boxes(residuals, priors), torch.tensor(expected))
    with pytest.raises(ValueError, match="need 15 outputs"):
        split_outputs(raw, 3)


# --------------------------------------------------------------------------- priors and matching


def test_priors_are_kmeans_centres_and_reproducible() -> None:
    # Two tight groups of boxes: two priors land on their means.
    small = np.array([0.1, 0.1, 0.3, 0.3]) + np.random.default_rng(0).normal(0, 0.01, (20, 4))
    large = np.array([0.2, 0.3, 0.9, 0.95]) + np.random.default_rng(1).normal(0, 0.01, (20, 4))
    priors = fit_priors(np.concatenate([small, large]), 2, seed=3)
    order = np.argsort(priors[:, 2])
    assert np.allclose(priors[order], [small.mean(0), large.mean(0)])
    data = random_boxes01(60, 2)
    assert np.array_equal(fit_priors(data, 7, seed=5), fit_priors(data, 7, seed=5))
    assert fit_priors(data, 7, seed=5).shape == (7, 4)
    with pytest.raises(
        GoogLeNetError, match="5 priors need at least 5 distinct training boxes; the data has 3"
    ):
        fit_priors(np.repeat(data[:3], 4, axis=0), 5)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_gt", [1, 3, 4])
def test_matching_is_the_optimal_assignment(seed: int, num_gt: int) -> None:
    priors, gt = random_boxes01(4, seed), random_boxes01(num_gt, 100 + seed)
    cost = match_cost(priors, gt, 1.0)
    rows, cols = match_priors(priors, gt)
    assert sorted(cols.tolist()) == list(range(num_gt)) and len(set(rows.tolist())) == num_gt
    # Brute force: every injective map of the ground truths into the 4 priors.
    best = min(
        sum(cost[p, j] for j, p in enumerate(perm)) for perm in itertools.permutations(range(4), num_gt)
    )
    assert math.isclose(cost[rows, cols].sum(), best, rel_tol=1e-12)
    assert np.allclose(cost, 0.5 * ((priors[:, None] - gt[None]) ** 2).sum(2))


def test_matching_can_differ_from_nearest_prior() -> None:
    # Both ground truths are nearest to prior 0; the assignment gives one of them prior 1.
    priors = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    gt = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.6, 0.6]])
    rows, cols = match_priors(priors, gt)
    assert dict(zip(cols.tolist(), rows.tolist(), strict=True)) == {0: 0, 1: 1}
    boxes, matched = encode_targets(priors, gt)
    assert matched.tolist() == [True, True] and np.allclose(boxes, gt)
    boxes, matched = encode_targets(priors, np.zeros((0, 4)))
    assert not matched.any() and not boxes.any()


# --------------------------------------------------------------------------- the loss


def test_loss_by_hand() -> None:
    priors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    gt = np.array([[0.6, 0.5, 1.0, 1.0]])  # nearest to prior 1
    boxes, matched = encode_targets(priors.numpy(), gt)
    assert matched.tolist() == [False, True]
    residuals = torch.tensor([[[0.3, 0.0, 0.0, 0.0], [0.0, 0.1, 0.0, 0.0]]])  # l_1 = [.5, .6, 1, 1]
    logits = torch.tensor([[0.0, math.log(3.0)]])  # c_0 = 1/2 (unmatched), c_1 = 3/4 (matched)
    loss = multibox_loss(
        residuals, logits, priors, torch.from_numpy(boxes)[None], torch.from_numpy(matched)[None], alpha=0.3
    )
    conf = -math.log(1 - 0.5) - math.log(0.75)
    match = 0.5 * (0.1**2 + 0.1**2)  # only the matched box counts; box 0's residual does not
    assert math.isclose(loss.conf.item(), conf, rel_tol=1e-6)
    assert math.isclose(loss.match.item(), match, rel_tol=1e-5)
    assert math.isclose(loss.total.item(), conf + 0.3 * match, rel_tol=1e-6)
    # A batch is the mean of its images; an image without objects has only the confidence terms.
    batch = multibox_loss(
        torch.cat([residuals, residuals]),
        torch.cat([logits, logits]),
        priors,
        torch.cat([torch.from_numpy(boxes)[None], torch.zeros(1, 2, 4)]),
        torch.tensor([[False, True], [False, False]]),
        alpha=0.3,
    )
    assert math.isclose(batch.conf.item(), (conf + (-math.log(0.5) - math.log(0.25))) / 2, rel_tol=1e-6)
    assert math.isclose(batch.match.item(), match / 2, rel_tol=1e-5)


def test_grid_priors_by_hand() -> None:
    # Two box shapes, 0.1 x 0.1 and 0.5 x 0.25: on a 2 x 2 grid, 2 per cell, each cell centre
    # (0.25 or 0.75) carries both, cell-major (row, column), then smallest first.
    small, wide = np.array([0.0, 0.0, 0.1, 0.1]), np.array([0.0, 0.0, 0.5, 0.25])
    boxes = np.concatenate([small + 0.3 * np.random.default_rng(0).random((10, 1)), wide + np.zeros((10, 1))])
    priors = fit_grid_priors(boxes, 2, 2, seed=0)
    expected = []
    for cy in (0.25, 0.75):
        for cx in (0.25, 0.75):
            expected += [
                [cx - 0.05, cy - 0.05, cx + 0.05, cy + 0.05],
                [cx - 0.25, cy - 0.125, cx + 0.25, cy + 0.125],
            ]
    assert np.allclose(priors, expected)
    # A small box centred in cell (row 1, column 0) takes that cell's small prior (index 4): its
    # target residual is the box minus the prior, and no other prior is matched.
    gt = np.array([[0.15, 0.6, 0.25, 0.7]])
    target, matched = encode_targets(priors, gt)
    assert matched.tolist() == [False] * 4 + [True] + [False] * 3
    assert np.allclose(target[4] - priors[4], [-0.05, -0.1, -0.05, -0.1])
    with pytest.raises(GoogLeNetError, match="3 prior shapes per cell need at least 3 distinct"):
        fit_grid_priors(boxes[:2], 2, 3)


def test_grid_loss_by_hand() -> None:
    # The grid head's loss is the same F: a perfect box costs nothing in F_match, the confidences
    # only their cross-entropy, whatever the head.
    priors = torch.tensor(
        [[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], [0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]
    )
    gt = np.array([[0.55, 0.6, 0.95, 1.0]])  # nearest to prior 3, 0.05 / 0.1 / -0.05 / 0 away
    boxes, matched = encode_targets(priors.numpy(), gt)
    assert matched.tolist() == [False, False, False, True]
    perfect = torch.zeros(1, 4, 4)
    perfect[0, 3] = torch.tensor([0.05, 0.1, -0.05, 0.0])
    logits = torch.tensor([[-math.log(3.0), 0.0, 0.0, math.log(3.0)]])  # c = 1/4, 1/2, 1/2, 3/4
    loss = multibox_loss(
        perfect, logits, priors, torch.from_numpy(boxes)[None], torch.from_numpy(matched)[None], alpha=10.0
    )
    conf = -math.log(0.75) - 2 * math.log(0.5) - math.log(0.75)
    assert loss.match.item() < 1e-12 and math.isclose(loss.total.item(), conf, rel_tol=1e-6)
    # Boxes left at their priors: alpha / 2 * the squared distance of the matched one only.
    at_priors = multibox_loss(
        torch.zeros(1, 4, 4),
        logits,
        priors,
        torch.from_numpy(boxes)[None],
        torch.from_numpy(matched)[None],
        alpha=10.0,
    )
    assert math.isclose(at_priors.match.item(), 0.5 * (0.05**2 + 0.1**2 + 0.05**2), rel_tol=1e-5)
    assert math.isclose(at_priors.total.item(), conf + 10.0 * at_priors.match.item(), rel_tol=1e-6)


def test_grid_head_layout() -> None:
    # With the hidden conv an identity and the 1 x 1 conv passing its 5A inputs through, output k of
    # the N x 5K vector must be what cell (row, col), slot a put in the channel the layout names.
    net = create_multibox_network(2 * 2 * 2, model="googlenet_bn", head=MultiBoxHead(per_cell=2))
    head = net.fc
    head.hidden = torch.nn.Identity()
    head.predict = torch.nn.Conv2d(10, 10, 1)
    with torch.no_grad():
        head.predict.weight.copy_(torch.eye(10)[:, :, None, None])
        head.predict.bias.zero_()
    x = torch.zeros(1, 10, 2, 2)
    for ch, row, col in itertools.product(range(10), range(2), range(2)):
        x[0, ch, row, col] = 100 * ch + 10 * row + col
    residuals, logits = split_outputs(head(x), 8)
    for row, col, a in itertools.product(range(2), range(2), range(2)):
        k = (row * 2 + col) * 2 + a
        assert residuals[0, k].tolist() == [100 * (4 * a + c) + 10 * row + col for c in range(4)]
        assert logits[0, k].item() == 100 * (8 + a) + 10 * row + col


def test_grid_network_shapes_and_start() -> None:
    assert (
        grid_size("googlenet_bn", "inception4e", 128) == 8 and grid_size("googlenet", "inception5b", 224) == 7
    )
    assert grid_size("googlenet", "inception4e", 100) == 6  # the pools round up (ceil_mode)
    torch.manual_seed(0)
    priors = fit_grid_priors(random_boxes01(30, 0), 4, 3, seed=0)  # 4 x 4 cells at 64 px
    net = create_multibox_network(
        48, model="googlenet_bn", head=MultiBoxHead(per_cell=3), confidence_start=0.05
    )
    assert isinstance(net, MultiBoxNetwork) and net.stages[-1] == "inception4e" and net.num_features == 832
    assert not hasattr(net, "inception5a") and not any(k.startswith("inception5") for k in net.state_dict())
    assert (
        net(torch.zeros(2, 3, 64, 64)).shape == (2, 240)
        and net.forward_train(torch.zeros(1, 3, 64, 64)).aux1 is None
    )
    model = MultiBox(net, priors, image_size=64, head=MultiBoxHead(per_cell=3))
    boxes01, scores = model.predict([rectangles_scene(0)[0]])[0]
    assert np.allclose(boxes01, priors.clip(0, 1), atol=1e-6)  # residuals start at zero
    assert scores.shape == (48,)
    _, logit_rows = net.fc.output_layers()
    assert torch.allclose(torch.sigmoid(net.fc.predict.bias[logit_rows]), torch.full((3,), 0.05))
    assert not net.fc.predict.weight[:12].any() and not net.fc.predict.bias[:12].any()
    with pytest.raises(GoogLeNetError, match="64 cells x 3 priors at 128 px, not the 48 priors"):
        MultiBox(net, priors, image_size=128, head=MultiBoxHead(per_cell=3))
    with pytest.raises(GoogLeNetError, match="tap 'conv9' is not a stage"):
        create_multibox_network(8, head=MultiBoxHead(tap="conv9"))


def test_grid_folder_round_trip_and_old_folders(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = MultiBoxHead(per_cell=2, hidden=16)
    priors = fit_grid_priors(random_boxes01(30, 0), 4, 2, seed=0)
    model = MultiBox(
        create_multibox_network(32, model="googlenet_bn", head=head), priors, image_size=64, head=head
    )
    with torch.no_grad():
        model.network.fc.predict.weight.normal_(0, 0.1)  # boxes that differ from the priors
    save_multibox(model, tmp_path / "grid")
    saved = json.loads((tmp_path / "grid" / MULTIBOX_FILE).read_text())
    assert saved["format_version"] == 2 and saved["head"] == {
        "kind": "grid",
        "tap": "inception4e",
        "per_cell": 2,
        "hidden": 16,
    }
    loaded = load_multibox(tmp_path / "grid")
    assert loaded.head == head and isinstance(loaded.network, MultiBoxNetwork)
    image = rectangles_scene(1)[0]
    assert np.array_equal(loaded.propose(image, 8), model.propose(image, 8))
    # The weights file alone is not a GoogLeNet: a one-line error that names the way to load it.
    with pytest.raises(GoogLeNetError, match="a MultiBox grid network: load its folder with load_multibox"):
        load_weights(RunLayout(tmp_path / "grid").weights)
    # A folder written before heads had names (format_version 1, no "head"): the pool head.
    old = tiny_multibox()
    save_weights(old.network, RunLayout(tmp_path / "old").weights)
    body = {
        "format": "googlenet-multibox", "format_version": 1, "num_priors": 6, "image_size": 64, "alpha": 0.3,
        "nms_iou": 0.7, "weights_sha256": read_metadata(RunLayout(tmp_path / "old").weights)["sha256"],
        "priors": old.priors.tolist(),
    }  # fmt: skip
    (tmp_path / "old" / MULTIBOX_FILE).write_text(json.dumps(body))
    loaded = load_multibox(tmp_path / "old")
    assert loaded.head.kind == "pool" and type(loaded.network).__name__ == "GoogLeNet"
    assert np.array_equal(loaded.propose(image, 4), old.propose(image, 4))
    body["head"] = {"kind": "grid", "per_cell": 0}
    (tmp_path / "old" / MULTIBOX_FILE).write_text(json.dumps(body))
    with pytest.raises(GoogLeNetError, match="head per_cell must be a positive integer"):
        load_multibox(tmp_path / "old")
    assert MULTIBOX_MANIFEST.version == 2


def test_old_runs_resume_with_the_pool_head(tmp_path: Path) -> None:
    # A run's task.yaml from before heads had names has no "head": it is the pool head's.
    run = RunLayout(tmp_path / "run")
    run.root.mkdir()
    old = {
        k: v
        for k, v in MultiBoxOptions(num_priors=5).to_dict().items()
        if not k.startswith(("head", "priors_per", "epoch"))
    }
    run.task_settings.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in old.items()))
    options = resume_options(run.root, {"alpha": None})
    assert options.head == "pool" and options.num_priors == 5 and options.epoch_images is None
    assert MultiBoxOptions().head == "grid"


def test_epoch_images_draws_from_the_whole_split(tmp_path: Path) -> None:
    dataset = open_detection_dataset(
        write_scene_voc(tmp_path / "voc", rectangles_scene, range(4), "train", CLASSES), "train"
    )
    priors = fit_priors(random_boxes01(30, 0), 5, seed=0)
    data = resolve_data_config(create_multibox_network(5).meta, image_size=64)
    samples = MultiBoxSamples(dataset, priors, data, flip=False, epoch_images=10)
    assert len(samples) == 10 and len(MultiBoxSamples(dataset, priors, data)) == 4

    def drawn(seed: int) -> int:
        torch.manual_seed(seed)
        x, _ = samples[0]  # the position does not matter, the seeded RNG does
        return next(
            i for i in range(4) if torch.equal(x, MultiBoxSamples(dataset, priors, data, flip=False)[i][0])
        )

    draws = [drawn(seed) for seed in range(12)]
    assert draws == [drawn(seed) for seed in range(12)] and len(set(draws)) > 1


# --------------------------------------------------------------------------- a model


def tiny_multibox(num_priors: int = 6, image_size: int = 64, seed: int = 0) -> MultiBox:
    torch.manual_seed(seed)
    priors = fit_priors(random_boxes01(40, seed), num_priors, seed=seed)
    return MultiBox(create_multibox_network(num_priors), priors, image_size=image_size)


def test_untrained_boxes_are_the_priors() -> None:
    model = tiny_multibox()
    image, _ = rectangles_scene(0)
    boxes01, scores = model.predict([image])[0]
    assert np.allclose(boxes01, model.priors, atol=1e-6)  # residual outputs start at zero
    assert scores.shape == (6,) and ((scores > 0) & (scores < 1)).all()
    start = create_multibox_network(6, confidence_start=0.1)
    assert torch.allclose(torch.sigmoid(start.fc.bias[24:]), torch.full((6,), 0.1))


def test_proposals_are_inclusive_inside_the_image_and_suppressed() -> None:
    model = tiny_multibox(num_priors=12)
    image = rectangles_scene(1)[0][:, :70]  # 80 x 70: x and y must not be swapped
    boxes = model.propose(image, 10)
    assert boxes.dtype == np.float64 and boxes.shape[1] == 4 and 1 <= len(boxes) <= 10
    assert np.array_equal(boxes, np.round(boxes))
    x1, y1, x2, y2 = boxes.T
    assert x1.min() >= 1 and y1.min() >= 1 and x2.max() <= 70 and y2.max() <= 80
    assert (x2 >= x1).all() and (y2 >= y1).all()
    iou = box_iou(boxes, boxes)
    assert (iou[~np.eye(len(boxes), dtype=bool)] <= model.nms_iou + 1e-9).all()
    # Best first: the kept boxes' scores descend.
    boxes01, scores = model.predict([image])[0]
    pixels = denormalise_boxes(boxes01, 70, 80).tolist()
    kept = [scores[pixels.index(b)] for b in boxes.tolist()]
    assert kept == sorted(kept, reverse=True)
    assert len(model.propose(image, 2)) == 2
    with pytest.raises(GoogLeNetError, match=r"\(H, W, 3\) uint8"):
        model.propose(image.astype(np.float32), 2)


def test_save_load_and_proposals_by_folder(tmp_path: Path) -> None:
    model = tiny_multibox()
    save_multibox(model, tmp_path / "mb", trained={"epochs": 0})
    settings = json.loads((tmp_path / "mb" / MULTIBOX_FILE).read_text())
    assert (
        settings["num_priors"] == 6 and settings["image_size"] == 64 and settings["trained"] == {"epochs": 0}
    )
    loaded = load_multibox(tmp_path / "mb")
    assert np.array_equal(loaded.priors, model.priors) and loaded.nms_iou == model.nms_iou
    image = rectangles_scene(2)[0]
    assert np.array_equal(loaded.propose(image, 4), model.propose(image, 4))
    assert np.array_equal(multibox_proposals(image, tmp_path / "mb", 4), model.propose(image, 4))
    # Errors name the folder; weights from another training are refused.
    with pytest.raises(GoogLeNetError, match=f"has no {MULTIBOX_FILE}"):
        load_multibox(tmp_path)
    other = tiny_multibox(seed=1)
    other.network.fc.bias.data += 1.0
    # Describing weights already written (a training run's): they must be the network's.
    with pytest.raises(GoogLeNetError, match="does not hold the MultiBox network"):
        save_multibox(other, tmp_path / "mb", write_weights=False)
    save_weights(other.network, RunLayout(tmp_path / "mb").weights)
    save_multibox(other, tmp_path / "mb2")
    save_multibox(other, tmp_path / "mb", write_weights=False)
    assert load_multibox(tmp_path / "mb").network.fc.bias.tolist() == other.network.fc.bias.tolist()
    save_weights(model.network, RunLayout(tmp_path / "mb").weights)
    with pytest.raises(GoogLeNetError, match="mixes two trainings"):
        load_multibox(tmp_path / "mb")


def test_the_proposals_module_uses_it(tmp_path: Path) -> None:
    from googlenet.detection.proposals import proposal_method, propose

    model = tiny_multibox()
    save_multibox(model, tmp_path / "mb")
    method = proposal_method("multibox", multibox=tmp_path / "mb", multibox_top=3)
    image = rectangles_scene(3)[0]
    assert np.array_equal(propose(image, method), model.propose(image, 3))


def test_paper_adds_multibox_boxes_in_the_papers_proportion(tmp_path: Path) -> None:
    # x2 boxes first, then the best MultiBox boxes: 0.2 per x2 box (the paper's 200 per ~1,000),
    # those that duplicate an x2 box (IoU > 0.7) dropped after the count.
    from googlenet.detection.proposals import DUPLICATE_IOU, proposal_method, propose, selective_search

    image = np.asarray(
        PIL.Image.open(
            write_scene_voc(tmp_path / "voc", lambda i: rectangles_scene(i, 120), range(1), "train", CLASSES)
            / "JPEGImages"
            / "000000.jpg"
        )
    )
    method = proposal_method("paper", multibox=Path(__file__).parent)
    ss = selective_search(image, method.ks)
    share = round(0.2 * len(ss))
    assert method.multibox_share == 0.2 and share >= 2
    x1, y1, x2, y2 = ss[0]
    near = [x1, y1, x2 + 1, y2]  # IoU with ss[0] above 0.7: the same region for R-CNN's warp
    assert box_iou(np.array([near]), ss[:1])[0, 0] > DUPLICATE_IOU
    far = [[1, 1, 2, 2 + i] for i in range(300)]  # one-pixel-wide: no Selective Search box is like them
    asked = []

    def proposer(rgb: np.ndarray, top: int) -> np.ndarray:
        asked.append(top)
        return np.array([near, *far], dtype=float)[:top]

    boxes = propose(image, method, multibox=proposer)
    assert asked == [share] and np.array_equal(boxes[: len(ss)], ss)
    assert boxes[len(ss) :].tolist() == far[: share - 1]  # the near duplicate dropped, then the count's rest
    # Without a share (an older paper detector's settings): at most multibox_top, duplicates dropped.
    plain = dataclasses.replace(method, multibox_share=None, multibox_top=5)
    assert propose(image, plain, multibox=proposer)[len(ss) :].tolist() == far[:4]
    assert "multibox_share" not in proposal_method("selective-search-2x").settings()
    with pytest.raises(GoogLeNetError, match="multibox_share must be > 0"):
        proposal_method("paper", multibox=Path(__file__).parent, multibox_share=0)


# --------------------------------------------------------------------------- training


def test_samples_match_the_flipped_boxes(tmp_path: Path) -> None:
    dataset = open_detection_dataset(
        write_scene_voc(tmp_path / "voc", rectangles_scene, range(2), "train", CLASSES), "train"
    )
    priors = fit_priors(random_boxes01(30, 0), 5, seed=0)
    data = resolve_data_config(create_multibox_network(5).meta, image_size=64)
    plain = MultiBoxSamples(dataset, priors, data, flip=False)
    x, labels = plain[1]
    target = dataset.target(1)
    matched = labels[:, LABEL_MATCHED] == 1
    assert x.shape == (3, 64, 64) and labels.shape == (5, 6) and matched.sum() == len(target.boxes) == 2
    assert labels[:, LABEL_INDEX].tolist() == [1.0] * 5  # the image's index, for validation
    assert not labels[~matched, LABEL_RESIDUAL].any()  # unmatched priors have no target
    # The targets are residuals to the priors: prior + residual is the matched ground truth.
    boxes = labels[matched, LABEL_RESIDUAL].double().numpy() + priors[matched.numpy()]
    gt = normalise_boxes(target.boxes, target.width, target.height)
    assert np.allclose(np.sort(boxes, 0), np.sort(gt, 0), atol=1e-6)
    flipped = MultiBoxSamples(dataset, priors, data, flip=True)
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        fx, flabels = flipped[1]
        mirrored = bool(torch.allclose(fx, x.flip(-1), atol=1e-4))
        seen.add(mirrored)
        fmatched = (flabels[:, LABEL_MATCHED] == 1).numpy()
        fboxes = flabels[fmatched, LABEL_RESIDUAL].double().numpy() + priors[fmatched]
        expected = np.stack([1 - gt[:, 2], gt[:, 1], 1 - gt[:, 0], gt[:, 3]], 1) if mirrored else gt
        assert np.allclose(np.sort(fboxes, 0), np.sort(expected, 0), atol=1e-6)
    assert seen == {True, False}
    assert math.isclose(positive_share(dataset.targets(), 5), (1 + 2) / 2 / 5)
    assert len(training_boxes(dataset.targets())) == 3


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    dataset = open_detection_dataset(
        write_scene_voc(tmp_path / "voc", rectangles_scene, range(2), "train", CLASSES), "train"
    )
    torch.manual_seed(0)
    priors = fit_priors(training_boxes(dataset.targets()), 3, seed=0)
    net = create_multibox_network(3, confidence_start=positive_share(dataset.targets(), 3))
    samples = MultiBoxSamples(dataset, priors, resolve_data_config(net.meta, image_size=64), flip=False)
    x, labels = (torch.stack(t) for t in zip(*[samples[i] for i in range(2)], strict=True))
    # The loss of the labels is F of the boxes: l_i - g_j = r_i - (g_j - prior_i).
    net.eval()
    with torch.no_grad():
        outputs = net(x)
    prior_t = torch.as_tensor(priors, dtype=torch.float32)
    boxes = labels[..., LABEL_RESIDUAL] + prior_t
    by_boxes = multibox_loss(*split_outputs(outputs, 3), prior_t, boxes, labels[..., LABEL_MATCHED] == 1)
    by_labels = label_loss(outputs, labels)
    for a, b in zip(by_boxes, by_labels, strict=True):
        assert math.isclose(a.item(), b.item(), rel_tol=1e-5, abs_tol=1e-6)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def loss_now() -> float:
        net.eval()
        with torch.no_grad():
            return label_loss(net(x), labels).total.item()

    before = loss_now()
    net.train()
    for _ in range(5):
        loss = label_loss(net(x), labels).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_now()
    assert math.isfinite(after) and after < 0.9 * before, (before, after)


def test_the_task_builds_on_a_classifier(tmp_path: Path) -> None:
    # --init-from: the classifier's backbone (same variant), the new 5K classifier kept; the
    # confidences start at the share of matched priors; one-line error for another variant.
    voc = write_scene_voc(tmp_path / "voc", rectangles_scene, range(3), "train", CLASSES)
    write_scene_voc(voc, rectangles_scene, range(3, 4), "val", CLASSES)
    torch.manual_seed(2)
    classifier = create_model("googlenet_bn", num_classes=3)
    save_weights(classifier, tmp_path / "bn.safetensors")
    config = TrainConfig(
        data=str(voc), model="googlenet_bn", image_size=64, init_from=str(tmp_path / "bn.safetensors")
    )
    task = multibox_task(MultiBoxOptions(num_priors=4, head="pool"))
    data = task.build_data(config)
    assert len(data.train) == 3 and len(data.val) == 1 and data.train.priors.shape == (4, 4)
    net = task.build_model(config, data)
    assert net.meta.variant == "googlenet_bn" and net.num_classes == 20 and net.aux1 is None
    assert net.meta.input_size == (3, 64, 64)
    assert torch.equal(net.conv1.conv.weight, classifier.conv1.conv.weight)
    assert torch.equal(
        net.inception5b.state_dict()["branch1.conv.weight"],
        classifier.inception5b.state_dict()["branch1.conv.weight"],
    )
    assert not net.fc.weight[:16].any() and not net.fc.bias[:16].any()  # boxes start at the priors
    share = positive_share(open_detection_dataset(voc, "train").targets(), 4)
    assert torch.allclose(torch.sigmoid(net.fc.bias[16:]), torch.full((4,), share))
    with pytest.raises(GoogLeNetError, match="pass --model googlenet_bn"):
        task.build_model(dataclasses.replace(config, model="googlenet"), data)


# --------------------------------------------------------------------------- the command


def test_cli_trains_resumes_exactly_and_proposes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voc = write_scene_voc(tmp_path / "voc", rectangles_scene, range(2), "train", CLASSES)
    write_scene_voc(voc, rectangles_scene, range(2, 3), "val", CLASSES)
    classifier = tmp_path / "classifier.safetensors"
    torch.manual_seed(1)
    save_weights(create_model("googlenet", num_classes=2), classifier)
    recipe = {"image_size": 64, "batch_size": 2, "workers": 0, "num_threads": 1, "device": "cpu"}
    options = {"priors_per_cell": 2, "top": 3}
    flags = ["--data", voc, "--init-from", classifier]
    flags += [f"--{k.replace('_', '-')}={v}" for k, v in {**recipe, **options}.items()]

    # One epoch as a command, resumed to two as another: the weights of two epochs in one go.
    with threads_kept():  # --num-threads=1 sets this process's threads
        first = cli_in_process("train-multibox", *flags, "--epochs", "1", "--out", tmp_path / "resumed")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith("epoch 1: val loss ")
    assert "coverage of the val boxes by the top 3 (IoU >= 0.5)" in first.stdout
    assert main(["train-multibox", "--out", str(tmp_path / "resumed"), "--resume", "--alpha", "1"]) == 2
    changed = capsys.readouterr().err
    assert len(changed.strip().splitlines()) == 1 and "cannot change 'alpha' when resuming" in changed
    assert "alpha=30.0" in changed
    with threads_kept():
        resumed = cli_in_process("train-multibox", "--out", tmp_path / "resumed", "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and resumed.stdout.splitlines()[0].startswith("epoch 2: ")
    last_line = f"MultiBox model (grid head, 32 priors) written to {tmp_path / 'resumed'}"  # 4 x 4 cells x 2
    assert resumed.stdout.splitlines()[-1] == last_line
    overrides = {**recipe, "data": str(voc), "init_from": str(classifier), "epochs": 2}
    config = resolve_config(None, {**overrides, "out": str(tmp_path / "straight")}, defaults=MULTIBOX_RECIPE)
    assert (config.optimizer, config.lr, config.weight_decay) == ("adamw", 3e-4, 0.0)
    # The library's train_multibox in one go (the command's job): the same run as the two commands.
    straight = train_multibox(options=options, **{**overrides, "out": str(tmp_path / "straight")})
    a, b = RunLayout(tmp_path / "straight"), RunLayout(tmp_path / "resumed")
    for weights in ("weights", "raw_weights"):
        assert read_metadata(getattr(a, weights))["sha256"] == read_metadata(getattr(b, weights))["sha256"]
    metrics = read_metrics(b.root)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics == [
        {**m, "images_per_s": r["images_per_s"], "epoch_time_s": r["epoch_time_s"]}
        for m, r in zip(straight.metrics, metrics, strict=True)
    ]
    coverage = {f"avg_val_coverage_at_{n}" for n in (3, 10, 100)} | {"avg_val_prior_coverage"}
    assert {"train_conf", "train_match", "avg_val_loss", *coverage} <= set(metrics[0])
    assert (b.root / "tensorboard").is_dir() and b.best_checkpoint.is_file()
    # The classifier's command does not take the run over: its task's settings are the run's.
    assert main(["train", "--resume", str(b.root), "--epochs", "3"]) == 2
    assert "is a run of another task" in capsys.readouterr().err

    # The run directory is a MultiBox model: priors from the training boxes, the averaged weights.
    model = load_multibox(b.root)
    saved = json.loads((b.root / MULTIBOX_FILE).read_text())
    assert saved["trained"]["init_from"] == str(classifier) and saved["epochs_done"] == 2
    assert saved["head"] == {"kind": "grid", "tap": "inception4e", "per_cell": 2, "hidden": 256}
    assert saved["weights_sha256"] == read_metadata(b.weights)["sha256"] and saved["format_version"] == 2
    dataset = open_detection_dataset(voc, "train")
    assert np.array_equal(model.priors, fit_grid_priors(training_boxes(dataset.targets()), 4, 2, seed=0))
    image = np.asarray(dataset[0][0])
    boxes = model.propose(image, 3)
    assert 1 <= len(boxes) <= 3 and boxes[:, 0].min() >= 1 and boxes[:, 2].max() <= image.shape[1]
    assert boxes[:, 3].max() <= image.shape[0] and np.array_equal(boxes, np.round(boxes))


def test_torchrun_two_processes_train_multibox(tmp_path: Path) -> None:
    voc = write_scene_voc(tmp_path / "voc", rectangles_scene, range(4), "train", CLASSES)
    write_scene_voc(voc, rectangles_scene, range(4, 7), "val", CLASSES)
    args = [
        "--data",
        str(voc),
        "--out",
        str(tmp_path / "ddp"),
        "--head",
        "pool",
        "--num-priors",
        "3",
        "--top",
        "3",
    ]
    args += ["--image-size", "64", "--batch-size", "1", "--epochs", "1", "--workers", "0", "--device", "cpu"]
    result = torchrun("train-multibox", *args, "--num-threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunLayout(tmp_path / "ddp")
    assert json.loads(run.env.read_text())["world_size"] == 2
    (record,) = read_metrics(run.root)
    # 4 images / global batch 2 = 2 steps; validation's sums cover every val image over both ranks
    assert record["step"] == 2 and record["train_images"] == 4 and record["val_images"] == 3
    assert math.isfinite(record["avg_val_loss"]) and 0 <= record["avg_val_coverage_at_3"] <= 1
    model = load_multibox(run.root)
    assert model.num_priors == 3 and len(model.propose(rectangles_scene(0)[0], 3)) >= 1


def test_cli_errors_are_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voc = write_scene_voc(tmp_path / "voc", rectangles_scene, range(2), "train", CLASSES)
    write_scene_voc(voc, rectangles_scene, range(2, 3), "val", CLASSES)
    out = tmp_path / "out"
    cases = {
        ("--num-priors", "50"): "50 priors need at least 50 distinct training boxes",
        ("--image-size", "32"): "image_size=32 is too small",
        ("--val-split", "test"): "split file",
        ("--batch-size", "8"): "has 2 training images, fewer than one global batch of 8",
        ("--device", "gpu"): "unknown device 'gpu'",
        ("--alpha", "-1"): "--alpha must be a non-negative number",
        ("--lr", "0"): "lr=0.0 must be > 0",
        ("--head", "fc"): "--head must be one of pool, grid",
        ("--epoch-images", "0"): "--epoch-images must be a positive integer",
    }
    for flags, message in cases.items():
        args = [
            "train-multibox",
            "--data",
            str(voc),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--head",
            "pool",
            "--num-priors",
            "2",
        ]
        args += flags
        assert main(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not out.exists()
    assert main(["train-multibox", "--data", str(voc), "--out", str(out), "--num-priors", "2"]) == 2
    assert "--num-priors is the pool head's K" in capsys.readouterr().err
    assert main(["train-multibox", "--data", str(voc), "--out", str(out), "--head-tap", "fc"]) == 2
    assert "tap 'fc' is not a stage of the backbone" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train-multibox", "--out", str(out), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    (out / "checkpoints").mkdir(parents=True)
    (out / MULTIBOX_FILE).write_text("{}")
    assert main(["train-multibox", "--data", str(voc), "--out", str(out), "--batch-size", "2"]) == 2
    assert "already holds a MultiBox run: pass --resume" in capsys.readouterr().err
    # The library call: an unknown option is named in one line before any work.
    with pytest.raises(GoogLeNetError, match="unknown MultiBox setting 'priors'"):
        train_multibox(data=str(voc), out=str(tmp_path / "o3"), options={"priors": 4})
    assert not (tmp_path / "o3").exists()
    # As a real process: the same one line.
    result = run_cli(
        "train-multibox", "--data", voc, "--out", tmp_path / "o2", "--head", "pool", "--num-priors", "50",
        "--batch-size", "2",
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("googlenet train-multibox: error: 50 priors")
