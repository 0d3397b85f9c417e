"""A/B listening: one sentence by two or more models, same voice, speed and decoder seed, loudness matched.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from helpers.compare import metrics as M
from helpers.grid import SAMPLE_RATE, SAMPLES_PER_FRAME
from helpers.kokoro.synth import Synthesis, as_pack, synthesize
from helpers.plots import plot_ab

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


# ------------------------------------------------------------------------------------------ A/B


@dataclass
class ABResult:
    """One sentence spoken by every contender with the same voice, speed and decoder seed.

    The dicts are keyed by contender name, the reference (the LSTM, the teacher) first.
    """

    text: str | None
    phonemes: str
    voice: str
    speed: float
    seed: int | None
    share_durations: bool
    syntheses: dict[str, Synthesis]
    audio: dict[str, np.ndarray]  # loudness-matched copies for listening (match_loudness)
    gains_db: dict[str, float]

    @property
    def reference(self) -> str:
        return next(iter(self.syntheses))

    def summary(self) -> dict[str, dict[str, float]]:
        """Each other contender against the reference for this sentence: durations, F0 (when aligned), MCD."""
        ref = self.syntheses[self.reference]
        out = {}
        for name, b in list(self.syntheses.items())[1:]:
            row = {
                "tokens": len(ref.durations),
                f"{self.reference} seconds": round(ref.seconds, 3),
                "seconds": round(b.seconds, 3),
                **M.duration_errors(b.durations, ref.durations),
            }
            if len(ref.f0) == len(b.f0):  # equal length: same durations (shared or identical)
                row.update(M.f0_errors(b.f0, ref.f0))
            row["mcd_db"] = M.mcd(b.audio, ref.audio)
            out[name] = row
        return out


def ab_compare(
    models,
    text: str | None = None,
    voice=None,
    speed: float = 1.0,
    seed: int | None = 0,
    share_durations: bool = False,
    *,
    phonemes: str | None = None,
) -> ABResult:
    """Synthesize one sentence with every contender: same phonemes, voice, speed and decoder seed.

    `models`: name -> model, the reference first (e.g. ``{"LSTM": lstm, "Mamba": mamba, "CfC": cfc}``).
    `share_durations=True` forces every other model onto the reference's durations, so all analyses (audio,
    F0, energy) are equal-length and frame-aligned by construction; only the DurationEncoder's features
    then differ (through F0, energy and nothing else). `voice`: a name, a pack [510, 1, 256] or one style
    (256,). Listening copies are loudness-matched (`match_loudness`, active-speech RMS).
    """
    from helpers.compare.contenders import as_contenders
    from helpers.kokoro.g2p import phonemize

    models = as_contenders(models)
    if phonemes is None:
        phonemes = phonemize(text)
    names = list(models)
    ref = models[names[0]]
    syns = {names[0]: synthesize(ref, phonemes=phonemes, voice=as_pack(ref, voice), speed=speed, seed=seed)}
    forced = syns[names[0]].durations if share_durations else None
    for name in names[1:]:
        kk = models[name]
        syns[name] = synthesize(
            kk, phonemes=phonemes, voice=as_pack(kk, voice), speed=speed, seed=seed, durations=forced
        )
    matched, gains = match_loudness(*(s.audio for s in syns.values()))
    if isinstance(voice, str) and voice != "auto":
        voice_name = voice
    elif voice is None or voice == "auto":
        voice_name = ref.default_voice() if hasattr(ref, "default_voice") else "default"
    else:
        voice_name = "custom"
    return ABResult(
        text, phonemes, voice_name, speed, seed, share_durations, syns,
        dict(zip(names, matched)), dict(zip(names, gains)),
    )  # fmt: skip


def players_html(result: ABResult) -> str:
    """One inline audio player per contender, side by side (loudness-matched, not re-normalised by the widget)."""
    from IPython.display import Audio

    cells = []
    for i, (name, syn) in enumerate(result.syntheses.items()):
        label = f"{chr(ord('A') + i)}: {name}" + (" (reference)" if i == 0 else "")
        player = Audio(result.audio[name], rate=SAMPLE_RATE, normalize=False)._repr_html_()
        cells.append(
            f"<td style='padding:4px 16px'><b>{html.escape(label)}</b><br>{syn.seconds:.2f} s, "
            f"gain {result.gains_db[name]:+.1f} dB<br>{player}</td>"
        )
    return "<table><tr>" + "".join(cells) + "</tr></table>"


def show_ab(result: ABResult, plots: bool = True) -> None:
    """Display the players, one summary line per contender against the reference and (optionally) the plots."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    display(HTML(players_html(result)))
    print(f"voice {result.voice}, speed {result.speed}, seed {result.seed}; each against {result.reference}:")
    for name, s in result.summary().items():
        parts = [f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in s.items()]
        print(f"  {name} | " + " | ".join(parts))
    if plots:
        fig = plot_ab(result)
        display(fig)
        plt.close(fig)


def ab_player(
    models,
    presets: Sequence[str] = (),
    voices: Sequence[str] | None = None,
    voice: str | None = None,
    speed: float = 1.0,
    seed: int = 0,
):
    """An ipywidgets A/B player for any number of contenders (name -> model, the reference first): pre-set
    sentences, a text box, voice/speed/seed pickers, a Synthesize button.

    Nothing runs until the button is pressed (so executing the cell headless never blocks); each press
    calls `ab_compare` and `show_ab` into the widget's output area. Returns the widget (display it).
    """
    import ipywidgets as W
    from IPython.display import display

    from helpers.compare.contenders import as_contenders

    models = as_contenders(models)
    ref_name, ref = next(iter(models.items()))
    voices = list(voices or (ref.voices() if hasattr(ref, "voices") else ["default"]))
    voice = voice or (ref.default_voice() if hasattr(ref, "default_voice") else voices[0])
    presets = list(presets)
    preset = W.Dropdown(
        options=["(type your own)", *presets], description="preset", layout=W.Layout(width="95%")
    )
    text = W.Textarea(value=presets[0] if presets else "", description="text", layout=W.Layout(width="95%"))
    voice_w = W.Dropdown(options=voices, value=voice if voice in voices else voices[0], description="voice")
    speed_w = W.FloatSlider(value=speed, min=0.5, max=2.0, step=0.05, description="speed")
    seed_w = W.IntText(value=seed, description="seed")
    share_w = W.Checkbox(value=False, description=f"share durations (all use {ref_name}'s)")
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
                    models,
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
