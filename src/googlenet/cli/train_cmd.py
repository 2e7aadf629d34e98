"""``googlenet train``: the paper's training recipe (section 6) on a folder or the built-in set.

Parsing and wiring only. The flags, their help and defaults come from the fields of
:class:`googlenet.training.config.TrainConfig` (:func:`add_recipe_arguments`, shared with
``train-ensemble``); they become a config (defaults < ``--config`` YAML < flags) and
:func:`googlenet.training.train.fit` runs it. Under ``torchrun`` every rank runs this.
"""

from __future__ import annotations

import argparse

from ..errors import GoogLeNetError
from .common import add_recipe_arguments, configure_logging, recipe_overrides, stopped_early

ORDER = 30  # googlenet --help lists the commands by layer (training)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with the paper's recipe (section 6); resumable; torchrun for many GPUs",
        description="Train GoogLeNet with the paper's recipe (section 6). Option precedence: defaults < "
        "--config YAML < flags. The run directory gets config.yaml, env.json, metrics.jsonl, train.log, "
        "tensorboard/, checkpoints/{last,best}.pt, model.safetensors (averaged weights), "
        "model_best.safetensors (the best epoch's). See docs/training.md.",
    )
    add_recipe_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import resolve_config, resume_config
    from ..training.train import fit

    overrides = recipe_overrides(args)
    configure_logging()  # before the config: resolving it may say which model --init-from chose
    if args.resume:
        if args.config_file:
            raise GoogLeNetError("--resume takes the run's own config.yaml; leave out --config")
        config = resume_config(args.resume, overrides)
    else:
        config = resolve_config(args.config_file, overrides)
    result = fit(config)
    if (code := stopped_early(result, "train", f"googlenet train --resume {result.run_dir}")) is not None:
        return code
    print(f"averaged weights: {result.model_path}")
    print(f"raw weights:      {result.raw_model_path}")
    if result.metrics:
        m = result.metrics[-1]
        print(
            f"epoch {m['epoch']}: val top-1 error {m['avg_val_top1_err']:.4f}, "
            f"top-{m['top_k']} error {m['avg_val_top5_err']:.4f} (averaged weights)"
        )
    return 0
