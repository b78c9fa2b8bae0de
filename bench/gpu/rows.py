"""The figures of one `python -m bench.gpu` run (its JSON file) as rows of bench/results/results.json, and the
GPU table of docs/bench.md (between `<!-- gpu:begin -->` and `<!-- gpu:end -->`), both generated: the rows
carry the GPU machine's own description, the commit measured and the date of the run."""

from __future__ import annotations

import json

from bench.results import RESULTS, ROOT, Result, fmt

NAME = "gpu"
PUBLISHED_GB = 5.2  # the model card: GPU memory of 2.2B video inference
CACHE_TARGET = {"image": 0.20, "video": 0.10}  # follow-up TTFT / first-turn TTFT (as on the CPU)
JOB_LABELS = {"image": "фото, без разбиения", "image_split": "фото, разбиение", "ocr": "OCR (разбиение)",
              "region": "область", "video8": "видео 8 кадров", "video64": "видео 64 кадра"}
GPU_BEGIN, GPU_END = "<!-- gpu:begin -->", "<!-- gpu:end -->"


def _ok(section: dict | None) -> bool:
    return bool(section) and "error" not in section and "skipped" not in section


def rows(r: dict) -> list[Result]:
    env, sec = r["env"], r["sections"]
    gpu = env.get("device") or "нет GPU"
    out: list[Result] = []
    jobs = sec.get("jobs") or {}
    sized = {**(jobs if _ok(jobs) else {}), **(sec["small"] if _ok(sec.get("small")) else {})}
    for size, s in sized.items():
        if not isinstance(s, dict) or "jobs" not in s:
            continue
        for name, j in s["jobs"].items():
            if "ttft_s" not in j:
                continue
            label = f"GPU: {size} {s['dtype']}, {JOB_LABELS.get(name, name)}: время до первого токена"
            note = (f"{j['tokens_per_s']} ток/с; {j['prompt_tokens']} ток. запроса"
                    + (f", {j['frames']} кадров" if j.get("frames") else "")
                    + f"; пик {j['peak_gpu_gb']} ГБ; {gpu}, внимание {s['attention']}")
            out.append(Result(label, j["ttft_s"], "с", "", None, note, NAME, {"size": size, "job": name, **j}))
            if name == "video64" and size == "2.2B" and j.get("peak_gpu_gb") is not None:
                gb = j["peak_gpu_gb"]
                out.append(Result("GPU: 2.2B, видео 64 кадра, пик памяти GPU", gb, "ГБ",
                                  f"≈ {PUBLISHED_GB} ГБ (опубликовано)", gb <= PUBLISHED_GB * 1.15,
                                  f"{gpu}, {s['dtype']}; веса {s['weights_gb']} ГБ", NAME, j))
    cache = sec.get("cache") or {}
    for media in ("image", "video"):
        c = cache.get(media) if _ok(cache) else None
        if not c:
            continue
        same = all(c["identical"])
        what = "видео 64 кадра" if media == "video" else "фото, разбиение"
        out.append(Result(
            f"GPU: кэш промптов {_main_size(r)} bf16, {what}: TTFT уточнения / первого хода", c["ratio"], "×",
            f"≤ {CACHE_TARGET[media]:.2f}", c["ratio"] <= CACHE_TARGET[media],
            f"ходы {' / '.join(fmt(x) for x in c['ttft_s'])} с (без кэша "
            f"{' / '.join(fmt(x) for x in c['uncached_ttft_s'])}); из кэша {c['cached_tokens']} ток.; кэш "
            f"{c['cache_gb']} ГБ (граница {cache['cache_bound_gb']} ГБ), пик {c['peak_gpu_gb']} ГБ; bf16-токены "
            f"{'совпадают' if same else 'расходятся'}", NAME, c))
    fp32 = sec.get("fp32") or {}
    if _ok(fp32):
        turns = [t for m in ("image", "video") if m in fp32 for t in fp32[m]["identical"]]
        out.append(Result(f"GPU: кэш промптов {fp32['size']} fp32: ходы с теми же токенами, что без кэша",
                          sum(turns) / len(turns) if turns else None, "доля", "= 1", bool(turns) and all(turns),
                          "; ".join(f"{m}: {fp32[m]['identical']}, уточнение/первый {fp32[m]['ratio']}"
                                    for m in ("image", "video") if m in fp32), NAME, fp32))
    att = sec.get("attention") or {}
    base = (jobs.get(_main_size(r)) or {}).get("jobs", {}) if _ok(jobs) else {}
    for impl, a in att.items() if _ok(att) else ():
        if not isinstance(a, dict) or "jobs" not in a:
            continue
        for name, j in a["jobs"].items():
            ref = base.get(name, {}).get("ttft_s")
            if "ttft_s" in j and ref:
                out.append(Result(f"GPU: {_main_size(r)}, {JOB_LABELS[name]}: TTFT {impl} / sdpa",
                                  round(j["ttft_s"] / ref, 2), "×", "", None,
                                  f"{impl} {j['ttft_s']} с, {j['tokens_per_s']} ток/с; sdpa {ref} с, "
                                  f"{base[name].get('tokens_per_s')} ток/с", NAME, j))
    multi = sec.get("multi") or {}
    for n, m in (multi.get("rounds") or {}).items() if _ok(multi) else ():
        if n == "1" or "scaling" not in m:
            continue
        bounds = [p["cache_bound_gb"] for p in multi["processes"]]
        out.append(Result(
            f"GPU: {n} обработчика на одном GPU: пропускная способность / один", m["scaling"], "×", "", None,
            f"{m['jobs_per_s']} заданий/с (один: {multi['rounds']['1']['jobs_per_s']}); пик процесса "
            f"{max(x or 0 for x in m['peak_gpu_gb'])} ГБ, карта {m['card_gb']} ГБ; граница кэша у каждого {bounds} ГБ",
            NAME, m))
    stack = sec.get("stack") or {}
    if _ok(stack) or "ok" in stack:
        out.append(Result("GPU: стек (redis + web + worker на CUDA): ответы на все виды заданий",
                          1.0 if stack.get("ok") else 0.0, "да/нет", "= 1", bool(stack.get("ok")),
                          f"строка состояния: {stack.get('status_line', '—')[:120]}", NAME,
                          {k: v for k, v in stack.items() if k != "worker_log_tail"}))
    for name, s in sec.items():
        if isinstance(s, dict) and ("error" in s or "skipped" in s):
            out.append(Result(f"GPU: раздел {name}", None, "", "", None,
                              s.get("error") or s.get("skipped"), NAME))
    return out


def _main_size(r: dict) -> str:
    return next(iter(r["sections"].get("jobs") or {"2.2B": 0}), "2.2B")


def gpu_table(r: dict) -> str:
    """The docs' GPU table: one line per model and job."""
    env = r["env"]
    lines = [f"{env.get('device')} ({env.get('gpu_memory_gb')} ГБ), CUDA {env.get('cuda')}, torch {env.get('torch')}, "
             f"transformers {env.get('transformers')}; коммит {env.get('commit') or '?'}, {r['date']}; "
             f"{r['sections'].get('jobs', {}).get('seconds', '?')} с на раздел jobs.", "",
             "| модель | задание | ток. запроса | до первого токена, с | ток/с | пик GPU, ГБ | внимание |",
             "|---|---|---|---|---|---|---|"]
    sec = r["sections"]
    for size, s in {**(sec.get("jobs") or {}), **(sec.get("small") or {})}.items():
        if not isinstance(s, dict) or "jobs" not in s:
            continue
        for name, j in s["jobs"].items():
            if "ttft_s" in j:
                lines.append(f"| {size} {s['dtype']} | {JOB_LABELS.get(name, name)} | {j['prompt_tokens']} | "
                             f"{fmt(j['ttft_s'])} | {fmt(j['tokens_per_s'])} | {fmt(j['peak_gpu_gb'])} | "
                             f"{s['attention']} |")
    return "\n".join(lines)


def record(r: dict) -> list[str]:
    """Replace the gpu rows of bench/results/results.json with this run's, regenerate the tables."""
    from bench import results, table

    meta = {"commit": r["env"].get("commit"), "date": r["date"], "mode": "gpu", "machine": r["env"]["machine"]}
    fresh = rows(r)
    for row in fresh:
        row.meta = dict(meta)
    path = RESULTS / "results.json"
    payload = results.upgrade(json.loads(path.read_text()))
    kept = [x for x in payload["results"] if x.get("measure") != NAME]
    payload["results"] = kept + [results.row_dict(x) for x in fresh]
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    (RESULTS / "gpu.json").write_text(json.dumps(r, ensure_ascii=False, indent=1) + "\n")
    changed = [str(p) for p in table.update_docs(path)]
    docs = ROOT / "docs" / "bench.md"
    text = docs.read_text()
    if GPU_BEGIN in text:
        a, b = text.index(GPU_BEGIN) + len(GPU_BEGIN), text.index(GPU_END)
        docs.write_text(text[:a] + "\n" + gpu_table(r) + "\n" + text[b:])
        changed.append(str(docs))
    return [f"{len(fresh)} rows recorded", *changed]
