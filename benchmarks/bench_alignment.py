"""How well do the DTW duration targets match the truth? Plain DTW vs pause-aware DTW.

Two test sets:

* **known truth**: the "recording" is Kokoro itself speaking the sentence in *another* voice at another speed
  (default jf_nezumi at 0.85, the reference voice being jf_alpha), so its token durations are known exactly.
  SYN is that synthesis as is; HARD adds two pauses of 200-400 ms at random inter-word spaces and white noise
  35 dB below the speech level. The error is the distance between estimated and true token edges, in ms.
* **real speech**: the five LibriVox starter clips, against pocketsphinx's forced word alignment (after
  removing its constant offset, separately for word starts and ends). Pocketsphinx is itself off by
  ~40 ms, so this is agreement, not accuracy.

A third row, "scaled teacher", needs no DTW: Kokoro's own durations scaled to the clip length. It shows
what the alignment adds.

    python benchmarks/bench_alignment.py                 # 6 sentences + the 5 clips, 3-6 minutes on 2 CPU cores
    python benchmarks/bench_alignment.py --sentences 3 --no-real
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.data.align import DTWSettings, align_durations, edges_to_durations, reference_synthesis
from helpers.data.features import fit_to_grid  # noqa: E402
from helpers.data.targets import voice_style
from helpers.data.wordcheck import check_word_boundaries
from helpers.grid import (
    FRAME_MS,
    SAMPLE_RATE,  # noqa: E402
    SAMPLES_PER_FRAME,  # noqa: E402
)
from helpers.kokoro.forward import predict_durations  # noqa: E402
from helpers.kokoro.g2p import kokoro_vocab, phonemes_to_ids, phonemize  # noqa: E402
from helpers.kokoro.synth import Synthesis, synthesize  # noqa: E402

METHODS = {"plain DTW": DTWSettings(pause_aware=False), "pause-aware DTW": DTWSettings()}


@dataclass
class Case:
    """A synthetic recording with known token edges."""

    phonemes: str
    audio: np.ndarray  # (600 F,) float32 24 kHz, on the grid
    true_edges_ms: np.ndarray  # (T - 1,) ms
    n_pauses: int


def make_case(
    kokoro,
    phonemes: str,
    voice: str,
    speed: float,
    pauses: int = 2,
    pause_ms: tuple[float, float] = (200.0, 400.0),
    noise_db: float | None = -35.0,
    seed: int = 0,
    base: Synthesis | None = None,
) -> Case:
    """Kokoro speaks `phonemes` in `voice` at `speed`; optional pauses inside inter-word spaces and noise.
    `base`: that synthesis made earlier (so SYN and HARD share one)."""
    rng = np.random.default_rng(seed)
    syn = base or synthesize(kokoro, phonemes=phonemes, voice=voice, speed=speed, seed=seed + 1)
    dur = syn.durations.astype(np.int64)  # (T,)
    edges = np.cumsum(dur)[:-1] * FRAME_MS  # (T-1,) true edges, ms
    audio = syn.audio
    space = kokoro_vocab()[" "]
    ids = np.asarray(syn.token_ids)
    spaces = [t for t in range(2, len(ids) - 2) if ids[t] == space]
    chosen = sorted(rng.choice(spaces, size=min(pauses, len(spaces)), replace=False)) if pauses else []
    for t in reversed(chosen):  # insert from the end so earlier sample positions stay valid
        start = int(dur[:t].sum()) * SAMPLES_PER_FRAME
        at = start + dur[t] * SAMPLES_PER_FRAME // 2  # the middle of the space token
        n = int(rng.uniform(*pause_ms) * SAMPLE_RATE / 1000)
        audio = np.concatenate([audio[:at], np.zeros(n, np.float32), audio[at:]])
        edges[t:] += 1000.0 * n / SAMPLE_RATE  # edges after the space's start move by the pause
    if noise_db is not None:
        level = np.sqrt(np.mean(syn.audio**2))
        audio = audio + rng.normal(0, level * 10 ** (noise_db / 20), len(audio)).astype(np.float32)
    return Case(phonemes, fit_to_grid(audio, "pad"), edges, len(chosen))


def boundary_errors(durations: np.ndarray, true_edges_ms: np.ndarray) -> np.ndarray:
    """|estimated - true| token edges in ms, (T - 1,)."""
    est = np.cumsum(durations)[:-1] * FRAME_MS
    return np.abs(est - true_edges_ms)


def scaled_teacher(kokoro, phonemes: str, ref_s: torch.Tensor, n_frames: int) -> np.ndarray:
    """Kokoro's own durations, scaled to n_frames (no look at the audio at all)."""
    model = kokoro.model
    ids = torch.tensor([phonemes_to_ids(phonemes, strict=False)])
    with torch.no_grad():
        _, _, d = predict_durations(model, ids, ref_s, 1.0)
    d = d.numpy().astype(float)
    edges = np.cumsum(d)[:-1] * n_frames / d.sum()
    return edges_to_durations(edges, n_frames)


def pick_sentences(path: Path, n: int) -> list[str]:
    lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    return [s for s in lines if 50 <= len(s) <= 110][:n]


def summarize(errs: list[np.ndarray]) -> dict:
    """Statistics over all edges, and over the inner ones (without the edges next to BOS and to the final
    punctuation/EOS, where Kokoro's convention puts long silences on the last phone or the final mark)."""
    e = np.concatenate(errs) if errs else np.zeros(0)
    inner = np.concatenate([x[1:-2] for x in errs]) if errs else np.zeros(0)
    return {
        "mean_ms": e.mean(),
        "median_ms": np.median(e),
        "p90_ms": np.percentile(e, 90),
        "within_50": 100 * (e <= 50).mean(),
        "inner_mean_ms": inner.mean(),
        "inner_within_50": 100 * (inner <= 50).mean(),
        "n": len(e),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=6)
    ap.add_argument("--voice", default="jf_nezumi", help="voice of the synthetic recording")
    ap.add_argument("--ref-voice", default="jf_alpha", help="voice of the DTW reference (the dataset voice)")
    ap.add_argument("--speed", type=float, default=0.85)
    ap.add_argument("--no-syn", action="store_true", help="skip the clean SYN set (only HARD)")
    ap.add_argument("--no-real", action="store_true", help="skip the LibriVox clips")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from helpers.kokoro.loading import load_kokoro

    root = Path(__file__).resolve().parent.parent
    t_start = time.perf_counter()
    kk = load_kokoro("offline-int8", verbose=False)
    print(kk.note)
    style = voice_style(kk, args.ref_voice)
    sets = [("HARD", 2, -35.0)] if args.no_syn else [("SYN", 0, None), ("HARD", 2, -35.0)]
    sentences = pick_sentences(root / "data" / "text" / "sentences.txt", args.sentences)
    results: dict[tuple[str, str], list[np.ndarray]] = {}
    for k, text in enumerate(sentences):
        ps = phonemize(text)
        ref_s = style(ps)
        base = synthesize(kk, phonemes=ps, voice=args.voice, speed=args.speed, seed=k + 1)
        for set_name, pauses, noise in sets:
            case = make_case(kk, ps, args.voice, args.speed, pauses, noise_db=noise, seed=k, base=base)
            n_frames = len(case.audio) // SAMPLES_PER_FRAME
            ref = reference_synthesis(kk, ps, ref_s, n_frames)
            for name, st in METHODS.items():
                al = align_durations(kk, ps, case.audio, ref_s, st, reference=ref)
                results.setdefault((set_name, name), []).append(
                    boundary_errors(al.durations, case.true_edges_ms)
                )
            d = scaled_teacher(kk, ps, ref_s, n_frames)
            results.setdefault((set_name, "scaled teacher"), []).append(
                boundary_errors(d, case.true_edges_ms)
            )
        print(f"  [{k + 1}/{len(sentences)}] {text[:60]!r} done ({time.perf_counter() - t_start:.0f} s)")

    print(
        f"\nKnown truth: recording = Kokoro {args.voice} at speed {args.speed}, reference = {args.ref_voice}; "
        f"{len(sentences)} sentences; token-boundary error (ms) after rounding to 25 ms frames"
    )
    print(
        f"{'set':<6}{'method':<18}{'mean':>7}{'median':>8}{'p90':>7}{'<=50ms':>8}{'edges':>7}"
        f"{'inner mean':>12}{'inner <=50':>12}"
    )
    for (set_name, name), errs in results.items():
        r = summarize(errs)
        print(
            f"{set_name:<6}{name:<18}{r['mean_ms']:7.1f}{r['median_ms']:8.1f}{r['p90_ms']:7.1f}"
            f"{r['within_50']:7.1f}%{r['n']:7d}{r['inner_mean_ms']:12.1f}{r['inner_within_50']:11.1f}%"
        )

    if not args.no_real:
        from helpers.data.audio import load_audio
        from helpers.data.readers import read_ljspeech

        real: dict[str, list] = {}
        for it in read_ljspeech(root / "data" / "librivox"):
            y = fit_to_grid(load_audio(it.wav_path).samples)
            ps = phonemize(it.tts_text)
            ref_s = style(ps)
            ref = reference_synthesis(kk, ps, ref_s, len(y) // SAMPLES_PER_FRAME)
            runs = {
                name: align_durations(kk, ps, y, ref_s, st, reference=ref).durations
                for name, st in METHODS.items()
            }
            runs["scaled teacher"] = scaled_teacher(kk, ps, ref_s, len(y) // SAMPLES_PER_FRAME)
            for name, d in runs.items():
                wc = check_word_boundaries(it.tts_text, ps, d, y)
                if wc.checked:
                    err = [abs(r[k]) for r in wc.words for k in ("start_error_ms", "end_error_ms")]
                    real.setdefault(name, []).append((np.array(err), wc.max_speech_error_ms, wc.suspect))
        print(
            "\nReal speech: 5 LibriVox clips vs pocketsphinx word edges (constant offset removed), ms;"
            "\n'max speech' ignores disagreements that fall on a detected pause (what the suspect flag uses)"
        )
        print(
            f"{'method':<18}{'mean':>7}{'median':>8}{'<=50ms':>8}{'<=100ms':>9}{'max':>7}"
            f"{'max speech':>12}{'suspect':>9}"
        )
        for name, rows in real.items():
            e = np.concatenate([r[0] for r in rows])
            print(
                f"{name:<18}{e.mean():7.1f}{np.median(e):8.1f}{100 * (e <= 50).mean():7.1f}%"
                f"{100 * (e <= 100).mean():8.1f}%{e.max():7.0f}{max(r[1] for r in rows):12.0f}"
                f"{sum(r[2] for r in rows):6d}/{len(rows)}"
            )
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
