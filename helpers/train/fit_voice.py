"""Fit a voice pack to a recorded speaker: gradient descent on the style, through the frozen Kokoro.

Kokoro has no style encoder: a voice is a pack [510, 1, 256] whose row len(phonemes) - 1 is an utterance's
ref_s = [timbre (128) ; prosody (128)] (helpers.kokoro.forward.style_for). `fit_voice` starts from the stock
pack nearest the speaker (notebook 04's reference voice, which also made the targets) and learns one offset
(256,) added to every row, so the pack keeps its stock dependence on length. Each half meets its own losses:

    timbre  ref_s[:128]  decode() on a W-frame crop with the recording's durations, F0 and energy
                         (teacher-forced), L1 on log-mel vs the recording           (losses.cropped_mel_loss)
    prosody ref_s[128:]  encode() + duration head vs the target durations (spoken tokens only:
                         items.prosody_mask), F0Ntrain on the target durations vs the voiced F0 and the energy

One epoch visits every training clip once (B = 1: F0Ntrain and the decoder use InstanceNorm). Before the
first epoch and after each, the same losses on the held-out clips (fixed crops and decoder noise); training
stops after `patience` epochs without improvement and returns the best pack (the stock one if nothing helped).

    pack = fit_voice(kokoro, dataset, FitVoiceConfig(epochs=20))     # dataset: prepare_dataset's result
    pack, path = fitted_voice(kokoro, dataset, S)   # the same, cached under runs/<mode>/voices/ (notebooks 04-06)
    python -m helpers.train.fit_voice --data data/librivox --out runs/voices/reader.safetensors

Whether the fitted pack beats the stock packs on held-out clips (MCD, F0 RMSE, leave one clip out) is measured
by helpers.compare.voice_fit: `python -m helpers.train.voice_loo --data DIR` (results/fit-voice/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.kokoro.forward import duration_logits, encode, f0_energy, style_for, upstream_features
from helpers.train import losses as L
from helpers.train.fit_state import FitResume, fit_identity
from helpers.train.items import TrainItem, as_train_items, collate, prosody_mask


@dataclass
class FitVoiceConfig:
    epochs: int = 30
    lr: float = 0.01  # Adam on the offset; stock style values are O(0.1-1)
    patience: int = 3  # epochs without a better held-out loss before stopping
    crop_frames: int = 32  # decoder crops of this many 25 ms frames
    w_mel: float = 5.0  # as TrainConfig.w_mel
    w_dur: float = 1.0  # L1 + BCE, as in stage 2
    w_f0: float = 1.0
    w_energy: float = 1.0
    seed: int = 0
    max_clips: int = 200  # fit on at most this many training clips and a quarter as many held-out ones: an epoch
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
    if hasattr(dataset, "train"):
        return list(dataset.train), list(getattr(dataset, "val", []))
    train, val = dataset
    return list(train), list(val)


def _prepared(objs, what: str) -> list[TrainItem]:
    items = as_train_items(objs)
    missing = [it.id for it in items if any(getattr(it, k) is None for k in ("durations", "f0", "energy", "mel"))]
    if missing:
        raise ValueError(f"{what} clips without targets (durations, F0, energy, mel: notebook 04): {missing[:5]}")
    return items


class _Clip:
    """One clip on the device: ids, frozen upstream features, targets."""

    def __init__(self, model: nn.Module, it: TrainItem, device):
        batch = collate([it]).to(device)
        self.ids, self.lengths, self.pad = batch.ids, batch.lengths, batch.pad  # (1, T)
        self.spoken = prosody_mask(batch)  # (1, T)
        self.d_en = upstream_features(model, batch.ids, batch.pad)  # (1, 512, T)
        self.n_phonemes = it.style_row
        self.dur = torch.as_tensor(it.durations, device=device)  # (T,)
        self.f0 = torch.as_tensor(it.f0, device=device)  # (2F,) Hz, 0 = unvoiced
        self.energy = torch.as_tensor(it.energy, device=device)  # (2F,)
        self.mel = it.mel  # (80, 2F)


def clip_losses(model: nn.Module, clip: _Clip, pack: torch.Tensor, crop_frames: int) -> dict[str, torch.Tensor]:
    """The four losses of one clip for a pack [510, 1, 256] (see the module docstring)."""
    ref_s = style_for(pack, clip.n_phonemes)  # (1, 256)
    s = ref_s[:, 128:]  # (1, 128) prosody
    d = encode(model, clip.d_en, s, clip.lengths, clip.pad)  # (1, T, 640)
    logits = duration_logits(model, d, clip.lengths)  # (1, T, 50)
    l1, bce = L.duration_loss(logits, L.duration_targets(clip.dur[None]), clip.spoken)
    f0, n = f0_energy(model, d[0], clip.dur, s)  # (2F,) each
    mel = L.cropped_mel_loss(model, clip.mel, clip.ids[0], ref_s, clip.f0, clip.energy, clip.dur, crop_frames)
    return {"dur": l1 + bce, "f0": L.f0_loss(f0, clip.f0, clip.f0 > 0), "energy": L.energy_loss(n, clip.energy),
            "mel": mel}  # fmt: skip


def _total(terms: dict[str, torch.Tensor], cfg: FitVoiceConfig) -> torch.Tensor:
    w = {"dur": cfg.w_dur, "f0": cfg.w_f0, "energy": cfg.w_energy, "mel": cfg.w_mel}
    return sum(w[k] * v for k, v in terms.items())


@contextlib.contextmanager
def _seeded(seed: int, device):
    """torch's RNG seeded inside the block and restored after (crops and decoder noise come from it)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _held_out(model, clips: list[_Clip], pack: torch.Tensor, cfg: FitVoiceConfig) -> dict[str, float]:
    """Mean held-out losses; crops and decoder noise from a fixed seed (the global RNG is left as it was)."""
    rows = []
    with torch.no_grad(), _seeded(cfg.seed, clips[0].ids.device):
        for c in clips:
            terms = clip_losses(model, c, pack, cfg.crop_frames)
            rows.append({"loss": float(_total(terms, cfg)), **{k: float(v) for k, v in terms.items()}})
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _descend(model, train: list[_Clip], val: list[_Clip], base: torch.Tensor, cfg: FitVoiceConfig, progress: bool,
             resume: FitResume | None = None):  # fmt: skip
    """Adam on the offset, epoch by epoch, with early stopping: (best offset (256,), one row per epoch).
    `resume`: the state is saved there after every epoch, and a saved one is continued (helpers.train.fit_state)."""
    from tqdm.auto import tqdm

    offset = torch.zeros(256, device=base.device, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=cfg.lr)
    best = {"epoch": 0, **_held_out(model, val, base, cfg)}  # the stock pack: what fitting must beat
    best_offset, since_best, rows = offset.detach().clone(), 0, [best]
    order = np.random.default_rng(cfg.seed)
    first = 1
    if resume is not None and (saved := resume.restore(offset, opt, order)) is not None:  # resume hook
        first, best, best_offset, since_best, rows = saved
    bar = tqdm(range(first, cfg.epochs + 1), desc="fit_voice", disable=not progress)
    for epoch in bar:
        losses = []
        for i in order.permutation(len(train)):
            loss = _total(clip_losses(model, train[i], base + offset, cfg.crop_frames), cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **_held_out(model, val, base + offset, cfg)}
        rows.append(row)
        if row["val_loss"] < best["val_loss"]:
            best, best_offset, since_best = row, offset.detach().clone(), 0
        else:
            since_best += 1
        bar.set_postfix(val=f"{row['val_loss']:.3f}", best=f"{best['val_loss']:.3f}")
        if resume is not None:  # resume hook: this epoch's state, atomically
            resume.save(epoch, offset, opt, order, best, best_offset, since_best, rows, base)
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

    `dataset`: prepare_dataset's result (train/val ItemTargets) or a (train, val) pair of items with targets.
    `start`: the stock pack's name or a pack; default the dataset's reference voice. `history`, when given,
    receives one row per epoch (epoch 0: the start pack). The model is left as it was, and so is torch's
    RNG (crops and decoder noise are drawn from cfg.seed). `state_path`: a file the state is saved to after
    every epoch, and continued from when it exists (helpers.train.fit_state; another fit's state is refused).
    """
    cfg = cfg or FitVoiceConfig()
    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    train_objs, val_objs = _splits(dataset)
    if not train_objs or not val_objs:
        raise ValueError(
            f"fit_voice needs training and held-out clips of the speaker (got {len(train_objs)} and "
            f"{len(val_objs)}): early stopping reads the held-out ones"
        )
    train_objs, val_objs = train_objs[: cfg.max_clips], val_objs[: max(1, cfg.max_clips // 4)]
    train_items, val_items = _prepared(train_objs, "training"), _prepared(val_objs, "held-out")
    start = reference_voice_of(dataset) if start is None else start
    base = (kokoro.voice(start) if isinstance(start, str) else start).detach().float().to(device)  # [510,1,256]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    model.requires_grad_(False).eval()
    if device.type == "cuda":  # cuDNN's RNN backward refuses eval mode; single-layer LSTMs have no dropout
        for m in model.modules():
            if isinstance(m, nn.LSTM):
                m.train()
    try:
        with _seeded(cfg.seed, device):
            with torch.no_grad():
                train = [_Clip(model, it, device) for it in train_items]
                val = [_Clip(model, it, device) for it in val_items]
            ids = ([it.id for it in train_items], [it.id for it in val_items])  # resume hook
            resume = None if state_path is None else FitResume(state_path, fit_identity(
                cfg, *ids, base, getattr(kokoro, "source", "")), cfg.patience)  # fmt: skip
            best_offset, rows = _descend(model, train, val, base, cfg, progress, resume)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    if history is not None:
        history.extend(rows)
    return (base + best_offset).detach().cpu().contiguous()  # [510, 1, 256]


def save_pack(pack: torch.Tensor, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a pack as .safetensors (tensor "pack"), readable by helpers.kokoro.voices.read_pack_file."""
    from safetensors.torch import save_file

    from helpers.kokoro.voices import PACK_KEY, float_pack

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({PACK_KEY: float_pack(pack.contiguous())}, str(path), metadata=metadata)
    return path


def fitted_voice(
    kokoro, dataset, settings, cfg: FitVoiceConfig | None = None, progress: bool = True
) -> tuple[torch.Tensor, Path]:
    """`fit_voice` once per (prepared data, weights, config): (pack, path of its cached .safetensors).

    The file lives at `settings.runs_dir / "voices" / <dataset name>-<key>.safetensors`, the key a hash of the
    dataset's settings hash, its train/val item ids, the weights source, the start pack and `cfg`; so notebooks
    04, 05 and 06 share one fitted voice, and a change to any of these fits again (old files stay). `cfg`
    defaults to `FitVoiceConfig.for_mode(settings.mode)`.
    """
    import dataclasses
    import hashlib
    import json

    from helpers.kokoro.voices import read_pack_file

    cfg = cfg or FitVoiceConfig.for_mode(settings.mode)
    train, val = _splits(dataset)
    manifest = getattr(dataset, "manifest", None) or {}
    start = reference_voice_of(dataset)
    key = json.dumps({"data": manifest.get("settings_hash"), "train": sorted(it.id for it in train),
                      "val": sorted(it.id for it in val), "weights": getattr(kokoro, "source", ""), "start": start,
                      "cfg": dataclasses.asdict(cfg)}, sort_keys=True)  # fmt: skip
    name = manifest.get("name") or "dataset"
    path = Path(settings.runs_dir) / "voices" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.safetensors"
    if path.is_file():
        return read_pack_file(path), path
    history: list[dict] = []
    state = path.with_name(path.stem + ".fitstate.safetensors")  # resume hook: an interrupted fit continues
    pack = fit_voice(kokoro, dataset, cfg, start=start, history=history, progress=progress, state_path=state)
    best = min(history, key=lambda r: r["val_loss"])
    meta = {"start": start, "data": name, "weights": str(getattr(kokoro, "source", "")), "best_epoch": str(best["epoch"]),
            "val_loss_start": f"{history[0]['val_loss']:.4f}", "val_loss_best": f"{best['val_loss']:.4f}"}  # fmt: skip
    tmp = save_pack(pack, path.with_name(path.stem + ".part.safetensors"), meta)
    tmp.replace(path)  # atomic: an interrupted fit leaves no half-written voice behind
    state.unlink(missing_ok=True)  # resume hook: the finished voice replaces its resume state
    return pack, path


CLI_FIELDS = ("epochs", "lr", "patience", "crop_frames", "seed")  # the FitVoiceConfig fields the commands expose


def add_config_args(parser) -> None:
    """--epochs, --lr, --patience, --crop-frames, --seed on an argparse parser, FitVoiceConfig's defaults."""
    for name in CLI_FIELDS:
        kind = type(getattr(FitVoiceConfig, name))
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(FitVoiceConfig, name))


def config_from_args(args) -> FitVoiceConfig:
    return FitVoiceConfig(**{name: getattr(args, name) for name in CLI_FIELDS})


def main(argv: list[str] | None = None) -> Path:
    """`python -m helpers.train.fit_voice --data DIR --out PACK.safetensors`: prepare (cached), fit, save."""
    from helpers.data.prepare import prepare_dataset
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings

    p = argparse.ArgumentParser(prog="python -m helpers.train.fit_voice", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/librivox", help="a recorded dataset folder (notebook 04's format)")
    p.add_argument("--out", required=True, help="where to write the pack (.safetensors)")
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8")
    p.add_argument("--start", default=None, help="stock pack to start from (default: the dataset's reference)")
    p.add_argument("--device", default=None)
    add_config_args(p)
    args = p.parse_args(argv)
    S = Settings.from_env()
    kokoro = load_kokoro(args.weights, device=args.device or S.device)
    data = prepare_dataset(kokoro, args.data, S)
    cfg = config_from_args(args)
    history: list[dict] = []
    start = args.start or reference_voice_of(data)
    state = Path(args.out).with_suffix(".fitstate.safetensors")  # resume hook: rerun the command to continue
    pack = fit_voice(kokoro, data, cfg, start=start, history=history, state_path=state)
    meta = {"start": start, "data": str(args.data), "weights": kokoro.source, "epochs": str(len(history) - 1),
            "val_loss_start": f"{history[0]['val_loss']:.4f}",
            "val_loss_best": f"{min(r['val_loss'] for r in history):.4f}"}  # fmt: skip
    out = save_pack(pack, args.out, meta)
    print(f"wrote {out} (from {start}; held-out loss {meta['val_loss_start']} -> {meta['val_loss_best']})")
    return out


if __name__ == "__main__":
    main()
