"""SIGINT and SIGTERM during a run: the first requests a stop, the second ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from amlretrain.errors import Interrupted
from amlretrain.interrupt import StopSignal, handle_signals


def test_a_stop_request_has_a_grace_deadline() -> None:
    stop = StopSignal(grace=5)
    assert not stop.requested and stop.deadline() is None
    stop.raise_if_requested()  # nothing to raise yet
    before = time.monotonic()
    stop.request(signal.SIGTERM)
    assert stop.requested and stop.signum == signal.SIGTERM
    deadline = stop.deadline()
    assert deadline is not None and before + 5 <= deadline <= time.monotonic() + 5
    stop.request(signal.SIGINT)  # the first request counts
    assert stop.signum == signal.SIGTERM
    with pytest.raises(Interrupted) as caught:
        stop.raise_if_requested("the result")
    assert caught.value.exit_code == 143 and caught.value.result == "the result"
    assert stop.wait(10)  # returns at once once requested


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_requests_a_stop_and_the_second_raises(
    signum: int, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = StopSignal(grace=7)
    previous = signal.getsignal(signum)
    with handle_signals(stop):
        os.kill(os.getpid(), signum)
        time.sleep(0.05)
        assert stop.requested and stop.signum == signum
        with pytest.raises(KeyboardInterrupt):
            _signal_and_wait(signum)
    assert signal.getsignal(signum) == previous  # put back
    err = capsys.readouterr().err
    assert "stopping" in err and "at most 7 s" in err and "exiting now" in err


def _signal_and_wait(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(1)  # the handler raises in here


def test_off_the_main_thread_nothing_is_installed() -> None:
    import threading

    seen: list[object] = []

    def run() -> None:
        with handle_signals(StopSignal()):
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


def test_in_the_cli_the_second_signal_exits_at_once_with_128_plus_the_signal() -> None:
    code = textwrap.dedent(
        """
        import os, signal, time
        from amlretrain.interrupt import StopSignal, handle_signals
        stop = StopSignal(grace=30)
        with handle_signals(stop, exit_at_once=True):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert stop.requested
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        raise SystemExit(0)
        """
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 143, proc.stderr
    assert time.monotonic() - started < 5
    assert "exiting now" in proc.stderr
