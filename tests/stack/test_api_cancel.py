"""The Gradio API hands control back: gradio_client's job.cancel(), or a caller that simply goes away, stops the
worker's job at its next token; a long answer is interrupted, the worker takes the next job at once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file

from common import keys
from scripts import samples
from scripts.stack import ROOT, wait_for
from tests.stack.conftest import cancelled_and_freed, running_job

pytestmark = pytest.mark.integration
LONG = "Describe the image."  # the endless model answers with all 3000 tokens: seconds of generation


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory, endless_env):
    st = make_stack()
    st.start_worker("cancel-api", **endless_env, MAX_NEW_TOKENS="3000", MODEL_DTYPE="float32")
    st.start_web(MAX_NEW_TOKENS="3000")
    st.image = samples.scene_image(tmp_path_factory.mktemp("cancel") / "scene.png", (320, 240))
    return st


def freed_within(stack, job_id: str, t0: float) -> float:
    result, took = cancelled_and_freed(stack, job_id, t0, 10)
    assert 0 < result.generated_tokens < 3000
    return took


def test_job_cancel_stops_the_running_answer(stack):
    job = Client(stack.url, verbose=False).submit(handle_file(str(stack.image)), LONG, [], api_name="/vqa")
    job_id = running_job(stack)
    # The worker is paused while the cancel travels (client → web → Redis): on a free machine the whole answer
    # takes ~3 s and could end first, leaving nothing to stop. Resumed, it must stop at its next token.
    pid = stack.workers[0].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        job.cancel()
        wait_for(lambda: stack.client.redis.exists(keys.cancel(job_id)), 10, "the cancel in Redis", interval=0.02)
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    assert freed_within(stack, job_id, t0) < 2


def test_a_caller_that_goes_away_stops_its_job(stack):
    # The caller says when its event stream has brought «processing»: killed before it opens the stream, it
    # would leave nothing to close (a window of milliseconds after submitting that this test must not hit).
    code = ("import sys, time; from gradio_client import Client, handle_file; from gradio_client.utils import Status\n"
            "job = Client(sys.argv[1], verbose=False).submit(handle_file(sys.argv[2]), sys.argv[3], [], "
            "api_name='/vqa')\n"
            "while job.status().code not in (Status.PROCESSING, Status.ITERATING, Status.FINISHED): time.sleep(0.01)\n"
            "print('streaming', flush=True)\n"
            "job.result()")
    caller = subprocess.Popen([sys.executable, "-c", code, stack.url, str(stack.image), LONG], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([caller.stdout], [], [], 30)[0], "the caller never got its event stream going"
        assert caller.stdout.readline().strip() == "streaming"
        job_id = running_job(stack)
        t0 = time.monotonic()
        caller.send_signal(signal.SIGKILL)  # the connection closes without a word
        assert freed_within(stack, job_id, t0) < 5
    finally:
        caller.kill()
        caller.wait(10)
    answer = Client(stack.url, verbose=False).predict(handle_file(str(stack.image)), "Hi?", [], api_name="/vqa")
    assert isinstance(answer, str)
