"""worker.model.quantize (MODEL_ENGINE=torch-int8): int8 Linear layers that stay close to the float ones, and a whole
model whose every Linear is swapped, in float32 around them, giving the float model's answer on the tiny model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worker.model import quantize

pytestmark = pytest.mark.skipif(quantize.supported() is not None, reason=quantize.supported() or "")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 7, 300])  # a decode step, a short prompt, a long prefill
def test_int8_linear_is_close_to_the_float_layer(bias, rows):
    torch.manual_seed(0)
    layer = nn.Linear(256, 96, bias=bias)
    q = quantize.Int8Linear(layer)
    x = torch.randn(2, rows, 256)
    with torch.inference_mode():
        want, got = layer(x), q(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    rel = (got - want).norm() / want.norm()
    assert rel < 0.02, rel  # int8 per channel, activations per call: ~0.5 % here
    assert not torch.equal(got, want)  # really quantized, not the float weights kept


def test_bf16_inputs_and_weights_are_accepted():
    torch.manual_seed(1)
    layer = nn.Linear(64, 32).to(torch.bfloat16)
    q = quantize.Int8Linear(layer)
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        got = q(x)
    assert got.dtype == torch.float32
    assert ((got - layer(x).float()).norm() / layer(x).float().norm()) < 0.03


def test_the_tiny_model_is_quantized_whole_and_still_answers_alike(test_model):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(test_model)
    ids = tok("Describe this image. A cat is sitting on a wooden table.", return_tensors="pt")
    ref = AutoModelForImageTextToText.from_pretrained(test_model, dtype=torch.float32).eval()
    model = AutoModelForImageTextToText.from_pretrained(test_model, dtype=torch.bfloat16).eval()
    linears = sum(type(m) is nn.Linear for m in model.modules())
    progress: list[tuple[int, int]] = []
    assert quantize.quantize_int8(model, lambda done, total: progress.append((done, total))) == linears > 0
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # bf16 load, float32 around the int8 layers
    assert progress[-1] == (linears, linears)
    with torch.inference_mode():
        want, got = ref(**ids).logits[0, -1], model(**ids).logits[0, -1]
    assert torch.nn.functional.cosine_similarity(want, got, dim=0) > 0.99


def test_a_runtime_on_int8_quantizes_at_load_and_keeps_its_prompt_cache(test_model, tmp_path):
    """The worker's own Runtime with MODEL_ENGINE=torch-int8: the load reports its progress, the answers come from
    int8 layers, and a follow-up reuses the prompt cache (the vision encoder runs once)."""
    from common.schemas import ChatRequest, Turn
    from scripts import samples
    from tests.worker.model.conftest import offline_cpu
    from worker.runtime import Runtime

    s, store = offline_cpu(test_model, tmp_path, max_new_tokens=8, model_engine="torch-int8")
    ref = store.save_upload(samples.scene_image(tmp_path / "scene.png", (320, 240)))
    rt = Runtime(s)
    details: list[str] = []
    rt._progress = lambda detail: details.append(detail)
    assert rt.setup(), rt.load_error
    assert rt.engine == "torch-int8" and rt.dtype_name == "int8"
    assert any(d.startswith("квантование модели в int8") for d in details) and details[-1] == "прогрев модели…"
    assert sum(isinstance(m, quantize.Int8Linear) for m in rt.model.modules()) > 0
    calls: list = []
    rt.model.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    first = rt.predict(ChatRequest(media=ref, question="Describe it.", conversation="q"), store.resolve(ref))
    again = rt.predict(ChatRequest(media=ref, question="And the colours?", conversation="q",
                                   history=[Turn(question="Describe it.", answer=first.answer)]), store.resolve(ref))
    assert first.dtype == "int8" and first.device == "cpu"
    assert first.generated_tokens > 0 and again.generated_tokens > 0
    assert again.cached_tokens > 0 and len(calls) == 1
