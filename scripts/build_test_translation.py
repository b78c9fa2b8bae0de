"""Build randomly initialised MarianMT translators (ru→en, en→ru) with a real SentencePiece vocabulary, offline.

No hub can be reached, so the models are assembled here: two SentencePiece unigram models (source and target
language) are trained on the small corpus in data/translation-corpus/, their pieces make the joint vocab.json the
way OPUS-MT's does (</s> = 0, <unk> = 1, …, <pad> last), and a MarianMTModel with random weights is saved with
save_pretrained next to a MarianTokenizer. The result loads with AutoTokenizer / AutoModelForSeq2SeqLM like
Helsinki-NLP/opus-mt-ru-en and opus-mt-en-ru.

The output of random weights is noise, so it is steered to the target language: final_logits_bias rules out every
piece that is not of the target's script (a test can then tell a Russian answer from an English one).

    python scripts/build_test_translation.py OUT_DIR --direction en-ru|ru-en [--size tiny|opus-mt] [--seed N]
    python scripts/build_test_translation.py --all data       # both tiny models: data/test-translation-{ru-en,en-ru}
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import time
from pathlib import Path

SCRIPT_VERSION = 2
CORPUS = Path(__file__).resolve().parent.parent / "data" / "translation-corpus"
INFO_FILE = "build_info.json"
SPM_VOCAB = 2000  # pieces per language
# The published Helsinki-NLP/opus-mt-en-ru and opus-mt-ru-en configs (identical dimensions, 77M parameters):
# d_model 512, 6 + 6 layers, 8 heads, FFN 2048, a joint vocabulary of 62518 with <pad> = 62517, tied embeddings.
SIZES = {
    "tiny": {"d_model": 32, "layers": 2, "heads": 2, "ffn": 64, "vocab": None, "init_std": 1.0},
    "opus-mt": {"d_model": 512, "layers": 6, "heads": 8, "ffn": 2048, "vocab": 62518, "init_std": 0.02},
}
PUBLISHED_BEAMS = {"en-ru": 4, "ru-en": 6}  # their generation defaults (the worker decodes greedily)
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


def _lines(lang: str) -> list[str]:
    return [line for line in (CORPUS / f"{lang}.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def train_spm(lang: str, size: int = SPM_VOCAB) -> bytes:
    """A SentencePiece unigram model of one language, trained deterministically (one thread, fixed order)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_lines(lang)), model_writer=model, vocab_size=size, model_type="unigram",
        character_coverage=1.0, num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
        unk_id=1, bos_id=-1, eos_id=0, pad_id=-1, unk_surface=" ⁇ ", minloglevel=2,
    )
    return model.getvalue()


def _pieces(model: bytes) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]


def build_vocab(source: bytes, target: bytes, size: int | None) -> dict[str, int]:
    """OPUS-MT's layout: </s> 0, <unk> 1, the pieces of both languages, unreachable fillers up to size, <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in _pieces(source) + _pieces(target):
        vocab.setdefault(piece, len(vocab))
    if size is not None:
        assert len(vocab) < size, (len(vocab), size)
        for i in range(len(vocab), size - 1):
            vocab[f"<filler_{i}>"] = i
    vocab["<pad>"] = len(vocab)
    return vocab


def target_script_bias(vocab: dict[str, int], target: str) -> list[float]:
    """0 for </s> and the target script's pieces (and script-free punctuation and digits), -100 for the rest."""
    foreign = _LATIN if target == "ru" else _CYRILLIC
    own = _CYRILLIC if target == "ru" else _LATIN
    bias = [-100.0] * len(vocab)
    for piece, i in vocab.items():
        plain = piece.replace("▁", "")
        if piece == "</s>" or (not piece.startswith("<") and own.search(plain) and not foreign.search(plain)):
            bias[i] = 0.0
        elif plain and not piece.startswith("<") and not (foreign.search(plain) or own.search(plain)):
            bias[i] = -2.0  # punctuation and digits: allowed, but rarer than words
    return bias


def build(out_dir: Path, direction: str, size: str = "tiny", seed: int = 0) -> Path:
    """Build one translator into out_dir (skipped if an identical build is there); returns out_dir."""
    import torch
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    if direction not in PUBLISHED_BEAMS or size not in SIZES:
        raise ValueError(f"direction: {', '.join(PUBLISHED_BEAMS)}; size: {', '.join(SIZES)}")
    out_dir = Path(out_dir)
    corpus_sum = __import__("hashlib").sha256(b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.txt"))))
    info = {"script_version": SCRIPT_VERSION, "direction": direction, "size": size, "seed": seed,
            "corpus_sha256": corpus_sum.hexdigest()}
    try:
        if json.loads((out_dir / INFO_FILE).read_text()) == info:
            print(f"{out_dir}: {direction} {size} translator already built, skipping")
            return out_dir
    except (OSError, ValueError):
        pass
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / INFO_FILE).exists():
        raise FileExistsError(f"{out_dir} is not empty and was not made by this script; refusing to overwrite")

    start = time.perf_counter()
    src_lang, tgt_lang = direction.split("-")
    dims = SIZES[size]
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    source, target = train_spm(src_lang), train_spm(tgt_lang)
    (staging / "source.spm").write_bytes(source)
    (staging / "target.spm").write_bytes(target)
    vocab = build_vocab(source, target, dims["vocab"])
    (staging / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(staging / "source.spm"), target_spm=str(staging / "target.spm"),
        vocab=str(staging / "vocab.json"), source_lang=src_lang, target_lang=tgt_lang, model_max_length=512,
    )
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=dims["d_model"],
        encoder_layers=dims["layers"], decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"], decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"], decoder_ffn_dim=dims["ffn"], max_position_embeddings=512,
        activation_function="swish", scale_embedding=True, static_position_embeddings=True,
        share_encoder_decoder_embeddings=True, pad_token_id=pad, eos_token_id=0, bos_token_id=0,
        decoder_start_token_id=pad, forced_eos_token_id=0, architectures=["MarianMTModel"],
        # Tiny: weights large enough that different sources give different (still random) translations; with the
        # usual 0.02 the tiny decoder ignores its input and every answer would translate the same.
        init_std=dims["init_std"],
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.copy_(torch.tensor([target_script_bias(vocab, tgt_lang)]))
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]], bos_token_id=0, decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0,
        max_length=512, num_beams=PUBLISHED_BEAMS[direction], pad_token_id=pad,
    )
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for key in ("is_local", "local_files_only"):  # load-time flags save_pretrained may write out
        cfg = json.loads((staging / "tokenizer_config.json").read_text())
        if cfg.pop(key, None) is not None:
            (staging / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out_dir}: built {direction} {size} translator ({n / 1e6:.1f}M parameters) in "
          f"{time.perf_counter() - start:.1f} s")
    return out_dir


def build_all(data_dir: Path) -> list[Path]:
    """The two tiny test translators at data_dir/test-translation-ru-en and -en-ru."""
    return [build(Path(data_dir) / f"test-translation-{d}", d) for d in ("ru-en", "en-ru")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--all", action="store_true", help="both tiny test translators inside OUT_DIR")
    parser.add_argument("--direction", choices=list(PUBLISHED_BEAMS))
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.all:
        build_all(args.out_dir)
    elif args.direction:
        build(args.out_dir, args.direction, args.size, args.seed)
    else:
        parser.error("give --direction or --all")


if __name__ == "__main__":
    main()
