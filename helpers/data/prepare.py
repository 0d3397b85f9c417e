"""Dataset preparation: validate, compute targets once, cache them, split train / dev / test.

The training notebooks call two functions:

    data = prepare_dataset(kokoro, S.data_dir / "librivox", S)     # (text, wav) recordings
    data.manifest["reference_voice"]   # the voice pack used as style and DTW reference, and why
    data.train, data.dev, data.test   # TargetsList each, disjoint: len(), [i] -> helpers.data.targets.ItemTargets
    data.split_file, data.split_hash  # split.json beside the cache (the ids of each split) and its short sha256
    data.suspect                # items the pocketsphinx check flagged (set aside unless keep_suspect=True)
    data.report                 # helpers.data.validate.ValidationReport (refused items, with reasons)
    data.summary()              # one-row pandas table: counts, split sizes, seconds, cache hits

    corpus = prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S)   # text only
    corpus[i] -> TextItem(id, text, phonemes, token_ids (T,), style (256,), voice, split)
    corpus.train, corpus.val, corpus.failed (sentences G2P refused), corpus.seconds

Signatures:

    prepare_dataset(kokoro, root, settings=None, config=None, *, style=None, report=None,
                    cache_dir=None, progress=True, verbose=True) -> PreparedDataset
    prepare_text_corpus(kokoro, path=None, settings=None, limit=None, *, style=None, val_fraction=0.05,
                        cache_dir=None, progress=True, verbose=True) -> TextCorpus
    PrepareConfig(name=None, voice="auto", features=FeatureSettings(), dtw=DTWSettings(), check=CheckSettings(),
                  split=SplitRule(), keep_suspect=False, store_audio=True, limit=None)
    split_of(item_id, val_fraction) -> "train" | "val"   (the text corpus's split: helpers.data.text_corpus)
    choose_voice(items, previous=None) -> helpers.data.reference_voice.VoiceChoice (what "auto" picks)

`settings` is the workbook's `helpers.settings.Settings` (cache folder, mode, voice); `config` holds the
preparation recipe. The voice pack that supplies the style and the DTW reference: with voice "auto" (the
default), the English pack nearest the speaker's F0 register (`helpers.data.reference_voice`; the choice
and its reason are printed and stored as `manifest["reference_voice"]`); a named voice is used as is.
`style` (a `helpers.data.targets.StyleSource`) overrides both: pass a fitted style later and the cache is
rebuilt (the style's `name`, e.g. "voice:am_michael", is part of the settings hash).

Cache layout (``settings.cache_dir / "datasets" / <name>``, name = the data folder's name and a hash of its path by
default, so two folders of the same name never share a cache):

    manifest.json     settings + their hash, code version, weights source, reference voice (and why),
                      per-item rows (each with its split), refusals
    split.json        the split: seed, rule, and the ids of train, dev, test (and the suspects set aside)
    items/<id>.npz    one file per item (helpers.data.targets.ItemTargets.save), tagged with the settings hash

A re-run loads every item whose file carries the current settings hash and whose source (transcript,
phonemes, wav size and mtime) is unchanged; anything else is recomputed. Changing a feature/DTW/check
setting, the voice/style or the weights source changes the hash, so every item is recomputed. No item
file is ever deleted (hours of DTW and pYIN): `limit` only selects what a run uses. With no item left
for training, a warning says why, with counts by reason (`PreparedDataset.why_empty()`).

The split (helpers.data.splits) is made after the suspect clips are set aside, by a seeded hash of each clip's
content: train (learnt from), dev (every choice), test (the verdict only; notebook 06). Full mode, 300 clips:
about 200 / 40 / 60; the four usable starter clips: 2 / 1 / 1. It is written to split.json; artefacts made from
it record `split_hash`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from helpers.data.align import DTWSettings
from helpers.data.audio import load_audio
from helpers.data.features import FeatureSettings
from helpers.data.readers import Item, read_dataset
from helpers.data.reference_voice import MAX_CLIPS, VoiceChoice, choose_for_clips
from helpers.data.splits import SplitRule, assign_splits, clip_key, write_split
from helpers.data.targets import ItemTargets, StyleSource, compute_targets, voice_style
from helpers.data.validate import ValidationReport, validate_items
from helpers.data.wordcheck import CheckSettings
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.g2p import phonemize
from helpers.outputs import dataset_cache_name
from helpers.settings import REPO_ROOT, Settings

CODE_VERSION = "targets-3"  # bump when the way targets are computed changes (invalidates every cache)
CI_CORPUS_LIMIT = 64  # sentences prepared in CI mode


@dataclass(frozen=True)
class PrepareConfig:
    """The preparation recipe. Everything except split/keep_suspect/limit is hashed into the cache."""

    name: str | None = None  # cache folder name; None = the data folder's name + a hash of its path
    voice: str = "auto"  # pack for style and DTW reference; "auto" = settings.voice, then nearest by F0
    features: FeatureSettings = FeatureSettings()
    dtw: DTWSettings = DTWSettings()
    check: CheckSettings = CheckSettings()
    split: SplitRule = SplitRule()
    keep_suspect: bool = False  # True: suspect items join the split (still flagged)
    store_audio: bool = True  # keep the clip's samples (int16) in the cache for waveform losses
    limit: int | None = None  # use only the first `limit` kept items (quick runs); the rest stay cached


# ------------------------------------------------------------------------------------------------ split


def split_fraction(item_id: str) -> float:
    """A stable number in [0, 1) from the item id (sha1), independent of every other item."""
    return int.from_bytes(hashlib.sha1(item_id.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_of(item_id: str, val_fraction: float = 0.1) -> str:
    """The text corpus's side ("train" | "val") by the id alone; recordings use `assign_splits`."""
    return "val" if split_fraction(item_id) < val_fraction else "train"


# ------------------------------------------------------------------------------------------- hashing


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:
        return None


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _safe_name(item_id: str) -> str:
    """A file name for an id: unsafe characters replaced, plus a short hash so two ids never collide."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[:80]
    return f"{clean}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}"


def _source_fingerprint(item: Item) -> str:
    p = Path(item.wav_path)
    st = p.stat()
    return _hash([item.tts_text, item.phonemes, st.st_size, st.st_mtime_ns])


# ---------------------------------------------------------------------------------------- containers


class TargetsList(Sequence):
    """A read-only list of cached items: `[i]` loads `ItemTargets` from its .npz (nothing held in memory),
    so it works as a map-style torch Dataset too. `.rows` holds each item's manifest row."""

    def __init__(self, root: Path, rows: list[dict], split: str):
        self.root, self.rows, self.split = Path(root), list(rows), split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return ItemTargets.load(self.root / self.rows[i]["file"], split=self.split)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    @property
    def seconds(self) -> float:
        return sum(r["n_frames"] for r in self.rows) * 0.025

    def __repr__(self) -> str:
        return f"TargetsList({self.split}: {len(self)} items, {self.seconds:.1f} s)"


@dataclass
class PreparedDataset:
    """What `prepare_dataset` returns (see the module docstring)."""

    train: TargetsList
    dev: TargetsList  # every choice (selection, early stopping)
    test: TargetsList  # the verdict only
    suspect: TargetsList  # flagged by the word check; in a split too only with keep_suspect=True
    failed: list[dict]  # kept by validation, but targets could not be computed: {id, reason}
    report: ValidationReport
    manifest: dict
    cache_dir: Path
    stats: dict = field(default_factory=dict)  # computed, cached, seconds
    split_file: Path | None = None  # split.json: the ids of each split
    split_hash: str = ""  # short sha256 of split.json's content: what artefacts record

    def summary(self):
        """One-row pandas table: counts, split sizes (items and seconds of audio), time, cache hits."""
        import pandas as pd

        s = self.report.summary()
        return pd.DataFrame(
            [
                {
                    "items": s["items"],
                    "refused": s["excluded"],
                    "failed": len(self.failed),
                    "suspect": len(self.suspect),
                    "train": len(self.train),
                    "dev": len(self.dev),
                    "test": len(self.test),
                    "train_s": round(self.train.seconds, 1),
                    "dev_s": round(self.dev.seconds, 1),
                    "test_s": round(self.test.seconds, 1),
                    "computed": self.stats.get("computed", 0),
                    "from_cache": self.stats.get("cached", 0),
                    "seconds": round(self.stats.get("seconds", 0.0), 1),
                }
            ]
        )

    def why_empty(self) -> str:
        """Why no item is left for training: how many were read, refused (by reason), failed, suspect."""
        s = self.report.summary()
        lines = [f"{len(self.train)} items for training, {len(self.dev)} dev, {len(self.test)} test, of {s['items']} read:"]
        if s["excluded"]:
            reasons = ", ".join(f"{code} {n}" for code, n in s["excluded_by_reason"].items())
            lines.append(f"  refused by validation: {s['excluded']} ({reasons}); see data.report.describe()")
        if self.failed:
            lines.append(f"  failed while computing targets: {len(self.failed)} ({self.failed[0]['reason'][:120]})")
        if len(self.suspect):
            flags = Counter(r["reason"].split(":", 1)[0][:60] for r in self.suspect.rows)
            kept_out = "kept" if self.manifest.get("keep_suspect") else "set aside (keep_suspect=False)"
            why = "; ".join(f"{k} x{n}" for k, n in flags.items())
            lines.append(f"  suspect by the word check, {kept_out}: {len(self.suspect)} ({why}); see data.table()")
        if self.manifest.get("limit"):
            lines.append(f"  limit={self.manifest['limit']} items were used of {len(self.report.kept)} kept")
        return "\n".join(lines)

    def table(self):
        """One row per prepared item: split, seconds, tokens, suspect flag and the word-check numbers
        (errors vs pocketsphinx after its offset; `max_speech_err_ms` ignores pauses, and decides `suspect`)."""
        import pandas as pd

        rows = []
        for r in self.manifest["items"]:
            c = r.get("check", {})
            rows.append(
                {
                    "id": r["id"],
                    "split": r["split"],
                    "seconds": round(r["n_frames"] * 0.025, 2),
                    "tokens": r["n_tokens"],
                    "suspect": r["suspect"],
                    "checked": c.get("checked"),
                    "mean_err_ms": c.get("mean_error_ms"),
                    "max_err_ms": c.get("max_error_ms"),
                    "max_speech_err_ms": c.get("max_speech_error_ms"),
                    "reason": r["reason"] if c.get("checked") else f"not checked: {c.get('reason', '')}",
                }
            )
        return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- dataset


def _resolve_style(
    kokoro, settings: Settings, config: PrepareConfig, style: StyleSource | None, items, previous: dict
) -> tuple[StyleSource, dict]:
    """The StyleSource (and DTW reference) and a record of why: given, named, or chosen by F0 register."""
    if style is not None:
        name = getattr(style, "name", "custom")
        return style, {"voice": name, "reason": f"style {name}: passed by the caller"}
    voice = config.voice if config.voice != "auto" else settings.voice
    if voice != "auto":
        why = f"reference voice {voice}: named in the settings (PrepareConfig.voice or Settings.voice)"
        return voice_style(kokoro, voice), {"voice": voice, "reason": why}
    choice = choose_voice(items, previous)
    return voice_style(kokoro, choice.voice), choice.to_dict()


def choose_voice(items: Sequence[Item], previous: dict | None = None) -> VoiceChoice:
    """The English pack nearest the speaker's F0 register (helpers.data.reference_voice), measured on a
    stable spread of up to MAX_CLIPS items; `previous` (a stored choice) skips pYIN when the clips match."""
    sample = sorted(items, key=lambda it: split_fraction(it.id))[:MAX_CLIPS]
    key = _hash([[it.id, _source_fingerprint(it)] for it in sample])
    return choose_for_clips([it.wav_path for it in sample], clips_key=key, previous=previous)


def settings_record(kokoro, config: PrepareConfig, style: StyleSource) -> dict:
    """What the cached targets depend on, the DurationEncoder's identity included; its hash tags every item file."""
    from helpers.transplant.surgery import encoder_identity

    return {
        "code_version": CODE_VERSION,
        "sample_rate": SAMPLE_RATE,
        "features": dataclasses.asdict(config.features),
        "dtw": config.dtw.to_dict(),
        "check": config.check.to_dict(),
        "style": getattr(style, "name", type(style).__name__),
        "weights_source": getattr(kokoro, "source", "model"),
        "duration_encoder": encoder_identity(kokoro),  # the DTW reference and teacher durations read it
        "store_audio": config.store_audio,
    }


def prepare_dataset(
    kokoro,
    root: str | Path,
    settings: Settings | None = None,
    config: PrepareConfig | None = None,
    *,
    style: StyleSource | None = None,
    report: ValidationReport | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> PreparedDataset:
    """Validate the dataset at `root`, compute (or load cached) targets per kept item, split.

    `report`: an existing ValidationReport of the same folder (skips validating again).
    `cache_dir`: the dataset's cache folder (default settings.cache_dir / "datasets" / name).
    """
    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    config = config or PrepareConfig()
    root = Path(root)
    if report is None:
        report = validate_items(read_dataset(root), phonemize, progress=progress)
    name = config.name or dataset_cache_name(root)  # <folder>-<hash of its path>: same-named folders never share
    cache = Path(cache_dir) if cache_dir else Path(settings.cache_dir) / "datasets" / name
    (cache / "items").mkdir(parents=True, exist_ok=True)
    manifest_path = cache / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    items = report.kept[: config.limit] if config.limit else report.kept
    # the reference voice is chosen on all kept items, so `limit` does not change it
    previous = old.get("reference_voice")
    style, reference = _resolve_style(kokoro, settings, config, style, report.kept, previous)
    if verbose:
        print(reference["reason"])
    record = settings_record(kokoro, config, style)  # the style's name (the chosen voice) is in the hash
    shash = _hash(record)
    if verbose and old and old.get("settings_hash") != shash:
        print(f"settings changed since the last run ({old.get('settings_hash')} -> {shash}): recomputing")

    rows, failed, computed, cached, keys = [], [], 0, 0, {}
    for item in tqdm(items, desc=f"targets {cache.name}", disable=not progress):
        keys[item.id] = clip_key(item)
        file = f"items/{_safe_name(item.id)}.npz"
        path = cache / file
        fp = _source_fingerprint(item)
        meta = None
        if path.is_file():
            try:
                meta = ItemTargets.read_meta(path)
            except Exception:
                meta = None
            if meta and (meta.get("settings_hash") != shash or meta.get("source") != fp):
                meta = None
        if meta is None:
            try:
                audio = load_audio(item.wav_path, SAMPLE_RATE).samples
                tg, _ = compute_targets(
                    kokoro,
                    item.id,
                    item.tts_text,
                    item.phonemes,
                    audio,
                    style,
                    features=config.features,
                    dtw=config.dtw,
                    check=config.check,
                    keep_audio=config.store_audio,
                )
            except Exception as exc:  # one bad item must not end a run of hours: it is reported instead
                failed.append({"id": item.id, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            tg.save(path, extra={"settings_hash": shash, "source": fp})
            meta = ItemTargets.read_meta(path)
            meta["n_frames"], meta["n_tokens"] = tg.n_frames, len(tg.token_ids)
            computed += 1
        else:
            cached += 1
            if "n_frames" not in meta:
                tg = ItemTargets.load(path)
                meta["n_frames"], meta["n_tokens"] = tg.n_frames, len(tg.token_ids)
        rows.append(
            {
                "id": item.id,
                "file": file,
                "n_frames": int(meta["n_frames"]),
                "n_tokens": int(meta["n_tokens"]),
                "suspect": bool(meta["suspect"]),
                "reason": meta["reason"],
                "check": meta["check"],
            }
        )

    usable = [r for r in rows if config.keep_suspect or not r["suspect"]]
    splits = assign_splits({r["id"]: keys[r["id"]] for r in usable}, config.split)  # suspects set aside first
    for r in rows:
        r["split"] = splits.get(r["id"], "suspect")
    set_aside = [r["id"] for r in rows if r["id"] not in splits]
    split_file, split_hash = write_split(cache, splits, config.split, set_aside, config.keep_suspect)
    seconds = time.perf_counter() - t0
    manifest = {
        "format": 1,
        "name": cache.name,
        "root": str(root),
        "settings_hash": shash,
        "settings": record,
        "split": {**dataclasses.asdict(config.split), "file": split_file.name, "sha256": split_hash},
        "keep_suspect": config.keep_suspect,
        "limit": config.limit,
        "git_commit": _git_commit(),
        "weights_note": getattr(kokoro, "note", ""),
        "reference_voice": reference,
        "items": rows,
        "refused": [{"id": r.id, "reason": r.reason, "message": r.message} for r in report.excluded],
        "failed": failed,
        "stats": {"computed": computed, "cached": cached, "seconds": round(seconds, 2)},
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(manifest_path)
    data = PreparedDataset(
        train=TargetsList(cache, [r for r in usable if r["split"] == "train"], "train"),
        dev=TargetsList(cache, [r for r in usable if r["split"] == "dev"], "dev"),
        test=TargetsList(cache, [r for r in usable if r["split"] == "test"], "test"),
        suspect=TargetsList(cache, [r for r in rows if r["suspect"]], "suspect"),
        failed=failed,
        report=report,
        manifest=manifest,
        cache_dir=cache,
        stats=manifest["stats"],
        split_file=split_file,
        split_hash=split_hash,
    )
    if verbose:
        print(
            f"{cache.name}: {len(rows)} items ready ({computed} computed, {cached} from cache) in "
            f"{seconds:.1f} s; train {len(data.train)}, dev {len(data.dev)}, test {len(data.test)}, "
            f"suspect {len(data.suspect)} (split {split_hash}), "
            f"failed {len(failed)}; cache: {cache}"
        )
    if not data.train:
        warnings.warn(data.why_empty(), stacklevel=2)
    return data


