"""``googlenet train``: the paper's training recipe (section 6) on a folder or the built-in set.

Parsing and wiring only: flags become a :class:`googlenet.training.train.TrainConfig` (defaults < ``--config``
YAML < flags) and :func:`googlenet.training.train.fit` runs it. Under ``torchrun`` every rank runs this.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from ..errors import GoogLeNetError

BOOL = argparse.BooleanOptionalAction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with the paper's recipe (section 6); resumable; torchrun for many GPUs",
        description="Train GoogLeNet with the paper's recipe (section 6). Option precedence: defaults < "
        "--config YAML < flags. The run directory gets config.yaml, env.json, metrics.jsonl, train.log, "
        "tensorboard/, checkpoints/{last,best}.pt, model.safetensors (averaged weights). "
        "See docs/training.md.",
    )
    g = p.add_argument_group("run")
    g.add_argument("--data", help="folder with train/ and val/ (ImageFolder or ILSVRC) or 'builtin'")
    g.add_argument("--layout", choices=["auto", "imagefolder", "ilsvrc"])
    g.add_argument("--model", help="registered model: googlenet (default), googlenet_bn, googlenet_tv")
    g.add_argument("--out", help="run directory to create (default runs/train)")
    g.add_argument("--config", dest="config_file", metavar="FILE.yaml", help="YAML file of training options")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    g.add_argument("--strict-data", action=BOOL, help="decode every image first; stop at the first bad one")
    g.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        metavar="KEY=VALUE",
        help="create_model override, e.g. dropout=0.0 (repeatable)",
    )
    g.add_argument(
        "--augment",
        action="append",
        metavar="KEY=VALUE",
        help="AugmentConfig override, e.g. photometric=false or scale=[0.08,1] (repeatable)",
    )
    g.add_argument(
        "--builtin",
        action="append",
        metavar="KEY=VALUE",
        help="built-in set parameter for --data builtin, e.g. train_per_class=200 (repeatable)",
    )
    g = p.add_argument_group("recipe (section 6)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="per process (global batch = this x processes); default 32")
    g.add_argument("--val-batch-size", type=int)
    g.add_argument("--lr", type=float, help="learning rate at --lr-reference-batch (default 0.01 at 32)")
    g.add_argument("--lr-reference-batch", type=int)
    g.add_argument("--lr-scale-with-batch", action=BOOL, help="scale lr linearly with the global batch")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], help="sgd (section 6; default) or adamw")
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--bias-lr-mult", type=float, help="lr multiplier of biases (BVLC: 2)")
    g.add_argument("--lr-step-epochs", type=float, help="decay every this many epochs (default 8)")
    g.add_argument("--lr-gamma", type=float, help="decay factor (default 0.96)")
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--warmup-start-factor", type=float)
    g.add_argument("--aux-loss-weight", type=float, help="weight of each auxiliary loss (default 0.3)")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--ema-decay", type=float, help="Polyak (EMA) decay per step (default 0.999)")
    g.add_argument("--image-size", type=int, help="training/eval crop (default 224)")
    g = p.add_argument_group("execution")
    g.add_argument("--seed", type=int, help="data order, augmentation, dropout, initial weights (default 0)")
    g.add_argument("--init-seed", type=int, help="seed of the initial weights alone (default: --seed)")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    g.add_argument("--channels-last", action=BOOL)
    g.add_argument("--compile", action=BOOL, help="torch.compile the training forward")
    g.add_argument("--sync-bn", action=BOOL, help="SyncBatchNorm across ranks (BN variants, CUDA)")
    g.add_argument("--deterministic", action=BOOL, help="deterministic algorithms (bit-exact resume)")
    g.add_argument("--num-threads", type=int, help="torch CPU threads per process")
    g.add_argument("--workers", type=int, help="DataLoader worker processes per process (default 4)")
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N steps")
    g.add_argument("--log-every", type=int, metavar="N", help="steps between log lines (default 50)")
    g.add_argument("--debug-nan-at-step", type=int, metavar="STEP", help="testing: make this step's loss NaN")
    g.add_argument(
        "--debug-hold-at-step", type=int, metavar="STEP", help="testing: pause after STEP until a signal"
    )
    p.set_defaults(func=run)


def _pairs(values: list[str] | None, flag: str) -> dict[str, Any] | None:
    import yaml

    if not values:
        return None
    out: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise GoogLeNetError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(text)
    return out


def _configure_logging() -> None:
    # Rank 0 talks; the other torchrun ranks only warn.
    rank = int(os.environ.get("RANK", "0") or 0)
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    root = logging.getLogger("googlenet")
    root.addHandler(handler)
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def run(args: argparse.Namespace) -> int:
    from ..training.train import TrainConfig, fit, resolve_config, resume_config

    keys = {f for f in TrainConfig.__dataclass_fields__}
    overrides = {k: v for k, v in vars(args).items() if k in keys and v is not None and k != "resume"}
    mapping_flags = (("model_options", "--model-option"), ("augment", "--augment"), ("builtin", "--builtin"))
    for key, flag in mapping_flags:
        overrides.pop(key, None)
        pairs = _pairs(getattr(args, key), flag)
        if pairs is not None:
            overrides[key] = pairs
    if args.resume:
        if args.config_file:
            raise GoogLeNetError("--resume takes the run's own config.yaml; leave out --config")
        config = resume_config(args.resume, overrides)
    else:
        config = resolve_config(args.config_file, overrides)
    _configure_logging()
    result = fit(config)
    main_rank = int(os.environ.get("RANK", "0") or 0) == 0
    if result.interrupted:
        if not main_rank:
            return result.exit_code
        print(
            f"googlenet train: stopped by {result.interrupted} after step {result.step}; checkpoint written. "
            f"Continue with: googlenet train --resume {result.run_dir}",
            file=sys.stderr,
        )
        return result.exit_code
    if main_rank:
        print(f"averaged weights: {result.model_path}")
        print(f"raw weights:      {result.raw_model_path}")
        if result.metrics:
            m = result.metrics[-1]
            print(
                f"epoch {m['epoch']}: val top-1 error {m['avg_val_top1_err']:.4f}, "
                f"top-{m['top_k']} error {m['avg_val_top5_err']:.4f} (averaged weights)"
            )
    return 0
