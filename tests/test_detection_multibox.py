"""MultiBox (Erhan et al. 2014, paper section 8): priors, matching, loss, decoding, proposals, training.

Hand-worked cases for the maths; a real VOC folder (JPEG + XML in tmp_path) for the training data
and the command line, run as a subprocess (and under a real ``torchrun`` of two processes).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from googlenet.cli import main
from googlenet.data.config import resolve_data_config
from googlenet.detection.boxes import box_iou
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.multibox import (
    LABEL_INDEX,
    LABEL_MATCHED,
    LABEL_RESIDUAL,
    MULTIBOX_RECIPE,
    MultiBox,
    MultiBoxOptions,
    MultiBoxSamples,
    create_multibox_network,
    decode_boxes,
    denormalise_boxes,
    encode_targets,
    fit_priors,
    label_loss,
    load_multibox,
    match_cost,
    match_priors,
    multibox_loss,
    multibox_task,
    normalise_boxes,
    positive_share,
    save_multibox,
    split_outputs,
    training_boxes,
)
from googlenet.detection.proposals import multibox_proposals
from googlenet.errors import GoogLeNetError
from googlenet.models.registry import create_model
from googlenet.runs import MULTIBOX_FILE, RunLayout, read_metrics
from googlenet.training.config import TrainConfig, resolve_config
from googlenet.training.train import fit
from googlenet.weights.store import read_metadata, save_weights

from .conftest import run_cli

CLASSES = ("square", "bar")


def scene(index: int, size: int = 80) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A grey image with one or two flat rectangles; their inclusive 1-based boxes."""
    rng = np.random.default_rng(index)
    pixels = np.full((size, size + 8, 3), 128, dtype=np.uint8)
    boxes = []
    for j in range(1 + index % 2):
        w, h = (int(v) for v in rng.integers(14, size // 2, 2))
        x0 = int(rng.integers(0, size + 8 - w))
        y0 = int(rng.integers(0, size - h))
        pixels[y0 : y0 + h, x0 : x0 + w] = (230, 40, 40) if j == 0 else (30, 30, 220)
        boxes.append((x0 + 1, y0 + 1, x0 + w, y0 + h))
    return pixels, boxes


def write_voc(root: Path, n: int = 6, split: str = "train", size: int = 80, first: int = 0) -> Path:
    """A tiny VOC folder: Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/<split>.txt, classes.txt."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(first, first + n)]
    for i, image_id in enumerate(ids, start=first):
        pixels, boxes = scene(i, size)
        PIL.Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        objects = "".join(
            f"<object><name>{CLASSES[j % 2]}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
            f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for j, b in enumerate(boxes)
        )
        xml = (
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{pixels.shape[1]}</width>"
            f"<height>{pixels.shape[0]}</height><depth>3</depth></size>{objects}</annotation>"
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    return root


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


# --------------------------------------------------------------------------- a model


def tiny_multibox(num_priors: int = 6, image_size: int = 64, seed: int = 0) -> MultiBox:
    torch.manual_seed(seed)
    priors = fit_priors(random_boxes01(40, seed), num_priors, seed=seed)
    return MultiBox(create_multibox_network(num_priors), priors, image_size=image_size)


def test_untrained_boxes_are_the_priors() -> None:
    model = tiny_multibox()
    image, _ = scene(0)
    boxes01, scores = model.predict([image])[0]
    assert np.allclose(boxes01, model.priors, atol=1e-6)  # residual outputs start at zero
    assert scores.shape == (6,) and ((scores > 0) & (scores < 1)).all()
    start = create_multibox_network(6, confidence_start=0.1)
    assert torch.allclose(torch.sigmoid(start.fc.bias[24:]), torch.full((6,), 0.1))


def test_proposals_are_inclusive_inside_the_image_and_suppressed() -> None:
    model = tiny_multibox(num_priors=12)
    image = scene(1)[0][:, :70]  # 80 x 70: x and y must not be swapped
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
    image = scene(2)[0]
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
    image = scene(3)[0]
    assert np.array_equal(propose(image, method), model.propose(image, 3))


# --------------------------------------------------------------------------- training


def test_samples_match_the_flipped_boxes(tmp_path: Path) -> None:
    dataset = open_detection_dataset(write_voc(tmp_path / "voc", n=2), "train")
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
    dataset = open_detection_dataset(write_voc(tmp_path / "voc", n=2), "train")
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
    voc = write_voc(tmp_path / "voc", n=3, split="train")
    write_voc(voc, n=1, split="val", first=3)
    torch.manual_seed(2)
    classifier = create_model("googlenet_bn", num_classes=3)
    save_weights(classifier, tmp_path / "bn.safetensors")
    config = TrainConfig(
        data=str(voc), model="googlenet_bn", image_size=64, init_from=str(tmp_path / "bn.safetensors")
    )
    task = multibox_task(MultiBoxOptions(num_priors=4))
    data = task.build_data(config)
    assert len(data.train) == 3 and len(data.val) == 1 and data.train.priors.shape == (4, 4)
    net = task.build_model(config, data.classes)
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
        task.build_model(dataclasses.replace(config, model="googlenet"), data.classes)


# --------------------------------------------------------------------------- the command


def test_cli_trains_resumes_exactly_and_proposes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voc = write_voc(tmp_path / "voc", n=2, split="train")
    write_voc(voc, n=1, split="val", first=2)
    classifier = tmp_path / "classifier.safetensors"
    torch.manual_seed(1)
    save_weights(create_model("googlenet", num_classes=2), classifier)
    recipe = {"image_size": 64, "batch_size": 2, "workers": 0, "num_threads": 1, "device": "cpu"}
    options = {"num_priors": 3, "top": 3}
    flags = ["--data", voc, "--init-from", classifier]
    flags += [f"--{k.replace('_', '-')}={v}" for k, v in {**recipe, **options}.items()]

    # One epoch as a command, resumed to two as another: the weights of two epochs in one go.
    first = run_cli("train-multibox", *flags, "--epochs", "1", "--out", tmp_path / "resumed")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith("epoch 1: val loss ")
    assert "coverage of the val boxes by the top 3 (IoU >= 0.5)" in first.stdout
    assert main(["train-multibox", "--out", str(tmp_path / "resumed"), "--resume", "--alpha", "1"]) == 2
    changed = capsys.readouterr().err
    assert len(changed.strip().splitlines()) == 1 and "cannot change 'alpha' when resuming" in changed
    assert "alpha=0.3" in changed
    resumed = run_cli("train-multibox", "--out", tmp_path / "resumed", "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and resumed.stdout.splitlines()[0].startswith("epoch 2: ")
    assert resumed.stdout.splitlines()[-1] == f"MultiBox model (3 priors) written to {tmp_path / 'resumed'}"
    overrides = {**recipe, "data": str(voc), "init_from": str(classifier), "epochs": 2}
    config = resolve_config(None, {**overrides, "out": str(tmp_path / "straight")}, defaults=MULTIBOX_RECIPE)
    assert (config.optimizer, config.lr, config.weight_decay) == ("adamw", 1e-4, 0.0)
    straight = fit(config, task=multibox_task(MultiBoxOptions(**options)))
    a, b = RunLayout(tmp_path / "straight"), RunLayout(tmp_path / "resumed")
    for weights in ("weights", "raw_weights"):
        assert read_metadata(getattr(a, weights))["sha256"] == read_metadata(getattr(b, weights))["sha256"]
    metrics = read_metrics(b.root)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics == [
        {**m, "images_per_s": r["images_per_s"], "epoch_time_s": r["epoch_time_s"]}
        for m, r in zip(straight.metrics, metrics, strict=True)
    ]
    assert {"train_conf", "train_match", "avg_val_loss", "avg_val_coverage_at_3"} <= set(metrics[0])
    assert (b.root / "tensorboard").is_dir() and b.best_checkpoint.is_file()
    # The classifier's command does not take the run over: its task's settings are the run's.
    assert main(["train", "--resume", str(b.root), "--epochs", "3"]) == 2
    assert "is a run of another task" in capsys.readouterr().err

    # The run directory is a MultiBox model: priors from the training boxes, the averaged weights.
    model = load_multibox(b.root)
    saved = json.loads((b.root / MULTIBOX_FILE).read_text())
    assert saved["trained"]["init_from"] == str(classifier) and saved["epochs_done"] == 2
    assert (
        saved["trained"]["num_priors"] == 3 and saved["weights_sha256"] == read_metadata(b.weights)["sha256"]
    )
    dataset = open_detection_dataset(voc, "train")
    assert np.array_equal(model.priors, fit_priors(training_boxes(dataset.targets()), 3, seed=0))
    image = np.asarray(dataset[0][0])
    boxes = model.propose(image, 3)
    assert 1 <= len(boxes) <= 3 and boxes[:, 0].min() >= 1 and boxes[:, 2].max() <= image.shape[1]
    assert boxes[:, 3].max() <= image.shape[0] and np.array_equal(boxes, np.round(boxes))


def test_torchrun_two_processes_train_multibox(tmp_path: Path) -> None:
    voc = write_voc(tmp_path / "voc", n=4, split="train")
    write_voc(voc, n=3, split="val", first=4)
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    args = ["--data", str(voc), "--out", str(tmp_path / "ddp"), "--num-priors", "3", "--top", "3"]
    args += ["--image-size", "64", "--batch-size", "1", "--epochs", "1", "--workers", "0", "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "googlenet", "train-multibox", *args, "--num-threads", "1"],
        capture_output=True, text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunLayout(tmp_path / "ddp")
    assert json.loads(run.env.read_text())["world_size"] == 2
    (record,) = read_metrics(run.root)
    # 4 images / global batch 2 = 2 steps; validation's sums cover every val image over both ranks
    assert record["step"] == 2 and record["train_images"] == 4 and record["val_images"] == 3
    assert math.isfinite(record["avg_val_loss"]) and 0 <= record["avg_val_coverage_at_3"] <= 1
    model = load_multibox(run.root)
    assert model.num_priors == 3 and len(model.propose(scene(0)[0], 3)) >= 1


def test_cli_errors_are_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voc = write_voc(tmp_path / "voc", n=2, split="train")
    write_voc(voc, n=1, split="val", first=2)
    out = tmp_path / "out"
    cases = {
        ("--num-priors", "50"): "50 priors need at least 50 distinct training boxes",
        ("--image-size", "32"): "image_size=32 is too small",
        ("--val-split", "test"): "split file",
        ("--batch-size", "8"): "has 2 training images, fewer than one global batch of 8",
        ("--device", "gpu"): "unknown device 'gpu'",
        ("--alpha", "-1"): "--alpha must be a non-negative number",
        ("--lr", "0"): "lr=0.0 must be > 0",
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
            "--num-priors",
            "2",
        ]
        args += flags
        assert main(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not out.exists()
    assert main(["train-multibox", "--out", str(out), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    (out / "checkpoints").mkdir(parents=True)
    (out / MULTIBOX_FILE).write_text("{}")
    assert main(["train-multibox", "--data", str(voc), "--out", str(out), "--batch-size", "2"]) == 2
    assert "already holds a MultiBox run: pass --resume" in capsys.readouterr().err
    # As a real process: the same one line.
    result = run_cli(
        "train-multibox", "--data", voc, "--out", tmp_path / "o2", "--num-priors", "50", "--batch-size", "2"
    )
    assert result.returncode == 2 and result.stderr.startswith("googlenet train-multibox: error: 50 priors")
