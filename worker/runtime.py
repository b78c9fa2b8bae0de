"""Owns the processor, the model and the prompt cache: set up (and warmed up) once per worker process, then
predict many jobs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import contract, fmt
from common.errors import ModelUnavailable
from common.schemas import FrameInfo, JobKind, JobRequest, JobResult, JobStatus, MediaKind
from common.settings import Settings
from common.store import store_from_settings
from worker.media import image as media
from worker.media import video as video_mod
from worker.model import device, generation, loading, openvino, ov_generation, prompts, quantize
from worker.model.postprocess import clean_answer, clean_ocr
from worker.model.prompt_cache import PromptCache
from worker.translate.stage import Translation

log = logging.getLogger(__name__)

RETRY_LOAD_S = 30


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_id = settings.smolvlm2_model_id
        self.processor = None
        self.model = None
        self.device = "cpu"
        self.dtype_name = ""
        self.attention = ""  # the attention implementation the model runs with
        self.engine = "torch"
        self.load_error: str | None = None
        self.detail: str | None = None  # what loading is doing now (Russian), for the heartbeat
        self.cache = PromptCache(0)
        self.translation = Translation(settings)
        self._last_attempt = 0.0

    # ------------------------------------------------------------ setup

    def setup(self) -> bool:
        """Find the weights (cache, or download with progress), load, warm up; on failure keep the Russian
        reason and serve it per job."""
        import torch
        from transformers import AutoProcessor

        self._last_attempt = time.monotonic()
        s = self.settings
        if s.torch_threads:
            torch.set_num_threads(s.torch_threads)
        self.device, warning = device.resolve_device(s.model_device, torch.cuda.is_available())
        if warning:
            log.warning(warning)
        cuda_bf16 = self.device == "cuda" and torch.cuda.is_bf16_supported()
        self.dtype_name = device.resolve_dtype(self.device, s.model_dtype, cuda_bf16, device.cpu_has_fast_bf16())
        attention = device.resolve_attention(s.attn_implementation, self.device, self.dtype_name,
                                             device.flash_attn_installed())
        self.engine, warning = device.resolve_engine(s.model_engine, self.device, openvino.installed(),
                                                     quantize.supported())
        if warning:
            log.warning(warning)
        t0 = time.perf_counter()
        try:
            path = loading.local_weights(self.model_id, s.hf_hub_offline, s.hf_home, self._progress)
            if self.engine in openvino.ENGINES:
                path = self._export(path)
            self._progress("загрузка модели в память…")
            processor = AutoProcessor.from_pretrained(path)
            model = self._load_model(path, attention)
        except ModelUnavailable as exc:
            return self._failed(exc.message)
        except (OSError, ValueError) as exc:
            log.error("model load failed: %s", exc)
            return self._failed(loading.failure_message(self.model_id, s.hf_hub_offline, s.hf_home))
        if self.engine == quantize.ENGINE:
            self._quantize(model)
        self.model = model if self.engine in openvino.ENGINES else model.to(self.device).eval()
        self.processor = processor
        self.cache = PromptCache(device.prompt_cache_bytes(s.prompt_cache_mb, self.device))
        self.load_error = None
        log.info("model %s loaded on %s (%s, attention %s) in %.1fs; prompt cache %s", self.model_id, self.device,
                 self.dtype_name, self.attention, time.perf_counter() - t0, fmt.size(self.cache.max_bytes))
        self.translation.setup(self.device, self.dtype_name, self._progress)  # never fails: a note per job instead
        self.warm_up()
        self.detail = None
        return True

    def _load_model(self, path, attention: str):
        """Straight onto the GPU there (no CPU copy of the weights first); an attention implementation that cannot
        run here (ATTN_IMPLEMENTATION=flash_attention_2 without flash_attn) falls back to sdpa with a warning."""
        import torch
        from transformers import AutoModelForImageTextToText

        if self.engine in openvino.ENGINES:
            self.attention, self.dtype_name = "openvino", f"int{openvino.ENGINES[self.engine]}"
            return openvino.load(path, self.settings.torch_threads)
        kwargs = {"dtype": getattr(torch, self.dtype_name), "device_map": "cuda" if self.device == "cuda" else None}
        try:
            model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation=attention, **kwargs)
        except (ImportError, ValueError) as exc:
            if attention == "sdpa":
                raise
            log.warning("attention %s unavailable (%s): using sdpa", attention, exc)
            attention = "sdpa"
            model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation=attention, **kwargs)
        self.attention = attention
        return model

    def _export(self, path: Path) -> Path:
        """MODEL_ENGINE=openvino-*: the OpenVINO export of the checkpoint at path, made once into HF_HOME (a minute
        for the 2.2B)."""
        bits = openvino.ENGINES[self.engine]
        out = openvino.export_dir(Path(loading.cache_dir(self.settings.hf_home)).expanduser(), self.model_id, bits)
        if not (out / openvino.DONE).exists():
            self._progress(f"преобразование модели для OpenVINO (int{bits}, один раз)…")
        try:
            return openvino.export(Path(path), out, bits)
        except Exception as exc:  # the export's own errors are many (NNCF, OpenVINO, disk)
            log.exception("OpenVINO export of %s failed", path)
            reason = type(exc).__name__
            raise ModelUnavailable(openvino.EXPORT_FAILED.format(model=self.model_id, reason=reason)) from exc

    def _generate(self, *args, **kwargs):
        run = ov_generation.generate if self.engine in openvino.ENGINES else generation.generate
        return run(*args, **kwargs)

    def _quantize(self, model) -> None:
        """MODEL_ENGINE=torch-int8: every Linear layer to int8 in place (seconds; loaded in bf16 where the CPU has
        it, so the load holds half the float32 bytes)."""
        t0 = time.perf_counter()
        n = quantize.quantize_int8(
            model, lambda done, total: self._progress(f"квантование модели в int8: {round(100 * done / total)} %"))
        self.dtype_name = "int8"
        log.info("engine torch-int8: %d Linear layers quantized (fbgemm) in %.1fs", n, time.perf_counter() - t0)

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
        modes = {self._splitting(JobKind.chat), self._splitting(JobKind.ocr)} if self.device == "cuda" else {False}
        scratch = JobResult(job_id="warm-up", kind=JobKind.region, status=JobStatus.ok)
        for splitting in sorted(modes):
            inputs = self._inputs(prompts.region_messages(), images=[image], splitting=splitting)
            self._generate(self.model, self.processor.tokenizer, inputs, scratch, device=self.device,
                           max_new_tokens=2, deadline=deadline, limit_s=600)
        frames = [np.asarray(image.resize((64, 48)))] * 2
        clip = video_mod.VideoFrames(frames, [0.0, 1.0], [0, 1], 1.0, 2.0, 2)
        inputs = self._inputs(prompts.chat_messages(MediaKind.video, [], "What happens?"), video=clip)
        self._generate(self.model, self.processor.tokenizer, inputs, scratch, device=self.device,
                       max_new_tokens=2, deadline=deadline, limit_s=600)
        self.translation.warm_up()
        log.info("warm-up done in %.1fs", time.perf_counter() - t0)

    def ensure_ready(self) -> None:
        if self.model is None and time.monotonic() - self._last_attempt > RETRY_LOAD_S:
            self.setup()  # the weights may have arrived in the cache since
        if self.model is None:
            raise ModelUnavailable(self.load_error or loading.failure_message(
                self.model_id, self.settings.hf_hub_offline, self.settings.hf_home))

    # ------------------------------------------------------------ helpers

    def _splitting(self, kind: JobKind) -> bool:
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
            # One list of videos per prompt, each a 4-D array: the form both transformers releases read the same
            # (5.5, the OpenVINO venv's, takes a flat list of frames for several videos).
            kwargs.update(videos=[[np.stack(video.frames)]], video_metadata=[[meta]], do_sample_frames=False)
        return self.processor(**kwargs)

    # ------------------------------------------------------------ jobs

    def predict(self, req: JobRequest, path: Path, result: JobResult | None = None, on_text=None,
                stop=None) -> JobResult:
        """Answer one job: result (by default a fresh one, started now) with the model's device, the video's
        frames, the tokens and times, and the clean answer. stop: a threading.Event; once set, generation ends at
        the next token and the result is cancelled, its answer partial."""
        self.ensure_ready()
        s = self.settings
        result = result or JobResult(job_id=req.job_id, kind=req.kind, status=JobStatus.ok, queued_at=req.queued_at,
                                     started_at=time.time())
        result = result.model_copy(update={"model_id": self.model_id, "device": self.device,
                                           "dtype": self.dtype_name})
        deadline = (result.started_at or time.time()) + s.job_time_limit
        limit = min(req.max_new_tokens or s.max_new_tokens, s.max_new_tokens)
        translation = self.translation.job(req.kind, req.answer_language)
        if translation is not None and req.kind == JobKind.chat:  # the model reads English only
            req = req.model_copy(update={"question": translation.question(req.question, stop),
                                         "history": translation.history(req.history, stop)})
        cache_key = None
        if req.media.kind == MediaKind.video:
            if req.kind != JobKind.chat:
                contract.require_image(req.media.kind)
            fps = float(getattr(self.processor.video_processor, "fps", 1) or 1)
            try:
                video = video_mod.decode_video(
                    path, target_fps=fps, max_frames=self.video_frame_limit(), max_seconds=s.max_video_seconds,
                    longest_edge=self._video_longest_edge(), deadline=deadline, time_limit_s=s.job_time_limit,
                    stop=stop, max_pixels=s.max_video_pixels,
                )
            except video_mod.Stopped:  # «Остановить» or a gone caller while decoding: no answer to give
                return result.model_copy(update={"status": JobStatus.cancelled})
            folder = s.results_dir / "frames" / req.job_id
            thumbs = media.write_thumbnails(video.frames, folder)
            # the web may run on another host: into the store (the local volume has them already)
            store_from_settings(s).put_results([(folder / n, f"frames/{req.job_id}/{n}") for n in thumbs])
            frames = [FrameInfo(index=i, timestamp=round(t, 3), thumbnail=f"frames/{req.job_id}/{name}")
                      for i, t, name in zip(video.indices, video.timestamps, thumbs, strict=True)]
            result = result.model_copy(update={"frames": frames})
            inputs = self._inputs(prompts.chat_messages(MediaKind.video, req.history, req.question), video=video)
            cache_key = f"{req.media.path}|video|{self.video_frame_limit()}|{fps:g}"
        else:
            image = media.load_image(path, s.max_image_pixels)
            splitting = self._splitting(req.kind)
            if req.kind == JobKind.chat:
                messages = prompts.chat_messages(MediaKind.image, req.history, req.question)
                cache_key = f"{req.media.path}|image|{int(splitting)}"
            elif req.kind == JobKind.ocr:
                messages = prompts.ocr_messages()
            else:
                image = media.crop_with_margin(image, req.box.as_tuple())
                messages = prompts.region_messages()
            inputs = self._inputs(messages, images=[image], splitting=splitting)
        result = self._generate(
            self.model, self.processor.tokenizer, inputs, result, device=self.device, max_new_tokens=limit,
            deadline=deadline, limit_s=s.job_time_limit, stop=stop, cache=self.cache, media_key=cache_key,
            on_text=translation.on_text(on_text, stop) if translation is not None else on_text,
            conversation=getattr(req, "conversation", None), loop_repeats=s.loop_repeats,
        )
        clean = clean_ocr if req.kind == JobKind.ocr else clean_answer
        english = clean(result.answer)
        if translation is None:
            return result.model_copy(update={"answer": english})
        return result.model_copy(update={
            "answer": translation.answer(english, stopped=result.status == JobStatus.cancelled),
            "answer_en": english if translation.stream is not None else None,
            "question_en": req.question if req.kind == JobKind.chat else None,
            "translation_note": translation.note,
        })
