"""benchmarks/: every script's JSON follows its schema, and docs/benchmarks.md is rendered from JSON.

The scripts' ``main`` runs in this process at tiny sizes (one thread, so a loaded 2-core machine does not
stall them; torch's thread count and random state are put back), gpu.py's whole run (a process group) as
a real subprocess; the checks are on the JSON they write (the schema, the arithmetic between its fields) and
on which section of a copy of docs/benchmarks.md they replace, never on timings or the wording of
the docs: ``render.render(json) == the section`` is the one link between the two.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .helpers import REPO, threads_kept

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import common as C  # noqa: E402
import render as R  # noqa: E402

OTHER = "<!-- inference avx2:start -->\nkept as it was\n<!-- inference avx2:end -->"
OTHER_KIND = "<!-- training another-cpu:start -->\nanother kind's table\n<!-- training another-cpu:end -->"


def _run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCH / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def _main(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    """``benchmarks/SCRIPT``'s ``main(ARGS)`` in this process, reported as :func:`_run` reports the script
    run as a subprocess (argparse's exit included); torch's thread count and random state are put back."""
    import importlib

    module = importlib.import_module(Path(script).stem)  # benchmarks/ is on sys.path
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with (
        threads_kept(),
        torch.random.fork_rng(devices=[]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = module.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())


# --------------------------------------------------------------------------- common.py, render.py


def test_check_names_the_first_bad_field() -> None:
    schema = {"a": int, "b?": [float], "c": {"?": str}}
    C.check({"a": 1, "c": {"x": "y"}}, schema)
    C.check({"a": 1, "b": [1, 2.5], "c": {}}, schema)
    for value, message in [
        ({"c": {}}, "result: missing key 'a'"),
        ({"a": 1.5, "c": {}}, "result.a: expected an integer"),
        ({"a": True, "c": {}}, "result.a: expected an integer"),
        ({"a": 1, "b": [1, "2"], "c": {}}, "result.b[1]: expected a number"),
        ({"a": 1, "c": {"x": 3}}, "result.c.x: expected str"),
        ({"a": 1, "c": {}, "d": 0}, "result: unexpected key 'd'"),
    ]:
        with pytest.raises(C.SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
            C.check(value, schema)


def test_result_of_another_version_is_refused() -> None:
    result = json.loads((BENCH / "results" / "training-avx512-bf16-vnni.json").read_text())
    R.render(result)
    with pytest.raises(C.SchemaError, match="schema_version: 0; this renderer reads version 1"):
        R.render({**result, "schema_version": 0})
    with pytest.raises(C.SchemaError, match="'nope' is not one of"):
        R.render({**result, "benchmark": "nope"})


def test_a_result_is_rendered_by_the_script_that_declares_its_name() -> None:
    import train_throughput  # benchmarks/ is on sys.path

    assert R.renderer("training") is train_throughput.render  # named otherwise than its script
    # Scripts without that NAME (the shared module, the renderer itself, a script with no schema) and
    # names that are no script of benchmarks/ are refused, never imported from elsewhere.
    for name in ("common", "render", "finetune", "train_throughput", "os", "../render", 3):
        with pytest.raises(C.SchemaError, match="is not one of the benchmarks"):
            R.renderer(name)
    with pytest.raises(C.SchemaError, match="missing key 'benchmark'"):
        R.render({"schema_version": 1})


def test_environment_is_the_librarys_record_and_what_a_benchmark_adds(monkeypatch) -> None:
    from googlenet.environment import environment

    for name in C.EMULATION_ENV:  # a suite run with the AVX2 variables set still tests the same
        monkeypatch.delenv(name, raising=False)
    library = environment()
    env = C.environment(onnxruntime="1.0")
    C.check(env, C.ENVIRONMENT_SCHEMA)
    assert (env["cpu"], env["torch_threads"]) == (library["cpu"], library["torch_threads"])
    assert env["versions"] == {
        "torch": library["torch"],
        "torchvision": library["torchvision"],
        "python": library["python"],
        "onnxruntime": "1.0",
    }
    assert env.get("git_commit") == library["git_commit"] and "accelerator" not in env
    assert env["cpu_kind"] == C.cpu_kind(env["cpu_features"]) and len(env["load_average"]) == 3
    monkeypatch.setenv("GOOGLENET_CPU_FEATURES", "avx2")
    limited = C.environment()
    assert limited["emulation"] == {"GOOGLENET_CPU_FEATURES": "avx2"}
    assert limited["cpu_features"] == ["avx2"] and limited["cpu_kind"] == "avx2-emulated"
    # On a CUDA device the library names the card and the CUDA version: the section is the card's.
    cuda = {**library, "device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3", "cuda": "13.0"}
    monkeypatch.setattr(C, "library_environment", lambda **_: cuda)
    gpu = C.environment("cuda:0")
    assert gpu["accelerator"] == "NVIDIA H100 80GB HBM3" and gpu["versions"]["cuda"] == "13.0"
    assert C.section_name({"benchmark": "gpu", "environment": gpu}) == "gpu nvidia-h100-80gb-hbm3"


def test_cpu_kind_from_features() -> None:
    avx512 = ["avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"]
    assert C.cpu_kind(avx512) == "avx512-bf16-vnni"
    assert C.cpu_kind(["avx2", "fma"]) == "avx2"
    assert C.cpu_kind(["avx2", "fma"], emulated=True) == "avx2-emulated"
    assert C.cpu_kind([]) == "baseline"


def test_write_section_replaces_its_own_and_adds_beside_its_siblings(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# B\n\n{OTHER}\n\n## later\n")
    C.write_section("inference avx2", "new body", docs)
    assert (
        docs.read_text()
        == "# B\n\n<!-- inference avx2:start -->\nnew body\n<!-- inference avx2:end -->\n\n## later\n"
    )
    C.write_section("inference avx512", "second", docs)  # goes after its sibling, not at the end
    text = docs.read_text()
    assert text.index("<!-- inference avx2:end -->") < text.index("<!-- inference avx512:start -->")
    assert text.endswith("## later\n") and C.section(docs, "inference avx512") == "second"
    C.write_section("gpu h200", "third", docs)  # no sibling: at the end
    assert text in docs.read_text() and docs.read_text().endswith("<!-- gpu h200:end -->\n")


@pytest.mark.parametrize("path", sorted((BENCH / "results").glob("*.json")), ids=lambda p: p.name)
def test_recorded_results_follow_their_schema_and_match_the_docs(path: Path) -> None:
    result = json.loads(path.read_text())
    body = R.render(result)  # raises on any schema error
    assert path.stem == C.section_name(result).replace(" ", "-")
    assert C.section(C.DOCS, C.section_name(result)) == body.strip(), (
        f"docs/benchmarks.md is out of date: python benchmarks/render.py {path.relative_to(REPO)}"
    )


# --------------------------------------------------------------------------- train_throughput.py


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    docs = tmp / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\n{OTHER}\n\n{OTHER_KIND}\n\ntrailing text\n")
    out_json = tmp / "result.json"
    proc = _main(
        "train_throughput.py",
        *(
            "--quick",
            "--threads",
            "1",
            "--profile",
            "--json",
            str(out_json),
            "--write-docs",
            "--docs",
            str(docs),
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out_json.read_text()), docs


def test_training_rows_peer_first_and_consistent(quick) -> None:
    result, _ = quick
    R.render(result)  # the schema
    assert result["settings"]["batch_size"] == 4 and result["settings"]["image_size"] == 64
    rows = result["rows"]
    names = [r["name"] for r in rows]
    assert names[0] == "torchvision eager fp32" and rows[0]["ratio"] == 1.0
    assert any(n.startswith("googlenet_tv") and n.endswith("(default)") for n in names)
    assert {"googlenet_tv fp32 NCHW", "googlenet_tv fp32 channels_last"} <= set(names)
    assert any(n.startswith("googlenet_bn ") for n in names)
    peer = rows[0]["rates"]
    for r in rows:
        assert len(r["rates"]) == 1  # --quick: one round
        assert r["images_per_s"] == r["rates"][0] > 0 and math.isfinite(r["images_per_s"])
        assert r["ms_per_step"] == pytest.approx(1000 * 4 / r["images_per_s"])
        assert r["ratio"] == pytest.approx(r["rates"][0] / peer[0])
    target = result["target"]
    assert target["met"] == (target["ratio"] >= target["required"])
    assert result["environment"]["cores"] >= 1 and result["environment"]["versions"]["torch"]
    assert next(iter(result["profile"])) == "torchvision eager fp32"
    assert "aten::convolution_backward" in result["profile"]["torchvision eager fp32"]


def test_fast_path_loss_is_close_to_fp32(quick) -> None:
    # Loose on purpose (tight tolerances live in tests/test_precision.py): a broken autocast or
    # memory-format path gives a different loss already at step 1.
    result, _ = quick
    for check in result["precision"]:
        assert len(check["fp32"]) == len(check["fast_losses"]) == 2
        assert all(math.isfinite(v) for v in check["fp32"] + check["fast_losses"])
        assert check["fast_losses"][0] == pytest.approx(check["fp32"][0], rel=0.05)


def test_docs_section_is_the_rendered_json_and_others_are_kept(quick, tmp_path: Path) -> None:
    result, docs = quick
    text = docs.read_text()
    assert OTHER in text and OTHER_KIND in text and text.endswith("trailing text\n")
    name = C.section_name(result)
    assert text.index(OTHER_KIND) < text.index(f"<!-- {name}:start -->")  # beside its own benchmark
    assert name == f"training {result['environment']['cpu_kind']}"
    assert C.section(docs, name) == R.render(result).strip()
    # render.py re-renders a saved result without measuring, into the same section
    copy = tmp_path / "benchmarks.md"
    copy.write_text("# Benchmarks\n")
    proc = _main("render.py", docs.parent / "result.json", "--docs", copy)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert C.section(copy, name) == C.section(docs, name)


def test_bad_argument_is_one_line_error() -> None:
    proc = _main("train_throughput.py", "--batch-size", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("--batch-size must be >= 1")


def test_render_refuses_a_bad_result_before_writing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"benchmark": "training", "schema_version": 1}))
    docs = tmp_path / "benchmarks.md"
    proc = _main("render.py", bad, "--docs", docs)
    assert proc.returncode == 2 and "missing key 'command'" in proc.stderr
    assert not docs.exists()


# --------------------------------------------------------------------------- gpu.py


def test_gpu_benchmark_runs_on_the_cpu(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\n{OTHER}\n")
    out_json = tmp_path / "gpu.json"
    proc = _run(
        "gpu.py",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--workers",
        "0",
        "--json",
        str(out_json),
        "--docs",
        str(docs),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_json.read_text())
    R.render(result)
    s = result["settings"]
    assert s["device"] == "cpu" and s["steps"] == 2 and s["compile"] is False
    training = result["training"]
    assert {(r["model"], r["batch_size"]) for r in training} == {
        (m, b) for m in ("googlenet", "googlenet_bn", "torchvision") for b in s["batch_sizes"]
    }
    for r in training:
        assert r["images_per_s"] > 0 and r["ms_per_step"] == pytest.approx(
            1000 * r["batch_size"] / r["images_per_s"]
        )
        if r["model"] == "torchvision":
            assert r["ratio"] == 1.0
    assert result["ddp"]["backend"] == "gloo" and result["ddp"]["images_per_s"] > 0
    assert result["predictor"]["batch_size"] == s["predict_batch"] and result["predictor"]["images_per_s"] > 0
    loading = result["data_loading"]
    assert [r["workers"] for r in loading] == [0] and loading[0]["images_per_s"] > 0
    assert loading[0]["batches"] >= 8  # over several epochs of the 16 generated JPEGs
    b = result["bound"]
    assert b["by"] == ("data" if b["loader_images_per_s"] < b["step_images_per_s"] else "compute")
    assert OTHER in docs.read_text()
    assert C.section(docs, C.section_name(result)) == R.render(result).strip()


def test_gpu_benchmark_refuses_cuda_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = _main("gpu.py", "--device", "cuda")
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr.strip().splitlines()[-1]


def test_view_groups_of_the_144_crops_by_hand() -> None:
    import demo_levers  # benchmarks/ is on sys.path

    groups = demo_levers.view_groups()
    # Index = 72 * mirrored + 18 * scale + 6 * square + position (googlenet.data.multicrop's order).
    assert all(mask.sum() == 144 // len(g) for g in groups.values() for mask in g.values())
    assert np.flatnonzero(groups["scale"]["352"]).tolist() == [*range(54, 72), *range(126, 144)]
    assert np.flatnonzero(groups["position"]["whole square"]).tolist()[:3] == [5, 11, 17]
    # Two images of class 1; every view says class 1 except the largest scale's, which say class 0
    # with more confidence, and image 1's corner views, which say class 0 as well.
    probs = np.tile(np.array([0.2, 0.8]), (2, 144, 1))
    probs[:, groups["scale"]["352"]] = [1.0, 0.0]
    corners = groups["position"]["top-left"] | groups["position"]["bottom-right"]
    probs[1, corners] = [0.9, 0.1]
    errors = demo_levers.view_group_errors(probs, np.array([1, 1]))
    # Per scale, image 1's corners (12 of 36 views at 0.9) do not outweigh the rest (24 at 0.2).
    assert errors["scale"] == {"256": 0.0, "288": 0.0, "320": 0.0, "352": 1.0}
    # top-left: image 0's mean is (6 x 1.0 + 18 x 0.2) / 24 = 0.4 for class 0 (right); image 1 wrong.
    assert errors["position"]["top-left"] == 0.5 and errors["position"]["top-right"] == 0.0
    # image 0: its 36 largest-scale views are wrong; image 1: those plus its 36 other corner views
    assert errors["overall"]["single view"] == pytest.approx((36 + 36 + 36) / 288)
    # all 144, class 0: image 0 (36 x 1.0 + 108 x 0.2) / 144 = 0.4 (right); image 1
    # (24 x 1.0 + 48 x 0.9 + 72 x 0.2) / 144 = 0.57 (wrong)
    assert errors["overall"]["all 144"] == 0.5
    with pytest.raises(ValueError, match="144"):
        demo_levers.view_group_errors(np.zeros((2, 10, 2)), np.array([0, 1]))


def test_detection_averaging_scores_raw_and_averaged_weights(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = _main("detection_averaging.py", "--tiny", "--out", tmp_path / "work", "--epochs", "1", "2",
                 "--bootstrap", "50", "--json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    import detection_averaging  # benchmarks/ is on sys.path

    assert detection_averaging.render(result) in proc.stdout  # checks the schema
    first, second = result["rows"]
    # The second run length continued the first (an exact resume), and the raw weights do not
    # depend on how they are averaged: both settings trained the same raw weights.
    assert (first["epochs"], second["epochs"]) == (1, 2) and second["steps"] == 2 * first["steps"]
    for row in result["rows"]:
        assert row["raw_identical"]
        assert all(0 <= row[f"{k}_mAP"] <= 1 for k in ("raw", "averaged_fixed", "averaged_warmup"))
        x = row["warmup_minus_raw"]
        assert x["difference"] == pytest.approx(row["averaged_warmup_mAP"] - row["raw_mAP"])
        assert x["low"] <= x["high"]
    assert "averaged, warmed up (default)" in proc.stdout
