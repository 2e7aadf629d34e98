"""The owner of every on-disk layout the package writes: a training run, an ensemble, a detector.

No other module spells these file names; each asks this one. It also resolves what a
``--checkpoint`` argument names (section 7 evaluates single models and ensembles of them):

* a ``.safetensors`` file written by :func:`googlenet.save`;
* a training checkpoint (``RUN/checkpoints/last.pt`` or ``best.pt``, read with ``weights_only=True``;
  its Polyak-averaged weights by default, section 6);
* a training run directory (``googlenet train --out RUN``): its ``model.safetensors``;
* an ensemble directory holding ``ensemble.json``: every member it lists (run directories or
  weights files, relative paths taken from the ensemble directory).

``ensemble.json`` may be a list of members or an object with a ``"members"`` list; a member is a
path string or an object with one of the keys ``run_dir``, ``path``, ``checkpoint``, ``weights``.
Every error names the path it is about and what to pass instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GoogLeNetError
from .manifest import ManifestFormat, read_json

# A training run (googlenet train --out RUN).
RUN_WEIGHTS_FILE = "model.safetensors"  # the Polyak-averaged weights (section 6)
RUN_RAW_WEIGHTS_FILE = "model_raw.safetensors"  # the raw (not averaged) weights
RUN_BEST_WEIGHTS_FILE = "model_best.safetensors"  # the best epoch's averaged weights
RUN_CONFIG_FILE = "config.yaml"
RUN_TASK_FILE = "task.yaml"  # a task's own settings (Task.settings; MultiBox's num_priors, alpha ...)
RUN_METRICS_FILE = "metrics.jsonl"
RUN_ENV_FILE = "env.json"
RUN_LOG_FILE = "train.log"
RUN_TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT_FILE = "last.pt"
BEST_CHECKPOINT_FILE = "best.pt"
# An ensemble (googlenet train-ensemble --out DIR): DIR/ensemble.json + DIR/member_<i>/ runs.
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_MEMBER_PREFIX = "member_"
# A detector (googlenet train-detector --out DIR).
DETECTOR_FILE = "detector.json"
DETECTOR_KIND = "detector"  # ensemble.json's "kind" in a detector directory (train-detector writes it)
MULTIBOX_FILE = "multibox.json"  # a MultiBox model (googlenet train-multibox --out DIR), beside its weights

TRAINING_CHECKPOINT_SUFFIX = ".pt"
WEIGHTS_SUFFIX = ".safetensors"
_MEMBER_KEYS = ("run_dir", "path", "checkpoint", "weights")


@dataclass(frozen=True)
class RunLayout:
    """The files of one training run directory."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    weights = property(lambda self: self.root / RUN_WEIGHTS_FILE)
    raw_weights = property(lambda self: self.root / RUN_RAW_WEIGHTS_FILE)
    best_weights = property(lambda self: self.root / RUN_BEST_WEIGHTS_FILE)
    config = property(lambda self: self.root / RUN_CONFIG_FILE)
    task_settings = property(lambda self: self.root / RUN_TASK_FILE)
    metrics = property(lambda self: self.root / RUN_METRICS_FILE)
    env = property(lambda self: self.root / RUN_ENV_FILE)
    log = property(lambda self: self.root / RUN_LOG_FILE)
    tensorboard = property(lambda self: self.root / RUN_TENSORBOARD_DIR)
    checkpoints = property(lambda self: self.root / CHECKPOINT_DIR)
    last_checkpoint = property(lambda self: self.root / CHECKPOINT_DIR / LAST_CHECKPOINT_FILE)
    best_checkpoint = property(lambda self: self.root / CHECKPOINT_DIR / BEST_CHECKPOINT_FILE)

    def is_run(self) -> bool:
        """True when the directory looks like a training run (weights, metrics or a checkpoint)."""
        return any(p.is_file() for p in (self.weights, self.metrics, self.last_checkpoint))


@dataclass(frozen=True)
class EnsembleLayout:
    """An ensemble directory: ``ensemble.json`` and one run directory per member."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    index = property(lambda self: self.root / ENSEMBLE_FILE)

    def member(self, index: int) -> RunLayout:
        return RunLayout(self.root / f"{ENSEMBLE_MEMBER_PREFIX}{index:02d}")

    def is_ensemble(self) -> bool:
        return self.index.is_file()


@dataclass(frozen=True)
class DetectorLayout:
    """A detector directory: ``detector.json`` (the manifest) and its members' runs."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    manifest = property(lambda self: self.root / DETECTOR_FILE)

    def member(self, index: int) -> RunLayout:
        return RunLayout(self.root / f"{ENSEMBLE_MEMBER_PREFIX}{index:02d}")

    def is_detector(self) -> bool:
        return self.manifest.is_file()

    def is_unfinished(self) -> bool:
        """train-detector started here (its ensemble.json says so) and wrote no detector.json yet."""
        if self.is_detector():
            return False
        try:
            index = read_ensemble_index(self.root)
        except GoogLeNetError:
            return False
        return isinstance(index, dict) and index.get("kind") == DETECTOR_KIND


# --------------------------------------------------------------------------------------------
# Reading a run


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping ({} for an empty file); errors name the file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        raise GoogLeNetError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GoogLeNetError(f"{path}: expected a mapping of options, got {type(data).__name__}")
    return data


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml`` as a dict ({} when the run has none)."""
    path = RunLayout(run_dir).config
    return read_yaml(path) if path.is_file() else {}


def run_image_size(run_dir: str | Path) -> int | None:
    """The ``image_size`` a run trained at (its ``config.yaml``), None when unknown."""
    value = read_run_config(run_dir).get("image_size")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GoogLeNetError(
            f"{RunLayout(run_dir).config}: image_size must be a positive integer. Got {value!r}"
        )
    return value


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``RUN/metrics.jsonl``, in file order.

    A run killed while writing can leave a partial last line; it is dropped. Any other line that
    is not a JSON object is an error naming the file and line.
    """
    run = RunLayout(run_dir)
    if not run.root.is_dir():
        if run.root.is_file():
            raise GoogLeNetError(
                f"{run.root} is a file, not a run directory: pass the folder given to train --out"
            )
        raise GoogLeNetError(f"run directory {run.root} does not exist")
    path = run.metrics
    if not path.is_file():
        raise GoogLeNetError(
            f"run directory {run.root} has no {RUN_METRICS_FILE}; is it a `googlenet train` run?"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise GoogLeNetError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(record, dict):
            raise GoogLeNetError(f"{path}:{number}: expected a JSON object per line")
        records.append(record)
    return records


# --------------------------------------------------------------------------------------------
# Ensembles


ENSEMBLE_MANIFEST = ManifestFormat(
    "googlenet-ensemble", 1, "ensemble index", "googlenet train-ensemble (or a hand-written list of members)"
)


def read_ensemble_index(directory: str | Path) -> dict[str, Any] | list[Any] | None:
    """``DIR/ensemble.json`` as written (None when there is none): the object ``train-ensemble``
    writes (its format checked), or a hand-written list of members / ``{"members": [...]}``."""
    path = EnsembleLayout(directory).index
    if not path.is_file():
        return None
    data = read_json(path, what="ensemble file")
    if isinstance(data, dict) and "format" in data:
        return ENSEMBLE_MANIFEST.check(data, path)
    return data


def ensemble_entries(directory: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The members of ``DIR/ensemble.json`` as written: (path, maybe relative to DIR; the member's
    record, with ``status`` and ``error`` where train-ensemble wrote them, else empty)."""
    path = EnsembleLayout(directory).index
    data = read_ensemble_index(directory)
    if data is None:
        raise GoogLeNetError(f"{path} does not exist: {directory} is not an ensemble directory")
    members = data.get("members") if isinstance(data, dict) else data
    if not isinstance(members, list) or not members:
        raise GoogLeNetError(f"{path}: expected a non-empty list of members (or {{'members': [...]}})")
    out = []
    for i, member in enumerate(members):
        record = member if isinstance(member, dict) else {}
        if isinstance(member, dict):
            member = next((member[k] for k in _MEMBER_KEYS if isinstance(member.get(k), str)), None)
        if not isinstance(member, str) or not member:
            raise GoogLeNetError(
                f"{path}: member {i} is neither a path nor an object with one of {', '.join(_MEMBER_KEYS)}"
            )
        out.append((member, record))
    return out


def _check_member_trained(directory: Path, number: int, member: str, record: dict[str, Any]) -> None:
    """Refuse a member that ``ensemble.json`` records as failed: say so, with its error, instead of
    the "does not exist" or "has not finished" its folder alone would give."""
    if record.get("status") == "failed":
        error = record.get("error") or "no error recorded"
        raise GoogLeNetError(
            f"member {number} ({member}) of ensemble {directory} failed to train: {error}; fix the cause "
            "and re-run the same googlenet train-ensemble command, or pass the other members"
        )


def _member_path(directory: Path, member: str) -> Path:
    path = Path(member).expanduser()
    return path if path.is_absolute() else directory / path


def expand_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories from ``paths``; an ensemble directory stands for its members, in order."""
    runs: list[Path] = []
    for arg in paths:
        path = Path(arg)
        if RunLayout(path).metrics.is_file() or not EnsembleLayout(path).is_ensemble():
            runs.append(path)
            continue
        for number, (member, record) in enumerate(ensemble_entries(path), start=1):
            _check_member_trained(path, number, member, record)
            run = _member_path(path, member)
            if run.suffix == WEIGHTS_SUFFIX:
                raise GoogLeNetError(
                    f"{EnsembleLayout(path).index} lists the weights file {run}; "
                    "the report needs run directories"
                )
            runs.append(run)
    return runs


def run_label(run_dir: str | Path, taken: Iterable[str] = ()) -> str:
    """A short label for a run: its folder name, with its parent's name when that collides."""
    path = Path(run_dir).resolve()
    label = path.name
    if label in set(taken):
        label = f"{path.parent.name}/{path.name}"
    return label


# --------------------------------------------------------------------------------------------
# What --checkpoint names


@dataclass(frozen=True)
class ModelRef:
    """One model to load (not a training checkpoint's contents: a pointer to the file that holds it).

    ``path`` is a ``.safetensors`` weights file or a ``.pt`` training checkpoint (``kind``);
    ``image_size`` is the training image size recorded in the run's ``config.yaml`` (None when
    unknown); ``source`` is the argument (or ensemble member) it came from.
    """

    path: Path
    source: str
    run_dir: Path | None = None
    image_size: int | None = None
    kind: str = "weights"  # "weights" | "training-checkpoint"

    @property
    def weights(self) -> Path:
        """The file holding the weights (kept under this name for the callers that read it)."""
        return self.path

    @property
    def name(self) -> str:
        """A short label: the run directory's name, else the file's stem."""
        if self.run_dir is not None:
            return self.run_dir.name if self.kind == "weights" else f"{self.run_dir.name}/{self.path.stem}"
        return self.path.stem


def _run_of_checkpoint(path: Path) -> Path | None:
    parent = path.parent
    return parent.parent if parent.name == CHECKPOINT_DIR else None


def _resolve_one(arg: str | Path, *, inside: Path | None = None) -> list[ModelRef]:
    source = str(arg)
    path = Path(arg).expanduser()
    if inside is not None and not path.is_absolute():
        path = inside / path
    where = f" (listed in {EnsembleLayout(inside).index})" if inside is not None else ""
    if path.is_file():
        if path.suffix == WEIGHTS_SUFFIX:
            return [ModelRef(path, source)]
        if path.suffix == TRAINING_CHECKPOINT_SUFFIX:
            run = _run_of_checkpoint(path)
            size = run_image_size(run) if run is not None else None
            return [ModelRef(path, source, run, size, kind="training-checkpoint")]
        raise GoogLeNetError(
            f"checkpoint {path}{where} is neither a .safetensors weights file nor a .pt training checkpoint: "
            "pass a file written by googlenet train/save/convert, a run directory or an ensemble directory"
        )
    if path.is_dir():
        run = RunLayout(path)
        if run.weights.is_file():
            return [ModelRef(run.weights, source, path, run_image_size(path))]
        if EnsembleLayout(path).is_ensemble():
            if inside is not None:
                raise GoogLeNetError(f"ensemble {path}{where} is nested in another ensemble")
            refs = []
            for number, (member, record) in enumerate(ensemble_entries(path), start=1):
                _check_member_trained(path, number, member, record)
                refs += _resolve_one(member, inside=path)
            return refs
        if run.last_checkpoint.is_file():
            raise GoogLeNetError(
                f"run {path}{where} has not finished (no {RUN_WEIGHTS_FILE} yet): pass "
                f"{run.last_checkpoint} to use its latest weights, "
                f"or resume it with googlenet train --resume {path}"
            )
        raise GoogLeNetError(
            f"checkpoint directory {path}{where} holds neither {RUN_WEIGHTS_FILE} (a training run) "
            f"nor {ENSEMBLE_FILE} (an ensemble)"
        )
    raise GoogLeNetError(f"checkpoint {path}{where} does not exist")


def resolve_checkpoints(args: Sequence[str | Path]) -> list[ModelRef]:
    """Every model named by ``args``, in order (ensembles expanded into their members)."""
    if not args:
        raise GoogLeNetError("no checkpoint given")
    return [c for arg in args for c in _resolve_one(arg)]


def resolve_checkpoint(arg: str | Path) -> ModelRef:
    """The one model named by ``arg`` (a command that takes a single model, such as export)."""
    refs = _resolve_one(arg)
    if len(refs) != 1:
        raise GoogLeNetError(f"{arg} is an ensemble of {len(refs)} models: pass one member's run directory")
    return refs[0]
