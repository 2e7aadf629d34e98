"""Tests for googlenet.data.datasets: folder and ILSVRC2012 layouts, unreadable files, scan_unreadable."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader

from googlenet.data.datasets import (
    DEVKIT_DATA_DIR,
    ImageDataset,
    SkippableBatch,
    UnreadableImageError,
    build_dataset,
    collate_skip_bad,
    open_image,
    scan_unreadable,
)
from googlenet.errors import GoogLeNetError

from .helpers import make_folder_split, write_jpeg

# Three synsets in ILSVRC2012_ID order (deliberately not sorted, like the real devkit).
ID_ORDER = [("n03000134", "chainlink fence"), ("n01440764", "tench, Tinca tinca"), ("n02119789", "kit fox")]
SORTED = sorted(w for w, _ in ID_ORDER)  # label order: n01440764=0, n02119789=1, n03000134=2
WORDS = dict(ID_ORDER)


def labels_by_name(dataset: ImageDataset) -> dict[str, int]:
    return {Path(p).name: t for p, t in dataset.samples}


# ---------------------------------------------------------------------------- folder layouts


def test_imagefolder_sorted_classes_and_val_follows_train(tmp_path):
    make_folder_split(tmp_path, "train", {"dog": 2, "cat": 1, "bird": 1})
    make_folder_split(tmp_path, "val", {"dog": 1, "cat": 1})  # val lacks "bird"
    train = build_dataset(tmp_path, "train")
    val = build_dataset(tmp_path, "val")
    assert train.layout == "imagefolder"
    assert train.classes == ["bird", "cat", "dog"] == val.classes
    assert train.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    assert len(train) == 4 and sorted(train.targets) == [0, 1, 2, 2]
    # Labels follow train's classes, not val's own folder list (which would give cat=0, dog=1).
    assert labels_by_name(val) == {"cat_0.jpg": 1, "dog_0.jpg": 2}
    image, label = train[0]
    assert isinstance(image, PIL.Image.Image) and image.mode == "RGB" and label == 0


def test_imagefolder_with_classes_txt_uses_its_order_and_names(tmp_path):
    make_folder_split(tmp_path, "train", {"dog": 1, "cat": 1, "bird": 1})
    (tmp_path / "classes.txt").write_text("dog\ncat\tHouse cat\nbird\n")
    dataset = build_dataset(tmp_path, "train", layout="imagefolder")
    assert dataset.classes == ["dog", "House cat", "bird"]
    assert labels_by_name(dataset) == {"dog_0.jpg": 0, "cat_0.jpg": 1, "bird_0.jpg": 2}
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(GoogLeNetError, match=r"train/bird is not a known class .*classes\.txt"):
        build_dataset(tmp_path, "train")


def test_imagefolder_layout_refuses_a_flat_split(tmp_path):
    write_jpeg(tmp_path / "val" / "a.jpg")
    with pytest.raises(GoogLeNetError, match="no class subfolders"):
        build_dataset(tmp_path, "val", layout="imagefolder")
    with pytest.raises(GoogLeNetError, match="does not exist"):
        build_dataset(tmp_path, "train")
    write_jpeg(tmp_path / "train" / "b.jpg")
    with pytest.raises(GoogLeNetError, match="train has no class subfolders"):
        build_dataset(tmp_path, "train")


def write_synset_list(path: Path, entries=ID_ORDER) -> None:
    path.write_text("".join(f"{w} {words}\n" for w, words in entries))


def test_ilsvrc_train_and_synset_folder_val_use_sorted_synsets_and_words(tmp_path):
    make_folder_split(tmp_path, "train", {w: 1 for w in SORTED})
    make_folder_split(tmp_path, "val", {SORTED[2]: 1, SORTED[0]: 1})  # valprep.sh arrangement
    write_synset_list(tmp_path / "LOC_synset_mapping.txt", sorted(ID_ORDER))
    train = build_dataset(tmp_path, "train")
    val = build_dataset(tmp_path, "val")
    assert train.layout == "ilsvrc" == val.layout
    assert train.classes == ["tench, Tinca tinca", "kit fox", "chainlink fence"]
    assert train.class_to_idx == {w: i for i, w in enumerate(SORTED)}
    assert labels_by_name(val) == {f"{SORTED[0]}_0.jpg": 0, f"{SORTED[2]}_0.jpg": 2}


def make_flat_val(root: Path, labels_by_id: dict[int, str]) -> None:
    """Flat root/val with ILSVRC2012_val_<id>.JPEG files; returns nothing, the labels are the test's."""
    for val_id in labels_by_id:
        write_jpeg(root / "val" / f"ILSVRC2012_val_{val_id:08d}.JPEG", seed=val_id)


# val image id -> synset
VAL_TRUTH = {1: "n02119789", 2: "n03000134", 3: "n01440764", 4: "n02119789"}
EXPECTED = {f"ILSVRC2012_val_{k:08d}.JPEG": SORTED.index(w) for k, w in VAL_TRUTH.items()}


def test_ilsvrc_flat_val_kaggle(tmp_path):
    make_flat_val(tmp_path, VAL_TRUTH)
    write_synset_list(tmp_path / "LOC_synset_mapping.txt", sorted(ID_ORDER))
    rows = ["ImageId,PredictionString"]
    rows += [f"ILSVRC2012_val_{k:08d},{w} 10 20 30 40 {w} 1 2 3 4" for k, w in VAL_TRUTH.items()]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    val = build_dataset(tmp_path, "val")
    assert val.layout == "ilsvrc"
    assert labels_by_name(val) == EXPECTED
    assert val.classes == ["tench, Tinca tinca", "kit fox", "chainlink fence"]


@pytest.mark.parametrize("in_devkit", [False, True])
def test_ilsvrc_flat_val_devkit_ground_truth(tmp_path, in_devkit):
    make_flat_val(tmp_path, VAL_TRUTH)
    write_synset_list(tmp_path / "synset_words.txt")  # ILSVRC2012_ID order: line i = ID i
    id_of = {w: i + 1 for i, (w, _) in enumerate(ID_ORDER)}
    folder = tmp_path / DEVKIT_DATA_DIR if in_devkit else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    lines = [str(id_of[VAL_TRUTH[k]]) for k in sorted(VAL_TRUTH)]
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    val = build_dataset(tmp_path, "val", layout="ilsvrc")
    assert labels_by_name(val) == EXPECTED
    assert val.classes[SORTED.index("n02119789")] == "kit fox"


def test_ilsvrc_devkit_meta_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    make_flat_val(tmp_path, VAL_TRUTH)
    data = tmp_path / DEVKIT_DATA_DIR
    data.mkdir(parents=True)
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children"]
    synsets = np.zeros((len(ID_ORDER) + 1,), dtype=[(f, "O") for f in fields])
    for i, (w, words) in enumerate(ID_ORDER):
        synsets[i] = (i + 1, w, words, "", 0)
    synsets[len(ID_ORDER)] = (len(ID_ORDER) + 1, "n00001740", "entity", "", 3)  # an inner node
    scipy_io.savemat(data / "meta.mat", {"synsets": synsets})
    id_of = {w: i + 1 for i, (w, _) in enumerate(ID_ORDER)}
    lines = [str(id_of[VAL_TRUTH[k]]) for k in sorted(VAL_TRUTH)]
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    val = build_dataset(tmp_path, "val")
    assert labels_by_name(val) == EXPECTED
    assert len(val.classes) == 3 and val.classes[0] == "tench, Tinca tinca"


def test_ilsvrc_flat_val_caffe_val_txt(tmp_path):
    make_flat_val(tmp_path, VAL_TRUTH)
    (tmp_path / "synsets.txt").write_text("".join(f"{w}\n" for w in SORTED))  # Caffe's synsets.txt
    lines = [f"ILSVRC2012_val_{k:08d}.JPEG {SORTED.index(w)}" for k, w in VAL_TRUTH.items()]
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    val = build_dataset(tmp_path, "val")
    assert labels_by_name(val) == EXPECTED
    assert val.classes == SORTED  # no words: the synset ids
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 3\n")
    with pytest.raises(GoogLeNetError, match=r"val\.txt:1: label 3 outside 0\.\.2"):
        build_dataset(tmp_path, "val")


def test_missing_label_file_names_what_was_looked_for(tmp_path):
    make_flat_val(tmp_path, VAL_TRUTH)
    with pytest.raises(GoogLeNetError) as info:
        build_dataset(tmp_path, "val")
    message = str(info.value)
    for name in (
        "LOC_val_solution.csv",
        "ILSVRC2012_validation_ground_truth.txt",
        "val_labels.txt",
        "val.txt",
    ):
        assert str(tmp_path / name) in message
    # Ground truth without a synset list to decode its IDs.
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n1\n")
    with pytest.raises(GoogLeNetError, match=r"synsets\.txt"):
        build_dataset(tmp_path, "val")


def test_image_without_label_is_an_error_naming_it(tmp_path):
    make_flat_val(tmp_path, VAL_TRUTH)
    write_jpeg(tmp_path / "val" / "extra.JPEG")
    (tmp_path / "synsets.txt").write_text("".join(f"{w}\n" for w in SORTED))
    lines = [f"ILSVRC2012_val_{k:08d}.JPEG 0" for k in VAL_TRUTH]
    (tmp_path / "val_labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(GoogLeNetError, match=r"no label for .*extra\.JPEG in .*val_labels\.txt"):
        build_dataset(tmp_path, "val")


def test_sorted_1000_synset_list_cannot_decode_devkit_ids(tmp_path):
    make_flat_val(tmp_path, {1: "n00000000"})
    (tmp_path / "synset_words.txt").write_text("".join(f"n{i:08d} thing {i}\n" for i in range(1000)))
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("5\n")
    with pytest.raises(GoogLeNetError, match="sorted synset order, not ILSVRC2012_ID order"):
        build_dataset(tmp_path, "val")


# ---------------------------------------------------------------------------- unreadable files


def make_dataset_with_bad_files(root: Path) -> tuple[list[str], int]:
    """Class folders with 5 good images and 3 bad ones; returns the bad paths and the good count."""
    make_folder_split(root, "train", {"a": 3, "b": 2})
    good = io.BytesIO()
    PIL.Image.fromarray(np.random.RandomState(1).randint(0, 256, (40, 56, 3), np.uint8)).save(good, "JPEG")
    truncated = root / "train" / "a" / "truncated.jpg"
    truncated.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    text = root / "train" / "b" / "notes.jpg"
    text.write_text("this is not an image\n")
    empty = root / "train" / "b" / "empty.jpeg"
    empty.write_bytes(b"")
    return sorted(str(p) for p in (truncated, text, empty)), 5


def transform_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_are_skipped_counted_and_logged(tmp_path, caplog, workers):
    bad, good_count = make_dataset_with_bad_files(tmp_path)
    dataset = build_dataset(tmp_path, "train", transform_to_tensor)
    assert len(dataset) == good_count + len(bad)
    loader = DataLoader(dataset, batch_size=3, num_workers=workers, collate_fn=collate_skip_bad)
    seen, skipped, labels = 0, 0, []
    with caplog.at_level(logging.WARNING, logger="googlenet.data"):
        for batch in loader:
            assert isinstance(batch, SkippableBatch)
            images, targets, n_bad = batch
            if targets.numel():
                assert images.shape == (targets.numel(), 3, 8, 8)
            seen += targets.numel()
            skipped += n_bad
            labels += targets.tolist()
    assert seen == good_count and skipped == len(bad)
    assert sorted(labels) == [0, 0, 0, 1, 1]
    if workers == 0:  # worker processes log and count in their own process
        assert dataset.num_skipped == len(bad)
        logged = sorted(r.args[0] for r in caplog.records if r.name == "googlenet.data")
        assert logged == bad


def test_collate_of_an_all_bad_batch_is_empty():
    batch = collate_skip_bad([None, None])
    assert batch.skipped == 2 and batch.targets.numel() == 0 and batch.targets.dtype == torch.long


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_unreadable_lists_exactly_the_bad_files(tmp_path, workers):
    bad, _ = make_dataset_with_bad_files(tmp_path)
    dataset = build_dataset(tmp_path, "train")
    found = scan_unreadable(dataset, workers=workers)
    assert sorted(path for path, _ in found) == bad
    assert all(reason for _, reason in found)
    with pytest.raises(ValueError, match="Got -1"):
        scan_unreadable(dataset, workers=-1)


@pytest.mark.parametrize("limit", [1000, 2000])  # 40 x 56 = 2240 pixels: error above 2x, warning above 1x
def test_decompression_bombs_are_unreadable_without_changing_the_global(tmp_path, monkeypatch, limit):
    path = write_jpeg(tmp_path / "big.jpg")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(UnreadableImageError, match="DecompressionBomb") as info:
        open_image(path)
    assert info.value.path == str(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 10_000)
    assert open_image(path).size == (56, 40)


def test_kaggle_files_three_levels_above_cls_loc(tmp_path):
    # Kaggle archive: LOC_*.{txt,csv} next to ILSVRC/, images under ILSVRC/Data/CLS-LOC/{train,val}.
    root = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    make_flat_val(root, VAL_TRUTH)
    make_folder_split(root, "train", {w: 1 for w in SORTED})
    write_synset_list(tmp_path / "LOC_synset_mapping.txt", sorted(ID_ORDER))
    rows = ["ImageId,PredictionString"] + [
        f"ILSVRC2012_val_{k:08d},{w} 1 2 3 4" for k, w in VAL_TRUTH.items()
    ]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    assert labels_by_name(build_dataset(root, "val")) == EXPECTED
    train = build_dataset(root, "train")
    assert train.layout == "ilsvrc" and train.classes[1] == "kit fox"


def test_dataloader_batches_repeat_under_the_same_seed_with_workers(tmp_path):
    from googlenet import create_model
    from googlenet.data.transforms import train_transform

    make_folder_split(tmp_path, "train", {"a": 3, "b": 3})
    transform = train_transform(create_model("googlenet", aux_logits=False).meta, 16)
    dataset = build_dataset(tmp_path, "train", transform)

    def run(seed: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_size=3,
            shuffle=True,
            num_workers=2,
            collate_fn=collate_skip_bad,
            generator=torch.Generator().manual_seed(seed),
        )
        return [batch.images for batch in loader]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
