"""LSTM vs Mamba, side by side: listen (A/B), measure (objective metrics), time (latency).

Two models share one recipe: the original Kokoro (its DurationEncoder built from BiLSTMs) and the same
weights with the DurationEncoder replaced by Mamba blocks from an adapter file. Everything here takes
two `LoadedKokoro` (or bare KModels), an adapter *path* and plain lists of items, so it does not care how
the adapter was trained or how the targets were made.

    lstm = load_kokoro(S.weights)
    adapter, mamba, msgs = pick_mamba(lstm, S.runs_dir, fixture_path)  # newest adapter that loads, else fixture
    mamba = mamba_twin(lstm, adapter_path)                      # or: a given adapter, shared weights
    r = ab_compare(lstm, mamba, "Can you keep a secret?")       # ABResult: two Synthesis, matched audio
    show_ab(r)                                                  # two players + durations/F0/mel plots
    ab_player(lstm, mamba, presets)                             # the same behind ipywidgets
    df = evaluate(lstm, mamba, items, sentences)                # one row per (utterance, model)
    summary = summarize(df); save_results(df, out_dir, ...)     # CSV + JSON under runs/compare/
    lat = measure_latency(lstm, mamba, [16, 64, 256, 510])      # DurationEncoder and whole synthesis
    parameter_table(lstm, mamba, adapter_path)                  # parameters and sizes

Two models at once, not one operated back and forth (applying/restoring the surgery around every call is
easy to get wrong). `copy.deepcopy` fails on Kokoro (weight_norm), so the Mamba model is a *shallow twin*
(`shallow_twin`): its own module tables along the path to the DurationEncoder, every other module shared.
`load_mamba_kokoro` loads a separate full copy instead (a few seconds offline, twice the memory).
"""

from __future__ import annotations

import copy
import dataclasses
import html
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import metrics as M
from .synth import SAMPLE_RATE, SAMPLES_PER_FRAME, Synthesis, alignment_from_durations, style_for, synthesize

MODELS = ("LSTM", "Mamba")
FIXTURE_NOTE = "untrained fixture: random-init Mamba blocks, pretrained AdaLayerNorms; no training at all"


# ------------------------------------------------------------------------------------------ adapters


def adapter_info(path: str | Path) -> dict:
    """The adapter's JSON (surgery config, parameter count, metadata), plus its file paths and size."""
    from .peft import ADAPTER_FORMAT

    path = Path(path)
    st_path, js_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    info = json.loads(js_path.read_text())
    if info.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{js_path} is not a kokoro-mamba adapter (format {info.get('format')!r})")
    info["path"] = str(st_path.with_suffix(""))
    info["file_bytes"] = st_path.stat().st_size if st_path.exists() else None
    return info


def list_adapters(runs_dir: str | Path, include_fixtures: bool = False) -> list[Path]:
    """Every adapter under `runs_dir`, newest first (by modification time of its .safetensors).

    An adapter is a ``<name>.safetensors`` with a ``<name>.json`` beside it in the kokoro-mamba adapter
    format (what `helpers.peft.save_adapter` writes). Fixtures (metadata ``fixture: true``) are skipped
    unless `include_fixtures`. Paths come without suffix, as `load_adapter` takes them.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for st in runs_dir.rglob("*.safetensors"):
        try:
            info = adapter_info(st)
        except (OSError, ValueError, json.JSONDecodeError):
            continue
        if info.get("metadata", {}).get("fixture") and not include_fixtures:
            continue
        found.append((st.stat().st_mtime, st.with_suffix("")))
    return [p for _, p in sorted(found, reverse=True)]


def find_adapter(runs_dir: str | Path, include_fixtures: bool = False) -> Path | None:
    """The newest adapter anywhere under `runs_dir` (see `list_adapters`), or None."""
    found = list_adapters(runs_dir, include_fixtures)
    return found[0] if found else None


def pick_mamba(kokoro, runs_dir: str | Path, fixture: str | Path, seed: int = 0):
    """(adapter path, Mamba twin of `kokoro`, messages): the newest adapter under `runs_dir` that loads.

    Adapters that do not fit this code's surgery (e.g. saved before a change of block layout) are skipped
    with a message saying why. When none loads, the untrained fixture at `fixture` is used, (re)made when it
    is missing, was made for other weights, or no longer fits.
    """
    from .peft import AdapterMismatchError

    messages = []
    for path in list_adapters(runs_dir):
        try:
            return path, mamba_twin(kokoro, path), messages
        except (AdapterMismatchError, KeyError, TypeError, ValueError) as e:
            messages.append(f"skipped {path}: {type(e).__name__}: {str(e)[:300]}")
    fixture = Path(fixture)
    messages.append("no trained adapter under runs/ loads: using an UNTRAINED fixture")
    try:
        if adapter_info(fixture)["metadata"].get("weights") != getattr(kokoro, "source", "unknown"):
            raise ValueError("fixture made for other weights")
        return fixture, mamba_twin(kokoro, fixture), messages
    except (OSError, ValueError, KeyError, TypeError, AdapterMismatchError):
        make_fixture_adapter(kokoro, fixture, seed=seed)
        return fixture, mamba_twin(kokoro, fixture), messages


def make_fixture_adapter(kokoro, path: str | Path, surgery=None, seed: int = 0) -> Path:
    """Save an *untrained* Mamba DurationEncoder as an adapter (the fallback when no run has trained one).

    The surgery is applied to `kokoro`'s model, saved with `save_adapter` and undone again, so `kokoro`
    comes back unchanged. Its metadata says ``fixture: true`` and how it was made.
    """
    from .peft import save_adapter
    from .surgery import SurgeryConfig, replace_duration_encoder, restore

    model = getattr(kokoro, "model", kokoro)
    torch.manual_seed(seed)
    report = replace_duration_encoder(model, surgery or SurgeryConfig())
    try:
        meta = {
            "fixture": True,
            "trained": FIXTURE_NOTE,
            "steps": 0,
            "seed": seed,
            "weights": getattr(kokoro, "source", "unknown"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        st, _ = save_adapter(model, path, meta)
    finally:
        restore(model, report)
    return st.with_suffix("")


def describe_adapter(path: str | Path) -> str:
    """A few lines for the notebook: which adapter, what surgery, how it was trained (from its metadata)."""
    info = adapter_info(path)
    meta = info.get("metadata", {})
    sur = info.get("surgery", {})
    size = info.get("file_bytes")
    lines = [
        f"adapter: {info['path']} ({size / 2**20:.1f} MB)" if size else f"adapter: {info['path']}",
        f"surgery: design={sur.get('design')}, d_state={sur.get('d_state')}, expand={sur.get('expand')}, "
        f"{info.get('parameters', 0):,} parameters",
    ]
    if meta.get("fixture"):
        lines.append(f"training: NONE - {meta.get('trained', FIXTURE_NOTE)}")
    else:
        keys = ("stage", "steps", "weights", "voice", "init", "trained", "note")
        known = {k: meta[k] for k in keys if k in meta}
        lines.append("training: " + (", ".join(f"{k}={v}" for k, v in known.items()) or "not recorded"))
        if isinstance(meta.get("val"), dict):
            val = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in meta["val"].items()
            )
            lines.append(f"validation scores at save time: {val}")
        cfg = meta.get("config")
        if isinstance(cfg, dict):
            keep = {k: v for k, v in cfg.items() if not isinstance(v, dict | list)}
            lines.append("training config: " + ", ".join(f"{k}={v}" for k, v in list(keep.items())[:14]))
    return "\n".join(lines)


def shallow_twin(model: torch.nn.Module, path: str | None = None) -> torch.nn.Module:
    """A second KModel that shares every module with `model` except along `path` (the DurationEncoder's).

    The root and each parent on the path get their own module table, so a surgery on the twin (e.g.
    `load_adapter`) swaps the twin's DurationEncoder only; ALBERT, the rest of the predictor and the
    decoder are the same objects in both (no second copy in memory, and no deepcopy, which weight_norm
    breaks). For inference side by side; do not train one twin while using the other.
    """
    from .surgery import DURATION_ENCODER_PATH

    path = path or DURATION_ENCODER_PATH
    twin = copy.copy(model)
    twin._modules = dict(model._modules)
    node = twin
    for name in path.split(".")[:-1]:
        child = copy.copy(node._modules[name])
        child._modules = dict(child._modules)
        node._modules[name] = child
        node = child
    return twin


def mamba_twin(kokoro, adapter: str | Path):
    """`kokoro` (a LoadedKokoro) with the adapter's Mamba DurationEncoder, sharing all other weights.

    The original `kokoro` keeps its LSTM DurationEncoder. Same result as `load_mamba_kokoro`, without
    loading the weights a second time.
    """
    from .peft import load_adapter

    twin = shallow_twin(kokoro.model)
    cfg = load_adapter(twin, adapter)
    twin.eval()
    note = (
        f"{kokoro.note} + Mamba DurationEncoder ({cfg.design}) from adapter {Path(adapter).with_suffix('')}"
    )
    return dataclasses.replace(kokoro, model=twin, note=note)


def load_mamba_kokoro(
    adapter: str | Path, source: str = "auto", device: str | torch.device = "cpu", **kwargs
):
    """A freshly loaded Kokoro with the adapter's Mamba DurationEncoder in place (eval mode)."""
    from .loading import load_kokoro
    from .peft import load_adapter

    kk = load_kokoro(source, device=device, verbose=False, **kwargs)
    cfg = load_adapter(kk.model, adapter)
    kk.model.eval()
    note = f"{kk.note} + Mamba DurationEncoder ({cfg.design}) from adapter {Path(adapter).with_suffix('')}"
    return dataclasses.replace(kk, note=note)


# ------------------------------------------------------------------------------------------ loudness


def active_rms(audio: np.ndarray, floor_db: float = 40.0) -> float:
    """RMS over the 25 ms frames within `floor_db` of the loudest one (pauses do not dilute it)."""
    y = np.asarray(audio, dtype=np.float64).ravel()
    if y.size == 0:
        return 0.0
    n = max(1, y.size // SAMPLES_PER_FRAME)
    frames = np.array_split(y, n)
    power = np.array([np.mean(f**2) for f in frames])
    if power.max() <= 0:
        return 0.0
    keep = power >= power.max() * 10 ** (-floor_db / 10)
    return float(np.sqrt(power[keep].mean()))


def match_loudness(
    *signals: np.ndarray, target_dbfs: float = -23.0, peak: float = 0.99
) -> tuple[list[np.ndarray], list[float]]:
    """Scale every signal to the same active-speech RMS (`active_rms`, not LUFS: no K-weighting, no gating
    beyond the 40 dB frame floor), `target_dbfs` re-reference; if any peak would exceed `peak`, all are
    lowered by the same amount, so they stay equally loud. Returns (signals, gains in dB)."""
    target = 10 ** (target_dbfs / 20)
    gains = [target / r if (r := active_rms(s)) > 0 else 1.0 for s in signals]
    peaks = [float(np.abs(s).max()) * g if len(s) else 0.0 for s, g in zip(signals, gains)]
    common = min(1.0, peak / max(peaks)) if max(peaks, default=0) > 0 else 1.0
    gains = [g * common for g in gains]
    out = [(np.asarray(s, dtype=np.float32) * g).astype(np.float32) for s, g in zip(signals, gains)]
    return out, [20 * math.log10(g) for g in gains]


# ------------------------------------------------------------------------------------------ prosody


def _pack(kokoro, voice) -> torch.Tensor:
    """A voice pack [510, 1, 256] from a name, a pack, or one style vector (256,) / (1, 256)."""
    if isinstance(voice, np.ndarray):
        voice = torch.from_numpy(voice)
    if isinstance(voice, torch.Tensor):
        v = voice.float()
        if v.numel() == 256:  # one ref_s: every row the same, so style_for picks it whatever the length
            return v.reshape(1, 1, 256).expand(510, 1, 256)
        return v
    return kokoro.voice(voice)


@torch.no_grad()
def predict_prosody(kokoro, phonemes: str, voice=None, speed: float = 1.0, durations=None) -> dict:
    """The prosody side only (no decoder): durations (T,), F0 (2F,) and energy (2F,) as NumPy arrays.

    With `durations` (T,) given, F0 and energy follow that alignment (teacher-forced), so two models'
    curves share one time grid. Much cheaper than `synthesize` (the decoder dominates the cost).
    """
    from .g2p import phonemes_to_ids
    from .synth import predict_durations

    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    ids = torch.as_tensor(phonemes_to_ids(phonemes, strict=False), device=device).reshape(1, -1)
    ref_s = style_for(_pack(kokoro, voice), len(phonemes)).to(device)  # (1, 256)
    d, _, pred = predict_durations(model, ids, ref_s, speed)  # d (1, T, 640)
    dur = (
        pred if durations is None else torch.as_tensor(durations, dtype=torch.long, device=device).reshape(-1)
    )
    if dur.shape[0] != ids.shape[1]:
        raise ValueError(f"durations have {dur.shape[0]} entries for {ids.shape[1]} tokens")
    aln = alignment_from_durations(dur).unsqueeze(0)  # (1, T, F)
    f0, n = model.predictor.F0Ntrain(d.transpose(-1, -2) @ aln, ref_s[:, 128:])  # (1, 2F) each
    return {
        "durations": dur.cpu().numpy(),
        "predicted_durations": pred.cpu().numpy(),
        "f0": f0[0].float().cpu().numpy(),
        "energy": n[0].float().cpu().numpy(),
    }


# ------------------------------------------------------------------------------------------ A/B


@dataclass
class ABResult:
    """One sentence spoken by both models with the same voice, speed and decoder seed."""

    text: str | None
    phonemes: str
    voice: str
    speed: float
    seed: int | None
    share_durations: bool
    lstm: Synthesis
    mamba: Synthesis
    lstm_audio: np.ndarray  # loudness-matched copies for listening (match_loudness)
    mamba_audio: np.ndarray
    gains_db: tuple[float, float]

    def summary(self) -> dict[str, float]:
        """Mamba against the LSTM (the teacher) for this sentence: durations, F0 (when aligned), MCD."""
        a, b = self.lstm, self.mamba
        out = {
            "tokens": len(a.durations),
            "LSTM seconds": round(a.seconds, 3),
            "Mamba seconds": round(b.seconds, 3),
            **M.duration_errors(b.durations, a.durations),
        }
        if len(a.f0) == len(b.f0):  # equal length: same durations (shared or identical)
            out.update(M.f0_errors(b.f0, a.f0))
        out["mcd_db"] = M.mcd(b.audio, a.audio)
        return out


def ab_compare(
    lstm_kokoro,
    mamba_kokoro,
    text: str | None = None,
    voice=None,
    speed: float = 1.0,
    seed: int | None = 0,
    share_durations: bool = False,
    *,
    phonemes: str | None = None,
) -> ABResult:
    """Synthesize one sentence with both models: same phonemes, voice, speed and decoder seed.

    `share_durations=True` forces the Mamba model onto the LSTM's durations, so both analyses (audio,
    F0, energy) are equal-length and frame-aligned by construction; only the DurationEncoder's features
    then differ (through F0, energy and nothing else). `voice`: a name, a pack [510, 1, 256] or one style
    (256,). Listening copies are loudness-matched (`match_loudness`, active-speech RMS).
    """
    from .g2p import phonemize

    if phonemes is None:
        phonemes = phonemize(text)
    pack_a, pack_b = _pack(lstm_kokoro, voice), _pack(mamba_kokoro, voice)
    a = synthesize(lstm_kokoro, phonemes=phonemes, voice=pack_a, speed=speed, seed=seed)
    forced = a.durations if share_durations else None
    b = synthesize(mamba_kokoro, phonemes=phonemes, voice=pack_b, speed=speed, seed=seed, durations=forced)
    (la, lb), gains = match_loudness(a.audio, b.audio)
    if isinstance(voice, str) and voice != "auto":
        name = voice
    elif voice is None or voice == "auto":
        name = lstm_kokoro.default_voice() if hasattr(lstm_kokoro, "default_voice") else "default"
    else:
        name = "custom"
    return ABResult(text, phonemes, name, speed, seed, share_durations, a, b, la, lb, tuple(gains))


def plot_ab(result: ABResult, fig=None):
    """Four panels: per-phoneme durations (both), F0 overlaid, LSTM and Mamba log-mels with token edges."""
    import matplotlib.pyplot as plt

    from .plots import plot_durations, plot_f0, plot_mel, plot_token_boundaries

    if fig is None:
        fig = plt.figure(figsize=(13, 10))
    axes = fig.subplots(4, 1)
    a, b = result.lstm, result.mamba
    plot_durations(a.durations, result.phonemes, ax=axes[0], label="LSTM", offset=-0.2, width=0.4)
    plot_durations(b.durations, result.phonemes, ax=axes[0], label="Mamba", offset=0.2, width=0.4)
    shared = " (Mamba forced onto the LSTM's durations)" if result.share_durations else ""
    axes[0].set_title("duration per phoneme" + shared)
    plot_f0(a.f0, ax=axes[1], label="LSTM")
    plot_f0(b.f0, ax=axes[1], label="Mamba")
    t_max = max(a.seconds, b.seconds)
    for ax, audio, syn, name in (
        (axes[2], result.lstm_audio, a, "LSTM"),
        (axes[3], result.mamba_audio, b, "Mamba"),
    ):
        plot_mel(audio, ax=ax, title=f"{name}: log-mel, {syn.seconds:.2f} s, token edges")
        plot_token_boundaries(syn.durations, ax)
    for ax in axes[1:]:
        ax.set_xlim(0, t_max)
    fig.tight_layout()
    return fig


def players_html(result: ABResult) -> str:
    """Two inline audio players side by side (loudness-matched, not re-normalised by the browser widget)."""
    from IPython.display import Audio

    cells = []
    for name, audio, syn, gain in (
        ("A: LSTM (original)", result.lstm_audio, result.lstm, result.gains_db[0]),
        ("B: Mamba", result.mamba_audio, result.mamba, result.gains_db[1]),
    ):
        player = Audio(audio, rate=SAMPLE_RATE, normalize=False)._repr_html_()
        cells.append(
            f"<td style='padding:4px 16px'><b>{html.escape(name)}</b><br>{syn.seconds:.2f} s, "
            f"gain {gain:+.1f} dB<br>{player}</td>"
        )
    return "<table><tr>" + "".join(cells) + "</tr></table>"


def show_ab(result: ABResult, plots: bool = True) -> None:
    """Display the two players, a one-line summary and (optionally) the four plots."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    display(HTML(players_html(result)))
    s = result.summary()
    parts = [f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in s.items()]
    print(f"voice {result.voice}, speed {result.speed}, seed {result.seed} | " + " | ".join(parts))
    if plots:
        fig = plot_ab(result)
        display(fig)
        plt.close(fig)


def ab_player(
    lstm_kokoro,
    mamba_kokoro,
    presets: Sequence[str] = (),
    voices: Sequence[str] | None = None,
    voice: str | None = None,
    speed: float = 1.0,
    seed: int = 0,
):
    """An ipywidgets A/B player: pre-set sentences, a text box, voice/speed/seed pickers, a Synthesize button.

    Nothing runs until the button is pressed (so executing the cell headless never blocks); each press
    calls `ab_compare` and `show_ab` into the widget's output area. Returns the widget (display it).
    """
    import ipywidgets as W
    from IPython.display import display

    voices = list(voices or (lstm_kokoro.voices() if hasattr(lstm_kokoro, "voices") else ["default"]))
    voice = voice or (lstm_kokoro.default_voice() if hasattr(lstm_kokoro, "default_voice") else voices[0])
    presets = list(presets)
    preset = W.Dropdown(
        options=["(type your own)", *presets], description="preset", layout=W.Layout(width="95%")
    )
    text = W.Textarea(value=presets[0] if presets else "", description="text", layout=W.Layout(width="95%"))
    voice_w = W.Dropdown(options=voices, value=voice if voice in voices else voices[0], description="voice")
    speed_w = W.FloatSlider(value=speed, min=0.5, max=2.0, step=0.05, description="speed")
    seed_w = W.IntText(value=seed, description="seed")
    share_w = W.Checkbox(value=False, description="share durations (Mamba uses LSTM's)")
    button = W.Button(description="Synthesize", button_style="primary", icon="play")
    out = W.Output()

    def on_preset(change):
        if change["new"] in presets:
            text.value = change["new"]

    def on_click(_):
        with out:
            out.clear_output(wait=True)
            try:
                r = ab_compare(
                    lstm_kokoro,
                    mamba_kokoro,
                    text.value,
                    voice=voice_w.value,
                    speed=speed_w.value,
                    seed=seed_w.value,
                    share_durations=share_w.value,
                )
                show_ab(r)
            except Exception as e:  # show the problem in the widget instead of losing it in a callback
                print(f"{type(e).__name__}: {e}")

    preset.observe(on_preset, names="value")
    button.on_click(on_click)
    controls = W.VBox([preset, text, W.HBox([voice_w, speed_w]), W.HBox([seed_w, share_w, button])])
    box = W.VBox([controls, out])
    box.synthesize = lambda: on_click(None)  # for scripted use: same as pressing the button
    box.display = lambda: display(box)
    return box


# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class EvalItem:
    """One real recording for evaluation. Targets are optional: metrics that need them are skipped."""

    id: str
    text: str  # transcript: the WER reference
    audio: np.ndarray  # (n,) float32 at 24 kHz
    phonemes: str | None = None
    durations: np.ndarray | None = None  # (T,) target frames per token (BOS/EOS included)
    f0: np.ndarray | None = None  # (2F,) target F0 in Hz, 0 = unvoiced, on the durations' grid
    style: np.ndarray | None = None  # (256,) ref_s to speak with (else the evaluation's voice)
    source_sample_rate: int = SAMPLE_RATE  # the recording's own rate: limits the MCD band


def _get(obj, name, default=None):
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def eval_items(items: Iterable, targets: Mapping | Iterable | None = None) -> list[EvalItem]:
    """Turn anything item-like into EvalItems: `helpers.dataset.Item`, `helpers.targets.ItemTargets`, dicts.

    Reads ``id``, ``tts_text``/``text``, ``audio`` (24 kHz) or ``wav_path``, and when present ``phonemes``,
    ``durations``, ``f0``, ``style``. `targets` (a mapping id -> target, or an iterable of targets with
    ``id``) supplies durations/F0/style for items that lack them.
    """
    from .audio import load_audio

    if targets is not None and not isinstance(targets, Mapping):
        targets = {_get(t, "id"): t for t in targets}
    out = []
    for it in items:
        if isinstance(it, EvalItem):
            out.append(it)
            continue
        iid = str(_get(it, "id"))
        tg = (targets or {}).get(iid)
        audio, sr = _get(it, "audio"), SAMPLE_RATE
        if audio is None:
            loaded = load_audio(_get(it, "wav_path"))
            audio, sr = loaded.samples, loaded.source_sample_rate
        elif _get(it, "wav_path") is not None:
            from .audio import probe

            sr = probe(_get(it, "wav_path")).sample_rate
        text = _get(it, "tts_text") or _get(it, "normalized") or _get(it, "text")

        def pick(name, it=it, tg=tg):
            v = _get(it, name)
            return v if v is not None or tg is None else _get(tg, name)

        f0, dur, sty = pick("f0"), pick("durations"), pick("style")
        out.append(
            EvalItem(
                id=iid,
                text=text,
                audio=np.asarray(audio, dtype=np.float32),
                phonemes=pick("phonemes"),
                durations=None if dur is None else np.asarray(dur),
                f0=None if f0 is None else np.asarray(f0, dtype=np.float32),
                style=None if sty is None else np.asarray(sty, dtype=np.float32),
                source_sample_rate=int(sr),
            )
        )
    return out


@dataclass
class EvalSentence:
    """One held-out text sentence (no recording): the teacher (LSTM) is the reference."""

    id: str
    text: str
    phonemes: str | None = None
    style: np.ndarray | None = None


def eval_sentences(sentences: Iterable) -> list[EvalSentence]:
    """Strings, `helpers.prepare.TextItem`s or dicts with ``text`` (and optional ``id``, ``phonemes``, ``style``)."""
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, EvalSentence):
            out.append(s)
        elif isinstance(s, str):
            out.append(EvalSentence(f"t{i:03d}", s))
        else:
            sty = _get(s, "style")
            out.append(
                EvalSentence(
                    str(_get(s, "id") or f"t{i:03d}"),
                    _get(s, "text"),
                    _get(s, "phonemes"),
                    None if sty is None else np.asarray(sty, dtype=np.float32),
                )
            )
    return out


METRICS = {  # column -> (label, units, which way is better)
    "dur_mae_frames": ("duration MAE", "frames (25 ms)", "lower"),
    "dur_within1_pct": ("durations within 1 frame", "% tokens", "higher"),
    "boundary_mae_ms": ("token boundary error", "ms", "lower"),
    "f0_rmse_hz": ("F0 RMSE (voiced in both)", "Hz", "lower"),
    "f0_shape_rmse_hz": ("F0 RMSE, means removed (shape)", "Hz", "lower"),
    "voicing_err_pct": ("voicing error", "% frames", "lower"),
    "mcd_db": ("MCD (DTW, c1..c24)", "dB", "lower"),
    "wer_pct": ("WER (pocketsphinx, relative only)", "%", "lower"),
}
SETS = {"real": "held-out recordings vs targets", "text": "held-out sentences vs teacher (LSTM)"}


def evaluate(
    lstm_kokoro,
    mamba_kokoro,
    items: Iterable = (),
    sentences: Iterable = (),
    *,
    voice=None,
    speed: float = 1.0,
    seed: int | None = 0,
    asr: bool = True,
    mcd_order: int = 24,
    progress: bool = False,
) -> pd.DataFrame:
    """Objective comparison; one row per (utterance, model). ``df.attrs['notes']`` lists what was skipped.

    Real recordings (`items`, see `eval_items`): each model speaks the transcript freely; durations are
    compared with the target durations (when the item has them, same token count), F0 and voicing with
    the target F0 after forcing the model onto the target durations (F0 predicted without the decoder;
    the target F0 is pYIN of the recording when the item carries none), MCD against the recording
    (DTW; band limited to the recording's own bandwidth, `metrics.effective_bandwidth`), WER of the free
    synthesis (and, as a ceiling, of the recording itself: model "recording").
    Held-out sentences: the LSTM's output is the reference. Mamba's free durations vs the teacher's
    (agreement), F0 vs the teacher's with Mamba forced onto the teacher's durations, MCD vs the teacher's
    audio (DTW, same seed), and WER for both models.
    """
    from tqdm.auto import tqdm

    from .features import f0_pyin, fit_to_grid
    from .g2p import phonemize

    models = {"LSTM": lstm_kokoro, "Mamba": mamba_kokoro}
    rows, notes = [], []
    items, sentences = eval_items(items), eval_sentences(sentences)
    for it in tqdm(items, desc="recordings", disable=not progress):
        phon = it.phonemes or phonemize(it.text)
        v = it.style if it.style is not None else voice
        fmax = min(it.source_sample_rate / 2, M.effective_bandwidth(it.audio))  # MCD band: the recording's
        base = {
            "set": "real",
            "id": it.id,
            "text": it.text,
            "recording_s": round(len(it.audio) / SAMPLE_RATE, 3),
        }
        if asr:
            w, hyp = M.asr_wer(it.audio, it.text)
            rows.append({**base, "model": "recording", "wer_pct": w, "transcript": hyp})
        target_f0 = None
        if it.durations is not None:
            n = int(np.sum(it.durations))
            target_f0 = it.f0 if it.f0 is not None else f0_pyin(fit_to_grid(it.audio))[0]
            if abs(len(target_f0) - 2 * n) > 4:
                notes.append(
                    f"{it.id}: target F0 has {len(target_f0)} frames, durations need {2 * n}: F0 skipped"
                )
                target_f0 = None
        else:
            notes.append(f"{it.id}: no target durations: duration and F0 metrics skipped")
        for name, kk in models.items():
            syn = synthesize(kk, phonemes=phon, voice=_pack(kk, v), speed=speed, seed=seed)
            row = {**base, "model": name, "tokens": len(syn.durations), "seconds": round(syn.seconds, 3)}
            if it.durations is not None:
                if len(it.durations) == len(syn.durations):
                    row.update(M.duration_errors(syn.durations, it.durations))
                else:
                    notes.append(
                        f"{it.id}: {len(it.durations)} target durations for {len(syn.durations)} tokens"
                    )
            if target_f0 is not None and len(it.durations) == len(syn.durations):
                f0 = predict_prosody(kk, phon, _pack(kk, v), durations=it.durations)["f0"]
                m = min(len(f0), len(target_f0))
                row.update(M.f0_errors(f0[:m], target_f0[:m]))
            row["mcd_db"] = M.mcd(syn.audio, it.audio, order=mcd_order, fmax=fmax)
            if asr:
                row["wer_pct"], row["transcript"] = M.asr_wer(syn.audio, it.text)
            rows.append(row)
    for s in tqdm(sentences, desc="sentences", disable=not progress):
        phon = s.phonemes or phonemize(s.text)
        v = s.style if s.style is not None else voice
        base = {"set": "text", "id": s.id, "text": s.text}
        a = synthesize(lstm_kokoro, phonemes=phon, voice=_pack(lstm_kokoro, v), speed=speed, seed=seed)
        b = synthesize(mamba_kokoro, phonemes=phon, voice=_pack(mamba_kokoro, v), speed=speed, seed=seed)
        ra = {**base, "model": "LSTM", "tokens": len(a.durations), "seconds": round(a.seconds, 3)}
        rb = {**base, "model": "Mamba", "tokens": len(b.durations), "seconds": round(b.seconds, 3)}
        rb.update(M.duration_errors(b.durations, a.durations))
        forced = predict_prosody(mamba_kokoro, phon, _pack(mamba_kokoro, v), speed, durations=a.durations)
        rb.update(M.f0_errors(forced["f0"], a.f0))
        rb["mcd_db"] = M.mcd(b.audio, a.audio, order=mcd_order)
        if asr:
            ra["wer_pct"], ra["transcript"] = M.asr_wer(a.audio, s.text)
            rb["wer_pct"], rb["transcript"] = M.asr_wer(b.audio, s.text)
        rows += [ra, rb]
    if not items:
        notes.append("no recordings given: the 'real' metrics are absent")
    if not sentences:
        notes.append("no sentences given: the teacher-agreement metrics are absent")
    if not asr:
        notes.append("ASR off: no WER")
    df = pd.DataFrame(rows)
    for col in ("set", "id", "model", "text", *METRICS, "transcript"):
        if col not in df.columns:
            df[col] = np.nan
    df.attrs["notes"] = notes
    return df


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per set and model: one row per (set, metric), columns LSTM, Mamba, Mamba - LSTM.

    A recording's own WER appears in the column 'recording' (pocketsphinx's ceiling on real speech).
    On the text set the LSTM is the reference, so its teacher-agreement cells are empty.
    """
    rows = []
    for set_name, g in df.groupby("set", sort=False):
        for col, (label, units, better) in METRICS.items():
            means = {m: g.loc[g["model"] == m, col].astype(float).mean() for m in (*MODELS, "recording")}
            if all(pd.isna(v) for v in means.values()):
                continue
            n = int(g.loc[g["model"] == "Mamba", col].notna().sum())
            rows.append(
                {
                    "set": set_name,
                    "metric": label,
                    "column": col,
                    "units": units,
                    "better": better,
                    "n": n,
                    "LSTM": means["LSTM"],
                    "Mamba": means["Mamba"],
                    "Mamba - LSTM": means["Mamba"] - means["LSTM"],
                    "recording": means["recording"],
                }
            )
    out = pd.DataFrame(rows)
    if not out.empty and out["recording"].isna().all():
        out = out.drop(columns="recording")
    return out


def conclusions(
    summary: pd.DataFrame, adapter: dict | None = None, latency: pd.DataFrame | None = None
) -> list[str]:
    """Plain-language sentences built from the numbers (nothing hard-coded): what the tables say."""

    def get(set_name, col, model):
        r = summary[(summary["set"] == set_name) & (summary["column"] == col)]
        return float(r[model].iloc[0]) if len(r) and model in r and pd.notna(r[model].iloc[0]) else None

    out = []
    meta = (adapter or {}).get("metadata", {})
    if meta.get("fixture"):
        out.append(
            "The Mamba adapter is an UNTRAINED fixture, so these numbers test the comparison pipeline, not "
            "Mamba: until a trained adapter sits under runs/, expect it to lose on teacher agreement, token "
            "boundaries and WER."
        )
    elif adapter:
        how = ", ".join(f"{k}={meta[k]}" for k in ("stage", "steps") if k in meta) or "training not recorded"
        out.append(f"The Mamba adapter {adapter.get('path')} was trained ({how}).")
    agree, tb = get("text", "dur_within1_pct", "Mamba"), get("text", "boundary_mae_ms", "Mamba")
    if agree is not None:
        out.append(
            f"On held-out sentences Mamba's durations agree with the LSTM teacher within 1 frame on {agree:.0f}% "
            f"of tokens (token edges {tb:.0f} ms apart on average); F0 RMSE against the teacher "
            f"{get('text', 'f0_rmse_hz', 'Mamba') or float('nan'):.1f} Hz, MCD against the teacher's audio "
            f"{get('text', 'mcd_db', 'Mamba') or float('nan'):.2f} dB."
        )
    if get("real", "mcd_db", "LSTM") is not None:
        out.append(
            "Against the recordings, the plain F0 RMSE and the MCD mostly measure how far the voice pack is "
            "from the reader (register, timbre), for both models alike: read the boundary error and the "
            "mean-removed F0 error first."
        )
    for set_name, what in (("real", "real recordings"), ("text", "held-out sentences")):
        for col in (
            "boundary_mae_ms",
            "dur_mae_frames",
            "f0_rmse_hz",
            "f0_shape_rmse_hz",
            "mcd_db",
            "wer_pct",
        ):
            if set_name == "text" and col != "wer_pct":
                continue
            a, b = get(set_name, col, "LSTM"), get(set_name, col, "Mamba")
            if a is None or b is None:
                continue
            label, units, better = METRICS[col]
            diff = b - a
            if abs(diff) < 1e-9:
                verdict = "the same"
            else:
                wins = (diff < 0) == (better == "lower")
                verdict = f"{'better' if wins else 'worse'} for Mamba by {abs(diff):.2f} {units}"
            extra = ""
            if col == "wer_pct" and (r := get(set_name, col, "recording")) is not None:
                extra = f"; the recordings themselves score {r:.0f}%"
            out.append(f"{what}, {label}: LSTM {a:.2f}, Mamba {b:.2f} {units} -> {verdict}{extra}.")
    if latency is not None and len(latency):
        last = latency.dropna(subset=["encoder_ratio"]).iloc[-1]
        out.append(
            f"Speed on {last['device']}: at {int(last['phonemes'])} phonemes the Mamba DurationEncoder takes "
            f"{last['encoder_ratio']:.2f}x the LSTM's time ({last['encoder_mamba_ms']:.1f} vs "
            f"{last['encoder_lstm_ms']:.1f} ms)."
        )
        syn = latency.dropna(subset=["synth_ratio"])
        if len(syn):
            s = syn.iloc[-1]
            enc = latency[latency["phonemes"] == s["phonemes"]].iloc[0]
            delta_enc = enc["encoder_mamba_ms"] - enc["encoder_lstm_ms"]
            out.append(
                f"Whole-utterance synthesis at {int(s['phonemes'])} phonemes ({s['audio_s']:.1f} s of audio, "
                f"durations shared): LSTM {s['synth_lstm_ms']:.0f} ms, Mamba {s['synth_mamba_ms']:.0f} ms "
                f"({s['synth_ratio']:.2f}x). The DurationEncoders alone differ by {delta_enc:+.1f} ms there, "
                f"{100 * delta_enc / s['synth_lstm_ms']:+.1f}% of the LSTM's whole-utterance time; a larger "
                "measured gap is timing noise (other processes, too few repeats)."
            )
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return str(x)


def save_results(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    settings: dict | None = None,
    weights: dict | None = None,
    adapter: dict | None = None,
    latency: pd.DataFrame | None = None,
    parameters: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write per_utterance.csv, summary.csv (and latency.csv, parameters.csv) plus results.json.

    results.json holds the settings, the weights source and note, the adapter (path, surgery, metadata),
    the summary numbers, the notes on skipped metrics, the environment and the time.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(df)
    paths = {"per_utterance": out_dir / "per_utterance.csv", "summary": out_dir / "summary.csv"}
    df.to_csv(paths["per_utterance"], index=False)
    summary.to_csv(paths["summary"], index=False)
    for name, table in (("latency", latency), ("parameters", parameters)):
        if table is not None:
            paths[name] = out_dir / f"{name}.csv"
            table.to_csv(paths[name], index=False)
    record = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings or {},
        "weights": weights or {},
        "adapter": adapter or {},
        "summary": summary.to_dict(orient="records"),
        "notes": list(df.attrs.get("notes", [])),
        "latency": None if latency is None else latency.to_dict(orient="records"),
        "parameters": None if parameters is None else parameters.to_dict(orient="records"),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        **(extra or {}),
    }
    paths["json"] = out_dir / "results.json"
    paths["json"].write_text(json.dumps(_jsonable(record), indent=2))
    return paths


# ------------------------------------------------------------------------------------------ speed


def benchmark_ids(
    lengths: Sequence[int], text: str | None = None, phonemes: str | None = None
) -> dict[int, list[int]]:
    """Token ids (BOS + L phonemes + EOS) for each phoneme length L, cut from one long phonemized text.

    `phonemes` (repeated as needed) skips the G2P; `text` defaults to the first sentences of the corpus.
    """
    from .g2p import kokoro_vocab, phonemize
    from .settings import REPO_ROOT

    if phonemes is not None:
        vocab = kokoro_vocab()
        ids = [vocab[p] for p in phonemes if p in vocab]
        ids = ids * (-(-max(lengths) // len(ids)))
        return {L: [0, *ids[:L], 0] for L in lengths}
    if text is None:
        lines = (REPO_ROOT / "data" / "text" / "sentences.txt").read_text(encoding="utf-8").splitlines()
        text = " ".join(lines[:40])
    vocab = kokoro_vocab()
    ids, need = [], max(lengths)
    for sentence in text.split(". "):
        ids += [vocab[p] for p in phonemize(sentence.strip() + ".") + " " if p in vocab]
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise ValueError(f"the text gives only {len(ids)} phonemes, {need} needed")
    return {L: [0, *ids[:L], 0] for L in lengths}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_pair(fn_a, fn_b, device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Best (minimum) wall times in ms of fn_a() and fn_b(), timed alternately (a, b, a, b, ...) after
    `warmup` untimed calls of each. The minimum, as `timeit` recommends: other processes on a shared machine
    only ever add time, so the fastest run is the best estimate of the cost itself; alternating makes a
    load spike hit both alike."""
    for _ in range(warmup):
        fn_a(), fn_b()
    _sync(device)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, repeats)):
        for fn, bucket in ((fn_a, times[0]), (fn_b, times[1])):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(1000 * (time.perf_counter() - t0))
    return float(np.min(times[0])), float(np.min(times[1]))


@torch.inference_mode()
def measure_latency(
    lstm_kokoro,
    mamba_kokoro,
    lengths: Sequence[int] = (16, 32, 64, 128, 256, 510),
    *,
    repeats: int = 5,
    synth_lengths: Sequence[int] | None = None,
    synth_repeats: int = 2,
    voice=None,
    speed: float = 1.0,
    phonemes: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """DurationEncoder and whole-utterance latency (best of `repeats`, ms) for both models at each phoneme length.

    DurationEncoder: the module alone on the same ALBERT features (batch 1). Whole utterance:
    `synthesize_ids` (ALBERT -> ... -> decoder) with BOTH models forced onto the LSTM's durations, so the
    decoder does identical work and the difference is the prosody path. `synth_lengths` (default: all)
    limits the expensive whole-utterance runs; `speed` scales the shared durations. Inputs are cut from
    the corpus (or from `phonemes`, see `benchmark_ids`). Ratios are Mamba / LSTM (> 1: Mamba slower).
    ``cpu_load_1min`` records the machine's load average: on a shared machine, a load above its core count
    means other processes competed for the CPU and the times are inflated (and noisier).
    """
    from tqdm.auto import tqdm

    from .mamba import describe_backend
    from .synth import predict_durations, synthesize_ids

    a_model = getattr(lstm_kokoro, "model", lstm_kokoro).eval()
    b_model = getattr(mamba_kokoro, "model", mamba_kokoro).eval()
    device = next(a_model.parameters()).device
    synth_lengths = set(lengths if synth_lengths is None else synth_lengths)
    pack = _pack(lstm_kokoro, voice)
    backend = describe_backend(device).split(":")[0]
    rows = []
    inputs = benchmark_ids(lengths, phonemes=phonemes)
    for L, ids in tqdm(inputs.items(), desc="latency", disable=not progress):
        x = torch.tensor([ids], device=device)  # (1, T)
        T = x.shape[1]
        ref_s = style_for(pack, L).to(device)
        d_en = a_model.bert_encoder(a_model.bert(x, attention_mask=torch.ones_like(x))).transpose(-1, -2)
        s, lens, mask = (
            ref_s[:, 128:],
            torch.tensor([T], device=device),
            torch.zeros(1, T, dtype=torch.bool, device=device),
        )
        row = {"phonemes": L, "tokens": T, "device": str(device), "mamba_backend": backend}
        enc_a, enc_b = a_model.predictor.text_encoder, b_model.predictor.text_encoder
        row["encoder_lstm_ms"], row["encoder_mamba_ms"] = _time_pair(
            partial(enc_a, d_en, s, lens, mask), partial(enc_b, d_en, s, lens, mask), device, repeats
        )
        row["encoder_ratio"] = row["encoder_mamba_ms"] / row["encoder_lstm_ms"]
        if L in synth_lengths:
            dur = predict_durations(a_model, x, ref_s, speed)[2]
            row["audio_s"] = float(dur.sum()) * SAMPLES_PER_FRAME / SAMPLE_RATE
            row["synth_lstm_ms"], row["synth_mamba_ms"] = _time_pair(
                partial(synthesize_ids, a_model, ids, ref_s, durations=dur),
                partial(synthesize_ids, b_model, ids, ref_s, durations=dur),
                device,
                synth_repeats,
            )
            row["synth_ratio"] = row["synth_mamba_ms"] / row["synth_lstm_ms"]
            row["rtf_lstm"] = row["synth_lstm_ms"] / 1000 / row["audio_s"]
            row["rtf_mamba"] = row["synth_mamba_ms"] / 1000 / row["audio_s"]
        row["cpu_load_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("audio_s", "synth_lstm_ms", "synth_mamba_ms", "synth_ratio", "rtf_lstm", "rtf_mamba"):
        if col not in df:
            df[col] = np.nan
    return df


def plot_latency(df: pd.DataFrame, fig=None):
    """Two log-log panels: DurationEncoder and whole-utterance latency vs phoneme count, both models."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if fig is None:
        fig = plt.figure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    for ax, what, title in (
        (axes[0], "encoder", "DurationEncoder alone"),
        (axes[1], "synth", "whole utterance"),
    ):
        d = df.dropna(subset=[f"{what}_lstm_ms"])
        for name, label, marker in (("lstm", "LSTM", "o"), ("mamba", "Mamba", "s")):
            ax.plot(d["phonemes"], d[f"{what}_{name}_ms"], marker=marker, label=label)
        ax.set(xscale="log", yscale="log", xlabel="phonemes", ylabel="ms (best of N)", title=title)
        if len(d):
            ax.set_xticks(d["phonemes"], [str(int(x)) for x in d["phonemes"]])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    dev = df["device"].iloc[0] if len(df) else "?"
    fig.suptitle(f"latency on {dev} (batch 1)")
    fig.tight_layout()
    return fig


def _state_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def parameter_table(lstm_kokoro, mamba_kokoro, adapter: str | Path | None = None) -> pd.DataFrame:
    """Parameter counts (millions) and sizes (MB), LSTM vs Mamba, in one table (ratio = Mamba / LSTM)."""
    from .peft import PeftConfig, trainable_prefixes
    from .surgery import DURATION_ENCODER_PATH

    a_model = getattr(lstm_kokoro, "model", lstm_kokoro)
    b_model = getattr(mamba_kokoro, "model", mamba_kokoro)
    enc_a, enc_b = a_model.get_submodule(DURATION_ENCODER_PATH), b_model.get_submodule(DURATION_ENCODER_PATH)
    count = lambda m: sum(p.numel() for p in m.parameters())
    prefixes = trainable_prefixes(b_model, PeftConfig())
    trainable = sum(
        p.numel()
        for n, p in b_model.named_parameters()
        if any(n == q or n.startswith(q + ".") for q in prefixes)
    )
    recurrent_a = sum(
        p.numel() for m in enc_a.modules() if isinstance(m, torch.nn.LSTM) for p in m.parameters()
    )
    file_mb = float("nan")
    if adapter is not None:
        st = Path(adapter).with_suffix(".safetensors")
        file_mb = st.stat().st_size / 2**20 if st.exists() else float("nan")
    mb = lambda n_bytes: n_bytes / 2**20
    rows = [
        ("DurationEncoder parameters (M)", count(enc_a) / 1e6, count(enc_b) / 1e6),
        (
            "  of which recurrent: 3 BiLSTM / the Mamba blocks PEFT trains (M)",
            recurrent_a / 1e6,
            trainable / 1e6,
        ),
        ("whole model parameters (M)", count(a_model) / 1e6, count(b_model) / 1e6),
        ("DurationEncoder state, fp32 (MB)", mb(_state_bytes(enc_a)), mb(_state_bytes(enc_b))),
        (
            "adapter file (MB; LSTM column: its DurationEncoder state, same format)",
            mb(_state_bytes(enc_a)),
            file_mb,
        ),
    ]
    df = pd.DataFrame(rows, columns=["what", "LSTM", "Mamba"])
    df["Mamba / LSTM"] = df["Mamba"] / df["LSTM"]
    return df
