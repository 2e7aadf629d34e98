"""googlenet.cost: throughput timed after warm-up, the estimate over parts and ranks, and its text."""

from __future__ import annotations

import pytest

from googlenet.cost import (
    CostEstimate,
    Throughput,
    WorkPart,
    format_duration,
    measure_throughput,
    split_evenly,
)


class FakeClock:
    """A clock that each step advances by the next of ``durations`` (the warm-up's included)."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.calls += 1
        self.now += self.durations.pop(0)


def test_measure_throughput_skips_the_warm_up_and_takes_the_median() -> None:
    # The warm-up takes 9 s (kernel selection, caches) and is not timed; then 0.4, 2.0 (another
    # process had the CPU) and 0.5 s: at least three steps, so the median is 0.5 s for 10 items.
    clock = FakeClock([9.0, 0.4, 2.0, 0.5, 0.5])
    t = measure_throughput(clock.step, 10, warmup_steps=1, min_steps=3, min_seconds=1.0, clock=clock)
    assert clock.calls == 4
    assert t == Throughput(seconds_per_item=0.05, items=30, warmup_items=10)
    assert t.items_per_s == pytest.approx(20.0)
    # An even count of steps: the mean of the two middle ones; max_steps bounds a slow minimum.
    clock = FakeClock([1.0, 1.0, 3.0, 0.0])
    t = measure_throughput(clock.step, 1, warmup_steps=0, min_steps=2, min_seconds=0.0, clock=clock)
    assert t.seconds_per_item == pytest.approx(1.0) and clock.calls == 2
    clock = FakeClock([0.01] * 10)
    t = measure_throughput(clock.step, 4, warmup_steps=2, min_seconds=100.0, max_steps=5, clock=clock)
    assert clock.calls == 7 and t.items == 20 and t.seconds_per_item == pytest.approx(0.0025)
    with pytest.raises(ValueError, match="items_per_step"):
        measure_throughput(clock.step, 0)


def test_estimate_adds_parts_and_divides_over_ranks() -> None:
    forward = WorkPart("googlenet x 5 at 64 px", 387_500, Throughput(1 / 2500, 432, 144), "forward passes")
    reading = WorkPart("reading and cropping", 500, Throughput(0.02, 2, 1), "images")
    one = CostEstimate("evaluate", "500 images x 155 crops x 5 models = 387,500 forward passes",
                       (forward, reading), where="torch fp32, cpu")  # fmt: skip
    assert forward.seconds == pytest.approx(155.0) and one.seconds == pytest.approx(165.0)
    two = CostEstimate("evaluate", one.work, one.parts, ranks=2)
    assert two.seconds == pytest.approx(82.5) and two.total_seconds == pytest.approx(165.0)
    # Each rank's own measurement of its own share: the slowest decides.
    measured = CostEstimate("evaluate", one.work, one.parts, ranks=2, rank_seconds=(80.0, 95.0))
    assert measured.seconds == 95.0
    text = measured.format()
    assert text.splitlines()[0] == "evaluate: 500 images x 155 crops x 5 models = 387,500 forward passes"
    assert "2,500 forward passes/s (timed on 432 after 144 warm-up)" in text
    assert "50 images/s" in text
    assert "estimate: about 1 min 35 s on this machine (2 ranks: 1 min 20 s, 1 min 35 s)" in text
    assert "about 2 min 45 s on this machine" in one.format()
    resumed = CostEstimate("evaluate", one.work, (forward,), done="128 of 500 images")
    assert "already done: 128 of 500 images" in resumed.format()
    assert measured.to_dict()["seconds"] == 95.0 and len(measured.to_dict()["parts"]) == 2
    with pytest.raises(ValueError, match="rank_seconds has 1 entries for 2 ranks"):
        CostEstimate("x", "y", (), ranks=2, rank_seconds=(1.0,))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.42, "0.4 s"),
        (42.4, "42 s"),
        (190, "3 min 10 s"),
        (7500, "2 h 05 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_split_evenly_covers_every_item_once() -> None:
    assert split_evenly(7, 2) == [range(0, 3), range(3, 7)]
    assert split_evenly(2, 3) == [range(0, 0), range(0, 1), range(1, 2)]
    for count in range(12):
        for ranks in range(1, 5):
            pieces = split_evenly(count, ranks)
            assert [i for p in pieces for i in p] == list(range(count))
            assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    with pytest.raises(ValueError, match="ranks must be at least 1"):
        split_evenly(3, 0)
