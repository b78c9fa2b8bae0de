"""Owns the processor and the model: set up once per worker process, then predict many jobs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import contract
from common.errors import JobTimeout, ModelUnavailable
from common.schemas import ChatRequest, FrameInfo, MediaKind, OcrRequest, RegionRequest
from common.settings import Settings
from worker import device, media, prompts
from worker import video as video_mod
from worker.postprocess import clean_answer, clean_ocr, find_cycle
from worker.streamer import TextSoFar

log = logging.getLogger(__name__)

def load_failure_message(model_id: str, offline: bool, hf_home: str | None) -> str:
    where = hf_home or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    if offline:
        return (
            f"Модель «{model_id}» не найдена в локальном кэше ({where}), а загрузка отключена "
            "(HF_HUB_OFFLINE=1). Запустите обработчик один раз с HF_HUB_OFFLINE=0 и доступом в "
            "интернет, чтобы скачать веса, затем снова включите офлайн-режим."
        )
    return (
        f"Не удалось загрузить модель «{model_id}»: проверьте идентификатор модели и доступ к "
        f"Hugging Face Hub (кэш: {where})."
    )


@dataclass
class Prediction:
    answer: str
    prompt_tokens: int
    generated_tokens: int
    first_token_at: float | None
    frames: list[FrameInfo] = field(default_factory=list)
    stopped: bool = False  # the user stopped it: the answer is partial
    truncated: bool = False  # cut at the token limit
    cached_tokens: int = 0


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_id = settings.smolvlm2_model_id
        self.processor = None
        self.model = None
        self.device = "cpu"
        self.dtype_name = ""
        self.load_error: str | None = None
        self._last_attempt = 0.0

    # ------------------------------------------------------------ setup

    def setup(self) -> bool:
        """Load processor and model; on failure keep the Russian reason and serve it per job."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self._last_attempt = time.monotonic()
        s = self.settings
        if s.torch_threads:
            torch.set_num_threads(s.torch_threads)
        self.device, warning = device.resolve_device(s.model_device, torch.cuda.is_available())
        if warning:
            log.warning(warning)
        cuda_bf16 = self.device == "cuda" and torch.cuda.is_bf16_supported()
        self.dtype_name = device.resolve_dtype(self.device, s.model_dtype, cuda_bf16, device.cpu_has_fast_bf16())
        dtype = getattr(torch, self.dtype_name)
        t0 = time.perf_counter()
        try:
            processor = AutoProcessor.from_pretrained(self.model_id)
            model = AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=dtype, attn_implementation="sdpa"
            )
        except (OSError, ValueError) as exc:
            self.load_error = load_failure_message(self.model_id, s.hf_hub_offline, s.hf_home)
            log.error("model load failed: %s", exc)
            return False
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.load_error = None
        log.info("model %s loaded on %s (%s) in %.1fs", self.model_id, self.device, self.dtype_name,
                 time.perf_counter() - t0)
        return True

    def ensure_ready(self) -> None:
        if self.model is None and time.monotonic() - self._last_attempt > 30:
            self.setup()  # the weights may have arrived in the cache since
        if self.model is None:
            raise ModelUnavailable(self.load_error or load_failure_message(
                self.model_id, self.settings.hf_hub_offline, self.settings.hf_home))

    # ------------------------------------------------------------ helpers

    def _splitting(self, kind: str) -> bool:
        return device.image_splitting(self.settings.image_splitting, self.device, kind)

    def video_frame_limit(self) -> int:
        default = getattr(self.processor.video_processor, "num_frames", None)
        return device.video_frames(self.settings.video_max_frames, default, self.device)

    def _video_longest_edge(self) -> int:
        vp = self.processor.video_processor
        size = getattr(vp, "video_sampling", None) or {}
        size = size.get("video_size") if isinstance(size, dict) else None
        size = size or getattr(vp, "size", None) or {}
        return int(size.get("longest_edge", 512)) if isinstance(size, dict) else 512

    def _inputs(self, messages: list[dict], images=None, video: video_mod.VideoFrames | None = None,
                splitting: bool = True) -> dict:
        from transformers.video_utils import VideoMetadata

        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        kwargs: dict = {"text": [text], "return_tensors": "pt"}
        if images is not None:
            kwargs.update(images=[images], do_image_splitting=splitting)
        if video is not None:
            h, w = video.frames[0].shape[:2]
            meta = VideoMetadata(
                total_num_frames=video.total_frames, fps=video.fps, width=w, height=h,
                duration=video.duration, video_backend="pyav", frames_indices=video.indices,
            )
            kwargs.update(videos=[video.frames], video_metadata=[meta], do_sample_frames=False)
        return self.processor(**kwargs)

    def _generate(self, inputs, max_new_tokens: int, on_text, deadline: float, stop=None) -> dict:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        onednn = torch.backends.mkldnn.enabled
        decode_mode = None
        if self.device == "cpu" and self.model.dtype == torch.bfloat16:
            # oneDNN makes the bf16 prefill several times faster, but the one-token decode steps slower than
            # PyTorch's own kernels (docs/bench.md): off from the first new token to the end of the job.
            def decode_mode() -> None:
                torch.backends.mkldnn.enabled = False

        streamer = TextSoFar(self.processor.tokenizer, on_text, decode_mode)
        limit_s = self.settings.job_time_limit

        stopped = False

        class _Stop(StoppingCriteria):
            # Checked after every token: a flag set by the job's channel thread (no I/O here), the deadline, loops.
            def __call__(self, input_ids, scores, **kw):
                nonlocal stopped
                if stop is not None and stop.is_set():
                    stopped = True
                    return True
                if time.time() > deadline:
                    raise JobTimeout(limit_s)
                return find_cycle(streamer.ids, max_period=32, min_repeats=4) is not None

        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Stop()]),
                )
        finally:
            torch.backends.mkldnn.enabled = onednn
        new = out[0, prompt_tokens:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        truncated = not stopped and int(new.shape[0]) >= max_new_tokens and int(new[-1]) not in eos
        return {"text": text, "prompt_tokens": prompt_tokens, "generated_tokens": int(new.shape[0]),
                "first_token_at": streamer.first_token_at, "stopped": stopped, "truncated": truncated}

    # ------------------------------------------------------------ jobs

    def predict(self, req: ChatRequest | OcrRequest | RegionRequest, path: Path, on_text=None,
                started_at: float | None = None, stop=None) -> Prediction:
        """Answer one job. stop: a threading.Event; once set, generation ends at the next token."""
        self.ensure_ready()
        s = self.settings
        deadline = (started_at or time.time()) + s.job_time_limit
        limit = min(req.max_new_tokens or s.max_new_tokens, s.max_new_tokens)
        frames: list[FrameInfo] = []
        if req.media.kind == MediaKind.video:
            if req.kind != "chat":
                contract.require_image(req.media.kind)
            video = video_mod.decode_video(
                path, target_fps=float(getattr(self.processor.video_processor, "fps", 1) or 1),
                max_frames=self.video_frame_limit(), max_seconds=s.max_video_seconds,
                longest_edge=self._video_longest_edge(), deadline=deadline, time_limit_s=s.job_time_limit,
            )
            thumbs = media.write_thumbnails(video.frames, s.results_dir / "frames" / req.job_id)
            frames = [FrameInfo(index=i, timestamp=round(t, 3), thumbnail=f"frames/{req.job_id}/{name}")
                      for i, t, name in zip(video.indices, video.timestamps, thumbs, strict=True)]
            inputs = self._inputs(prompts.chat_messages(MediaKind.video, req.history, req.question), video=video)
        else:
            image = media.load_image(path, s.max_image_pixels)
            if req.kind == "chat":
                messages = prompts.chat_messages(MediaKind.image, req.history, req.question)
            elif req.kind == "ocr":
                messages = prompts.ocr_messages()
            else:
                image = media.crop_with_margin(image, req.box.as_tuple())
                messages = prompts.region_messages()
            inputs = self._inputs(messages, images=[image], splitting=self._splitting(req.kind))
        g = self._generate(inputs, limit, on_text, deadline, stop)
        answer = clean_ocr(g["text"]) if req.kind == "ocr" else clean_answer(g["text"])
        return Prediction(answer, g["prompt_tokens"], g["generated_tokens"], g["first_token_at"], frames,
                          stopped=g["stopped"], truncated=g["truncated"])
