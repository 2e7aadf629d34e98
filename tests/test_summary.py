"""``googlenet summary``: Table 1 regenerated from the live model."""

from __future__ import annotations

import json

import pytest

import googlenet
from googlenet.models.spec import TABLE1, TABLE1_OUTPUT_SIZES, InceptionRow
from googlenet.models.summary import format_table, summarize, totals

from .helpers import cli_in_process


def _inception_params(row: InceptionRow, in_channels: int) -> int:
    # Computed from Table 1's six columns alone (weights + biases), independently of the model code.
    convs = [
        (in_channels, row.ch1x1, 1),
        (in_channels, row.ch3x3_reduce, 1),
        (row.ch3x3_reduce, row.ch3x3, 3),
        (in_channels, row.ch5x5_reduce, 1),
        (row.ch5x5_reduce, row.ch5x5, 5),
        (in_channels, row.pool_proj, 1),
    ]
    return sum(cin * cout * k * k + cout for cin, cout, k in convs)


def test_summary_rows_match_table1_at_224() -> None:
    rows = {r.name: r for r in summarize(googlenet.create_model("googlenet"), 224)}
    for name, size in TABLE1_OUTPUT_SIZES.items():
        shape = rows[name].output_shape
        assert tuple(shape + [1] * (3 - len(shape))) == size, name
    assert rows["conv1"].kernel == "7x7/2" and rows["pool1"].kernel == "3x3/2"
    assert rows["avgpool"].kernel == "7x7/1"  # pool5 of Table 1
    assert rows["conv1"].macs == 112 * 112 * 64 * 7 * 7 * 3
    assert rows["conv1"].params == 7 * 7 * 3 * 64 + 64
    in_channels = 192
    for row in TABLE1:
        if isinstance(row, InceptionRow):
            assert rows[row.name].params == _inception_params(row, in_channels), row.name
            assert rows[row.name].filters["5x5"] == row.ch5x5
            in_channels = row.out_channels
    t = totals(list(rows.values()))
    assert t["params"] == 6_998_552
    assert t["depth"] == 22  # "22 layers deep when counting only layers with parameters"
    assert 1.55e9 < t["macs"] < 1.6e9  # about 1.5 billion multiply-adds (section 5)
    assert rows["aux1"].training_only and rows["aux1"].output_shape == [1000]


def test_summary_follows_the_input_size() -> None:
    rows = {r.name: r for r in summarize(googlenet.create_model("googlenet_bn", num_classes=10), 128)}
    assert rows["inception5b"].output_shape == [1024, 4, 4]
    assert rows["fc"].output_shape == [10]
    assert "inception4e" in format_table(list(rows.values()))


def test_summary_cli_json_matches_table1() -> None:
    result = cli_in_process("summary", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["model"], record["image_size"], record["num_classes"]) == ("googlenet", 224, 1000)
    rows = record["rows"]
    # Issue 12: the totals the text form prints are in the JSON too.
    assert record["totals"]["params"] == 6_998_552 and record["totals"]["depth"] == 22
    assert record["totals"]["macs"] == sum(r["macs"] for r in rows if not r["training_only"])
    by_name = {r["name"]: r for r in rows}
    for name, size in TABLE1_OUTPUT_SIZES.items():
        assert tuple(by_name[name]["output_shape"] + [1] * (3 - len(by_name[name]["output_shape"]))) == size
    for row in rows:
        assert {"name", "type", "output_shape", "params", "macs"} <= set(row)
    assert sum(r["params"] for r in rows if not r["training_only"]) == 6_998_552


def test_summary_cli_text_for_torchvision_variant() -> None:
    result = cli_in_process("summary", "--model", "googlenet_tv", "--image-size", "96")
    assert result.returncode == 0, result.stderr
    assert "maxpool4" in result.stdout and "total (inference)" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["summary", "--model", "resnet50"], "'resnet50'"),
        (["summary", "--image-size", "32"], "32"),
        (["summary", "--num-classes", "0"], "0"),
    ],
)
def test_cli_errors_are_one_line_and_name_the_value(args: list[str], needle: str) -> None:
    result = cli_in_process(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "error" in lines[0]
