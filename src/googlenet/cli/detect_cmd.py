"""``googlenet detect``: objects in image files with a trained detector (paper section 8).

:meth:`googlenet.detection.Detector.detect_files` does the work; ``--json`` writes every detection
as a detections file (:func:`googlenet.detection.write_detections`: what ``googlenet
evaluate-detection --detections`` scores, the image id being the file's stem) or, with ``--format
coco``, in COCO's results format.
"""

from __future__ import annotations

import argparse
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
        "--score-threshold",
        type=float,
        default=0.3,
        metavar="T",
        help="print/draw detections scoring >= T (--json keeps every detection)",
    )
    add_json_argument(
        p,
        what="every detection, a detections file [{image_id (the file's stem), label, bbox, score}] "
        "that evaluate-detection --detections scores (instead of text on stdout)",
    )
    p.add_argument(
        "--format",
        default="googlenet",
        choices=("googlenet", "coco"),
        help="--json format: googlenet's detections file, or COCO's results format "
        "(image_id, category_id = the class's 1-based index, bbox [x, y, w, h], score)",
    )
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
    from ..data.datasets import find_images
    from ..detection.detections import detections_of, format_detections
    from ..detection.detector import Detector
    from ..detection.draw import draw_detections, drawn_image_path
    from ..progress import progress_bar
    from .common import STDOUT, check_json_output, write_json

    if not 0 <= args.score_threshold <= 1:
        raise GoogLeNetError(f"--score-threshold must be in [0, 1]. Got {args.score_threshold}")
    if args.format != "googlenet" and args.json is None:
        raise GoogLeNetError(f"--format {args.format} is the format of --json: pass --json FILE too")
    check_json_output(args, example="detections.json")
    if args.draw is not None and args.draw.exists() and not args.draw.is_dir():
        raise GoogLeNetError(f"output folder {args.draw} is a file; give a folder for the drawn images")
    detector = Detector.load(
        args.detector, members=args.members, backend=args.backend, precision=args.precision
    )
    paths, errors = find_images(args.images)
    for _, message in errors:
        print(f"googlenet detect: error: {message}", file=sys.stderr)
    detections, shown, failed = [], [], len(errors)
    drawn: set[Path] = set()
    names = detector.class_names
    with progress_bar(len(paths), "detect") as bar:
        for item in detector.detect_files(paths):
            bar.update(1)
            if item.error is not None:
                bar.write(f"googlenet detect: error: {item.error}", file=sys.stderr)  # a line of its own
                failed += 1
                continue
            detections += detections_of({item.image_id: item.found})
            shown.append((item.path, item.found))
            if args.draw is not None:
                picture = draw_detections(item.image, item.found, names, min_score=args.score_threshold)
                out = drawn_image_path(args.draw, item.path, drawn)
                atomic_write(out, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
    if args.json is not None:
        write_json(args, format_detections(detections, names, format=args.format))
        if args.json != STDOUT:
            print(f"{len(detections)} detection(s) of {len(shown)} image(s) -> {args.json}", file=sys.stderr)
    if args.json is None:  # --json replaces the text on stdout (a file or '-' alike)
        for path, found in shown:
            keep = [i for i, score in enumerate(found.scores) if score >= args.score_threshold]
            print(f"{path}: {len(keep)} detection(s)")
            for i in keep:
                x1, y1, x2, y2 = found.boxes[i]
                label = names[int(found.labels[i])]
                print(f"  {found.scores[i]:.3f}  {label}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    t = detector.times
    s = t.seconds_per_image()
    print(
        f"{t.images} image(s), {t.regions_per_image():.0f} regions per image; seconds per image: "
        f"proposals {s['proposals']:.2f}, warp {s['warp']:.3f}, network {s['network']:.2f}, "
        f"NMS {s['nms']:.3f}",
        file=sys.stderr,
    )
    return 1 if failed else 0
