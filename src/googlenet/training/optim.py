"""The optimizer and the learning-rate schedule of the section 6 recipe.

"Our training used asynchronous stochastic gradient descent with 0.9 momentum, fixed learning rate
schedule (decreasing the learning rate by 4% every 8 epochs)" (section 6). The numbers the paper
does not give are BVLC's Caffe reproduction's (``models/bvlc_googlenet/solver.prototxt``):

* :func:`base_lr`: 0.01 at batch 32 (``base_lr``), scaled linearly with the global batch;
* :func:`lr_factor` / :func:`build_scheduler`: x0.96 every 8 epochs as a closed form of the step
  count, with an optional linear warm-up (not in the paper; helps large batches);
* :func:`param_groups` / :func:`build_optimizer`: SGD with momentum 0.9 (or AdamW for short CPU
  runs), weight decay 2e-4 on weights only (``decay_mult: 0`` on biases, none on normalisation
  scale/shift), biases at twice the rate (``lr_mult: 2``);
* :func:`epoch_lr`: the rate an epoch's record reports;
* :func:`polyak_average`: section 6's "Polyak averaging" as an exponential moving average of the
  weights, its decay optionally warmed up (:func:`ema_decay_at`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from .config import TrainConfig

__all__ = [
    "base_lr",
    "build_optimizer",
    "build_scheduler",
    "ema_decay_at",
    "ema_horizon",
    "epoch_lr",
    "lr_factor",
    "param_groups",
    "polyak_average",
]

# TensorFlow's ExponentialMovingAverage(decay, num_updates) uses min(decay, (1 + t) / (10 + t)) at
# update t; Google's Inception training (tensorflow/models, inception_train.py) averaged its weights
# that way. The paper says "Polyak averaging" (section 6) and gives no decay.
EMA_WARMUP_OFFSET = 10


def lr_factor(
    iteration: int,
    *,
    iters_per_epoch: int,
    step_epochs: float,
    gamma: float,
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.1,
) -> float:
    """Multiplier of the base learning rate during optimizer step ``iteration`` (0-based).

    ``gamma ** floor(iteration / (step_epochs * iters_per_epoch))`` (section 6: x0.96 every 8 epochs,
    counted from iteration 0), times a linear ramp from ``warmup_start_factor`` to 1 over the first
    ``warmup_epochs``. A closed form (fed to LambdaLR) rather than SequentialLR(LinearLR, StepLR):
    SequentialLR restarts StepLR's count at the end of warm-up, which would shift every decay.
    """
    step_iters = max(1, round(step_epochs * iters_per_epoch))
    factor = gamma ** (iteration // step_iters)
    warmup_iters = round(warmup_epochs * iters_per_epoch)
    if iteration < warmup_iters:
        factor *= warmup_start_factor + (1 - warmup_start_factor) * iteration / warmup_iters
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's schedule: :func:`lr_factor` with the config's decay and warm-up, stepped once per
    optimizer step."""
    fn = partial(
        lr_factor,
        iters_per_epoch=iters_per_epoch,
        step_epochs=config.lr_step_epochs,
        gamma=config.lr_gamma,
        warmup_epochs=config.warmup_epochs,
        warmup_start_factor=config.warmup_start_factor,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_mult: float,
    pretrained_lr_mult: float = 1.0,
) -> list[dict[str, Any]]:
    """SGD parameter groups as BVLC sets them: weights decay; biases (lr x ``bias_lr_mult``) and
    normalisation scale/shift do not. Tensors loaded by ``--init-from`` get their rate times
    ``pretrained_lr_mult``; frozen tensors (no gradient) are left out."""
    from .finetune import parameter_lr_factors

    factors = parameter_lr_factors(model, pretrained_lr_mult)
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES):
                kind, mult, decay = "norm", 1.0, 0.0
            elif name == "bias":
                kind, mult, decay = "bias", bias_lr_mult, 0.0
            else:
                kind, mult, decay = "weight", 1.0, weight_decay
            factor = factors[id(p)]
            group = groups.setdefault(
                (kind, factor), {"params": [], "lr": lr * mult * factor, "weight_decay": decay}
            )
            group["params"].append(p)
    order = {"weight": 0, "bias": 1, "norm": 2}
    return [groups[k] for k in sorted(groups, key=lambda k: (order[k[0]], -k[1]))]


def build_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with momentum (section 6) or AdamW, on the BVLC parameter groups of :func:`param_groups`.

    AdamW is not the paper's: it is here because SGD needs tens of epochs to leave chance on the
    built-in set (every class is a colour-free shape; see docs/training.md), which a CPU demo cannot
    afford, while AdamW's per-parameter step sizes get through that plateau in a few hundred steps.
    Its ``weight_decay`` is decoupled (multiplied by the learning rate), so it wants values around
    0.05, not SGD's 2e-4.
    """
    groups = param_groups(
        model,
        lr=lr,
        weight_decay=config.weight_decay,
        bias_lr_mult=config.bias_lr_mult,
        pretrained_lr_mult=config.pretrained_lr_mult,
    )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)


def base_lr(config: TrainConfig, world_size: int) -> float:
    """``lr`` scaled by global batch / reference batch when ``lr_scale_with_batch``."""
    if not config.lr_scale_with_batch:
        return config.lr
    return config.lr * config.batch_size * world_size / config.lr_reference_batch


def epoch_lr(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> float:
    """The first group's learning rate during optimizer step ``step - 1``: the rate an epoch that
    ended at ``step`` trained its last batch with (not the rate after its last scheduler step,
    which is the next epoch's)."""
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](max(step - 1, 0))


def ema_decay_at(update: int, decay: float, warmup: bool) -> float:
    """The decay of averaging update ``update`` (the updates already averaged, >= 1): ``decay``, or
    with ``warmup`` ``min(decay, (1 + t) / (10 + t))``.

    Warmed up, the average of a run of ``t`` steps spans about its last ``t / 9`` steps until the
    decay reaches ``decay`` (0.999: after 8,990 steps), so a short run's average is of trained
    weights rather than mostly of its initial ones (0.999 over 250 steps keeps 78% of the start).
    """
    if not warmup:
        return decay
    return min(decay, (1 + update) / (EMA_WARMUP_OFFSET + update))


def ema_horizon(steps: int, decay: float, warmup: bool) -> float:
    """``1 / (1 - d)``: the steps the average spans after ``steps`` updates (the log's summary)."""
    return 1.0 / (1.0 - ema_decay_at(max(steps, 1), decay, warmup))


def polyak_average(
    model: nn.Module, decay: float, *, warmup: bool = False
) -> torch.optim.swa_utils.AveragedModel:
    """Section 6's Polyak averaging as an EMA of ``model``'s weights (:func:`ema_decay_at` per
    update). ``use_buffers=True`` averages BatchNorm's running statistics with the weights, so the
    averaged model is usable without a recomputation pass over the data (SWA's ``update_bn``); the
    paper variant has no buffers. The update count lives in the average's ``n_averaged`` buffer, so
    a resumed run continues the same decays."""
    if not warmup:
        avg = torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
    else:

        @torch.no_grad()
        def avg(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
            d = ema_decay_at(int(n_averaged), decay, True)
            if torch.is_floating_point(averaged[0]):
                torch._foreach_lerp_(averaged, current, 1 - d)
            else:  # integer buffers (BatchNorm's num_batches_tracked), as get_ema_multi_avg_fn does
                for a, c in zip(averaged, current, strict=True):
                    a.copy_(a * d + c * (1 - d))

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=avg, use_buffers=True)
