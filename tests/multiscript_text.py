"""Non-Latin text for tests, real where this machine has it, and tokenizers of other families.

Real text comes from files that ship with Python and Debian (the CJK codec test texts of
CPython, the Chinese/Japanese/Korean manual pages of man-db and passwd, glibc's Persian
and Uyghur locale sources); short literal strings cover what a machine lacks, so every
test runs everywhere.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import sysconfig
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from longattn_assets.model.tokenizer import ModelTokenizer, text_tokenizer

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
ARABIC = re.compile(r"[\u0600-\u06ff]")
SPECIAL_STRINGS = "<|im_start|>user <|begin_of_text|> <s> </s> <|endoftext|> <|eot_id|> <unk>"
LITERALS = {
    # an emoji ZWJ family, a flag, a skin tone, combining marks, Devanagari, RTL, NFC-unstable text
    "emoji": "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇯🇵 Japan, 🧑🏿‍🚀 astronaut. ",
    "combining": "e\u0301 a\u0300\u0323 Z\u0351\u0317\u0336 n\u0303 \u0915\u094d\u0937 q\u0307\u0323 ",
    "arabic": "النص العربي يُكتب من اليمين إلى اليسار، مع التشكيل: مَرْحَبًا بِكُمْ. ",
    "cjk": "長い文脈のデータ選択。中文的长上下文数据选择。한국어 긴 문맥 데이터 선택. ",
}


def _man_text(folder: Path) -> list[str]:
    texts = []
    for page in sorted(folder.glob("man1/*.gz"))[:12]:
        try:
            texts.append(gzip.decompress(page.read_bytes()).decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def local_cjk_texts() -> list[str]:
    """Real CJK documents found on this machine (plus one literal), each with CJK in it."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = [p.read_text(encoding="utf-8") for p in sorted((stdlib / "test" / "cjkencodings").glob("*-utf8.txt"))]
    for lang in ("zh_CN", "zh_TW", "ja", "ko"):
        found += _man_text(Path("/usr/share/man") / lang)
    return [t for t in found if CJK.search(t)] + [LITERALS["cjk"] * 40]


def local_arabic_texts() -> list[str]:
    """Arabic-script text of glibc's Persian and Uyghur locales and pygments' multilingual
    Gherkin keywords where installed, and a literal paragraph."""
    files = [Path("/usr/share/i18n/locales") / name for name in ("fa_IR", "ug_CN")]
    spec = importlib.util.find_spec("pygments")
    if spec and spec.origin:
        files.append(Path(spec.origin).parent / "lexers" / "testing.py")
    found = [f.read_text(encoding="utf-8") for f in files if f.is_file()]
    return [t for t in found if ARABIC.search(t)] + [LITERALS["arabic"] * 30]


def _excerpt(text: str, script: re.Pattern[str], chars: int = 1500) -> str:
    """The lines of ``text`` written in ``script``, up to ``chars`` characters."""
    return "\n".join(line for line in text.splitlines() if script.search(line))[:chars]


def mixed_documents() -> list[str]:
    """Small documents mixing every script under test with literal special-token strings."""
    docs = [_excerpt(t, CJK) for t in local_cjk_texts()[:3]]
    docs += [_excerpt(t, ARABIC) for t in local_arabic_texts()[:2]]
    extra = "".join(LITERALS.values()) + SPECIAL_STRINGS
    return [d + "\n" + extra * 2 for d in docs] + [extra * 4]


def byte_fallback_tokenizer() -> ModelTokenizer:
    """A Mistral/Llama-2 style sentencepiece BPE: '▁' for spaces, byte fallback for rare characters.

    Its vocabulary is ASCII only, so every non-ASCII character becomes 2-4 byte tokens.
    """
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab |= {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for piece in ["▁", *map(chr, range(33, 127))]:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return text_tokenizer(tok, {"bos_token_id": 1, "eos_token_id": 2})


def byte_level_tokenizer(training_text: list[str]) -> ModelTokenizer:
    """A Llama-3/Qwen2 style byte-level BPE with an NFC normalizer, trained on ``training_text``."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(training_text, trainer)
    return text_tokenizer(tok, {"bos_token_id": 0, "eos_token_id": 2})
