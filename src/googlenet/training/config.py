"""The training recipe as data: :class:`TrainConfig`, its YAML file, and what ``--resume`` may change.

Every field carries its own help text and command-line group in ``metadata``; ``googlenet train`` and
``googlenet train-ensemble`` derive their flags, help and defaults from the fields (timm's
``train.py`` order: defaults in code < a YAML file < flags), so a new option is added here once.
The defaults are the paper's section 6 recipe with BVLC's Caffe numbers where the paper gives
none (see :mod:`googlenet.training.train`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from ..cpu import cpu_count
from ..data.config import MIN_IMAGE_SIZE
from ..errors import GoogLeNetError
from ..models.spec import TABLE1
from ..runs import RunLayout, read_yaml, resolve_checkpoint
from .checkpoint import KEEP_CHECKPOINTS
from .engine import AUX_LOSS_WEIGHT

logger = logging.getLogger("googlenet.train")

STAGES = tuple(row.name for row in TABLE1)  # Table 1's layer names, input to output


def check_stage(stage: str | None) -> None:
    """A ``--freeze`` value: None or one of Table 1's layer names."""
    if stage is not None and stage not in STAGES:
        raise GoogLeNetError(f"--freeze {stage!r}: not a stage of Table 1; choose from {', '.join(STAGES)}")


# Command-line groups of the options, in the order the help lists them.
DATA, RECIPE, EXECUTION = "data and model", "recipe (section 6)", "execution"


def default_workers() -> int:
    """DataLoader workers per process that fit this machine's usable cores
    (:func:`googlenet.cpu.cpu_count`): ``min(4, cores - 1)``, none on 2 cores, where a worker would
    compete with the training step for a core and make an epoch many times slower than none does.
    """
    cores = cpu_count()
    return 0 if cores <= 2 else min(4, cores - 1)


def _cli(group: str, help: str, **flag: Any) -> dict[str, Any]:
    """A field's ``metadata``: its command-line ``group`` and ``help``; ``flag`` holds details
    (``flag``, ``aliases``, ``choices``, ``metavar``, or ``cli=False`` for options without a flag)."""
    return {"group": group, "help": help, **flag}


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's recipe (section 6)."""

    # data and model
    data: str = field(
        default="builtin",
        metadata=_cli(DATA, "folder with train/ and val/ (ImageFolder or ILSVRC2012 layout) or 'builtin'"),
    )
    layout: str = field(
        default="auto", metadata=_cli(DATA, "folder layout", choices=("auto", "imagefolder", "ilsvrc"))
    )
    builtin: dict[str, Any] = field(
        default_factory=dict,
        metadata=_cli(
            DATA, "built-in set parameter for --data builtin, e.g. train_per_class=200 (repeatable)"
        ),
    )
    model: str = field(
        default="googlenet", metadata=_cli(DATA, "registered model: googlenet, googlenet_bn, googlenet_tv")
    )
    model_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_cli(
            DATA,
            "create_model override, e.g. dropout=0.0 or aux={dropout: 0.0} (repeatable)",
            flag="--model-option",
        ),
    )
    image_size: int = field(
        default=224, metadata=_cli(DATA, "training and validation crop side (Table 1: 224)")
    )
    augment: dict[str, Any] = field(
        default_factory=dict,
        metadata=_cli(
            DATA,
            "AugmentConfig override (section 6 switches), e.g. photometric=false or scale=[0.08,1] "
            "(repeatable)",
        ),
    )
    strict_data: bool = field(
        default=False, metadata=_cli(DATA, "decode every image first; stop naming the first unreadable one")
    )
    out: str = field(
        default="runs/train", metadata=_cli(DATA, "run directory to create", aliases=("-o",), metavar="DIR")
    )
    # schedule
    epochs: int = field(
        default=60,
        metadata=_cli(RECIPE, "epochs (not in the paper; BVLC's quick solver: 2.4 M iterations at batch 32)"),
    )
    batch_size: int = field(
        default=32, metadata=_cli(RECIPE, "per process; global batch = this x processes (BVLC: 32)")
    )
    val_batch_size: int | None = field(
        default=None, metadata=_cli(RECIPE, "validation batch (default: --batch-size)")
    )
    lr: float = field(
        default=0.01, metadata=_cli(RECIPE, "learning rate at --lr-reference-batch (BVLC base_lr)")
    )
    lr_reference_batch: int = field(default=32, metadata=_cli(RECIPE, "the global batch --lr is given for"))
    lr_scale_with_batch: bool = field(
        default=True,
        metadata=_cli(RECIPE, "scale lr linearly with the global batch (the linear scaling rule)"),
    )
    optimizer: str = field(
        default="sgd",
        metadata=_cli(
            RECIPE,
            "sgd with momentum (section 6) or adamw (short CPU runs; docs/training.md)",
            choices=("sgd", "adamw"),
        ),
    )
    momentum: float = field(default=0.9, metadata=_cli(RECIPE, "SGD momentum (section 6)"))
    weight_decay: float = field(
        default=2e-4, metadata=_cli(RECIPE, "weight decay on weights only (BVLC solver)")
    )
    bias_lr_mult: float = field(
        default=2.0, metadata=_cli(RECIPE, "learning-rate multiplier of biases (BVLC lr_mult)")
    )
    lr_step_epochs: float = field(
        default=8.0, metadata=_cli(RECIPE, "decay the rate every this many epochs (section 6)")
    )
    lr_gamma: float = field(default=0.96, metadata=_cli(RECIPE, "decay factor (section 6: 4% less)"))
    warmup_epochs: float = field(
        default=0.0, metadata=_cli(RECIPE, "linear warm-up length (not in the paper)")
    )
    warmup_start_factor: float = field(
        default=0.1, metadata=_cli(RECIPE, "lr factor at the start of the warm-up")
    )
    aux_loss_weight: float = field(
        default=AUX_LOSS_WEIGHT,
        metadata=_cli(RECIPE, "weight of each auxiliary classifier's loss (section 5)"),
    )
    label_smoothing: float = field(default=0.0, metadata=_cli(RECIPE, "label smoothing (not in the paper)"))
    ema_decay: float = field(
        default=0.999,
        metadata=_cli(RECIPE, "Polyak (EMA) decay per step (section 6); 0.9999 for ImageNet-length runs"),
    )
    ema_warmup: bool = field(
        default=False,
        metadata=_cli(
            RECIPE,
            "warm the Polyak average up: decay min(--ema-decay, (1 + t) / (10 + t)) at update t "
            "(TensorFlow's EMA with num_updates, as Google's Inception training ran it), so that a run of "
            "any length averages about its last tenth",
        ),
    )
    # fine-tuning (section 8 fine-tunes a classifier; docs/training.md has a recipe)
    init_from: str | None = field(
        default=None,
        metadata=_cli(
            RECIPE,
            "start from these weights (.safetensors, a run or ensemble member, a training checkpoint, a "
            "converted BVLC or torchvision file); the classifiers are re-created when the classes differ",
            metavar="WEIGHTS",
        ),
    )
    pretrained_lr_mult: float = field(
        default=1.0, metadata=_cli(RECIPE, "learning-rate multiplier of the tensors loaded by --init-from")
    )
    freeze: str | None = field(
        default=None,
        metadata=_cli(
            RECIPE,
            "freeze Table 1's layers from the input up to this stage (e.g. inception4e)",
            metavar="STAGE",
        ),
    )
    # execution
    seed: int = field(
        default=0,
        metadata=_cli(
            EXECUTION, "data order, augmentation, dropout (and the initial weights unless --init-seed)"
        ),
    )
    init_seed: int | None = field(
        default=None,
        metadata=_cli(
            EXECUTION, "seed of the initial weights alone; ensemble members share it (default: --seed)"
        ),
    )
    device: str = field(default="auto", metadata=_cli(EXECUTION, "auto, cpu, cuda or cuda:N"))
    precision: str = field(
        default="auto",
        metadata=_cli(EXECUTION, "bf16 autocast where native (auto)", choices=("auto", "fp32", "bf16")),
    )
    channels_last: bool = field(default=True, metadata=_cli(EXECUTION, "channels-last (NHWC) memory"))
    compile: bool = field(default=False, metadata=_cli(EXECUTION, "torch.compile the training forward"))
    sync_bn: bool = field(
        default=False, metadata=_cli(EXECUTION, "SyncBatchNorm across ranks (BN variants, CUDA)")
    )
    deterministic: bool = field(
        default=False,
        metadata=_cli(EXECUTION, "deterministic algorithms, no cudnn autotuning (bit-exact resume)"),
    )
    num_threads: int | None = field(
        default=None, metadata=_cli(EXECUTION, "torch CPU threads per process (default: torch's)")
    )
    workers: int = field(
        default_factory=default_workers,
        metadata=_cli(
            EXECUTION,
            "DataLoader worker processes per process, 0 for none; the default fits the machine: "
            "min(4, cores - 1), none on 2 cores",
        ),
    )
    checkpoint_every: int = field(
        default=0,
        metadata=_cli(
            EXECUTION, "also write checkpoints/last.pt every N steps (0: epoch ends only)", metavar="N"
        ),
    )
    keep_checkpoints: str = field(
        default="all",
        metadata=_cli(
            EXECUTION,
            "training checkpoints a finished run keeps: all (checkpoints/last.pt, best.pt and "
            "model_best.safetensors), last (last.pt: the run can be trained further) or none (only the "
            "weights); while it trains, last.pt is always kept",
            choices=KEEP_CHECKPOINTS,
        ),
    )
    log_every: int = field(
        default=50, metadata=_cli(EXECUTION, "steps between log lines and step scalars", metavar="N")
    )
    handle_signals: bool = field(
        default=True, metadata=_cli(EXECUTION, "SIGINT/SIGTERM: finish the step, checkpoint, stop", cli=False)
    )
    resume: str | None = field(
        default=None,
        metadata=_cli(DATA, "continue the run in RUN_DIR exactly where it stopped", metavar="RUN_DIR"),
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys and wrongly typed values are errors naming ``source``
        (the :data:`RETIRED_KEYS` of older versions are ignored)."""
        hints = field_types()
        data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise GoogLeNetError(
                f"{source}: unknown training option {unknown[0]!r} (known: {', '.join(hints)})"
            )
        values = {key: _coerce(key, value, hints[key], source) for key, value in data.items()}
        config = cls(**values)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        """Check every value that can be checked without touching the data; errors name the key."""

        def bad(key: str, why: str) -> GoogLeNetError:
            return GoogLeNetError(f"{source}: {key}={getattr(self, key)!r} {why}")

        for key in ("epochs", "batch_size", "lr_reference_batch", "image_size"):
            if getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        if self.image_size < MIN_IMAGE_SIZE:
            raise bad("image_size", f"is too small; GoogLeNet needs at least {MIN_IMAGE_SIZE}")
        for key in ("lr", "lr_step_epochs", "lr_gamma", "warmup_start_factor"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be > 0")
        for key in (
            "weight_decay",
            "momentum",
            "aux_loss_weight",
            "warmup_epochs",
            "workers",
            "checkpoint_every",
        ):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise bad("ema_decay", "must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        for key in ("optimizer", "precision", "layout", "keep_checkpoints"):
            choices = _FIELDS[key].metadata["choices"]
            if getattr(self, key) not in choices:
                raise bad(key, f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        if self.log_every < 1:
            raise bad("log_every", "must be >= 1")
        if self.init_seed is not None and self.init_seed < 0:
            raise bad("init_seed", "must be >= 0")
        for key in ("num_threads", "val_batch_size"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        if not self.pretrained_lr_mult >= 0:
            raise bad("pretrained_lr_mult", "must be >= 0")
        if self.freeze is not None:
            check_stage(self.freeze)
        if self.init_from is None and (self.freeze is not None or self.pretrained_lr_mult != 1.0):
            raise GoogLeNetError(
                f"{source}: freeze and pretrained_lr_mult need init_from (--init-from WEIGHTS)"
            )
        self._validate_components(source)

    def model_meta(self) -> Any:
        """The registry's :class:`~googlenet.models.model.ModelMeta` of ``model`` with its
        ``model_options`` (mean/std, interpolation, resize ratio): what the transforms need before
        the model exists (the model needs the class count from the data). ValueError for an
        unknown model or option."""
        from ..models.registry import model_meta

        return model_meta(self.model, **{k: v for k, v in self.model_options.items() if k != "aux"})

    def _validate_components(self, source: str) -> None:
        # The model name, its options and the augmentation keys are checked here, before a run
        # directory exists, so that a typo costs nothing.
        try:
            self.model_meta()
        except ValueError as exc:
            raise GoogLeNetError(f"{source}: model={self.model!r}: {exc}") from None
        aux = self.model_options.get("aux")
        if aux is not None and not isinstance(aux, Mapping):
            raise GoogLeNetError(f"{source}: model_options.aux must be a mapping. Got {aux!r}")
        try:
            augment_config(self.augment)
        except (TypeError, ValueError) as exc:
            raise GoogLeNetError(f"{source}: augment: {exc}") from None

    def with_absolute_data(self) -> TrainConfig:
        """This config with ``data`` an absolute path when it names a folder (``builtin`` is kept):
        what ``config.yaml`` records, so that a run resumes from any working directory."""
        if self.data == "builtin" or not Path(self.data).expanduser().is_dir():
            return self
        return dataclasses.replace(self, data=str(Path(self.data).expanduser().resolve()))

    def training_dict(self) -> dict[str, Any]:
        """The keys that determine the trained weights (everything but :data:`RUNTIME_KEYS`, and
        the :data:`ADDED_KEYS` at the value older runs had)."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in RUNTIME_KEYS and not (k in ADDED_KEYS and v == ADDED_KEYS[k])
        }

    def saved_dict(self) -> dict[str, Any]:
        """What ``config.yaml`` and a checkpoint record: everything but ``resume``."""
        d = self.to_dict()
        d.pop("resume")
        return d


_FIELDS = {f.name: f for f in fields(TrainConfig)}

# Keys that change how a run executes but not the weights it produces: they may differ on --resume
# and are left out of the training-config hash.
RUNTIME_KEYS: frozenset[str] = frozenset(
    {"out", "resume", "workers", "log_every", "checkpoint_every", "keep_checkpoints", "handle_signals"}
)
# Weight-determining options added after runs were written, with the value that reproduces those
# runs: left out of the config hashes at that value, so that an older run still resumes.
ADDED_KEYS: Mapping[str, Any] = types.MappingProxyType({"ema_warmup": False})
# Options of older versions (testing hooks) that their config.yaml files and checkpoints still
# carry: read and ignored, so that those runs resume.
RETIRED_KEYS: frozenset[str] = frozenset({"debug_hold_at_step", "debug_nan_at_step"})
# What --resume may change: the runtime keys and the number of epochs (train a finished run further).
RESUME_KEYS = RUNTIME_KEYS | {"epochs"}


@cache
def field_types() -> dict[str, Any]:
    """Each field's resolved type (``int | None`` ...), from the annotations (not their text)."""
    return typing.get_type_hints(TrainConfig)


def optional_inner(hint: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, ``(hint, False)`` otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def augment_config(values: Mapping[str, Any]) -> Any:
    """``augment`` as an :class:`~googlenet.data.transforms.AugmentConfig` (YAML lists become tuples);
    an unknown key is a ValueError naming it and the known ones."""
    from ..data.transforms import AugmentConfig

    known = [f.name for f in fields(AugmentConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    # YAML gives ints where floats are meant (lr: 1) and flags give strings; accept exactly the
    # conversions that cannot lose meaning and name the key otherwise.
    kind, optional = optional_inner(hint)
    if value is None:
        if optional:
            return None
        raise GoogLeNetError(f"{source}: {key} must not be empty")
    if typing.get_origin(kind) is dict:
        if not isinstance(value, Mapping):
            raise GoogLeNetError(f"{source}: {key} must be a mapping. Got {value!r}")
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise GoogLeNetError(f"{source}: {key} must be true or false. Got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise GoogLeNetError(f"{source}: {key} must be an integer. Got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise GoogLeNetError(f"{source}: {key} must be a number. Got {value!r}")
    if kind is str:
        if isinstance(value, str | os.PathLike):
            return str(value)
        raise GoogLeNetError(f"{source}: {key} must be a string. Got {value!r}")
    raise TypeError(f"TrainConfig.{key}: no coercion for the annotation {hint!r}")


MAPPING_KEYS = tuple(k for k, hint in field_types().items() if typing.get_origin(hint) is dict)


def resolve_config(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults in code < ``defaults`` (a command's own, e.g. train-multibox's) < ``config_file``
    (YAML) < ``overrides`` (command-line flags).

    The mapping options (``model_options``, ``augment``, ``builtin``) merge key by key. When
    ``init_from`` is given and nothing sets ``model``, the model is the variant the weights were
    trained as (:func:`init_from_model`): a ``googlenet_bn`` donor trains a ``googlenet_bn``.
    """
    merged: dict[str, Any] = dict(defaults or {})
    source = "config"
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise GoogLeNetError(f"cannot read config file {path}: not found")
        merged.update(read_yaml(path))
        source = str(config_file)
    for key, value in (overrides or {}).items():
        if key in MAPPING_KEYS and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if "model" not in merged and merged.get("init_from") is not None:
        variant = init_from_model(merged["init_from"])
        if variant is not None:
            merged["model"] = variant
            logger.info(
                "model %s: the variant of the --init-from weights %s (no model given)",
                variant,
                merged["init_from"],
            )
    return TrainConfig.from_dict(merged, source=source)


def init_from_model(init_from: str | Path) -> str | None:
    """The registered model the weights ``init_from`` names (anything ``--init-from`` takes) were
    trained as: a weights file's ``variant`` metadata, a training checkpoint's ``config.model``.
    None when the file does not say (a foreign or incomplete file, whose loading says what is
    wrong); a path that names no model is an error naming it."""
    from ..models.registry import list_models

    ref = resolve_checkpoint(init_from)
    if ref.kind == "training-checkpoint":
        from .checkpoint import load_checkpoint

        saved = load_checkpoint(ref.path, action="cannot load the model").get("config")
        variant = saved.get("model") if isinstance(saved, Mapping) else None
    else:
        from ..weights.store import read_metadata

        variant = read_metadata(ref.path).get("variant")
    return variant if variant in list_models() else None


def resume_config(run_dir: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` set up to continue it.

    Only :data:`RUNTIME_KEYS` and ``epochs`` (to train a finished run further; the schedule does not
    depend on it) may change; ``out`` is the run itself.
    """
    run = RunLayout(run_dir)
    if not run.config.is_file():
        raise GoogLeNetError(
            f"cannot resume: {run.config} not found (is {run.root} a training run directory?)"
        )
    overrides = dict(overrides or {})
    out = overrides.pop("out", None)
    if out is not None and Path(out).resolve() != run.root.resolve():
        raise GoogLeNetError(f"--out {out}: --resume {run.root} continues that run in place; leave out --out")
    changed = sorted(k for k in overrides if k not in RESUME_KEYS)
    if changed:
        raise GoogLeNetError(
            f"cannot change {changed[0]!r} when resuming {run.root}; an exact resume uses the run's "
            f"config.yaml (only {', '.join(sorted(RESUME_KEYS - {'out', 'resume'}))} may change)"
        )
    data = {**read_yaml(run.config), **overrides}
    data.update(out=str(run.root), resume=str(run.root))
    return TrainConfig.from_dict(data, source=str(run.config))


def resume_hash(config: TrainConfig) -> str:
    """What a checkpoint must agree on to be continued: everything but the epoch count."""
    blob = json.dumps({**config.training_dict(), "epochs": None}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def config_hash(config: TrainConfig) -> str:
    """SHA-256 of the canonical JSON of :meth:`TrainConfig.training_dict`."""
    blob = json.dumps(config.training_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
