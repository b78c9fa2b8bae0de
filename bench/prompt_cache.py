"""The conversation prompt cache (worker/model/prompt_cache.py): what a follow-up question saves, whether it changes
the answer, how often the queue gets a follow-up to the worker holding the cache, and what the cache costs in
memory.

1. Follow-up TTFT (in-process Runtime, a fresh subprocess per model; real-size random-weight 256M and 2.2B,
   bf16 on CPU, torch's default threads): a 3-turn conversation about a 1280×960 image (splitting off) and
   about an 8-frame video, once with the prompt cache at its default bound and once with it off
   (PROMPT_CACHE_MB=0: the same Runtime, its cache swapped for an empty one), the uncached run first (it also
   warms each shape). Both runs get the same history (the uncached run's answers), so each turn's prompt is
   the same token for token. TTFT = JobResult.first_token_at − start; the ratio is the slower follow-up
   over the first turn (a full prefill in both runs: the smaller of the two). Tokens are compared per turn
   (generated ids); bf16 on the CPU may differ slightly, because the cached prefix was computed in a pass of
   another length (other blocking of the matmuls).
   Random weights loop: the loop guard is off and every turn decodes NEW_TOKENS tokens.
2. Routing (the real stack, scripts/stack.py: redis-server + 2 `python -m worker`, TORCH_THREADS=1 each, the
   256M model): 20 conversations × 3 turns about 20 different images, all first turns submitted at once
   through JobClient (as 20 users would), each follow-up as soon as its answer arrives. Hit rate = follow-ups
   with cached_tokens > 0 / all follow-ups; wall time against the same run with PROMPT_CACHE_MB=0 workers.
3. Memory: after the conversations, both workers of the cached stack get long-history conversations (each a
   new image) until their cache is full (heartbeat cache_bytes at the bound: 1024 MB, the CPU default); peak
   RSS = the worker's VmHWM, next to the uncached stack's workers after the same conversations."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import WORK, put_media, stack
from bench.machine import LoadMonitor, calibrate, wait_idle
from bench.real_size import ensure_model, media_files, model_dir, warm_page_cache
from bench.results import ROOT, Result
from common.schemas import JobStatus
from scripts import jobs

NAME = "prompt_cache"
NEW_TOKENS = 16
TURNS = {
    "image": ["Describe this image.", "What colour is the largest object?", "Is there any text in the picture?"],
    "video": ["Describe this video.", "What moves in the video?", "What happens at the end?"],
}
TARGET = {"image": 0.20, "video": 0.10}  # follow-up TTFT / first-turn TTFT
VIDEO_FRAMES = 8


# ---------------------------------------------------------------- 1. follow-up TTFT, in-process


def _conversation(rt, media: str, path: Path, history_from: list[str] | None, capture, turns: int = 3,
                  first_tokens: int | None = None, name: str | None = None) -> list[dict]:
    """A conversation of `turns` turns; history_from: the answers to put in the history (None: this run's own);
    first_tokens: the first answer's length (default NEW_TOKENS)."""
    from common.schemas import ChatRequest, MediaKind, MediaRef, Turn

    kind = MediaKind.video if media == "video" else MediaKind.image
    ref = MediaRef(path=path.name, kind=kind)
    out, history = [], []
    for i, question in enumerate(TURNS[media][:turns]):
        req = ChatRequest(media=ref, question=question, history=history, conversation=name or f"bench-{media}",
                          max_new_tokens=first_tokens if i == 0 and first_tokens else None)
        start = time.time()
        pred = rt.predict(req, path)
        end = time.time()
        ft = pred.first_token_at or end
        out.append({"ttft_s": round(ft - start, 3), "total_s": round(end - start, 3),
                    "prompt_tokens": pred.prompt_tokens, "cached_tokens": pred.cached_tokens,
                    "new_tokens": pred.prompt_tokens - pred.cached_tokens,
                    "generated_tokens": pred.generated_tokens, "ids": list(capture.last.ids), "answer": pred.answer})
        answer = history_from[i] if history_from is not None else pred.answer
        history = [*history, Turn(question=question, answer=answer)]
    return out


def _compare(rt, media: str, path: Path, capture) -> dict:
    """The conversation without the cache, then with it (the same history): TTFT and tokens per turn."""
    from worker.model.prompt_cache import PromptCache

    cache = rt.cache
    rt.cache = PromptCache(0)
    plain = _conversation(rt, media, path, None, capture)
    rt.cache = cache
    cached = _conversation(rt, media, path, [t["answer"] for t in plain], capture)
    entries, nbytes = cache.stats()
    cache.drop(conversation=f"bench-{media}")
    for p, c in zip(plain, cached, strict=True):
        c["identical"] = p["ids"] == c["ids"]
        c["first_diff"] = _first_diff(p["ids"], c["ids"])
        c["uncached_ttft_s"] = p["ttft_s"]
        c["same_prompt_tokens"] = p["prompt_tokens"] == c["prompt_tokens"]
    for t in (*plain, *cached):
        del t["ids"], t["answer"]
    # The first turn is a full prefill in both runs (a miss): the smaller of the two is the reference.
    first = min(cached[0]["ttft_s"], plain[0]["ttft_s"])
    return {"turns": cached, "uncached_turns": plain, "first_turn_ttft_s": first,
            "ratio": round(max(t["ttft_s"] for t in cached[1:]) / first, 3),
            "cache_entries": entries, "cache_mb": round(nbytes / 2**20, 1)}


def _first_diff(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def capture_generated():
    """Patch the worker's generation for a bench child: no cycle cut (random weights loop), and the returned
    class's .last is the TextSoFar of the last job (its generated ids)."""
    from worker.model import generation, ov_generation

    generation.find_cycle = lambda *a, **k: None  # the OpenVINO loop checks through generation.Stop too

    class Capture(generation.TextSoFar):
        last = None

        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            Capture.last = self

    generation.TextSoFar = ov_generation.TextSoFar = Capture
    return Capture


def child(size: str, media_kinds: list[str], engine: str = "torch") -> dict:
    import torch

    from common.settings import Settings
    from worker import runtime as rt_mod
    from worker.model import device

    Capture = capture_generated()
    image, video = media_files()
    s = Settings(_env_file=None, smolvlm2_model_id=str(model_dir(size)), model_device="cpu", model_dtype="bfloat16",
                 image_splitting="off", video_max_frames=VIDEO_FRAMES, max_new_tokens=NEW_TOKENS,
                 prompt_cache_mb=device.CPU_PROMPT_CACHE_MB, hf_hub_offline=True, media_dir=WORK / "media",
                 job_time_limit=900, model_engine=engine,
                 hf_home=str(WORK / "hf-openvino") if engine.startswith("openvino") else None)
    rt = rt_mod.Runtime(s)
    t0 = time.perf_counter()
    assert rt.setup(), rt.load_error
    out = {"size": size, "setup_s": round(time.perf_counter() - t0, 2), "torch_threads": torch.get_num_threads(),
           "cache_mb": rt.cache.max_bytes / 2**20, "media": {}}
    for media in media_kinds:
        out["media"][media] = _compare(rt, media, video if media == "video" else image, Capture)
        if media == "image":
            # Random weights answer in tokens that do not come back the same when the answer text is tokenized
            # again (filler vocabulary, the loop clean-up), so a follow-up recomputes the whole previous answer.
            # A trained model's answer comes back token for token: then only the last answer token, the turn
            # markers and the new question are new. A one-token first answer gives that follow-up here.
            short = _conversation(rt, media, image, None, Capture, turns=2, first_tokens=1, name="bench-short")
            rt.cache.drop(conversation="bench-short")
            out["media"][media]["short_answer_follow_up"] = {
                k: short[1][k] for k in ("ttft_s", "prompt_tokens", "cached_tokens", "new_tokens")}
    if size == "256M" and "image" in media_kinds and engine == "torch":
        # The same check in fp32: a difference there would be the cache's, not bf16 rounding's.
        del rt
        rt32 = rt_mod.Runtime(s.model_copy(update={"model_dtype": "float32"}))
        assert rt32.setup(), rt32.load_error
        fp32 = _compare(rt32, "image", image, Capture)
        out["fp32_image_identical"] = [t["identical"] for t in fp32["turns"]]
    return out


def _run_child(size: str, media_kinds: list[str], engine: str = "torch") -> dict:
    """One model's 3-turn conversations in a fresh process; engine: MODEL_ENGINE (bench/cpu_engines.py: torch-int8,
    openvino-int4 / -int8 in the OpenVINO venv, exported once into bench/work/hf-openvino)."""
    python = ROOT / ".venv-ov" / "bin" / "python" if engine.startswith("openvino") else Path(sys.executable)
    out = subprocess.run([str(python), "-m", "bench.prompt_cache", "--child", size, ",".join(media_kinds), engine],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ttft_rows(quick: bool) -> list[Result]:
    from bench.real_size import _enough_memory

    sizes = ["256M"] if quick else ["256M", "2.2B"]
    rows = []
    for size in sizes:
        if not _enough_memory(size):
            rows.append(Result(f"Кэш промптов {size}: не запускалось", None, "", "", None,
                               "мало памяти или места на диске", NAME))
            continue
        ensure_model(size)
        wait_idle()
        warm_page_cache(model_dir(size))
        calib = calibrate()
        print(f"  {size}: 3-turn conversations, cache on/off …", file=sys.stderr, flush=True)
        with LoadMonitor() as mon:
            r = _run_child(size, ["image", "video"])
        meta = {**mon.meta(), "calib": calib, "torch_threads": r["torch_threads"]}
        for media, m in r["media"].items():
            t = m["turns"]
            what = "фото, разбиение off" if media == "image" else f"видео {VIDEO_FRAMES} кадров"
            same = all(x["identical"] for x in t)
            diffs = ", ".join(f"ход {i + 1} с {x['first_diff']}-го токена" for i, x in enumerate(t)
                              if not x["identical"])
            note = (f"ход 1 {m['first_turn_ttft_s']:.2f} с ({t[0]['prompt_tokens']} ток.); ходы 2–3 "
                    f"{t[1]['ttft_s']:.2f} / {t[2]['ttft_s']:.2f} с (новых токенов {t[1]['new_tokens']} / "
                    f"{t[2]['new_tokens']} из {t[1]['prompt_tokens']} / {t[2]['prompt_tokens']}; без кэша "
                    f"{t[1]['uncached_ttft_s']:.2f} / {t[2]['uncached_ttft_s']:.2f} с)")
            short = m.get("short_answer_follow_up")
            if short:
                note += (f"; уточнение после ответа, совпавшего с токенами генерации (как у обученной модели): "
                         f"{short['ttft_s']:.2f} с, {short['ttft_s'] / m['first_turn_ttft_s']:.2f}× "
                         f"({short['new_tokens']} новых ток.)")
            note += f"; bf16, {r['torch_threads']} п."
            rows.append(Result(f"Кэш промптов {size}, {what}: TTFT уточнения / первого хода", m["ratio"], "×",
                               f"≤ {TARGET[media]:.2f}", m["ratio"] <= TARGET[media], note, NAME,
                               {**m, "size": size, "setup_s": r["setup_s"]}, meta))
            agree = "по ходам: " + ", ".join("да" if x["identical"] else "нет" for x in t)
            if not same:
                agree += f" (расходятся: {diffs}; случайные веса дают почти равные логиты, и разница округления bf16 " \
                         "между полным проходом и проходом по кэшу меняет argmax)"
            if media == "image" and r.get("fp32_image_identical"):
                agree += "; в fp32: " + ", ".join("да" if x else "нет" for x in r["fp32_image_identical"])
            rows.append(Result(f"Кэш промптов {size}, {what}: токены ответа с кэшем и без совпадают", None, "",
                               "да", same, agree, NAME, {}, meta))
    return rows


# ---------------------------------------------------------------- 2. routing on the stack, 3. memory

CONVERSATIONS = 20
STACK_TOKENS = 16
FILL_TURNS = {False: 6, True: 1}  # history turns of a fill conversation (~600 tokens each), full / quick


def conversation_images(n: int) -> list[Path]:
    """n different 640×480 pictures (each its own media, hence its own cache entry and affinity)."""
    from PIL import Image, ImageDraw

    folder = WORK / "media" / "conversations"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"scene-{i:03d}.png"
        if not path.exists():
            im = Image.new("RGB", (640, 480), (120 + i * 5 % 100, 180, 230 - i * 7 % 100))
            d = ImageDraw.Draw(im)
            d.rectangle((0, 320, 640, 480), fill=(60, 140 + i * 3 % 80, 60))
            d.rectangle((40 + i * 13 % 400, 150, 160 + i * 13 % 400, 270), fill=(200, 30 + i * 11 % 200, 30))
            d.ellipse((380 - i * 7 % 300, 60, 520 - i * 7 % 300, 200), fill=(30, 60, 200))
            d.text((20, 20), f"scene {i}", fill=(0, 0, 0))
            im.save(path)
        paths.append(path)
    return paths


def route_reason(client, req) -> str:
    """Why JobClient.route would send req where it does (its checks, read just before the submit)."""
    from common import keys
    from common.schemas import WorkerInfo, WorkerState

    holder = client.redis.get(keys.affinity(req.media.path))
    if not holder:
        return "no_holder"
    raw = client.redis.get(keys.worker(holder))
    info = WorkerInfo.model_validate_json(raw) if raw else None
    if info is None or not info.queue or info.state not in (WorkerState.ready, WorkerState.busy):
        return "holder_gone"
    if info.backlog > 0:
        return "holder_backlog"
    if info.state == WorkerState.busy and any(w.state == WorkerState.ready for w in client.workers_snapshot(0)
                                              if w.name != holder):
        return "holder_busy_other_ready"
    return "holder"


async def _one_conversation(client, ref, i: int, questions: list[str], log: list[dict]) -> None:
    from common.schemas import ChatRequest, Turn

    history = []
    for turn, q in enumerate(questions):
        req = ChatRequest(media=ref, question=q, history=history, conversation=f"conv{i}",
                          max_new_tokens=STACK_TOKENS)

        def send(req=req) -> tuple[str, str]:
            reason = route_reason(client, req)
            return client.submit(req), reason

        queue, reason = await asyncio.to_thread(send)
        result = None
        async for upd in client.afollow(req):
            if upd.result is not None:
                result = upd.result
        assert result is not None and result.status == JobStatus.ok, result
        log.append({"conversation": i, "turn": turn + 1, "queue": queue, "route": reason, "worker": result.worker,
                    "cached_tokens": result.cached_tokens, "prompt_tokens": result.prompt_tokens,
                    "ttft_s": round(result.first_token_at - result.started_at, 3) if result.first_token_at else None,
                    "wait_s": round(result.queue_wait_s or 0, 3), "processing_s": round(result.processing_s, 3),
                    "answer": result.answer})
        history = [*history, Turn(question=q, answer=result.answer)]


def _interleaved(client, refs, questions) -> tuple[float, list[dict]]:
    log: list[dict] = []

    async def main() -> None:
        await asyncio.gather(*(_one_conversation(client, ref, i, questions, log) for i, ref in enumerate(refs)))

    t0 = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0, log


def _vm(pid: int, field: str) -> float | None:
    """A process's VmHWM / VmRSS, GB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    return None


def _reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux ≥ 4.0; the owner may): the load's peak (fp32 weights
    cast to bf16: both copies for a moment) is not what serving costs."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _heartbeats(st) -> dict[str, object]:
    from common import events

    return {w.name: w for w in events.list_workers(events.connect(st.redis.url))}


def _fill(st, client, max_jobs: int, turns: int) -> dict:
    """Long-history conversations (each a new image) on every worker at once, through its own queue, until its
    cache stops growing (the bound is reached: the LRU evicts) or max_jobs per worker."""
    from common.schemas import ChatRequest, Turn

    settings = st.settings_for(max_new_tokens=1, queue_wait_timeout=600)
    words = ("the red square stands on green grass under a blue sky while a small circle moves slowly "
             "across the bright picture and nothing else happens in the quiet scene").split()
    text = " ".join(words[(i * 7) % len(words)] for i in range(170))  # ≈ 1000 characters
    history = [Turn(question=text, answer=text) for _ in range(turns)]
    workers = {name: w.queue for name, w in _heartbeats(st).items()}
    images = iter(conversation_images(CONVERSATIONS + max_jobs * len(workers))[CONVERSATIONS:])
    progress = {name: [] for name in workers}
    done = set()
    for _ in range(max_jobs):
        reqs = []
        for name, queue in workers.items():
            if name in done:
                continue
            ref = put_media(settings, next(images))
            req = ChatRequest(media=ref, question="Describe it.",
                              history=history, max_new_tokens=1, conversation=f"fill{len(reqs)}{time.time_ns()}")
            client.submit(req, queue=queue)
            reqs.append((name, req))
        for _, req in reqs:
            for upd in jobs.follow(client, req):
                if upd.result is not None:
                    assert upd.result.status == JobStatus.ok, upd.result
        time.sleep(1.5)  # a heartbeat (every 0.5 s) with the new cache size
        beats = _heartbeats(st)
        for name, _ in reqs:
            sizes = progress[name]
            sizes.append(beats[name].cache_bytes)
            if len(sizes) >= 2 and sizes[-1] <= sizes[-2]:  # no growth: an entry went out, at the bound
                done.add(name)
        if len(done) == len(workers):
            break
    return {name: {"cache_mb": [round(b / 2**20) for b in sizes], "full": name in done,
                   "entries": _heartbeats(st)[name].cache_entries} for name, sizes in progress.items()}


def _stack_run(label: str, model: Path, refs_images: list[Path], questions: list[str], cache_mb: str,
               fill: int = 0, fill_turns: int = 0) -> dict:
    from web.queue.client import JobClient

    with stack(f"prompt-cache-{label}", model, workers=2, TORCH_THREADS="1", MAX_NEW_TOKENS=str(STACK_TOKENS),
               JOB_TIME_LIMIT="600", PROMPT_CACHE_MB=cache_mb, IMAGE_SPLITTING="off") as st:
        settings = st.settings_for(max_new_tokens=STACK_TOKENS, queue_wait_timeout=600)
        client = JobClient(settings)
        refs = [put_media(settings, p) for p in refs_images]
        load_peak = {svc.name: _vm(svc.pid, "VmHWM") for svc in st.workers}
        reset = all([_reset_peak(svc.pid) for svc in st.workers])
        rss_ready = {svc.name: _vm(svc.pid, "VmRSS") for svc in st.workers}
        wall, log = _interleaved(client, refs, questions)
        out = {"wall_s": round(wall, 2), "log": log, "load_peak_rss_gb": load_peak, "peak_reset": reset,
               "rss_ready_gb": rss_ready, "peak_rss_gb": {svc.name: _vm(svc.pid, "VmHWM") for svc in st.workers}}
        if fill:
            out["fill"] = _fill(st, client, fill, fill_turns)
            out["filled_peak_rss_gb"] = {svc.name: _vm(svc.pid, "VmHWM") for svc in st.workers}
            out["filled_rss_gb"] = {svc.name: _vm(svc.pid, "VmRSS") for svc in st.workers}
    return out


ROUTE_RU = {"holder": "к владельцу", "holder_backlog": "у владельца уже ждёт задание",
            "holder_busy_other_ready": "владелец занят, другой свободен", "no_holder": "владельца нет",
            "holder_gone": "владелец недоступен"}


def _merged_meta(*metas: dict) -> dict:
    """One row from several stretches: the first one's date, the highest load, every busy process."""
    loads = [m["load"]["max_1min"] for m in metas if m["load"].get("max_1min") is not None]
    return {**metas[0], "load": {"start": metas[0]["load"]["start"], "end": metas[-1]["load"]["end"],
                                 "max_1min": max(loads) if loads else None},
            "busy": sorted({b for m in metas for b in m["busy"]}),
            "busy_cores": max(m.get("busy_cores", 0) for m in metas)}


def _median_ttft(log: list[dict], follow_up: bool) -> float | None:
    xs = [r["ttft_s"] for r in log if (r["turn"] > 1) == follow_up and r["ttft_s"] is not None]
    return round(statistics.median(xs), 3) if xs else None


def stack_rows(quick: bool) -> list[Result]:
    from common.queue import QUEUE
    from worker.model.device import CPU_PROMPT_CACHE_MB

    n = 8 if quick else CONVERSATIONS
    cache_mb = 64 if quick else CPU_PROMPT_CACHE_MB  # quick: a small bound, filled in seconds
    model = ensure_model("256M")
    warm_page_cache(model_dir("256M"))
    images = conversation_images(n)
    runs, metas = {}, {}
    for label, mb in (("off", "0"), ("on", str(cache_mb))):
        wait_idle()
        calib = calibrate()
        print(f"  2 workers, {n} conversations × 3 turns, cache {label} …", file=sys.stderr, flush=True)
        with LoadMonitor() as mon:
            # Without the cache the long-history jobs run too (3 per worker: nothing accumulates), so that the
            # peak of their own prefill is not counted as the cache's.
            runs[label] = _stack_run(label, model, images, TURNS["image"], mb,
                                     fill=(8 if quick else 24) if label == "on" else 3, fill_turns=FILL_TURNS[quick])
        metas[label] = {**mon.meta(), "calib": calib, "torch_threads": 1}
    on, off = runs["on"], runs["off"]
    follow = [r for r in on["log"] if r["turn"] > 1]
    hits = sum(r["cached_tokens"] > 0 for r in follow)
    rate = hits / len(follow)
    own = sum(r["queue"] != QUEUE for r in follow)
    reasons: dict[str, dict] = {}
    for r in follow:
        x = reasons.setdefault(r["route"], {"n": 0, "hits": 0})
        x["n"] += 1
        x["hits"] += r["cached_tokens"] > 0
    key = lambda r: (r["conversation"], r["turn"])  # noqa: E731
    same = sum(a["answer"] == b["answer"] for a, b in zip(sorted(on["log"], key=key), sorted(off["log"], key=key),
                                                           strict=True))
    ttft = {f"{label}_{what}": _median_ttft(runs[label]["log"], what == "follow_up")
            for label in ("on", "off") for what in ("first", "follow_up")}
    details = {"conversations": n, "turns": 3, "model": "256M (random weights), bf16, splitting off",
               "max_new_tokens": STACK_TOKENS, "cache_mb": cache_mb, "hits": hits, "follow_ups": len(follow),
               "routed_to_holder_queue": own, "route_reasons": reasons, "wall_on_s": on["wall_s"],
               "wall_off_s": off["wall_s"], "median_ttft_s": ttft, "same_answers": f"{same}/{len(on['log'])}",
               "log_on": [{k: v for k, v in r.items() if k != "answer"} for r in on["log"]],
               "log_off": [{k: v for k, v in r.items() if k != "answer"} for r in off["log"]]}
    why = "; ".join(f"{ROUTE_RU.get(k, k)} {v['n']} (попаданий {v['hits']})" for k, v in
                    sorted(reasons.items(), key=lambda kv: -kv[1]["n"]))
    rows = [
        Result(f"Кэш промптов, 2 обработчика: попадания уточнений ({n} диалогов × 3)", round(rate * 100, 1), "%",
               "≥ 90 %", rate >= 0.9,
               f"{hits}/{len(follow)}; маршрут: {why}; 256M bf16, по 1 потоку; TTFT уточнения (медиана, часы "
               f"обработчика) {ttft['on_follow_up']} с, без кэша {ttft['off_follow_up']} с", NAME, details,
               metas["on"]),
        Result(f"Кэш промптов, 2 обработчика: {n} диалогов × 3, время без кэша / с кэшем",
               round(off["wall_s"] / on["wall_s"], 2), "×", "", None,
               f"{off['wall_s']:.1f} с → {on['wall_s']:.1f} с (всё в одном прогоне); ответы совпали "
               f"{same}/{len(on['log'])}", NAME, {}, _merged_meta(metas["off"], metas["on"])),
    ]
    fill = on.get("fill")
    if fill:
        peak = max(on["filled_peak_rss_gb"].values())
        at_bound = all(f["full"] and f["cache_mb"][-1] >= 0.8 * cache_mb for f in fill.values())
        since = "с готовности" if on["peak_reset"] else "с запуска (сброс VmHWM не удался)"
        rows.append(Result(
            f"Кэш промптов: пиковый RSS обработчика с кэшем на границе ({cache_mb} МБ)", peak, "ГБ", "", None,
            f"256M bf16, пик {since}; кэш {' и '.join(str(f['cache_mb'][-1]) for f in fill.values())} МБ"
            f"{'' if at_bound else ' (граница не достигнута)'}; готовый обработчик "
            f"{max(on['rss_ready_gb'].values()):.2f} ГБ; без кэша после тех же диалогов пик "
            f"{max(off['peak_rss_gb'].values()):.2f} ГБ, после длинных {max(off['filled_peak_rss_gb'].values()):.2f} "
            f"ГБ; загрузка (fp32 → bf16) "
            f"{max(on['load_peak_rss_gb'].values()):.2f} ГБ",
            NAME, {"fill": fill, "at_bound": at_bound, **{f"{k}_on": on[k] for k in (
                "load_peak_rss_gb", "rss_ready_gb", "peak_rss_gb", "filled_peak_rss_gb", "filled_rss_gb")},
                **{f"{k}_off": off[k] for k in ("load_peak_rss_gb", "rss_ready_gb", "peak_rss_gb",
                                                "filled_peak_rss_gb", "filled_rss_gb")}},
            metas["on"]))
    return rows


def run(quick: bool = False) -> list[Result]:
    media_files()
    return [*ttft_rows(quick), *stack_rows(quick)]


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3].split(","), *sys.argv[4:])))
    else:
        from bench.harness import standalone

        standalone(run)
