"""The status display of a training job: a live line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest

from amlretrain._progress import elapsed_text, status_display


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (5.9, "0:05"), (723, "12:03"), (3723, "1:02:03")]
)
def test_elapsed_time_reads_as_a_clock(seconds: float, text: str) -> None:
    assert elapsed_text(seconds) == text


def test_on_a_terminal_one_line_is_rewritten_with_the_elapsed_time() -> None:
    clock, out = Clock(), Terminal()
    display = status_display("job 0123456789ab", stream=out, clock=clock)
    display.update("NotStarted")
    clock.now += 42
    display.tick()
    display.update("Running")
    clock.now += 100
    display.update("Finished")
    display.close()
    text = out.getvalue()
    assert display.interval <= 1
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    assert frames[0] == "job 0123456789ab: NotStarted  0:00"
    assert frames[1] == "job 0123456789ab: NotStarted  0:42"
    assert frames[2] == "job 0123456789ab: Running  0:42   "  # over the longer line before
    assert frames[-1] == "job 0123456789ab: Finished  2:22"


def test_elsewhere_plain_lines_say_each_status_change_and_a_heartbeat() -> None:
    clock, out = Clock(), io.StringIO()
    display = status_display("job 0123456789ab", stream=out, clock=clock)
    display.update("NotStarted")
    clock.now += 5
    display.update("Running")
    display.update("Running")  # the same status: nothing new to say
    clock.now += 30
    display.tick()  # under a minute since the last line
    clock.now += 31
    display.tick()
    clock.now += 4
    display.update("Finished")
    display.close()
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        "job 0123456789ab: NotStarted (0:00 elapsed)",
        "job 0123456789ab: Running (0:05 elapsed)",
        "job 0123456789ab: still Running (1:06 elapsed)",
        "job 0123456789ab: Finished (1:10 elapsed)",
    ]


def test_the_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    display = status_display("job x")
    display.update("Running")
    display.close()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "job x: Running (0:00 elapsed)\n"


def test_a_wait_between_two_reads_ticks_the_display(monkeypatch: pytest.MonkeyPatch) -> None:
    from amlretrain.studio.batch import _pause

    now = [0.0]
    monkeypatch.setattr("amlretrain.studio.batch.time.monotonic", lambda: now[0])
    monkeypatch.setattr(
        "amlretrain.studio.batch.time.sleep", lambda s: now.__setitem__(0, now[0] + s)
    )

    class Display:
        interval = 1.0
        ticks = 0

        def update(self, status: str) -> None: ...

        def tick(self) -> None:
            self.ticks += 1

        def close(self) -> None: ...

    display = Display()
    assert _pause(3.5, None, display) is False
    assert display.ticks == 4 and now[0] == 3.5
    assert _pause(2.0, None, None) is False and now[0] == 5.5  # one sleep without a display
