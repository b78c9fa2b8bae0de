"""The S3 media store against the local volume: how much latency MEDIA_STORE=s3 adds to a job, with the S3 server
(SeaweedFS `weed mini`) on this machine. Two stacks side by side, one worker each, the tiny model and 4 new tokens
(so the store's share is not hidden by generation): for a 1 MB image and a 20 MB video, a first job on a file never
seen (the web puts it into the store, the worker downloads it; for the video it also puts the frame thumbnails
back) and a follow-up on the same file (an API caller sends the file again: the web hashes it and finds it stored;
the worker reads its cached copy, the prompt cache answers). Each row: p50(s3) − p50(local) of the whole
(store the upload + run the job through JobClient), with the parts in the details."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from bench.harness import TEST_MODEL, WORK, stack
from bench.results import Result, summary_ms
from common.schemas import ChatRequest, JobStatus, Turn
from scripts import jobs

NAME = "s3_store"
log = logging.getLogger(__name__)
IMAGE_BYTES = 1 << 20
VIDEO_BYTES = 20 << 20
TARGET_MS = 50  # the goal for the image follow-up


def image_1mb(path: Path) -> Path:
    """A ~1 MB PNG (noise does not compress): big enough that moving it costs what a photo would."""
    import numpy as np
    from PIL import Image

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(1)
        Image.fromarray(rng.integers(0, 255, (600, 580, 3), dtype=np.uint8)).save(path, compress_level=1)
    return path


def video_20mb(path: Path) -> Path:
    """An H.264 mp4 of about 20 MB: 640×480 frames of coarse noise, encoded until the packets reach the size."""
    import av
    import numpy as np

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        written = 0
        while written < VIDEO_BYTES:
            small = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(small.repeat(4, 0).repeat(4, 1), format="rgb24")
            for packet in stream.encode(frame):
                written += packet.size
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def variant(src: Path, i: int, folder: Path) -> Path:
    """The same media with different bytes (a new content hash: a file the store and the worker never saw):
    a few bytes appended after the container's end, which decoders ignore."""
    dst = folder / f"{src.stem}-{i}{src.suffix}"
    dst.write_bytes(src.read_bytes() + f"variant-{i}-{time.time_ns()}".encode())
    return dst


def one_pair(store, client, f: Path, conv: str) -> tuple[dict, dict]:
    """A first job on f and its follow-up: upload_s (save_upload in this process: the web's code), job_s
    (JobClient.run), worker_s (the worker's own started→finished)."""
    out = []
    history: list[Turn] = []
    for question in ("What is it?", "And then?"):
        t0 = time.perf_counter()
        ref = store.save_upload(f)
        t1 = time.perf_counter()
        res = jobs.run(client, ChatRequest(media=ref, question=question, conversation=conv, history=history,
                                     max_new_tokens=4))
        t2 = time.perf_counter()
        assert res.status == JobStatus.ok, res.error
        assert not history or res.cached_tokens > 0, "the follow-up missed the prompt cache"
        history = [Turn(question=question, answer=res.answer)]
        out.append({"upload_s": t1 - t0, "job_s": t2 - t1, "worker_s": res.processing_s})
    return out[0], out[1]


def measure(sides: dict, src: Path, n: int, folder: Path) -> dict:
    """n pairs (first job, follow-up) on each side, interleaved (local, s3, local, s3 …) so that the machine's load
    weighs on both alike; each pair on new bytes (the first pair, a warm-up of connections and caches, is dropped)."""
    rows = {side: {"first": [], "follow": []} for side in sides}
    for i in range(n + 1):
        for side, (store, client) in sides.items():
            f = variant(src, i, folder)
            first, follow = one_pair(store, client, f, f"bench-{side}-{i}")
            f.unlink()
            if i:
                rows[side]["first"].append(first)
                rows[side]["follow"].append(follow)
    return rows


def _summ(rows: list[dict]) -> dict:
    return {
        "total": summary_ms([r["upload_s"] + r["job_s"] for r in rows]),
        "upload": summary_ms([r["upload_s"] for r in rows]),
        "job": summary_ms([r["job_s"] for r in rows]),
        "worker": summary_ms([r["worker_s"] for r in rows]),
    }


def run(quick: bool = False) -> list[Result]:
    from common.store import store_from_settings
    from scripts.s3server import S3Server
    from web.queue.client import JobClient

    media = WORK / "media"
    files = {"image": image_1mb(media / "noise-1mb.png"), "video": video_20mb(media / "noise-20mb.mp4")}
    counts = {"image": 10 if quick else 30, "video": 3 if quick else 8}
    scratch = WORK / "s3-variants"
    scratch.mkdir(parents=True, exist_ok=True)
    server = S3Server(WORK / "s3-server", log=WORK / "s3-server.log", bucket="smolvlm2-bench").start()
    s3env = server.settings_env()
    saved = {k: os.environ.get(k) for k in s3env if k.startswith("AWS_")}
    os.environ.update({k: s3env[k] for k in saved})
    env = dict(TORCH_THREADS="1", MAX_NEW_TOKENS="4")
    try:
        with stack("s3bench-local", TEST_MODEL, workers=1, **env) as local, \
                stack("s3bench-s3", TEST_MODEL, workers=1, **env, **s3env) as remote:
            sides = {}
            for side, st, over in (("local", local, {}), ("s3", remote, dict(
                    media_store="s3", s3_endpoint_url=server.endpoint, s3_bucket=server.bucket))):
                settings = st.settings_for(max_new_tokens=4, queue_wait_timeout=120, **over)
                sides[side] = (store_from_settings(settings), JobClient(settings))
            results = {kind: measure(sides, src, counts[kind], scratch) for kind, src in files.items()}
    finally:
        server.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    details: dict = {"server": "SeaweedFS weed mini 4.48 on this machine (loopback)", "model": "tiny, 4 tokens",
                     "image_bytes": files["image"].stat().st_size, "video_bytes": files["video"].stat().st_size,
                     "pairs": counts, "order": "local and s3 interleaved pair by pair"}
    rows = []
    labels = {"image": "изображение 1 МБ", "video": "видео 20 МБ"}
    for kind in files:
        for phase, word in (("first", "первое задание"), ("follow", "уточнение")):
            local, s3 = _summ(results[kind]["local"][phase]), _summ(results[kind]["s3"][phase])
            added = s3["total"]["p50_ms"] - local["total"]["p50_ms"]
            details[f"{kind}_{phase}"] = {"local": local, "s3": s3}
            parts = (f"локально p50 {local['total']['p50_ms']:.0f} мс, S3 {s3['total']['p50_ms']:.0f} мс; "
                     f"из добавки: загрузка {s3['upload']['p50_ms'] - local['upload']['p50_ms']:+.0f} мс, "
                     f"обработчик {s3['worker']['p50_ms'] - local['worker']['p50_ms']:+.0f} мс")
            target = f"≤ {TARGET_MS} мс" if (kind, phase) == ("image", "follow") else ""
            met = added <= TARGET_MS if target else None
            rows.append(Result(f"S3: добавка к задержке, {labels[kind]}, {word}", round(added, 1), "мс", target, met,
                               parts, NAME, details if not rows else {}))
    return rows


if __name__ == "__main__":
    from bench.harness import standalone

    logging.basicConfig(level=logging.WARNING)
    standalone(run)
