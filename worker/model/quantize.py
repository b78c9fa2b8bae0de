"""MODEL_ENGINE=torch-int8: the same transformers model with int8 weights in every Linear layer (vision encoder,
connector, language model, LM head), run by PyTorch's own fbgemm kernels (`quantized::linear_dynamic`: the
activations are quantized per call, int8 × int8 → fp32). On CPU the decode step is bound by the bytes of weights
read per token and the prefill by matmul throughput: both gain from int8 (docs/bench.md, «Движок CPU»).

Everything else stays as it is — generate(), the streamer, the stop check, the KV prompt cache — because the model
is still a torch module: only its Linear layers are swapped. Quantized once at load (seconds), nothing on disk."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

ENGINE = "torch-int8"


def supported() -> str | None:
    """None if this torch build has the fbgemm int8 kernels (x86-64 with AVX2 or newer); else why not, in Russian."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return "в этой сборке PyTorch нет ядер int8 fbgemm (нужен процессор x86-64 с AVX2)"
    return None


class Int8Linear(nn.Module):
    """A Linear layer whose weight is int8 per output channel (symmetric), packed once for fbgemm. Input and output
    are float32, as fbgemm's dynamic linear wants; other dtypes are cast at the boundary."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
        zero = torch.zeros(w.shape[0], dtype=torch.long)
        # Quantized tensors are deprecated (pytorch#184982): docs/bench.md, «Движки CPU», says what then.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            q = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self._packed = torch.ops.quantized.linear_prepack(q, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x2.dtype != torch.float32:
            x2 = x2.float()
        # reduce_range=False: fbgemm's VNNI path adds int8 products in int32 without saturation; True would cut the
        # activations to 7 bits for CPUs that only have AVX2's saturating vpmaddubsw.
        out = torch.ops.quantized.linear_dynamic(x2.contiguous(), self._packed, _reduce_range())
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8"


_REDUCE: bool | None = None


def _reduce_range() -> bool:
    """True unless the CPU has AVX-512 VNNI (or AMX): without it fbgemm's int8 dot products can saturate."""
    global _REDUCE
    if _REDUCE is None:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            flags = ""
        _REDUCE = not ("avx512_vnni" in flags or "amx_int8" in flags)
    return _REDUCE


def quantize_int8(model: nn.Module, on_progress=None) -> int:
    """Swap every nn.Linear of model for an Int8Linear, in place, one layer at a time (the load never holds a
    second copy of the model). Returns the number of layers quantized."""
    torch.backends.quantized.engine = "fbgemm"
    names = [name for name, m in model.named_modules() if type(m) is nn.Linear]
    for i, name in enumerate(names):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(getattr(parent, child)))
        if on_progress is not None and (i % 50 == 0 or i == len(names) - 1):
            on_progress(i + 1, len(names))
    # The rest (norms, embeddings, the vision patch convolution, rotary buffers) in float32, the dtype of the
    # fbgemm kernels' input and output: no casts between layers.
    for module in model.modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            if p.dtype != torch.float32:
                setattr(module, pname, nn.Parameter(p.detach().float(), requires_grad=False))
        for bname, b in list(module.named_buffers(recurse=False)):
            if b is not None and b.is_floating_point() and b.dtype != torch.float32:
                setattr(module, bname, b.float())
    return len(names)
