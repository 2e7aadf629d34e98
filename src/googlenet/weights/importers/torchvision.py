"""Import torchvision GoogLeNet weights: `googlenet-*.pth`, any `torchvision.models.googlenet` state dict.

The registered variant ``googlenet_tv`` has torchvision's state-dict layout key for key, so the
import is a strict ``load_state_dict`` after checks that give errors a user can act on. That
port departs from the paper (section 5, Table 1): BatchNorm instead of LRN, 3x3 kernels in the
"5x5" branch, a 2x2 pool4; see :data:`googlenet.models.spec.TORCHVISION`.

torchvision's ImageNet checkpoint expects ``transform_input=True``: torchvision builds the model
with it whenever those weights are loaded, re-normalising ImageNet-normalised input to
``(x - 0.5) / 0.5`` inside the network. The importer does the same for 1000-class state dicts and
leaves it off otherwise (torchvision's constructor default); ``transform_input=`` overrides both.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import GoogLeNetError
from ...models.imagenet_classes import NUM_IMAGENET_CLASSES, imagenet_class_names
from ...models.model import GoogLeNet
from .common import ImportReport, assign_state, empty_model, file_sha256

logger = logging.getLogger(__name__)

_MAX_LISTED = 5
_AUX_PREFIXES = ("aux1.", "aux2.")
# Checkpoints written by some training scripts nest the state dict under one of these keys.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def _first(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _load_checkpoint(path: Path) -> Any:
    if not path.is_file():
        raise GoogLeNetError(f"torchvision checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only=True refuses any pickled object other than tensors and plain containers
        # (such a file could run code when unpickled); torch names it as "GLOBAL module.Class".
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise GoogLeNetError(
                f"{path}: refused: the checkpoint holds a pickled {found.group(1)}, not only tensors "
                "(torch.load weights_only=True); save only the model's state_dict()"
            ) from None
        raise GoogLeNetError(f"{path}: not a readable PyTorch checkpoint (bad pickle data)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile/OSError for non-checkpoints
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GoogLeNetError(f"{path}: not a readable PyTorch checkpoint ({first_line})") from None


def _state_dict_of(obj: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise GoogLeNetError(f"{where}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise GoogLeNetError(f"{where}: entries that are not tensors: {_first(not_tensors)}")
    state = {str(k): v for k, v in obj.items()}
    # nn.DataParallel / DistributedDataParallel prefix every key with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _check_keys(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str
) -> dict[str, torch.Tensor]:
    state = dict(state)
    # BatchNorm counters appeared in PyTorch 0.4.1; older checkpoints lack them and torch fills 0.
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    if missing:
        raise GoogLeNetError(
            f"{where}: not a torchvision GoogLeNet state dict; missing key(s) {_first(missing)}"
        )
    if unknown:
        raise GoogLeNetError(f"{where}: key(s) torchvision's GoogLeNet does not have: {_first(unknown)}")
    misshaped = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if misshaped:
        raise GoogLeNetError(f"{where}: tensor(s) of the wrong shape: {_first(misshaped)}")
    return state


def import_torchvision(
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
    *,
    transform_input: bool | None = None,
    aux_logits: bool | None = None,
) -> tuple[GoogLeNet, ImportReport]:
    """Build ``googlenet_tv`` (eval mode) from torchvision GoogLeNet weights, and say what was imported.

    ``path_or_state_dict``: a ``.pth`` file (read with ``torch.load(weights_only=True)``) or a
    state dict of ``torchvision.models.googlenet``. The number of classes comes from
    ``fc.weight``; the auxiliary heads are built when ``aux1.*`` keys are present, unless
    ``aux_logits=False`` drops them (``True`` requires them). ``transform_input`` defaults to
    True for 1000 classes (torchvision's ImageNet weights), False otherwise.
    """
    if isinstance(path_or_state_dict, str | Path):
        path: Path | None = Path(path_or_state_dict)
        where = str(path)
        state = _state_dict_of(_load_checkpoint(path), where)
    else:
        path, where = None, "state dict"
        state = _state_dict_of(path_or_state_dict, where)

    fc_weight = state.get("fc.weight")
    if fc_weight is None or fc_weight.ndim != 2:
        raise GoogLeNetError(f"{where}: no 2-D 'fc.weight'; not a torchvision GoogLeNet state dict")
    num_classes = int(fc_weight.shape[0])
    has_aux = any(k.startswith(_AUX_PREFIXES) for k in state)
    if aux_logits is True and not has_aux:
        raise GoogLeNetError(f"{where}: auxiliary heads requested but the state dict has no aux1/aux2 keys")
    use_aux = has_aux if aux_logits is None else aux_logits
    if not use_aux:
        state = {k: v for k, v in state.items() if not k.startswith(_AUX_PREFIXES)}
    if transform_input is None:
        transform_input = num_classes == NUM_IMAGENET_CLASSES

    class_names = imagenet_class_names() if num_classes == NUM_IMAGENET_CLASSES else None
    model = empty_model(
        "googlenet_tv",
        num_classes=num_classes,
        aux_logits=use_aux,
        class_names=class_names,
        transform_input=transform_input,
    )
    state = _check_keys(state, model.state_dict(), where)
    assign_state(model, state, where)

    notes = [f"transform_input={transform_input}"]
    if has_aux and not use_aux:
        notes.append("auxiliary heads in the file left out")
    elif use_aux and num_classes == NUM_IMAGENET_CLASSES:
        notes.append(
            "torchvision's ImageNet checkpoint ships untrained auxiliary heads (train them or use --no-aux)"
        )
    if path is not None:
        digest: str | None = file_sha256(path)
        model.meta.source = f"torchvision:{path.name} sha256:{digest}"
        model.meta.extra.update(
            {"source_format": "torchvision", "source_file": path.name, "source_sha256": str(digest)}
        )
    else:
        digest = None
        model.meta.source = "torchvision state dict"
        model.meta.extra.update({"source_format": "torchvision"})
    report = ImportReport(
        source_format="torchvision",
        source=path.name if path is not None else "<state dict>",
        source_sha256=digest,
        variant="googlenet_tv",
        num_classes=num_classes,
        aux_heads=use_aux,
        tensors=len(state),
        notes=notes,
    )
    return model.eval(), report


def load_torchvision(
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
    *,
    transform_input: bool | None = None,
    aux_logits: bool | None = None,
) -> GoogLeNet:
    """The ``googlenet_tv`` model of torchvision GoogLeNet weights (see :func:`import_torchvision`)."""
    model, report = import_torchvision(
        path_or_state_dict, transform_input=transform_input, aux_logits=aux_logits
    )
    logger.info("%s", report.summary())
    return model
