"""Owns the processor, the model and the prompt cache: set up (and warmed up) once per worker process, then
predict many jobs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from common import contract, fmt
from common.errors import ModelUnavailable
from common.schemas import ChatRequest, FrameInfo, MediaKind, OcrRequest, RegionRequest
from common.settings import Settings
from worker import device, generation, loading, media, prompts
from worker import video as video_mod
from worker.postprocess import clean_answer, clean_ocr
from worker.prompt_cache import PromptCache

log = logging.getLogger(__name__)

RETRY_LOAD_S = 30


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
        self.detail: str | None = None  # what loading is doing now (Russian), for the heartbeat
        self.cache = PromptCache(0)
        self._last_attempt = 0.0

    # ------------------------------------------------------------ setup

    def setup(self) -> bool:
        """Find the weights (cache, or download with progress), load, warm up; on failure keep the Russian
        reason and serve it per job."""
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
        t0 = time.perf_counter()
        try:
            path = loading.local_weights(self.model_id, s.hf_hub_offline, s.hf_home, self._progress)
            self._progress("загрузка модели в память…")
            processor = AutoProcessor.from_pretrained(path)
            model = AutoModelForImageTextToText.from_pretrained(
                path, dtype=getattr(torch, self.dtype_name), attn_implementation="sdpa"
            )
        except ModelUnavailable as exc:
            return self._failed(exc.message)
        except (OSError, ValueError) as exc:
            log.error("model load failed: %s", exc)
            return self._failed(loading.failure_message(self.model_id, s.hf_hub_offline, s.hf_home))
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.cache = PromptCache(device.prompt_cache_bytes(s.prompt_cache_mb, self.device))
        self.load_error = None
        log.info("model %s loaded on %s (%s) in %.1fs; prompt cache %s", self.model_id, self.device, self.dtype_name,
                 time.perf_counter() - t0, fmt.size(self.cache.max_bytes))
        self.warm_up()
        self.detail = None
        return True

    def _progress(self, detail: str) -> None:
        self.detail = detail

    def _failed(self, message: str) -> bool:
        self.load_error, self.detail = message, None
        log.error("%s", message)
        return False

    def warm_up(self) -> None:
        """One short generate per mode this worker serves, before it says "ready": the weights are paged in and
        the kernels chosen now, not on a user's first question."""
        self._progress("прогрев модели…")
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8))
        deadline = time.time() + 600
        # The tiled (split) image path runs the whole vision encoder on ~13 tiles: seconds on a GPU, but close to a
        # minute for the 2.2B on a CPU, so there only the untiled path is warmed (the weights are paged in by it).
        modes = {self._splitting("chat"), self._splitting("ocr")} if self.device == "cuda" else {False}
        for splitting in sorted(modes):
            inputs = self._inputs(prompts.region_messages(), images=[image], splitting=splitting)
            generation.generate(self.model, self.processor.tokenizer, inputs, device=self.device, max_new_tokens=2,
                                deadline=deadline, limit_s=600)
        frames = [np.asarray(image.resize((64, 48)))] * 2
        clip = video_mod.VideoFrames(frames, [0.0, 1.0], [0, 1], 1.0, 2.0, 2)
        inputs = self._inputs(prompts.chat_messages(MediaKind.video, [], "What happens?"), video=clip)
        generation.generate(self.model, self.processor.tokenizer, inputs, device=self.device, max_new_tokens=2,
                            deadline=deadline, limit_s=600)
        log.info("warm-up done in %.1fs", time.perf_counter() - t0)

    def ensure_ready(self) -> None:
        if self.model is None and time.monotonic() - self._last_attempt > RETRY_LOAD_S:
            self.setup()  # the weights may have arrived in the cache since
        if self.model is None:
            raise ModelUnavailable(self.load_error or loading.failure_message(
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

    # ------------------------------------------------------------ jobs

    def predict(self, req: ChatRequest | OcrRequest | RegionRequest, path: Path, on_text=None,
                started_at: float | None = None, stop=None) -> Prediction:
        """Answer one job. stop: a threading.Event; once set, generation ends at the next token."""
        self.ensure_ready()
        s = self.settings
        deadline = (started_at or time.time()) + s.job_time_limit
        limit = min(req.max_new_tokens or s.max_new_tokens, s.max_new_tokens)
        frames: list[FrameInfo] = []
        cache_key = None
        if req.media.kind == MediaKind.video:
            if req.kind != "chat":
                contract.require_image(req.media.kind)
            fps = float(getattr(self.processor.video_processor, "fps", 1) or 1)
            video = video_mod.decode_video(
                path, target_fps=fps, max_frames=self.video_frame_limit(), max_seconds=s.max_video_seconds,
                longest_edge=self._video_longest_edge(), deadline=deadline, time_limit_s=s.job_time_limit,
            )
            thumbs = media.write_thumbnails(video.frames, s.results_dir / "frames" / req.job_id)
            frames = [FrameInfo(index=i, timestamp=round(t, 3), thumbnail=f"frames/{req.job_id}/{name}")
                      for i, t, name in zip(video.indices, video.timestamps, thumbs, strict=True)]
            inputs = self._inputs(prompts.chat_messages(MediaKind.video, req.history, req.question), video=video)
            cache_key = f"{req.media.path}|video|{self.video_frame_limit()}|{fps:g}"
        else:
            image = media.load_image(path, s.max_image_pixels)
            splitting = self._splitting(req.kind)
            if req.kind == "chat":
                messages = prompts.chat_messages(MediaKind.image, req.history, req.question)
                cache_key = f"{req.media.path}|image|{int(splitting)}"
            elif req.kind == "ocr":
                messages = prompts.ocr_messages()
            else:
                image = media.crop_with_margin(image, req.box.as_tuple())
                messages = prompts.region_messages()
            inputs = self._inputs(messages, images=[image], splitting=splitting)
        g = generation.generate(
            self.model, self.processor.tokenizer, inputs, device=self.device, max_new_tokens=limit,
            deadline=deadline, limit_s=s.job_time_limit, on_text=on_text, stop=stop, cache=self.cache,
            media_key=cache_key, conversation=getattr(req, "conversation", None),
        )
        answer = clean_ocr(g.text) if req.kind == "ocr" else clean_answer(g.text)
        return Prediction(answer, g.prompt_tokens, g.generated_tokens, g.first_token_at, frames,
                          stopped=g.stopped, truncated=g.truncated, cached_tokens=g.cached_tokens)

