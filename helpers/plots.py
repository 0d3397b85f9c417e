"""The workbook's figures: spectrograms, per-phoneme durations, F0 curves, parameter bars.

Every function draws on a given matplotlib Axes (or makes one) and returns it, so notebooks can compose.
"""

from __future__ import annotations

import librosa
import matplotlib.pyplot as plt
import numpy as np

from .synth import SAMPLE_RATE, SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME


def _ax(ax, figsize=(10, 3)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def log_mel(audio: np.ndarray, sr: int = SAMPLE_RATE, n_mels: int = 80, hop: int = 300) -> np.ndarray:
    """(n_mels, frames) log-mel on Kokoro's 12.5 ms grid, for display."""
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sr, n_fft=2048, win_length=1200, hop_length=hop, n_mels=n_mels
    )
    return np.log(mel + 1e-5)


def plot_mel(audio: np.ndarray, ax=None, title: str = "log-mel spectrogram", f0: np.ndarray | None = None):
    """Log-mel spectrogram (time in seconds); optionally F0 (Hz, 80 Hz frames) drawn on a twin axis."""
    ax = _ax(ax)
    m = log_mel(audio)
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
    from .g2p import kokoro_vocab

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
