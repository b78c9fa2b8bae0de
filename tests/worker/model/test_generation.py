import threading
import time
from types import SimpleNamespace

import pytest

from common.errors import JobTimeout
from worker.model.generation import Stop


def stop_after(ids: list[int], loop_repeats: int = 4, deadline_in: float = 60.0, stop=None) -> Stop:
    return Stop(SimpleNamespace(ids=ids), stop, time.time() + deadline_in, 60, loop_repeats)


def test_a_loop_is_cut_after_loop_repeats_repeats():
    assert stop_after([5, 1, 2] * 4)()  # period 3, four times
    assert not stop_after([5, 1, 2] * 3)()
    assert not stop_after([5, 1, 2] * 4, loop_repeats=5)()
    assert stop_after([5, 1, 2] * 5, loop_repeats=5)()
    assert not stop_after(list(range(200)))()


def test_loop_repeats_0_never_cuts_but_the_stop_and_the_deadline_still_hold():
    assert not stop_after([7] * 500, loop_repeats=0)()
    asked = threading.Event()
    asked.set()
    stopping = stop_after([7] * 500, loop_repeats=0, stop=asked)
    assert stopping() and stopping.stopped
    with pytest.raises(JobTimeout):
        stop_after([7] * 500, loop_repeats=0, deadline_in=-1)()
