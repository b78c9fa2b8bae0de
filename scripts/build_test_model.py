"""Build a randomly initialised SmolVLM2-architecture model + processor, fully offline.

The hub cannot be reached, so the model is assembled from the reference processor/tokenizer files in
data/smolvlm2/ and the architecture numbers in its README. The tokenizer is a small byte-level BPE trained
here, padded with unreachable filler tokens to the real base vocabulary (49152) so that every special token
sits at its real id. The result loads with AutoProcessor / AutoModelForImageTextToText.from_pretrained.

    python scripts/build_test_model.py OUT_DIR [--size tiny|256M|500M|2.2B] [--seed N] [--dtype float32|bfloat16]
                                               [--device cpu|cuda]

--device cuda initialises the weights on the GPU (seconds instead of minutes for the 2.2B); the saved files are
the same kind either way, but random numbers differ between devices, so the build info records the device.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

# Bump when the output changes in any way, so cached CI builds are rebuilt.
SCRIPT_VERSION = 1
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "smolvlm2"
INFO_FILE = "build_info.json"
BASE_VOCAB = 49152  # real BPE vocabulary size; added tokens follow at 49152..49279
VOCAB_SIZE = 49280
BPE_TRAIN_VOCAB = 8192

# Field order of the text / vision numbers in ARCH.
_TEXT_KEYS = (
    "hidden_size num_hidden_layers num_attention_heads num_key_value_heads intermediate_size head_dim rope_theta"
)
_VISION_KEYS = "hidden_size num_hidden_layers num_attention_heads intermediate_size image_size patch_size"
# size: (reference folder, text numbers, vision numbers, scale_factor), in the order of the keys above; the real
# sizes come from data/smolvlm2/README.md. The 2.2B rope_theta is not public: 130000 is SmolLM2-1.7B's.
ARCH = {
    "tiny": ("SmolVLM2-256M-Video-Instruct", (64, 2, 4, 2, 128, 16, 1e5), (32, 2, 2, 64, 32, 8), 2),
    "256M": ("SmolVLM2-256M-Video-Instruct", (576, 30, 9, 3, 1536, 64, 1e5), (768, 12, 12, 3072, 512, 16), 4),
    "500M": ("SmolVLM2-500M-Video-Instruct", (960, 32, 15, 5, 2560, 64, 1e5), (768, 12, 12, 3072, 512, 16), 4),
    "2.2B": ("SmolVLM2-2.2B-Instruct", (2048, 24, 32, 32, 8192, 64, 1.3e5), (1152, 27, 16, 4304, 384, 14), 3),
}
# Tiny processor scaled like the real one: tile = vision image_size, full image 4 tiles wide, video frame = 1 tile.
TINY_PREPROCESSOR = {
    "size": {"longest_edge": 128},
    "max_image_size": {"longest_edge": 32},
    "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 32}},
}

_DOC_MODULES = """argparse asyncio base64 bisect calendar collections configparser contextlib csv dataclasses datetime
decimal difflib email enum fractions functools hashlib heapq http.client inspect io itertools json logging os pathlib
pickle pprint queue random re shutil socket sqlite3 statistics string subprocess tarfile tempfile textwrap threading
typing unittest urllib.parse uuid xml.etree.ElementTree zipfile""".split()
_SENTENCES = """
Describe this image.
What is shown in this picture?
Describe this video in detail.
A cat is sitting on a wooden table next to a cup of coffee.
The man in the red jacket is riding a bicycle.
There are three people walking along the beach at sunset.
The text on the sign says: Welcome to the city!
What happens at the end of the video?
How many cars are parked in front of the building?
Опиши это изображение.
Что изображено на этой картинке?
Опиши это видео подробно.
Кошка сидит на деревянном столе рядом с чашкой кофе.
Мужчина в красной куртке едет на велосипеде.
Три человека идут по пляжу на закате.
На вывеске написано: Добро пожаловать в город!
Что происходит в конце видео?
Сколько машин припарковано перед зданием?
Ответ: на изображении показана улица, деревья, небо и несколько домов.
В кадре видно, как собака бежит по зелёной траве, а потом прыгает через забор.
Этот документ содержит таблицу с данными о продажах за прошлый год.
Съешь же ещё этих мягких французских булок, да выпей чаю.
""".strip().splitlines()


def _corpus() -> list[str]:
    """Deterministic training text: stdlib docstrings (fixed module order, sorted names) plus sentences above."""
    texts = []
    for name in _DOC_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            obj = getattr(module, attr, None)
            if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isroutine(obj)):
                texts.append(inspect.getdoc(obj) or "")
    return texts + _SENTENCES * 20  # repeated so that Cyrillic gets real merges


def _filler_words():
    """Pronounceable pseudo-words (" bako", " dumeri"...), so random ids decode to readable text."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    for n in (2, 3):
        for combo in itertools.product(syllables, repeat=n):
            yield "Ġ" + "".join(combo)  # "Ġ" is the byte-level form of a leading space


def build_tokenizer(ref: Path, work: Path):
    """Train the BPE, pad it to BASE_VOCAB and load it with the real tokenizer_config.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer

    config = json.loads((ref / "tokenizer_config.json").read_text())
    added = {int(i): tok for i, tok in config["added_tokens_decoder"].items()}
    low = [added[i]["content"] for i in sorted(added) if i < BASE_VOCAB]  # <|endoftext|>, <|im_start|>... at 0..16
    assert [i for i in sorted(added) if i < BASE_VOCAB] == list(range(len(low)))

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_TRAIN_VOCAB,
        min_frequency=2,
        special_tokens=low,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)

    # Fillers are never the result of a merge, so BPE cannot produce them: they only pad the id space.
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    fillers = (w for w in _filler_words() if w not in vocab)
    for token_id in range(len(vocab), BASE_VOCAB):
        vocab[next(fillers)] = token_id
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_special_tokens(
        [AddedToken(added[i]["content"], special=True, normalized=False) for i in sorted(added) if i >= BASE_VOCAB]
    )
    high = {i: tok.token_to_id(added[i]["content"]) for i in added if i >= BASE_VOCAB}
    assert all(i == j for i, j in high.items()) and tok.get_vocab_size() == VOCAB_SIZE, "added tokens misplaced"

    # Loading through the real tokenizer_config.json gives exactly the settings of the real checkpoint.
    tok.save(str(work / "tokenizer.json"))
    shutil.copy(ref / "tokenizer_config.json", work / "tokenizer_config.json")
    tokenizer = AutoTokenizer.from_pretrained(work)
    for key in ("is_local", "local_files_only"):  # load-time flags that save_pretrained would write out
        tokenizer.init_kwargs.pop(key, None)
    return tokenizer


def build_processor(size: str, image_seq_len: int, work: Path):
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    ref = DATA_DIR / ARCH[size][0]
    pre = json.loads((ref / "preprocessor_config.json").read_text())
    for key in ("image_processor_type", "processor_class"):
        pre.pop(key)
    if size == "tiny":
        pre.update(TINY_PREPROCESSOR)
    expected = json.loads((ref / "processor_config.json").read_text())["image_seq_len"]
    assert size == "tiny" or image_seq_len == expected, (image_seq_len, expected)

    image_processor = SmolVLMImageProcessor(**{k: v for k, v in pre.items() if k != "video_sampling"})
    # Passing `size` together with `video_sampling` overwrites video_size with it (transformers' BC code), so
    # give the video processor its own frame size: the saved video config then holds video_size, fps, max_frames.
    video_processor = SmolVLMVideoProcessor(**{**pre, "size": pre["video_sampling"]["video_size"]})
    chat_template = json.loads((ref / "chat_template.json").read_text())["chat_template"]
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(ref, work),
        video_processor=video_processor,
        image_seq_len=image_seq_len,
        chat_template=chat_template,
    )


def build_model(size: str, seed: int, dtype: str, device: str = "cpu"):
    import torch
    from transformers import GenerationConfig, SmolVLMConfig, SmolVLMForConditionalGeneration

    ref_name, text, vision, scale_factor = ARCH[size]
    text = dict(zip(_TEXT_KEYS.split(), text, strict=True))
    vision = dict(zip(_VISION_KEYS.split(), vision, strict=True))
    config = SmolVLMConfig(
        # Untied lm_head, as in the real checkpoints (it is part of their 256M / 500M / 2.2B parameter counts).
        text_config={
            "model_type": "llama",
            **text,
            "vocab_size": VOCAB_SIZE,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "pad_token_id": 2,
            "tie_word_embeddings": False,
        },
        vision_config={"model_type": "smolvlm_vision", **vision},
        scale_factor=scale_factor,
        image_token_id=49190,
        tie_word_embeddings=False,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = SmolVLMForConditionalGeneration(config).to(getattr(torch, dtype)).eval()
    gen = json.loads((DATA_DIR / ref_name / "generation_config.json").read_text())
    model.generation_config = GenerationConfig(**{k: gen[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    return model


def _is_built(out_dir: Path, info: dict) -> bool:
    try:
        return json.loads((out_dir / INFO_FILE).read_text()) == info
    except (OSError, ValueError):
        return False


def build(out_dir: Path, size: str = "tiny", seed: int = 0, dtype: str = "float32", device: str = "cpu") -> Path:
    """Build the model into out_dir (skipped if an identical build is already there); returns out_dir."""
    if size not in ARCH:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(ARCH)}")
    out_dir = Path(out_dir)
    info = {"script_version": SCRIPT_VERSION, "size": size, "seed": seed, "dtype": dtype}
    if device != "cpu":  # CPU builds keep their old build info (and so their cached copies)
        info["device"] = device
    if _is_built(out_dir, info):
        print(f"{out_dir}: {size} model already built by script version {SCRIPT_VERSION}, skipping")
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / INFO_FILE).exists():
        raise FileExistsError(f"{out_dir} is not empty and was not made by this script; refusing to overwrite")

    start = time.perf_counter()
    _, _, (*_, image_size, patch_size), scale_factor = ARCH[size]
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    # Build next to the target and swap in at the end, so an interrupted build never looks complete.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory() as work:
        processor = build_processor(size, image_seq_len, Path(work))
        processor.save_pretrained(staging)
    build_model(size, seed, dtype, device).save_pretrained(staging)
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    print(f"{out_dir}: built {size} model in {time.perf_counter() - start:.1f} s")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", choices=list(ARCH), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    build(args.out_dir, args.size, args.seed, args.dtype, args.device)


if __name__ == "__main__":
    main()
