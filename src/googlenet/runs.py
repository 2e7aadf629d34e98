"""What a ``--checkpoint`` argument names: a weights file, a training run, or an ensemble of runs.

Section 7 evaluates single models and an ensemble of 7 ("independently trained 7 versions of the
same GoogLeNet model ... and performed ensemble prediction with them"). The commands that take
``--checkpoint`` accept any mix of:

* a ``.safetensors`` file written by :func:`googlenet.save`;
* a training run directory (``googlenet train --out RUN_DIR``): its ``model.safetensors`` (the
  Polyak-averaged weights, section 6), with the image size from its ``config.yaml``;
* an ensemble directory holding ``ensemble.json``: every member it lists (run directories or
  weights files, relative paths taken from the ensemble directory).

``ensemble.json`` may be a list of members or an object with a ``"members"`` list; a member is a
path string or an object with one of the keys ``run_dir``, ``path``, ``checkpoint``, ``weights``.
Every error names the path it is about.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GoogLeNetError

__all__ = ["ENSEMBLE_FILE", "RUN_CONFIG_FILE", "RUN_WEIGHTS_FILE", "Checkpoint", "resolve_checkpoints"]

RUN_WEIGHTS_FILE = "model.safetensors"
RUN_CONFIG_FILE = "config.yaml"
ENSEMBLE_FILE = "ensemble.json"
_MEMBER_KEYS = ("run_dir", "path", "checkpoint", "weights")


@dataclass(frozen=True)
class Checkpoint:
    """One model to load: ``weights`` is the safetensors file; ``image_size`` is the training image
    size recorded in the run's ``config.yaml`` (None when unknown); ``source`` is the argument (or
    ensemble member) it came from."""

    weights: Path
    source: str
    run_dir: Path | None = None
    image_size: int | None = None

    @property
    def name(self) -> str:
        """A short label: the run directory's name, else the file's stem."""
        return self.run_dir.name if self.run_dir is not None else self.weights.stem

    def load(self, device: str = "cpu") -> Any:
        """The model, in eval mode (:func:`googlenet.load`)."""
        from .weights.store import load_weights

        return load_weights(self.weights, device=device)


def _run_image_size(run_dir: Path) -> int | None:
    config = run_dir / RUN_CONFIG_FILE
    if not config.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GoogLeNetError(f"{config}: not a readable YAML run config ({exc})") from None
    value = data.get("image_size") if isinstance(data, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GoogLeNetError(f"{config}: image_size must be a positive integer. Got {value!r}")
    return value


def _ensemble_members(directory: Path) -> list[str]:
    path = directory / ENSEMBLE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoogLeNetError(f"{path}: not a readable ensemble file ({exc})") from None
    members = data.get("members") if isinstance(data, dict) else data
    if not isinstance(members, list) or not members:
        raise GoogLeNetError(f"{path}: expected a non-empty list of members (or {{'members': [...]}})")
    out = []
    for i, member in enumerate(members):
        if isinstance(member, dict):
            member = next((member[k] for k in _MEMBER_KEYS if isinstance(member.get(k), str)), None)
        if not isinstance(member, str) or not member:
            raise GoogLeNetError(
                f"{path}: member {i} is neither a path nor an object with one of {', '.join(_MEMBER_KEYS)}"
            )
        out.append(member)
    return out


def _resolve_one(arg: str | Path, *, inside: Path | None = None) -> list[Checkpoint]:
    source = str(arg)
    path = Path(arg).expanduser()
    if inside is not None and not path.is_absolute():
        path = inside / path
    where = f" (listed in {inside / ENSEMBLE_FILE})" if inside is not None else ""
    if path.is_file():
        if path.suffix != ".safetensors":
            raise GoogLeNetError(f"checkpoint {path}{where} is not a .safetensors file")
        return [Checkpoint(path, source)]
    if path.is_dir():
        if (path / RUN_WEIGHTS_FILE).is_file():
            return [Checkpoint(path / RUN_WEIGHTS_FILE, source, path, _run_image_size(path))]
        if (path / ENSEMBLE_FILE).is_file():
            if inside is not None:
                raise GoogLeNetError(f"ensemble {path}{where} is nested in another ensemble")
            return [c for m in _ensemble_members(path) for c in _resolve_one(m, inside=path)]
        raise GoogLeNetError(
            f"checkpoint directory {path}{where} holds neither {RUN_WEIGHTS_FILE} (a training run) "
            f"nor {ENSEMBLE_FILE} (an ensemble)"
        )
    raise GoogLeNetError(f"checkpoint {path}{where} does not exist")


def resolve_checkpoints(args: Sequence[str | Path]) -> list[Checkpoint]:
    """Every model named by ``args``, in order (ensembles expanded into their members)."""
    if not args:
        raise GoogLeNetError("no checkpoint given")
    return [c for arg in args for c in _resolve_one(arg)]
