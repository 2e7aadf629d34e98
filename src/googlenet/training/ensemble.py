"""Train the paper's ensemble: N members, one recipe, different image sampling and data order (section 7).

Section 7: "We independently trained 7 versions of the same GoogLeNet model (including one wider
version), and performed ensemble prediction with them. These models were trained with the same
initialization (even with the same initial weights, mainly because of an oversight) and learning
rate policies, and they only differ in sampling methodologies and the random order in which they
see input images." (The wider version is not described in the paper; all members here are the
configured model.)

:func:`train_ensemble` runs :func:`googlenet.training.train.fit` once per member, one after the other, each in
its own run directory ``OUT/member_00``, ``OUT/member_01``, ...:

* member ``i`` trains with ``seed = base_seed + i``: the data order of every epoch and the random
  crop / photometric draw of every sample are functions of that seed (:mod:`googlenet.training.engine`);
* with ``same_init`` (the default, as in the paper) every member's initial weights are drawn from
  the base seed (``TrainConfig.init_seed = base_seed``), so the members start from identical
  weights; without it each member also initialises from its own seed. The initialisation *scheme*
  (the variant's ``init``) and the learning-rate schedule are the same in both cases.

``OUT/ensemble.json`` indexes the members (``run_dir`` relative to ``OUT``, seeds, status, final
errors) and the config hash; ``googlenet evaluate --checkpoint OUT`` and ``googlenet report OUT`` read
it (:mod:`googlenet.runs`). It is rewritten atomically whenever a member starts, stops or
finishes. Running the same call again resumes: finished members are skipped, an interrupted member
continues from its ``checkpoints/last.pt`` through the trainer's exact resume, and a larger ``n``
adds members.
Evaluate the finished ensemble with ``googlenet evaluate`` (softmax averaged over models and crops).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import GoogLeNetError
from ..runs import ENSEMBLE_MANIFEST, EnsembleLayout, RunLayout, read_ensemble_index, read_metrics

logger = logging.getLogger("googlenet.train")

PAPER_ENSEMBLE_SIZE = 7  # section 7: "We independently trained 7 versions"


class EnsembleInterrupted(Exception):
    """A signal stopped a member; its checkpoint is written and the same call continues it."""

    def __init__(self, member: int, run_dir: Path, signal_name: str, exit_code: int) -> None:
        super().__init__(f"member {member} ({run_dir}) stopped by {signal_name}")
        self.member = member
        self.run_dir = run_dir
        self.signal_name = signal_name
        self.exit_code = exit_code


def member_dir(out: str | Path, index: int) -> Path:
    """``OUT/member_XX``: the run directory of member ``index``."""
    return EnsembleLayout(out).member(index).root


def member_config(config: Any, index: int, out: str | Path, *, same_init: bool = True) -> Any:
    """Member ``index``'s :class:`~googlenet.TrainConfig`: ``config`` with its own seed and run dir.

    ``seed`` (data order, augmentation, dropout) is ``config.seed + index``; the initial weights come
    from ``config.seed`` when ``same_init``, else from the member's own seed.
    """
    return dataclasses.replace(
        config,
        out=str(member_dir(out, index)),
        seed=config.seed + index,
        init_seed=config.seed if same_init else None,  # None: the trainer initialises from ``seed``
        resume=None,
    )


def ensemble_hash(config: Any, same_init: bool) -> str:
    """SHA-256 of the base config's weight-determining keys and ``same_init`` (not of ``n``)."""
    from .config import config_hash

    blob = json.dumps({"config": config_hash(config), "same_init": bool(same_init)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_index(out: str | Path) -> dict[str, Any] | None:
    """``OUT/ensemble.json`` as train-ensemble wrote it, or None when there is none."""
    data = read_ensemble_index(out)
    if data is None:
        return None
    if not isinstance(data, dict) or "format" not in data:
        raise GoogLeNetError(
            f"{EnsembleLayout(out).index}: a hand-written list of members, not a googlenet ensemble index; "
            "choose another --out"
        )
    return data


def _is_complete(run_dir: Path, entry: Mapping[str, Any] | None, epochs: int) -> bool:
    if not RunLayout(run_dir).weights.is_file():
        return False
    if entry is not None and entry.get("status") == "complete":
        return True
    # The weights are written only at the end of a run; the index may have missed the update
    # when the process died right after the trainer returned.
    try:
        return len(read_metrics(run_dir)) >= epochs
    except GoogLeNetError:
        return False


def config_difference(index: Mapping[str, Any], config: Any, same_init: bool) -> str:
    """What makes ``config`` and ``same_init`` another ensemble than the one ``index`` (an
    ``ensemble.json``) records: ``"--lr 0.01, not 0.002"``, or a general phrase when the index
    holds nothing to compare."""
    from .config import TrainConfig

    if bool(index.get("same_init")) != bool(same_init):
        return f"--{'no-' * (not index.get('same_init'))}same-init, not --{'no-' * (not same_init)}same-init"
    try:
        saved = TrainConfig.from_dict(index.get("config") or {}, source="ensemble.json").training_dict()
    except GoogLeNetError:
        return "another training config"
    given = config.training_dict()
    for key in sorted(set(saved) | set(given)):
        if saved.get(key) != given.get(key):
            return f"--{key.replace('_', '-')} {saved.get(key)!r}, not {given.get(key)!r}"
    return "another training config"


def train_ensemble(
    config: Any,
    n: int = PAPER_ENSEMBLE_SIZE,
    out: str | Path = "runs/ensemble",
    same_init: bool = True,
    *,
    on_member: Callable[[int, str, Path], None] | None = None,
    task: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Train (or continue) the ``n`` members of an ensemble under ``out``; the averaged weights' paths.

    ``config`` is the base :class:`~googlenet.training.config.TrainConfig` (its ``out`` and ``resume`` are
    ignored). ``on_member(index, state, run_dir)`` is called with state ``"skip"``, ``"start"``,
    ``"resume"`` or ``"done"`` (for progress messages). A signal stopping a member raises
    :class:`EnsembleInterrupted` after the index is written; any other error marks the member
    ``failed`` and propagates. ``task`` (a :class:`~googlenet.training.task.Task`, default the
    classifier) is what every member trains: the detector's region classifiers reuse this.
    ``extra``: fields the index records besides its own (the detector's kind and classes).

    Nothing is written before the first member to train has checked its inputs (its ``fit`` builds
    its data and model: a data folder the members cannot read stops it there): a call that fails on
    bad input leaves ``ensemble.json`` as it was, or none.
    """
    from .config import RUNTIME_KEYS, config_hash, resume_config
    from .train import check_run_dir, fit

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GoogLeNetError(f"the number of ensemble members must be a positive integer. Got {n!r}")
    if config.resume:
        raise GoogLeNetError("train-ensemble resumes by itself: re-run the same command, without --resume")
    out = Path(out)
    check_run_dir(out)
    # The members' config.yaml name the data by its absolute path; so does the index, so that an
    # interrupted member continues from any working directory.
    config = config.with_absolute_data()
    digest = ensemble_hash(config, same_init)
    index = read_index(out)
    if index is not None and index.get("config_hash") != digest:
        raise GoogLeNetError(
            f"{EnsembleLayout(out).index} belongs to an ensemble trained with "
            f"{config_difference(index, config, same_init)}: the members of one ensemble share "
            "everything but the seed; choose another --out, or continue it with its own settings"
        )
    # The index is first written when a member to train has checked its inputs (fit's on_start): a
    # call that stops on bad input (a data folder the members cannot read, say) leaves the index as
    # it was, or none. From then on the index on disk follows every member's state.
    written = False
    entries: dict[int, dict[str, Any]] = {
        int(e["index"]): e for e in (index or {}).get("members", []) if isinstance(e, dict) and "index" in e
    }
    base = config.saved_dict()
    index = {
        "paper": "Szegedy et al. 2014, section 7: same initialization and learning rate policy; "
        "members differ in image sampling and data order",
        "n": max(n, len(entries)),
        "base_seed": config.seed,
        "same_init": bool(same_init),
        "config_hash": digest,
        "config": base,
        "members": [],
        **dict(extra or {}),
    }
    runtime = {k: getattr(config, k) for k in RUNTIME_KEYS - {"out", "resume"}}

    def write_index() -> None:
        nonlocal written
        index["members"] = [entries[k] for k in sorted(entries)]
        out.mkdir(parents=True, exist_ok=True)
        ENSEMBLE_MANIFEST.write(EnsembleLayout(out).index, index)
        written = True

    def save(i: int, *, write: bool = True, **fields: Any) -> None:
        entries.setdefault(i, {}).update(fields)
        if write or written:
            write_index()

    paths: list[Path] = []
    for i in range(n):
        mc = member_config(config, i, out, same_init=same_init)
        run_dir = Path(mc.out)
        save(
            i,
            index=i,
            run_dir=run_dir.name,  # relative to OUT; what googlenet.runs reads
            seed=mc.seed,
            init_seed=mc.seed if mc.init_seed is None else mc.init_seed,
            member_config_hash=config_hash(mc),
            status=entries.get(i, {}).get("status", "pending"),
            write=False,
        )
        if _is_complete(run_dir, entries.get(i), mc.epochs):
            save(i, status="complete", model=str(RunLayout(run_dir.name).weights), write=False)
            paths.append(RunLayout(run_dir).weights)
            if on_member:
                on_member(i, "skip", run_dir)
            continue
        if RunLayout(run_dir).last_checkpoint.is_file():
            resumed = resume_config(run_dir, runtime)
            if config_hash(resumed) != config_hash(mc):
                raise GoogLeNetError(
                    f"{run_dir}/config.yaml differs from member {i}'s config; it was not written by "
                    "this ensemble (move it away or choose another --out)"
                )
            mc, state = resumed, "resume"
        else:
            state = "start"
        if on_member:
            on_member(i, state, run_dir)

        def started(i: int = i) -> None:
            save(i, status="running", started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        try:
            result = fit(mc, on_start=started) if task is None else fit(mc, task=task, on_start=started)
        except BaseException as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            save(i, status=status, error=message, write=False)  # an index on disk says so
            raise
        if result.interrupted:
            save(i, status="interrupted", error=f"stopped by {result.interrupted} at step {result.step}")
            raise EnsembleInterrupted(i, run_dir, result.interrupted, result.exit_code)
        last = result.metrics[-1] if result.metrics else {}
        save(
            i,
            status="complete",
            error=None,
            finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            model=str(RunLayout(run_dir.name).weights),
            epochs=result.epochs_completed,
            steps=result.step,
            avg_val_top1_err=last.get("avg_val_top1_err"),
            avg_val_top5_err=last.get("avg_val_top5_err"),
        )
        paths.append(RunLayout(run_dir).weights)
        if on_member:
            on_member(i, "done", run_dir)
    if not written:  # every member was complete already: the index says so
        write_index()
    return paths
