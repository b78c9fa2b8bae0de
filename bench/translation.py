"""The translation stage on CPU (worker/translate/): random-weight MarianMT translators with the published
Helsinki-NLP/opus-mt-en-ru / ru-en dimensions (77M parameters, 62518-word vocabulary; built offline by
scripts/build_test_translation.py --size opus-mt into bench/work/translation-*), loaded by the worker's own
Translator.load.

Measured, each precision in a fresh subprocess (its own peak RSS):
- decoding speed, 120 source → 141 new tokens (the issue's figures), for fp32, bf16 and the worker's int8 (dynamic,
  Linear layers), and CTranslate2 int8 when the package is there (the option not taken: docs/translation.md);
- translation time per English answer of 64 / 256 tokens (a Markdown answer with a list, numbers and a quote,
  sentence by sentence as the worker does it);
- the stream as the worker runs it: the English tokens of a 100-token answer arrive at the 2.2B's CPU decode rate
  (the real_size row of results.json, else 8.6 tokens/s), each ended sentence is translated between two tokens in
  the same thread: the lag from a sentence's last token to its Russian text, and the time added to the answer,
  as a share of the 2.2B's answer (its prefill + 100 tokens); the lag's percentiles pool it with a 500-token
  stream (the 100-token one ends only 2-3 sentences before its end);
- worker memory added by both translators (RSS after loading them minus before).
Random weights never end a sentence by themselves: each translation is made exactly 1.175× as long as its source
(120 → 141), the length ratio of the issue's measurement."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import WORK
from bench.results import RESULTS, ROOT, Result, percentile

NAME = "translation"
RATIO = 141 / 120
ANSWER_TOKENS = 100  # the streamed answer
LAG_TOKENS = 500  # a second, longer stream: more sentences for the lag's percentiles
DEFAULT_2B = {"prefill_s": 3.27, "decode_tok_s": 8.61}  # results.json real_size, 2.2B bf16 image, if absent
SENTENCES = [
    "The image shows a small kitchen with white cabinets and a wooden table in the middle of the room.",
    "On the table there is a red bowl with three green apples and a glass of orange juice.",
    "A large window on the left lets in bright morning light, and a plant stands on the windowsill.",
    'A sign on the wall reads "Fresh bread daily" in black letters.',
    "The room looks clean and tidy, about 12 m² in size.",
    "- A white refrigerator stands in the corner.",
    "- Two chairs are pushed under the table.",
    "- A clock on the wall shows 7:45.",
    "In the background, a door leads to a hallway with a blue carpet.",
    "Overall, the scene suggests a quiet breakfast at home before the start of a working day.",
]


def model_dir(direction: str) -> Path:
    return WORK / f"translation-{direction}"


def ensure_models() -> None:
    from scripts.build_test_translation import build

    for d in ("en-ru", "ru-en"):
        build(model_dir(d), d, size="opus-mt")


def english_answer(tokenizer, tokens: int) -> str:
    """Sentences of SENTENCES, cycled, until the answer has `tokens` tokens (the last one cut to fit)."""
    text, i = "", 0
    while True:
        sentence = SENTENCES[i % len(SENTENCES)]
        prev = SENTENCES[(i - 1) % len(SENTENCES)]
        sep = "\n" if sentence.startswith("-") or (text and prev.startswith("-")) else " "
        nxt = (text + sep + sentence) if text else sentence
        n = len(tokenizer(nxt, add_special_tokens=False)["input_ids"])
        if n >= tokens:
            words = sentence.split()
            while words and len(tokenizer(text + sep + " ".join(words),
                                          add_special_tokens=False)["input_ids"]) > tokens:
                words.pop()
            return (text + sep + " ".join(words)).strip() if words else text
        text, i = nxt, i + 1


# ---------------------------------------------------------------- child side


def _rss_mb(field: str = "VmRSS") -> float:
    """Resident memory (VmRSS), or its anonymous part (RssAnon: what the system cannot drop and read back)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(precision: str, quick: bool) -> dict:
    import torch
    import transformers  # noqa: F401 - imported before the baseline RSS

    from worker.translate.marian import Translator

    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "0") or 0) or torch.get_num_threads())
    out: dict = {"precision": precision, "torch_threads": torch.get_num_threads()}
    before, before_anon = _rss_mb(), _rss_mb("RssAnon")
    kw = dict(device="cpu", precision=precision, offline=True, hf_home=None, on_progress=lambda _: None,
              setting="TRANSLATION_MODEL", label="модели перевода")
    en_ru = Translator.load(str(model_dir("en-ru")), **kw)
    ru_en = Translator.load(str(model_dir("ru-en")), **kw)
    out["rss_added_mb"] = round(_rss_mb() - before, 1)
    out["anon_added_mb"] = round(_rss_mb("RssAnon") - before_anon, 1)
    del ru_en
    en_ru.length_for = lambda n: max(1, round(n * RATIO))
    tok = en_ru.tokenizer
    source = english_answer(tok, 120)
    en_ru.translate([source])  # warm-up: kernels chosen, weights paged in
    runs = []
    for _ in range(1 if quick else 3):
        t0 = time.perf_counter()
        en_ru.translate([source])
        runs.append(time.perf_counter() - t0)
    out["decode_120_141_s"] = round(min(runs), 3)
    out["tok_s"] = round(141 / min(runs), 1)
    if precision != "int8":
        return out

    from worker.translate.marian import MAX_INPUT_TOKENS
    from worker.translate.stream import AnswerStream
    from worker.translate.text import UnitTranslator

    units = UnitTranslator(en_ru, "en", MAX_INPUT_TOKENS)
    for n in (64, 256):
        text = english_answer(tok, n)
        times = []
        for _ in range(1 if quick else 3):
            stream = AnswerStream(units, None)
            t0 = time.perf_counter()
            stream.finish(text)
            times.append(time.perf_counter() - t0)
        out[f"answer_{n}_s"] = round(min(times), 3)
        out[f"answer_{n}_units"] = len(stream.done)

    rate = float(os.environ.get("BENCH_2B_DECODE_TOK_S", DEFAULT_2B["decode_tok_s"]))
    out["stream"] = _stream(units, tok, ANSWER_TOKENS, rate)
    if not quick:  # a longer answer for the lag's sample: the 100-token one ends only 2-3 sentences mid-stream
        longer = _stream(units, tok, LAG_TOKENS, rate)
        out["stream"]["lags_s"] += longer["lags_s"]
        out["lag_stream"] = longer
    return out


def _stream(units, tok, tokens: int, rate: float) -> dict:
    """The stream as the worker runs it: English tokens at the 2.2B's rate, translation in the same thread between
    two tokens."""
    import torch

    from worker.translate.stream import AnswerStream

    text = english_answer(tok, tokens)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    # The English arrives as the model writes it: by word, at the model's own token rate.
    words = text.split(" ")
    step = 1 / rate * len(ids) / len(words)
    stream = AnswerStream(units, lambda t, n, stable: None)
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # as in the worker's bf16 CPU decode (worker/model/generation.py)
    t0 = time.perf_counter()
    for i in range(1, len(words) + 1):
        time.sleep(step)  # the model's next token; a translation in feed() delays it, as in the worker
        stream.feed(" ".join(words[:i]), i)
    english_done = time.perf_counter()
    final = stream.finish(text)
    t_end = time.perf_counter()
    torch.backends.mkldnn.enabled = onednn
    return {
        "english_tokens": len(ids), "words": len(words), "rate_tok_s": rate,
        "generation_s": round(len(words) * step, 2), "wall_s": round(t_end - t0, 2),
        "final_tail_s": round(t_end - english_done, 3),
        "translate_s": round(stream.translate_s, 2), "units": len(stream.done),
        "lags_s": [round(x, 3) for x in stream.lags], "final_chars": len(final),
    }


# ---------------------------------------------------------------- parent side


def _run_child(precision: str, quick: bool, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.translation", "--child", precision] + (["--quick"] * quick),
                          cwd=ROOT, capture_output=True, text=True, timeout=1800, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{precision} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ct2(quick: bool) -> dict | None:
    """CTranslate2 int8 on the same model and input (its converter reads the transformers folder)."""
    try:
        import ctranslate2
    except ImportError:
        return None
    from transformers import AutoTokenizer

    out_dir = WORK / "translation-en-ru-ct2"
    if not (out_dir / "model.bin").exists():
        converter = ctranslate2.converters.TransformersConverter(str(model_dir("en-ru")))
        converter.convert(str(out_dir), quantization="int8", force=True)
    tok = AutoTokenizer.from_pretrained(model_dir("en-ru"))
    source = tok.convert_ids_to_tokens(tok(english_answer(tok, 120))["input_ids"])
    tr = ctranslate2.Translator(str(out_dir), device="cpu", compute_type="int8", intra_threads=os.cpu_count() or 2)
    tr.translate_batch([source], beam_size=1, max_decoding_length=8, min_decoding_length=8)
    runs = []
    for _ in range(1 if quick else 3):
        t0 = time.perf_counter()
        tr.translate_batch([source], beam_size=1, max_decoding_length=141, min_decoding_length=141)
        runs.append(time.perf_counter() - t0)
    return {"decode_120_141_s": round(min(runs), 3), "tok_s": round(141 / min(runs), 1)}


def reference_2b() -> dict:
    """The 2.2B's CPU prefill and decode rate (image, no splitting) from results.json's real_size rows."""
    try:
        rows = json.loads((RESULTS / "results.json").read_text())["results"]
        for r in rows:
            d = r.get("details") or {}
            cfg = d.get("config") or {}
            if r.get("measure") == "real_size" and cfg.get("size") == "2.2B" and cfg.get("media") == "image" \
                    and cfg.get("splitting") == "off":
                return {"prefill_s": d["prefill_s"], "decode_tok_s": d["decode_tok_s"], "source": r.get("commit")}
    except (OSError, ValueError, KeyError):
        pass
    return {**DEFAULT_2B, "source": "default"}


def run(quick: bool = False) -> list[Result]:
    ensure_models()
    ref = reference_2b()
    env = {"BENCH_2B_DECODE_TOK_S": str(ref["decode_tok_s"]), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    precisions = ["int8", "float32"] if quick else ["int8", "float32", "bfloat16"]
    got = {p: _run_child(p, quick, env) for p in precisions}
    ct2 = _ct2(quick)
    q, fp = got["int8"], got["float32"]
    s = q["stream"]
    answer_s = ref["prefill_s"] + s["english_tokens"] / ref["decode_tok_s"]
    added = s["wall_s"] - s["generation_s"]
    share = 100 * added / answer_s
    lags = s["lags_s"]
    p95 = percentile(lags, 95) if lags else None
    speeds = {p: got[p]["tok_s"] for p in precisions} | ({"ctranslate2_int8": ct2["tok_s"]} if ct2 else {})
    details = {"precisions": got, "ctranslate2": ct2, "reference_2b": ref, "ratio": RATIO}
    note_speed = ", ".join(f"{k.replace('float32', 'fp32').replace('bfloat16', 'bf16')} {v:g}"
                           for k, v in speeds.items())
    return [
        Result("Перевод: скорость int8 против fp32 (120 → 141 токен)", round(q["tok_s"] / fp["tok_s"], 2), "×",
               "≥ 3×", q["tok_s"] / fp["tok_s"] >= 3, f"ток/с: {note_speed}", NAME, details),
        Result("Перевод ответа в 64 токена (int8, CPU)", q["answer_64_s"], "с", "", None,
               f"{q['answer_64_units']} предложений; fp32 ~{q['answer_64_s'] * q['tok_s'] / fp['tok_s']:.1f} с", NAME),
        Result("Перевод ответа в 256 токенов (int8, CPU)", q["answer_256_s"], "с", "", None,
               f"{q['answer_256_units']} предложений", NAME),
        Result("Перевод: добавка ко времени ответа 2.2B на CPU", round(share, 1), "%", "≤ 10 %", share <= 10,
               f"+{added:.2f} с к {answer_s:.1f} с ({s['english_tokens']} токенов при {ref['decode_tok_s']:g} ток/с, "
               f"prefill {ref['prefill_s']:g} с); после конца английского {s['final_tail_s']:.2f} с", NAME),
        Result("Перевод: от конца предложения до русского текста, p95", p95, "с", "≤ 1 с",
               None if p95 is None else p95 <= 1,
               f"p50 {statistics.median(lags):.2f} с, {len(lags)} предложений; плюс доставка события ~5 мс"
               if lags else "нет предложений", NAME),
        Result("Перевод: память обработчика, обе модели (int8)", round(q["rss_added_mb"]), "МБ", "≤ 700 МБ",
               q["rss_added_mb"] <= 700,
               f"из них анонимной {q['anon_added_mb']:.0f} МБ; fp32 {fp['rss_added_mb']:.0f} МБ "
               f"(анонимной {fp['anon_added_mb']:.0f})", NAME),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], "--quick" in sys.argv)))
    else:
        from bench.harness import standalone

        standalone(run)
