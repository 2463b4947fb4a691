"""The fleet's display: a live line on a terminal, plain throttled lines in a log."""

from __future__ import annotations

import io

from amlretrain._fleet_progress import PLAIN_EVERY, FleetProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_list_every_state_in_order_with_the_waiting_ones() -> None:
    progress = FleetProgress(5, stream=io.StringIO(), clock=Clock(), ticker=False)
    progress.set("a", "succeeded")
    progress.set("b", "training")
    progress.set("c", "failed")
    assert progress.counts() == {"waiting": 2, "training": 1, "succeeded": 1, "failed": 1}
    assert progress.text() == "waiting 2  training 1  succeeded 1  failed 1  (2 of 5 done)"


def test_a_log_gets_plain_lines_without_carriage_returns_and_throttled() -> None:
    out, clock = io.StringIO(), Clock()
    progress = FleetProgress(300, stream=out, clock=clock, ticker=False)
    progress.wave(1, 2, 100)
    for n in range(100):
        progress.set(f"t{n}", "succeeded")  # no line each: one of counts at most every 30 s
    clock.now += PLAIN_EVERY
    progress.set("t100", "failed", "job ended Failed")
    progress.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "fleet: wave 1/2: 100 target(s) (0:00 elapsed)"
    assert "fleet: t100: failed: job ended Failed (0:30 elapsed)" in lines
    assert lines[-1].startswith("fleet: wave 1/2  waiting 199  succeeded 100  failed 1")
    assert len(lines) < 8, lines


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    out = Terminal()
    progress = FleetProgress(2, stream=out, clock=Clock(), ticker=False)
    progress.wave(1, 1, 2)
    progress.set("a", "deploying")
    progress.set("a", "succeeded")
    progress.set("b", "succeeded")
    progress.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") >= 4
    assert text.rstrip().endswith("fleet: wave 1/1  succeeded 2  (2 of 2 done)  0:00")
