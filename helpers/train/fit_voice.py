"""Fit a voice pack to a recorded speaker: gradient descent on the style, through the frozen Kokoro.

Kokoro has no style encoder: a voice is a pack [510, 1, 256] whose row len(phonemes) - 1 is an utterance's
ref_s = [timbre (128) ; prosody (128)] (helpers.kokoro.forward.style_for). `fit_voice` starts from the stock
pack nearest the speaker (notebook 04's reference voice, which also made the targets) and learns one offset
(128,) added to the **timbre half** of every row, so the pack keeps its stock dependence on length:

    timbre  ref_s[:128]  fitted: decode() on a W-frame crop with the recording's durations, F0 and energy
                         (teacher-forced), L1 on log-mel vs the recording           (losses.cropped_mel_loss)
    prosody ref_s[128:]  not fitted: the start pack's, bit for bit

Why the prosody half is left alone: it is read only by the prosody predictor, whose DurationEncoder is the very
thing notebook 06 compares (Kokoro's LSTM against the Mamba and CfC students). Fitting it through one of them
(the LSTM, the only one at hand before training) would adapt the voice to that system and tilt the comparison
toward it. The decoder, which reads the timbre half, is frozen and shared by every system, so a voice fitted
through it favours none: every system's durations and F0 with the fitted voice are exactly those with the stock
pack (tests/train/test_fit_voice.py checks the prosody half is unchanged).

One epoch visits every training clip once (B = 1: the decoder uses InstanceNorm). Before the first epoch and after
each, the same loss on the **dev** clips (fixed crops and decoder noise); training stops after `patience` epochs
without improvement and returns the best pack (the stock one if nothing helped). Test clips are never read.

    pack = fit_voice(kokoro, dataset, FitVoiceConfig(epochs=20))     # dataset: prepare_dataset's result
    pack, path = fitted_voice(kokoro, dataset, S)   # the same, cached under runs/<mode>/voices/ (notebooks 04-06),
                                                    # with a JSON beside it: the fit and early-stop ids, split hash
    python -m helpers.train.fit_voice --data data/librivox --out runs/voices/reader.safetensors

Whether the fitted pack beats the stock packs on held-out clips (MCD, F0 RMSE, leave one clip out) is measured
by helpers.compare.voice_fit: `python -m helpers.train.voice_loo --data DIR` (results/fit-voice/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.argtypes import new_file_path, real, whole
from helpers.kokoro.forward import style_for
from helpers.outputs import unique_tmp
from helpers.train import losses as L
from helpers.train.fit_state import FitResume, fit_identity
from helpers.train.items import TrainItem, as_train_items, collate

TIMBRE = 128  # ref_s[:TIMBRE] is fitted (the decoder's half); ref_s[TIMBRE:] (prosody) stays the start pack's


@dataclass
class FitVoiceConfig:
    epochs: int = 30
    lr: float = 0.01  # Adam on the offset; stock style values are O(0.1-1)
    patience: int = 3  # epochs without a better dev loss before stopping
    crop_frames: int = 32  # decoder crops of this many 25 ms frames
    seed: int = 0
    max_clips: int = 200  # fit on at most this many training clips and a quarter as many dev ones: an epoch
    #                       over LJSpeech's ~1,350 training clips would take hours on a CPU

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> FitVoiceConfig:
        """CI mode: two short epochs on decoder crops of 16 frames (a minute on a CPU); full mode: the defaults."""
        base = {"epochs": 2, "patience": 1, "crop_frames": 16} if mode == "ci" else {}
        return cls(**{**base, **overrides})


def reference_voice_of(dataset) -> str:
    """The stock pack the dataset's targets were made with (prepare_dataset's choice, nearest the reader)."""
    choice = (getattr(dataset, "manifest", None) or {}).get("reference_voice") or {}
    if choice.get("voice"):
        return choice["voice"]
    voices = {str(getattr(it, "voice", "")).removeprefix("voice:") for it in _splits(dataset)[0]}
    if len(voices) == 1 and "" not in voices:
        return voices.pop()
    raise ValueError(f"cannot tell which stock pack to start from (found {sorted(voices)}): pass start=")


def _splits(dataset) -> tuple[list, list]:
    """(train, dev): a prepared dataset's train and dev splits, or a (train, dev) pair; its test split is never read."""
    if hasattr(dataset, "train"):
        return list(dataset.train), list(dataset.dev)
    train, dev = dataset
    return list(train), list(dev)


def _prepared(objs, what: str) -> list[TrainItem]:
    items = as_train_items(objs)
    missing = [it.id for it in items if any(getattr(it, k) is None for k in ("durations", "f0", "energy", "mel"))]
    if missing:
        raise ValueError(f"{what} clips without targets (durations, F0, energy, mel: notebook 04): {missing[:5]}")
    return items


class _Clip:
    """One clip on the device: ids and the recording's targets."""

    def __init__(self, it: TrainItem, device):
        self.ids = collate([it]).ids.to(device)  # (1, T)
        self.n_phonemes = it.style_row
        self.dur = torch.as_tensor(it.durations, device=device)  # (T,)
        self.f0 = torch.as_tensor(it.f0, device=device)  # (2F,) Hz, 0 = unvoiced
        self.energy = torch.as_tensor(it.energy, device=device)  # (2F,)
        self.mel = it.mel  # (80, 2F)


def with_timbre(base: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """base [510, 1, 256] with `offset` (TIMBRE,) added to the timbre half of every row; the prosody half as is."""
    return base + torch.cat([offset, offset.new_zeros(base.shape[-1] - TIMBRE)])  # [510, 1, 256]


def clip_loss(model: nn.Module, clip: _Clip, pack: torch.Tensor, crop_frames: int) -> torch.Tensor:
    """The log-mel L1 of one clip's decoder crop for a pack [510, 1, 256] (module docstring); the decoder reads
    only the timbre half ref_s[:, :128]."""
    ref_s = style_for(pack, clip.n_phonemes)  # (1, 256)
    return L.cropped_mel_loss(model, clip.mel, clip.ids[0], ref_s, clip.f0, clip.energy, clip.dur, crop_frames)


@contextlib.contextmanager
def _seeded(seed: int, device):
    """torch's RNG seeded inside the block and restored after (crops and decoder noise come from it)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _dev_loss(model, clips: list[_Clip], pack: torch.Tensor, cfg: FitVoiceConfig) -> dict[str, float]:
    """Mean loss on the dev clips; crops and decoder noise from a fixed seed (the global RNG is left as it was)."""
    with torch.no_grad(), _seeded(cfg.seed, clips[0].ids.device):
        return {"dev_loss": float(np.mean([float(clip_loss(model, c, pack, cfg.crop_frames)) for c in clips]))}


def _descend(model, train: list[_Clip], dev: list[_Clip], base: torch.Tensor, cfg: FitVoiceConfig, progress: bool,
             resume: FitResume | None = None):  # fmt: skip
    """Adam on the timbre offset, epoch by epoch, early stopping on dev: (best offset (128,), one row per epoch).
    `resume`: the state is saved there after every epoch, and a saved one is continued (helpers.train.fit_state)."""
    from tqdm.auto import tqdm

    offset = torch.zeros(TIMBRE, device=base.device, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=cfg.lr)
    best = {"epoch": 0, **_dev_loss(model, dev, base, cfg)}  # the stock pack: what fitting must beat
    best_offset, since_best, rows = offset.detach().clone(), 0, [best]
    order = np.random.default_rng(cfg.seed)
    first = 1
    if resume is not None and (saved := resume.restore(offset, opt, order)) is not None:  # resume hook
        first, best, best_offset, since_best, rows = saved
    bar = tqdm(range(first, cfg.epochs + 1), desc="fit_voice", disable=not progress)
    for epoch in bar:
        losses = []
        for i in order.permutation(len(train)):
            loss = clip_loss(model, train[i], with_timbre(base, offset), cfg.crop_frames)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **_dev_loss(model, dev, with_timbre(base, offset), cfg)}
        rows.append(row)
        if row["dev_loss"] < best["dev_loss"]:
            best, best_offset, since_best = row, offset.detach().clone(), 0
        else:
            since_best += 1
        bar.set_postfix(dev=f"{row['dev_loss']:.3f}", best=f"{best['dev_loss']:.3f}")
        if resume is not None:  # resume hook: this epoch's state, atomically
            resume.save(epoch, offset, opt, order, best, best_offset, since_best, rows, with_timbre(base, best_offset))
        if since_best >= cfg.patience:
            break
    bar.close()
    return best_offset, rows


def fit_voice(
    kokoro,
    dataset,
    cfg: FitVoiceConfig | None = None,
    start: str | torch.Tensor | None = None,
    history: list[dict] | None = None,
    progress: bool = True,
    state_path: str | Path | None = None,
) -> torch.Tensor:
    """A voice pack [510, 1, 256] float32 fitted to the speaker of `dataset` (see the module docstring).

    `dataset`: prepare_dataset's result (fitted on its train split, stopped early on its dev split; its test
    split is never read) or a (train, dev) pair of items with targets. `start`: the stock pack's name or a pack;
    default the dataset's reference voice. `history`, when given, receives one row per epoch (epoch 0: the start
    pack). The model is left as it was, and so is torch's RNG (crops and decoder noise are drawn from cfg.seed).
    The result's prosody half ([..., 128:]) is the start pack's, unchanged. `state_path`: a file the state is
    saved to after every epoch, and continued from when it exists (helpers.train.fit_state; another fit's state
    is refused).
    """
    cfg = cfg or FitVoiceConfig()
    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    train_objs, dev_objs = _splits(dataset)
    if not train_objs or not dev_objs:
        raise ValueError(
            f"fit_voice needs training and dev (held-out) clips of the speaker (got {len(train_objs)} and "
            f"{len(dev_objs)}): early stopping reads the dev ones"
        )
    train_objs, dev_objs = train_objs[: cfg.max_clips], dev_objs[: max(1, cfg.max_clips // 4)]
    train_items, dev_items = _prepared(train_objs, "training"), _prepared(dev_objs, "dev")
    start = reference_voice_of(dataset) if start is None else start
    base = (kokoro.voice(start) if isinstance(start, str) else start).detach().float().to(device)  # [510,1,256]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    model.requires_grad_(False).eval()  # only the decoder runs: no LSTM, so eval mode backpropagates on cuDNN too
    try:
        with _seeded(cfg.seed, device):
            train = [_Clip(it, device) for it in train_items]
            dev = [_Clip(it, device) for it in dev_items]
            ids = ([it.id for it in train_items], [it.id for it in dev_items])  # resume hook
            resume = None if state_path is None else FitResume(state_path, fit_identity(
                cfg, *ids, base, getattr(kokoro, "source", "")), cfg.patience)  # fmt: skip
            best_offset, rows = _descend(model, train, dev, base, cfg, progress, resume)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    if history is not None:
        history.extend(rows)
    return with_timbre(base, best_offset).detach().cpu().contiguous()  # [510, 1, 256]


def save_pack(pack: torch.Tensor, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a pack as .safetensors (tensor "pack"), readable by helpers.kokoro.voices.read_pack_file."""
    from safetensors.torch import save_file

    from helpers.kokoro.voices import PACK_KEY, float_pack

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({PACK_KEY: float_pack(pack.contiguous())}, str(path), metadata=metadata)
    return path


DESIGN = ("timbre half (style[:128]) fitted through the frozen decoder; prosody half (style[128:]) = the start "
          "pack's, unchanged, so no prosody system is favoured")


def fit_record(dataset, start: str, cfg: FitVoiceConfig, history: list[dict], weights: str) -> dict:
    """What a fitted voice saw and how it ended: written as JSON beside the pack (`fitted_voice`, the command)."""
    import dataclasses

    train, dev = _splits(dataset)
    best = min(history, key=lambda r: r["dev_loss"])
    return {
        "start": start,
        "design": DESIGN,
        "weights": weights,
        "split_file": str(getattr(dataset, "split_file", "") or ""),
        "split_hash": getattr(dataset, "split_hash", ""),
        "fit_ids": sorted(it.id for it in train[: cfg.max_clips]),
        "early_stop_ids": sorted(it.id for it in dev[: max(1, cfg.max_clips // 4)]),
        "early_stop_split": "dev",
        "config": dataclasses.asdict(cfg),
        "best_epoch": int(best["epoch"]),
        "dev_loss_start": history[0]["dev_loss"],
        "dev_loss_best": best["dev_loss"],
        "history": history,
    }


def fitted_voice(
    kokoro, dataset, settings, cfg: FitVoiceConfig | None = None, progress: bool = True
) -> tuple[torch.Tensor, Path]:
    """`fit_voice` once per (prepared data, weights, config): (pack, path of its cached .safetensors).

    The file lives at `settings.runs_dir / "voices" / <dataset name>-<key>.safetensors`, the key a hash of the
    dataset's settings hash, its split hash, its train and dev ids, the weights source, the start pack and `cfg`;
    so notebooks 04, 05 and 06 share one fitted voice, and a change to any of these fits again (old files stay).
    Beside it, `<same name>.json` (`fit_record`): the ids fitted on and stopped on, the split hash, the history.
    `cfg` defaults to `FitVoiceConfig.for_mode(settings.mode)`.
    """
    import dataclasses
    import hashlib

    from helpers.kokoro.voices import read_pack_file

    cfg = cfg or FitVoiceConfig.for_mode(settings.mode)
    train, dev = _splits(dataset)
    manifest = getattr(dataset, "manifest", None) or {}
    start = reference_voice_of(dataset)
    key = json.dumps({"data": manifest.get("settings_hash"), "split": getattr(dataset, "split_hash", ""),
                      "train": sorted(it.id for it in train), "dev": sorted(it.id for it in dev),
                      "weights": getattr(kokoro, "source", ""), "start": start, "design": DESIGN,
                      "cfg": dataclasses.asdict(cfg)}, sort_keys=True)  # fmt: skip
    name = manifest.get("name") or "dataset"
    path = Path(settings.runs_dir) / "voices" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.safetensors"
    if path.is_file() and path.with_suffix(".json").is_file():
        return read_pack_file(path), path
    history: list[dict] = []
    state = path.with_name(path.stem + ".fitstate.safetensors")  # resume hook: an interrupted fit continues
    pack = fit_voice(kokoro, dataset, cfg, start=start, history=history, progress=progress, state_path=state)
    record = fit_record(dataset, start, cfg, history, str(getattr(kokoro, "source", "")))
    meta = {"start": start, "data": name, "weights": record["weights"], "best_epoch": str(record["best_epoch"]),
            "dev_loss_start": f"{record['dev_loss_start']:.4f}", "dev_loss_best": f"{record['dev_loss_best']:.4f}",
            "split_hash": record["split_hash"]}  # fmt: skip
    path.with_suffix(".json").parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(record, indent=1))
    tmp = save_pack(pack, path.with_name(path.stem + ".part.safetensors"), meta)
    tmp.replace(path)  # atomic: an interrupted fit leaves no half-written voice behind
    state.unlink(missing_ok=True)  # resume hook: the finished voice replaces its resume state
    return pack, path


CLI_FIELDS = ("epochs", "lr", "patience", "crop_frames", "seed")  # the FitVoiceConfig fields the commands expose


CLI_TYPES = {"epochs": whole(1), "lr": real(0, lo_open=True), "patience": whole(1), "crop_frames": whole(1),
             "seed": whole()}  # ranges checked while parsing (helpers.argtypes)  # fmt: skip


def add_config_args(parser) -> None:
    """--epochs, --lr, --patience, --crop-frames, --seed on an argparse parser, FitVoiceConfig's defaults."""
    for name in CLI_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), type=CLI_TYPES[name], default=getattr(FitVoiceConfig, name))


def print_set_aside(data) -> None:
    """Which clips the fit does not use, and why: refused by validation, suspect, or failed (prepare_dataset)."""
    report, manifest = getattr(data, "report", None), getattr(data, "manifest", None) or {}
    rows = [(r.id, r.reason, r.message) for r in getattr(report, "excluded", [])]
    rows += [(r["id"], "suspect", r.get("reason", "")) for r in manifest.get("items", []) if r.get("suspect")]
    rows += [(f["id"], "failed", f.get("reason", "")) for f in getattr(data, "failed", []) or []]
    for clip, reason, message in rows:
        print(f"  not used: {clip} ({reason}: {message})")
    if rows:
        print(f"{len(rows)} clip(s) not used; the fit uses {len(data.train)} training and {len(data.dev)} dev")


def config_from_args(args) -> FitVoiceConfig:
    return FitVoiceConfig(**{name: getattr(args, name) for name in CLI_FIELDS})


def main(argv: list[str] | None = None) -> Path:
    """`python -m helpers.train.fit_voice --data DIR --out PACK.safetensors`: prepare (cached), fit, save."""
    from helpers.data.prepare import prepare_dataset
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings

    p = argparse.ArgumentParser(prog="python -m helpers.train.fit_voice", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/librivox", help="a recorded dataset folder (notebook 04's format)")
    p.add_argument("--out", required=True, type=new_file_path, help="where to write the pack (.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace the pack at --out when it exists")
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8")
    p.add_argument("--start", default=None, help="stock pack to start from (default: the dataset's reference)")
    p.add_argument("--device", default=None)
    add_config_args(p)
    args = p.parse_args(argv)
    if args.out.suffix != ".safetensors":
        p.error(f"argument --out: the pack is written as .safetensors, got {str(args.out)!r}")
    if args.out.exists() and not args.overwrite:
        p.error(f"argument --out: {args.out} already exists; nothing was changed. Pass --overwrite to replace it, "
                "or choose another file")  # fmt: skip
    S = Settings.from_env()
    kokoro = load_kokoro(args.weights, device=args.device or S.device)
    data = prepare_dataset(kokoro, args.data, S)
    print_set_aside(data)
    cfg = config_from_args(args)
    history: list[dict] = []
    start = args.start or reference_voice_of(data)
    state = Path(args.out).with_suffix(".fitstate.safetensors")  # resume hook: rerun the command to continue
    pack = fit_voice(kokoro, data, cfg, start=start, history=history, state_path=state)
    record = fit_record(data, start, cfg, history, kokoro.source)
    meta = {"start": start, "data": str(args.data), "weights": kokoro.source, "epochs": str(len(history) - 1),
            "dev_loss_start": f"{record['dev_loss_start']:.4f}", "dev_loss_best": f"{record['dev_loss_best']:.4f}",
            "split_hash": record["split_hash"]}  # fmt: skip
    out = save_pack(pack, unique_tmp(args.out), meta).replace(args.out)  # whole or not at all (an --overwrite too)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json').name} (from {start}; dev loss {meta['dev_loss_start']} -> "
          f"{meta['dev_loss_best']})")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
