"""Training checkpoints: the file format, atomic writes, every RNG, and reading the weights back.

A checkpoint (``RUN/checkpoints/last.pt``, ``best.pt``) holds everything an exact resume needs:
the model, the Polyak-averaged model (section 6), optimizer, scheduler, the position in the run,
the history of epoch records, and each rank's RNG states and running epoch sums. It is written
with :func:`torch.save` of tensors and primitives only, so it loads with ``weights_only=True``.
:class:`CheckpointSaver` is the one writer (timm's ``utils/checkpoint_saver.py`` in miniature:
``last.pt`` always, ``best.pt`` and its weights when the averaged val top-1 error improves).
:func:`prune_run` removes, from a finished run, the checkpoints its ``keep_checkpoints`` does not
keep (timm's saver keeps ``max_history`` of them); a run still training always keeps ``last.pt``.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..errors import GoogLeNetError
from ..runs import RunLayout
from . import distributed as D

CHECKPOINT_FORMAT = "googlenet-train-checkpoint"
CHECKPOINT_VERSION = 1
# What a finished run keeps (TrainConfig.keep_checkpoints): "all" = last.pt, best.pt and the best
# epoch's weights; "last" = last.pt (the run can be trained further); "none" = the weights only.
KEEP_CHECKPOINTS = ("all", "last", "none")


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` to a temp file, fsync, rename: a kill at any moment leaves the old file whole."""
    atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint(path: str | Path, *, action: str = "cannot resume") -> dict[str, Any]:
    """A training checkpoint (``weights_only=True``); a missing or damaged file is an error naming it,
    prefixed with ``action`` (what could not be done)."""
    path = Path(path)
    if not path.is_file():
        raise GoogLeNetError(f"{action}: checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors all mean the same to the user
        reason = " ".join(str(exc).split())[:200]
        raise GoogLeNetError(f"{action}: checkpoint {path} is corrupt or unreadable ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise GoogLeNetError(f"{action}: {path} is not a googlenet training checkpoint")
    return state


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and primitives (``weights_only``-loadable)."""
    import numpy as np

    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype("int64")),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# Entries of a training state that differ per rank: gathered from every rank into lists.
PER_RANK_KEYS = ("rng", "epoch_stats")


class CheckpointSaver:
    """Writes ``last.pt`` (every epoch end, every N steps, on a signal) and, when the averaged val
    top-1 error improves, ``best.pt`` and ``model_best.safetensors`` (rank 0 writes; every rank calls).

    ``header`` is what every checkpoint of the run repeats (format, config, hashes, world size,
    class names); the state's per-rank entries (:data:`PER_RANK_KEYS`) are gathered into lists
    indexed by rank.
    """

    def __init__(
        self, run: RunLayout, env: D.DistEnv, header: Mapping[str, Any], *, keep_best: bool = True
    ) -> None:
        self.run = run
        self.env = env
        self.header = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **header}
        self.keep_best = keep_best  # False: best.pt and its weights are not written at all

    def save_last(self, state: Mapping[str, Any]) -> None:
        local = dict(state)
        gathered = D.all_gather_objects(self.env, {k: local.pop(k) for k in PER_RANK_KEYS})
        if self.env.is_main:
            per_rank = {k: [g[k] for g in gathered] for k in PER_RANK_KEYS}
            save_checkpoint(self.run.last_checkpoint, {**self.header, **local, **per_rank})

    def save_best(self, averaged: Any, extra: Mapping[str, str]) -> None:
        """Copy ``last.pt`` (just written at an epoch end) to ``best.pt`` and save its averaged
        weights beside the run's (so that the best epoch can be evaluated and deployed)."""
        if not self.env.is_main or not self.keep_best:
            return
        from ..weights.store import save_weights

        last, best = self.run.last_checkpoint, self.run.best_checkpoint
        atomic_write(best, lambda tmp: shutil.copyfile(last, tmp))
        save_weights(
            averaged,
            self.run.best_weights,
            training_config_hash=self.header.get("config_hash"),
            extra=dict(extra),
        )


def prune_run(run_dir: str | Path, keep: str, *, dry_run: bool = False) -> list[Path]:
    """Remove from the finished run in ``run_dir`` what ``keep`` (:data:`KEEP_CHECKPOINTS`) does not
    keep; the files removed (with ``dry_run``: that would be). ``"last"`` removes ``best.pt`` and
    ``model_best.safetensors``, ``"none"`` also ``last.pt`` (and the emptied ``checkpoints/``). A run
    without its ``model.safetensors`` is not finished (its ``last.pt`` resumes it) and is refused."""
    if keep not in KEEP_CHECKPOINTS:
        raise GoogLeNetError(f"keep_checkpoints must be {', '.join(KEEP_CHECKPOINTS)}. Got {keep!r}")
    run = RunLayout(run_dir)
    if not run.weights.is_file():
        raise GoogLeNetError(
            f"{run.root} is not a finished training run (no {run.weights.name}): its checkpoints are "
            "what continues it; nothing removed"
        )
    doomed = {"all": [], "last": [run.best_checkpoint, run.best_weights]}.get(
        keep, [run.best_checkpoint, run.best_weights, run.last_checkpoint]
    )
    removed = [path for path in doomed if path.is_file()]
    if dry_run:
        return removed
    for path in removed:
        path.unlink()
    if keep == "none" and run.checkpoints.is_dir() and not any(run.checkpoints.iterdir()):
        run.checkpoints.rmdir()
    return removed


@dataclass(frozen=True)
class PrunedRun:
    """What :func:`prune` did to one run: the files removed and their bytes, or why it left the run
    alone (``unfinished``: no ``model.safetensors`` yet, its checkpoints are what continues it; or
    not a run directory)."""

    run: Path
    removed: list[Path]
    bytes: int
    unfinished: str | None = None


def prune(path: str | Path, keep: str = "none", *, dry_run: bool = False) -> list[PrunedRun]:
    """:func:`prune_run` on the training run ``path``, or on every member of the ensemble or detector
    in ``path`` (its ``ensemble.json``); a member that has not finished is left alone and said so.
    What a finished run keeps whatever ``keep``: its weights (``model.safetensors``,
    ``model_raw.safetensors``), ``config.yaml``, ``metrics.jsonl``, logs; what a detector or ensemble
    needs to be used (``detector.json``, ``ensemble.json``) is never touched."""
    from ..runs import ensemble_entries, read_ensemble_index

    root = Path(path)
    if not root.is_dir():
        what = "a file" if root.exists() else "missing"
        raise GoogLeNetError(f"{root} is {what}: pass a training run, ensemble or detector directory")
    if read_ensemble_index(root) is not None:
        runs = [root / member for member, _ in ensemble_entries(root)]
    elif RunLayout(root).is_run():
        runs = [root]
    else:
        raise GoogLeNetError(
            f"{root} is neither a training run (config.yaml, metrics.jsonl, model.safetensors) nor an "
            "ensemble or detector directory (ensemble.json): nothing to prune"
        )
    out = []
    for run in runs:
        if not run.is_dir():
            out.append(PrunedRun(run, [], 0, unfinished=f"{run} is not a training run directory"))
            continue
        if not RunLayout(run).weights.is_file():
            out.append(
                PrunedRun(run, [], 0, unfinished=f"{run} has not finished: its checkpoints continue it")
            )
            continue
        files = prune_run(run, keep, dry_run=True)
        size = sum(f.stat().st_size for f in files)
        out.append(PrunedRun(run, files if dry_run else prune_run(run, keep), size))
    return out
