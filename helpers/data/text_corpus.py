"""The distillation corpus: sentences -> G2P -> token ids, with a random voice's style row, cached and split;
and the two halves of the held-out evaluation sentences.

    corpus = prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S)
    heldout_file("dev")    # data/text/heldout_dev.txt: every stage-1 recipe and milestone choice reads this half
    heldout_file("test")   # data/text/heldout_test.txt: the reported stage-1 figures, read by nothing that chooses

The halves are `heldout_halves(data/text/heldout.txt)`: each sentence goes by the sha256 of its text (first half
of the sorted hashes -> dev), so the split depends on no order and no seed; tests/data/test_heldout_split.py checks
that the two files are exactly that split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.data.prepare import CI_CORPUS_LIMIT, CODE_VERSION, _hash, split_of
from helpers.data.targets import StyleSource, voice_style
from helpers.kokoro.g2p import G2PError, phonemes_to_ids, phonemize
from helpers.outputs import dataset_cache_name
from helpers.settings import Settings

HELDOUT_HALVES = ("dev", "test")


def heldout_halves(sentences: list[str]) -> dict[str, list[str]]:
    """{"dev": [...], "test": [...]}: the sentences sorted by sha256 of their text, the first half (rounded down)
    to dev and the rest to test, each half in the input order."""
    key = lambda s: hashlib.sha256(s.strip().encode("utf-8")).hexdigest()  # noqa: E731
    dev = set(sorted(sentences, key=key)[: len(sentences) // 2])
    return {"dev": [s for s in sentences if s in dev], "test": [s for s in sentences if s not in dev]}


def heldout_file(half: str, data_dir: str | Path | None = None) -> Path:
    """data/text/heldout_<half>.txt: "dev" for choices, "test" for reported figures (module docstring)."""
    if half not in HELDOUT_HALVES:
        raise ValueError(f"held-out half {half!r}: choose one of {HELDOUT_HALVES}")
    return Path(data_dir or Settings.from_env().data_dir) / "text" / f"heldout_{half}.txt"


# ----------------------------------------------------------------------------------------- text corpus


@dataclass
class TextItem:
    """One corpus sentence for distillation: no audio, the teacher makes the targets on the fly."""

    id: str  # "s00042": the sentence's line number among the file's non-blank lines
    text: str
    phonemes: str
    token_ids: np.ndarray  # (T,) int64 with BOS/EOS 0
    style: np.ndarray  # (256,) float32 ref_s
    voice: str
    split: str  # "train" | "val"


class TextCorpus(list):
    """A list of TextItem with the preparation's bookkeeping attached."""

    failed: list[dict]  # {id, text, reason}: sentences the G2P refused
    manifest: dict
    seconds: float

    @property
    def train(self) -> list[TextItem]:
        return [x for x in self if x.split == "train"]

    @property
    def val(self) -> list[TextItem]:
        return [x for x in self if x.split == "val"]

    def summary(self):
        import pandas as pd

        n_tok = [len(x.token_ids) for x in self]
        return pd.DataFrame(
            [
                {
                    "sentences": len(self),
                    "failed": len(self.failed),
                    "train": len(self.train),
                    "val": len(self.val),
                    "tokens_min": min(n_tok, default=0),
                    "tokens_mean": round(float(np.mean(n_tok)), 1) if n_tok else 0,
                    "tokens_max": max(n_tok, default=0),
                    "from_cache": self.manifest.get("from_cache", False),
                    "seconds": round(self.seconds, 1),
                }
            ]
        )


def prepare_text_corpus(
    kokoro,
    path: str | Path | None = None,
    settings: Settings | None = None,
    limit: int | None = None,
    *,
    style: StyleSource | None = None,
    val_fraction: float = 0.05,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> TextCorpus:
    """Phonemes, token ids and style for every sentence of a text file (one per line), cached.

    `limit` None means all sentences in full mode and the first CI_CORPUS_LIMIT in CI mode.
    """
    from helpers.data.corpus import load_sentences

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    path = Path(path) if path else settings.data_dir / "text" / "sentences.txt"
    if limit is None and settings.is_ci:
        limit = CI_CORPUS_LIMIT
    sentences = load_sentences(path)[:limit] if limit else load_sentences(path)
    style = style or voice_style(kokoro, settings.voice)
    import misaki

    record = {
        "code_version": CODE_VERSION,
        "sentences": _hash(sentences),
        "n": len(sentences),
        "style": style.name,
        "g2p": f"misaki {getattr(misaki, '__version__', '?')}",
        "val_fraction": val_fraction,
    }
    shash = _hash(record)
    cache = Path(cache_dir) if cache_dir else Path(settings.cache_dir) / "datasets" / f"text-{dataset_cache_name(path)}"
    cache.mkdir(parents=True, exist_ok=True)
    blob_path, manifest_path = cache / "corpus.pt", cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    corpus = TextCorpus()
    if manifest.get("settings_hash") == shash and blob_path.is_file():
        blob = torch.load(blob_path, weights_only=True)
        for d in blob["items"]:
            corpus.append(
                TextItem(
                    d["id"],
                    d["text"],
                    d["phonemes"],
                    d["token_ids"].numpy(),
                    d["style"].numpy(),
                    d["voice"],
                    d["split"],
                )  # fmt: skip
            )
        corpus.failed, manifest["from_cache"] = blob["failed"], True
    else:
        corpus.failed = []
        for i, text in enumerate(tqdm(sentences, desc="corpus G2P", disable=not progress)):
            sid = f"s{i:05d}"
            try:
                ps = phonemize(text, strict=True)  # not English (emoji, other scripts): refused
                ids = np.asarray(phonemes_to_ids(ps, strict=False), dtype=np.int64)
            except G2PError as exc:
                corpus.failed.append({"id": sid, "text": text, "reason": str(exc)})
                continue
            ref = style(ps).reshape(-1).cpu().numpy().astype(np.float32)
            corpus.append(TextItem(sid, text, ps, ids, ref, style.name, split_of(sid, val_fraction)))
        torch.save(
            {
                "items": [
                    {
                        **dataclasses.asdict(x),
                        "token_ids": torch.from_numpy(x.token_ids),
                        "style": torch.from_numpy(x.style),
                    }
                    for x in corpus
                ],  # fmt: skip
                "failed": corpus.failed,
            },
            blob_path,
        )
        manifest = {
            "format": 1,
            "source": str(path),
            "settings_hash": shash,
            "settings": record,
            "sentences": len(corpus),
            "failed": corpus.failed,
            "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        manifest["from_cache"] = False
    corpus.manifest = manifest
    corpus.seconds = time.perf_counter() - t0
    if verbose:
        how = "from cache" if manifest["from_cache"] else "prepared"
        print(
            f"text corpus {path.name}: {len(corpus)} sentences {how} in {corpus.seconds:.1f} s "
            f"(train {len(corpus.train)}, val {len(corpus.val)}, G2P refused {len(corpus.failed)})"
        )
    return corpus
