"""Dataset preparation: validate, compute targets once, cache them, split train / dev / test.

The training notebooks call two functions:

    data = prepare_dataset(kokoro, S.data_dir / "librivox", S)     # (text, wav) recordings
    data.manifest["reference_voice"]   # the voice pack used as style and DTW reference, and why
    data.train, data.dev, data.test   # TargetsList each, disjoint: len(), [i] -> helpers.data.targets.ItemTargets
    data.split_file, data.split_hash  # split.json beside the cache (the ids of each split) and its short sha256
    data.suspect                # items the pocketsphinx check flagged (set aside unless keep_suspect=True)
    data.report                 # helpers.data.validate.ValidationReport (refused items, with reasons)
    data.summary()              # one-row pandas table: counts, split sizes, seconds, cache hits
    data.stats                  # computed, cached, seconds, workers (1 = serially), serial_because
                                # (PreparedDataset and TargetsList: helpers.data.prepared)

    corpus = prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S)   # text only
    corpus[i] -> TextItem(id, text, phonemes, token_ids (T,), style (256,), voice, split)
    corpus.train, corpus.val, corpus.failed (sentences G2P refused), corpus.seconds

Signatures:

    prepare_dataset(kokoro, root, settings=None, config=None, *, style=None, report=None,
                    cache_dir=None, progress=True, verbose=True) -> PreparedDataset
    prepare_text_corpus(kokoro, path=None, settings=None, limit=None, *, style=None, val_fraction=0.05,
                        cache_dir=None, progress=True, verbose=True) -> TextCorpus
    PrepareConfig(name=None, voice="auto", features=FeatureSettings(), dtw=DTWSettings(), check=CheckSettings(),
                  split=SplitRule(), keep_suspect=False, store_audio=True, limit=None, workers=None)
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

The clips not yet cached are computed by `compute_item` (helpers.data.targets.compute_targets, then the item
file), through a process pool of `PrepareConfig.workers` processes (None: the machine's cores; not part of the
hash) with a progress bar over completed clips: helpers.data.pool, whose docstring says how each worker loads its
own Kokoro and when the serial loop runs instead (one worker, few clips, weights that cannot be reloaded by
name; the reason is printed and kept as `stats["serial_because"]`). Both paths run the same function, and each
clip's targets depend on that clip alone (the decoder noise is seeded, pocketsphinx is reset per utterance:
helpers.data.asr.decode), so they write bit-identical item files (tests/data/test_pool.py,
helpers.data.prepared.differences); the manifest rows keep the items' order. A clip that fails is reported in
`data.failed` and the run goes on; each item file is written (atomically) as its clip completes, so an
interrupted run keeps them and the next run resumes from them.

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
import functools
import hashlib
import json
import re
import subprocess
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.data.align import DTWSettings
from helpers.data.audio import load_audio
from helpers.data.features import FeatureSettings
from helpers.data.pool import map_clips
from helpers.data.prepared import PreparedDataset, TargetsList
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

CODE_VERSION = "targets-4"  # bump when the way targets are computed changes (invalidates every cache); 4: the word
# check no longer depends on the clips the process aligned before (helpers.data.asr.decode)
CI_CORPUS_LIMIT = 64  # sentences prepared in CI mode


@dataclass(frozen=True)
class PrepareConfig:
    """The preparation recipe. Everything except split/keep_suspect/limit/workers is hashed into the cache."""

    name: str | None = None  # cache folder name; None = the data folder's name + a hash of its path
    voice: str = "auto"  # pack for style and DTW reference; "auto" = settings.voice, then nearest by F0
    features: FeatureSettings = FeatureSettings()
    dtw: DTWSettings = DTWSettings()
    check: CheckSettings = CheckSettings()
    split: SplitRule = SplitRule()
    keep_suspect: bool = False  # True: suspect items join the split (still flagged)
    store_audio: bool = True  # keep the clip's samples (int16) in the cache for waveform losses
    limit: int | None = None  # use only the first `limit` kept items (quick runs); the rest stay cached
    workers: int | None = None  # processes computing targets (helpers.data.pool); None = the machine's cores


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


# ------------------------------------------------------------------------------------------ one clip


def _item_file(item_id: str) -> str:
    return f"items/{_safe_name(item_id)}.npz"


def _cached_meta(cache: Path, item: Item, shash: str) -> dict | None:
    """The cached item's meta (with n_frames, n_tokens) when its file carries these settings and this source."""
    path = cache / _item_file(item.id)
    if not path.is_file():
        return None
    try:
        meta = ItemTargets.read_meta(path)
    except Exception:  # an unreadable file is computed again
        return None
    if meta.get("settings_hash") != shash or meta.get("source") != _source_fingerprint(item):
        return None
    if "n_frames" not in meta:
        tg = ItemTargets.load(path)
        meta["n_frames"], meta["n_tokens"] = tg.n_frames, len(tg.token_ids)
    return meta


def compute_item(
    kokoro, item: Item, *, style: StyleSource, config: PrepareConfig, cache: Path, shash: str
) -> dict:
    """One clip's targets computed and written to items/<id>.npz (tagged with `shash` and the clip's source);
    returns its meta (with n_frames, n_tokens), or {"failed": reason}. The same function in the serial loop and
    in every pool worker (helpers.data.pool), so both write the same files."""
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
        return {"failed": f"{type(exc).__name__}: {exc}"}
    tags = {"settings_hash": shash, "source": _source_fingerprint(item)}
    path = tg.save(cache / _item_file(item.id), extra=tags)
    return {**ItemTargets.read_meta(path), "n_frames": tg.n_frames, "n_tokens": len(tg.token_ids)}


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

    keys = {item.id: clip_key(item) for item in items}
    metas = {item.id: _cached_meta(cache, item, shash) for item in items}  # None: to compute
    todo = [item for item in items if metas[item.id] is None]
    job = functools.partial(compute_item, style=style, config=config, cache=cache, shash=shash)
    desc = f"targets {cache.name}"
    results, run = map_clips(job, kokoro, todo, workers=config.workers, progress=progress, desc=desc)
    if verbose and todo and run.serial_because:
        print(f"{len(todo)} clips computed serially: {run.serial_because}")
    metas.update((item.id, meta) for item, meta in zip(todo, results))
    failed = [{"id": i, "reason": m["failed"]} for i, m in metas.items() if m and "failed" in m]
    computed, cached = len(todo) - len(failed), len(items) - len(todo)
    rows = [
        {
            "id": item.id,
            "file": _item_file(item.id),
            "n_frames": int(m["n_frames"]),
            "n_tokens": int(m["n_tokens"]),
            "suspect": bool(m["suspect"]),
            "reason": m["reason"],
            "check": m["check"],
        }
        for item in items
        if "failed" not in (m := metas[item.id])
    ]

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
        "stats": {
            "computed": computed,
            "cached": cached,
            "seconds": round(seconds, 2),
            "workers": run.workers,  # processes that computed targets (helpers.data.pool; 1 = serially)
            "serial_because": run.serial_because if todo else None,
        },
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


