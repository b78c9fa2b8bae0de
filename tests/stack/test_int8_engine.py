"""MODEL_ENGINE=torch-int8 in a real worker process (tiny model, real redis-server, jobs through JobClient): it says
so in its heartbeat, serves every job kind — image chat with a follow-up from its prompt cache, video, OCR with
splitting, region — streams, stops at the next token and keeps the job time limit."""

from __future__ import annotations

import pytest

from common import events
from common.schemas import WorkerState
from tests.stack import engine_checks as checks
from worker.model import quantize

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(quantize.supported() is not None, reason=quantize.supported() or "")]


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory):
    st = make_stack(max_new_tokens=3000)
    st.start_worker("int8", MODEL_ENGINE="torch-int8", MAX_NEW_TOKENS="3000", IMAGE_SPLITTING="auto")
    checks.store_media(st, tmp_path_factory.mktemp("int8-media"))
    return st


def test_the_worker_runs_int8_and_says_so(stack):
    (info,) = events.list_workers(stack.client.redis)
    assert info.state == WorkerState.ready and info.device == "cpu" and info.dtype == "int8"
    log = stack.workers[0].log_tail(200)
    assert "int8" in log and "Traceback" not in log


def test_image_chat_and_a_follow_up_from_the_prompt_cache(stack):
    checks.image_chat_and_a_cached_follow_up(stack, "int8")


def test_video_ocr_and_region(stack):
    checks.video_ocr_and_region(stack)


def test_streams_and_stops_at_the_next_token(stack):
    checks.streams_and_stops_at_the_next_token(stack)


def test_the_time_limit_holds(stack, endless_env):
    checks.the_time_limit_holds(stack, stack.start_worker("int8-slow", MODEL_ENGINE="torch-int8",
                                                          **checks.slow_env(endless_env)))
