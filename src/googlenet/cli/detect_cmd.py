"""``googlenet detect``: objects in image files with a trained detector (paper section 8)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import GoogLeNetError
from .common import add_json_argument

ORDER = 63  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="detect objects in images with a detector made by train-detector (section 8)",
        description="Detections per image: proposals, every region warped and classified by the detector's "
        "members (their softmax averaged), per-class NMS. A file that cannot be read gets a one-line error "
        "on stderr; the others are still processed and the exit status is 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files, folders (searched recursively), globs"
    )
    p.add_argument(
        "--detector", required=True, metavar="DIR", help="detector directory (train-detector --out)"
    )
    p.add_argument(
        "--members", type=int, default=None, metavar="K", help="use the first K members (default all)"
    )
    p.add_argument(
        "--score-threshold", type=float, default=0.3, metavar="T", help="print/draw detections scoring >= T"
    )
    add_json_argument(p, what="[{image, detections: [{label, score, bbox}]}] (instead of text on stdout)")
    p.add_argument(
        "-o",
        "--out",
        "--draw",
        dest="draw",
        type=Path,
        default=None,
        metavar="OUT_DIR",
        help="write each image with its boxes into OUT_DIR",
    )
    p.add_argument("--backend", default="torch", choices=("auto", "torch", "onnxruntime", "openvino"))
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write
    from ..data.datasets import UnreadableImageError, find_images, open_image
    from ..detection.detector import Detector
    from ..detection.draw import draw_detections
    from ..progress import progress_bar
    from .common import STDOUT, check_json_output, write_json

    if not 0 <= args.score_threshold <= 1:
        raise GoogLeNetError(f"--score-threshold must be in [0, 1]. Got {args.score_threshold}")
    check_json_output(args, example="detections.json")
    if args.draw is not None and args.draw.exists() and not args.draw.is_dir():
        raise GoogLeNetError(f"output folder {args.draw} is a file; give a folder for the drawn images")
    detector = Detector.load(
        args.detector, members=args.members, backend=args.backend, precision=args.precision
    )
    paths, errors = find_images(args.images)
    for _, message in errors:
        print(f"googlenet detect: error: {message}", file=sys.stderr)
    records, failed = [], len(errors)
    taken: dict[str, int] = {}  # drawn file stems, so same-named images in two folders both survive
    names = detector.class_names
    with progress_bar(len(paths), "detect") as bar:
        for path in paths:
            try:
                image = open_image(path)
            except UnreadableImageError as exc:
                # through the bar, so the message gets a line of its own
                bar.write(f"googlenet detect: error: {exc}", file=sys.stderr)
                failed += 1
                bar.update(1)
                continue
            found = detector.detect(image)
            keep = [i for i, s in enumerate(found.scores) if s >= args.score_threshold]
            records.append(
                {
                    "image": path,
                    "detections": [
                        {
                            "label": names[int(found.labels[i])],
                            "score": round(float(found.scores[i]), 6),
                            "bbox": [float(v) for v in found.boxes[i]],
                        }
                        for i in keep
                    ],
                }
            )
            if args.draw is not None:
                drawn = draw_detections(image, found, names, min_score=args.score_threshold)
                stem = Path(path).stem
                taken[stem] = taken.get(stem, 0) + 1
                out = args.draw / (f"{stem}.png" if taken[stem] == 1 else f"{stem}_{taken[stem]}.png")
                atomic_write(out, lambda tmp, drawn=drawn: drawn.save(tmp, format="PNG"))
            bar.update(1)
    if args.json is not None:
        write_json(args, json.dumps(records, indent=1))
    if args.json != STDOUT:
        for record in records:
            print(f"{record['image']}: {len(record['detections'])} detection(s)")
            for d in record["detections"]:
                x1, y1, x2, y2 = d["bbox"]
                print(f"  {d['score']:.3f}  {d['label']}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    t = detector.times
    print(
        f"{t.images} image(s), {t.regions / max(t.images, 1):.0f} regions per image; seconds per image: "
        f"proposals {t.proposals / max(t.images, 1):.2f}, warp {t.warp / max(t.images, 1):.3f}, "
        f"network {t.network / max(t.images, 1):.2f}, NMS {t.scoring / max(t.images, 1):.3f}",
        file=sys.stderr,
    )
    return 1 if failed else 0
