"""MODEL_ENGINE=openvino-int4 in a real worker process run from the OpenVINO venv (.venv-ov, made by `make test`):
it exports the tiny model into HF_HOME once (a second worker reuses the export), says so in its heartbeat, serves
every job kind — image chat with a follow-up from the state it kept, video, OCR with splitting, region — streams,
stops at the next token, keeps the job time limit; an export that cannot be made is a Russian message per job."""

from __future__ import annotations

import json
import subprocess

import pytest

from common import events
from common.schemas import ChatRequest, JobStatus, WorkerState
from scripts import jobs
from scripts.stack import ROOT
from tests.stack import engine_checks as checks
from worker.model import openvino

OV_PYTHON = ROOT / ".venv-ov" / "bin" / "python"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not OV_PYTHON.exists(), reason="нет .venv-ov: `make test` создаёт его "
                                                                 "(scripts/setup_openvino.sh)")]
ENGINE = "openvino-int4"


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory):
    st = make_stack(max_new_tokens=3000)
    st.hf_home = tmp_path_factory.mktemp("ov-hf-home")
    st.ov_env = {"MODEL_ENGINE": ENGINE, "HF_HOME": str(st.hf_home), "MAX_NEW_TOKENS": "3000",
                 "IMAGE_SPLITTING": "auto"}
    st.start_worker("ov", python=str(OV_PYTHON), timeout=300, **st.ov_env)
    checks.store_media(st, tmp_path_factory.mktemp("ov-media"))
    return st


def test_the_worker_exports_once_and_says_which_engine_runs(stack):
    (info,) = events.list_workers(stack.client.redis)
    assert info.state == WorkerState.ready and info.device == "cpu" and info.dtype == "int4"
    out = openvino.export_dir(stack.hf_home, str(stack.model), 4)
    assert json.loads((out / openvino.DONE).read_text())["bits"] == 4
    log = stack.workers[0].log_tail(300)
    assert "exported" in log and "Traceback" not in log
    again = stack.start_worker("ov-2", python=str(OV_PYTHON), timeout=300, **stack.ov_env)
    try:
        assert "exported" not in again.log_tail(300)  # the second worker loaded the first one's export
    finally:
        again.stop()
        stack.workers.remove(again)


def test_image_chat_and_a_follow_up_from_the_kept_state(stack):
    checks.image_chat_and_a_cached_follow_up(stack, "int4")


def test_video_ocr_and_region(stack):
    checks.video_ocr_and_region(stack)


def test_streams_and_stops_at_the_next_token(stack):
    checks.streams_and_stops_at_the_next_token(stack)


def test_the_time_limit_holds(stack, endless_env):
    checks.the_time_limit_holds(stack, stack.start_worker("ov-slow", python=str(OV_PYTHON), timeout=300, **{
        **stack.ov_env, **checks.slow_env(endless_env)}))


def test_an_export_that_cannot_be_made_is_a_russian_message_per_job(stack, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # HF_HOME/openvino cannot be made under a file
    svc = stack.start_worker("ov-blocked", python=str(OV_PYTHON), timeout=300,
                             **{**stack.ov_env, "HF_HOME": str(blocked)})
    for w in stack.workers:
        if w is not svc:
            w.stop()
    try:
        res = jobs.run(stack.client, ChatRequest(media=stack.image, question="Describe.", max_new_tokens=4))
        assert res.status == JobStatus.error and res.error.startswith("Не удалось преобразовать модель"), res.error
        assert "MODEL_ENGINE=torch" in res.error and svc.alive
    finally:
        svc.stop()


PROBE = """
import json, sys, torch
from PIL import Image
from transformers import AutoProcessor
from worker.model import openvino
from worker.model.ov_generation import StateCopy, _prefill, _step
path = sys.argv[1]
processor, model = AutoProcessor.from_pretrained(path), openvino.load(path)
lm = model.language_model
msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}]
text = processor.apply_chat_template(msgs, add_generation_prompt=True)
inputs = processor(text=[text], images=[[Image.new("RGB", (96, 64), "red")]], return_tensors="pt")
ids = inputs["input_ids"]
tail = processor.tokenizer(" A red square.<end_of_utterance>\\nUser: And now?", add_special_tokens=False,
                           return_tensors="pt")["input_ids"]
_prefill(model, inputs)
n = ids.shape[1]
_step(lm, tail[:, :5], n + 5)  # more than is kept: the surplus is cropped away
kept = StateCopy.of(lm)
kept.crop(n + 2)
full = dict(inputs, input_ids=torch.cat([ids, tail], 1), attention_mask=torch.ones(1, n + tail.shape[1]))
want = _prefill(model, full)
kept.restore(lm)
got = _step(lm, tail[:, 2:], n + tail.shape[1])
cos = float(torch.nn.functional.cosine_similarity(want.float(), got.float(), dim=0))
print(json.dumps({"cos": cos, "top1": int(want.argmax()) == int(got.argmax()), "length": kept.get_seq_length()}))
"""


def test_a_kept_state_cropped_and_put_back_gives_the_logits_of_a_full_prefill(stack):
    out = openvino.export_dir(stack.hf_home, str(stack.model), 4)
    run = subprocess.run([str(OV_PYTHON), "-c", PROBE, str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["top1"] and got["cos"] > 0.999, got
