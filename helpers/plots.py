"""The workbook's figures: spectrograms, per-phoneme durations, F0 curves, parameter bars.

Every function draws on a given matplotlib Axes (or makes one) and returns it, so notebooks can compose.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.data.align import Alignment, _runs
from helpers.data.features import fit_to_grid, log_mel
from helpers.grid import F0_FRAME_MS, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME


def _ax(ax, figsize=(10, 3)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def display_mel(audio: np.ndarray) -> np.ndarray:
    """(80, 2F) the workbook's one log-mel (helpers.data.features.log_mel), the audio zero-padded to the grid."""
    return log_mel(fit_to_grid(audio, "pad"))


def plot_mel(audio: np.ndarray, ax=None, title: str = "log-mel spectrogram", f0: np.ndarray | None = None):
    """Log-mel spectrogram (time in seconds); optionally F0 (Hz, 80 Hz frames) drawn on a twin axis."""
    ax = _ax(ax)
    m = display_mel(audio)
    t_end = len(audio) / SAMPLE_RATE
    ax.imshow(m, origin="lower", aspect="auto", extent=[0, t_end, 0, m.shape[0]], cmap="magma")
    ax.set(xlabel="time (s)", ylabel="mel band", title=title)
    if f0 is not None:
        t = (np.arange(len(f0)) + 0.5) * SAMPLES_PER_F0_FRAME / SAMPLE_RATE
        ax2 = ax.twinx()
        ax2.plot(t, np.where(f0 > 0, f0, np.nan), color="cyan", lw=1.5)
        ax2.set_ylabel("F0 (Hz)")
    return ax


def phoneme_labels(phonemes: str) -> list[str]:
    """One label per token including BOS/EOS, matching Synthesis.durations."""
    from helpers.kokoro.g2p import kokoro_vocab

    vocab = kokoro_vocab()
    return ["<s>", *[("␣" if p == " " else p) for p in phonemes if p in vocab], "</s>"]


def plot_durations(
    durations, phonemes: str, ax=None, label: str | None = None, offset: float = 0.0, width: float = 0.8
):
    """Bar per token: its duration in 25 ms frames."""
    ax = _ax(ax, figsize=(12, 3))
    labels = phoneme_labels(phonemes)
    x = np.arange(len(durations))
    ax.bar(x + offset, durations, width=width, label=label)
    ax.set_xticks(x, labels[: len(durations)], fontsize=8)
    ax.set(ylabel="frames (25 ms)", title="duration per phoneme")
    if label:
        ax.legend()
    return ax


def plot_f0(f0: np.ndarray, ax=None, label: str | None = None):
    """F0 over time (Hz); unvoiced (< 40 Hz) frames left blank."""
    ax = _ax(ax)
    t = (np.arange(len(f0)) + 0.5) * SAMPLES_PER_F0_FRAME / SAMPLE_RATE
    ax.plot(t, np.where(f0 > 40, f0, np.nan), label=label)
    ax.set(xlabel="time (s)", ylabel="F0 (Hz)", title="fundamental frequency")
    if label:
        ax.legend()
    return ax


def plot_token_boundaries(durations, ax, color: str = "white", alpha: float = 0.5):
    """Vertical lines at token edges (seconds) on a time axis."""
    edges = np.cumsum(durations) * SAMPLES_PER_FRAME / SAMPLE_RATE
    for e in edges[:-1]:
        ax.axvline(e, color=color, alpha=alpha, lw=0.8)
    return ax


def plot_parameter_bars(table, ax=None, highlight: str = "predictor.text_encoder"):
    """Horizontal bars of parameters per component (millions), the surgery target highlighted."""
    ax = _ax(ax, figsize=(8, 4))
    colors = ["tab:red" if c == highlight else "tab:blue" for c in table["component"]]
    ax.barh(table["component"], table["millions"], color=colors)
    ax.invert_yaxis()
    ax.set(xlabel="parameters (millions)", title="Kokoro-82M parameters by component")
    for y, v in enumerate(table["millions"]):
        ax.text(v, y, f" {v:.2f}M", va="center", fontsize=8)
    return ax


class LiveLossPlot:
    """A Trainer callback that redraws the loss curves in the notebook every `every` logged rows."""

    def __init__(
        self,
        every: int = 5,
        terms: tuple[str, ...] = ("loss", "feature", "dur_l1", "dur_bce", "f0", "energy", "mel"),
    ):
        self.every, self.terms, self.count = every, terms, 0

    def __call__(self, row: dict, trainer) -> None:
        self.count += 1
        if self.count % self.every == 0:
            self.draw(trainer.history, clear=True)

    def draw(self, history: list[dict], clear: bool = False):
        from IPython.display import clear_output, display

        rows = [r for r in history if "loss" in r and not r.get("skipped")]
        if not rows:
            return None
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.2))
        steps = [r["step"] for r in rows]
        for k in self.terms:
            vals = [r.get(k) for r in rows]
            if any(v is not None for v in vals):
                a1.plot(
                    steps, [np.nan if v is None else v for v in vals], label=k, lw=1.2 if k == "loss" else 0.8
                )
        a1.set(xlabel="step", ylabel="loss", yscale="log", title="training losses")
        a1.legend(fontsize=7, ncol=2)
        evals = [r for r in history if "val_dur_within_1" in r]
        if evals:
            a2.plot(
                [r["step"] for r in evals],
                [100 * r["val_dur_within_1"] for r in evals],
                "o-",
                label="durations within 1 frame (%)",
            )
            a2b = a2.twinx()
            a2b.plot(
                [r["step"] for r in evals],
                [r["val_f0_rmse_hz"] for r in evals],
                "s--",
                color="tab:red",
                label="F0 RMSE (Hz)",
            )
            a2b.set_ylabel("F0 RMSE (Hz)")
            a2.set(xlabel="step", ylabel="% tokens", title="validation")
            a2.legend(fontsize=7, loc="lower left")
        if clear:
            clear_output(wait=True)
        display(fig)
        plt.close(fig)
        return fig


def plot_alignment(al: Alignment, phonemes: str | None = None, ax=None):
    """The DTW path: recording time (x) against reference column (y); grey = silent recording frames,
    dotted = the pause columns, thin lines = token edges on both sides."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    sec = F0_FRAME_MS / 1000.0
    for a, b in _runs(al.silent):
        ax.axvspan(a * sec, b * sec, color="0.85", lw=0)
    for c in np.flatnonzero(al.col_frame < 0):
        ax.axhline(c, color="tab:green", ls=":", lw=1)
    for c in np.flatnonzero(np.diff(al.col_token)) + 0.5:
        ax.axhline(c, color="0.6", lw=0.3)
    for e in np.cumsum(al.durations)[:-1] * FRAME_MS / 1000.0:
        ax.axvline(e, color="tab:red", lw=0.3, alpha=0.6)
    ax.plot(al.path[:, 0] * sec, al.path[:, 1], color="tab:blue", lw=1.5)
    ax.set(
        xlabel="recording time (s)",
        ylabel="reference column (12.5 ms frames + pause columns)",
        title=f"DTW path (reference at speed {al.speed:.2f}); green: pause columns, grey: silence",
        xlim=(0, len(al.silent) * sec),
        ylim=(0, len(al.col_token)),
    )
    return ax


def plot_segmentation(audio: np.ndarray, durations: np.ndarray, phonemes: str, ax=None, f0=None, title=""):
    """Log-mel of `audio` with token edges and one label per token (BOS/EOS as <s> </s>)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(13, 3.5))
    plot_mel(audio, ax=ax, f0=f0, title=title or "token boundaries from the DTW durations")
    plot_token_boundaries(durations, ax, color="white", alpha=0.7)
    edges = np.concatenate([[0], np.cumsum(durations)]) * FRAME_MS / 1000.0
    top = ax.get_ylim()[1]
    for k, lab in enumerate(phoneme_labels(phonemes)[: len(durations)]):
        if lab != "␣":
            ax.text(
                (edges[k] + edges[k + 1]) / 2,
                top * 0.97,
                lab,
                color="white",
                ha="center",
                va="top",
                fontsize=8,
            )
    return ax


def plot_ab(result, fig=None):
    """Panels: per-phoneme durations (every contender), F0 overlaid, then one log-mel per contender with its
    token edges. `result`: a helpers.compare.ab.ABResult (its contenders, the reference first)."""
    import matplotlib.pyplot as plt

    from helpers.plots import plot_durations, plot_f0, plot_mel, plot_token_boundaries

    syns = result.syntheses
    n = len(syns)
    if fig is None:
        fig = plt.figure(figsize=(13, 2.5 * (n + 2)))
    axes = fig.subplots(n + 2, 1)
    width = 0.8 / n
    for i, (name, syn) in enumerate(syns.items()):
        offset = (i - (n - 1) / 2) * width
        plot_durations(syn.durations, result.phonemes, ax=axes[0], label=name, offset=offset, width=width)
        plot_f0(syn.f0, ax=axes[1], label=name)
    shared = f" (all forced onto the {result.reference}'s durations)" if result.share_durations else ""
    axes[0].set_title("duration per phoneme" + shared)
    t_max = max(syn.seconds for syn in syns.values())
    for ax, (name, syn) in zip(axes[2:], syns.items()):
        plot_mel(result.audio[name], ax=ax, title=f"{name}: log-mel, {syn.seconds:.2f} s, token edges")
        plot_token_boundaries(syn.durations, ax)
    for ax in axes[1:]:
        ax.set_xlim(0, t_max)
    fig.tight_layout()
    return fig


def plot_latency(df: pd.DataFrame, fig=None, labels: dict[str, str] | None = None):
    """Two log-log panels: DurationEncoder and whole-utterance latency vs phoneme count, every contender.

    `labels`: key -> legend label (default: LSTM / Mamba / CfC, else the key)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from helpers.compare.latency import latency_models

    labels = {"lstm": "LSTM", "mamba": "Mamba", "cfc": "CfC", **(labels or {})}
    keys = latency_models(df)
    if fig is None:
        fig = plt.figure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    for ax, what, title in (
        (axes[0], "encoder", "DurationEncoder alone"),
        (axes[1], "synth", "whole utterance"),
    ):
        d = df.dropna(subset=[f"{what}_{keys[0]}_ms"]) if f"{what}_{keys[0]}_ms" in df else df.iloc[:0]
        for key, marker in zip(keys, "osd^v<>"):
            if f"{what}_{key}_ms" in d:
                ax.plot(d["phonemes"], d[f"{what}_{key}_ms"], marker=marker, label=labels.get(key, key))
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
