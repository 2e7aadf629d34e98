"""Starting a run from trained weights: ``--init-from``, ``--freeze``, ``--pretrained-lr-mult``.

R-CNN (and so section 8) fine-tunes an ImageNet classifier on warped regions; a user fine-tunes a
trained GoogLeNet on a new set of classes. The backbone (every layer of Table 1) is loaded
strictly: each tensor must be in the source with the same shape, so a variant mismatch is an error
that says so. The classifiers (``fc`` and the auxiliary heads' last layers) are taken when their
shapes fit and re-created for the new classes when they do not; the rest of an auxiliary head is
taken when the source has one. The report says which tensors were loaded and which are new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import GoogLeNetError
from .config import STAGES, check_stage

CLASSIFIER_PREFIXES = ("fc.", "aux1.fc2.", "aux2.fc2.")
AUX_PREFIXES = ("aux1.", "aux2.")


@dataclass(frozen=True)
class InitReport:
    """What ``init_from`` loaded into the model."""

    source: str
    variant: str
    loaded: tuple[str, ...]
    new: tuple[str, ...]

    def summary(self) -> str:
        new = ", ".join(sorted({k.rsplit(".", 1)[0] for k in self.new})) or "none"
        return (
            f"initialised from {self.source} ({self.variant}): {len(self.loaded)} tensors loaded, "
            f"{len(self.new)} new ({new})"
        )


def _is_backbone(key: str) -> bool:
    return not key.startswith((*AUX_PREFIXES, "fc."))


def load_pretrained(model: nn.Module, source: str | Path) -> InitReport:
    """Copy the weights of ``source`` (anything ``--checkpoint`` accepts that names one model: a
    ``.safetensors`` file, a run or ensemble member directory, a training checkpoint, a converted
    BVLC or torchvision file) into ``model``; record the loaded names on ``model.pretrained_names``."""
    from .loading import load_named_model

    donor = load_named_model(source)
    theirs = donor.state_dict()
    mine = model.state_dict()
    missing = [k for k in mine if _is_backbone(k) and k not in theirs]
    mismatched = [k for k in mine if _is_backbone(k) and k in theirs and theirs[k].shape != mine[k].shape]
    if missing or mismatched:
        what = missing[0] if missing else f"{mismatched[0]} ({tuple(theirs[mismatched[0]].shape)} there)"
        raise GoogLeNetError(
            f"--init-from {source}: its backbone does not fit the model being trained "
            f"({len(missing)} tensor(s) missing, {len(mismatched)} of another shape, first: {what}); it is a "
            f"{donor.meta.variant}: pass --model {donor.meta.variant}"
        )
    loaded, new = [], []
    state = {}
    for key, value in mine.items():
        other = theirs.get(key)
        if other is not None and other.shape == value.shape:
            state[key] = other
            loaded.append(key)
        else:
            state[key] = value
            new.append(key)
    model.load_state_dict(state, strict=True)
    model.pretrained_names = frozenset(k for k in loaded if k in dict(model.named_parameters()))
    return InitReport(str(source), donor.meta.variant, tuple(loaded), tuple(new))


def freeze_until(model: nn.Module, stage: str) -> list[str]:
    """Freeze every layer of Table 1 from the input up to and including ``stage``: its parameters
    get no gradient, and its BatchNorm layers keep their running statistics (momentum 0; in
    training mode they still normalise with the batch's). Returns the frozen parameter names."""
    check_stage(stage)
    frozen: list[str] = []
    for name in STAGES[: STAGES.index(stage) + 1]:
        module = getattr(model, name, None)
        if module is None:
            continue
        for pname, p in module.named_parameters():
            p.requires_grad_(False)
            frozen.append(f"{name}.{pname}")
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0
    return frozen


def parameter_lr_factors(model: nn.Module, pretrained_lr_mult: float) -> dict[int, float]:
    """``id(parameter) -> learning-rate factor``: ``pretrained_lr_mult`` for the tensors loaded by
    :func:`load_pretrained`, 1 for the new ones (and for every tensor of a model not fine-tuned)."""
    names = getattr(model, "pretrained_names", frozenset())
    return {id(p): (pretrained_lr_mult if n in names else 1.0) for n, p in model.named_parameters()}


__all__ = ["InitReport", "freeze_until", "load_pretrained", "parameter_lr_factors"]
