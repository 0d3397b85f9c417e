"""How intelligible is Kokoro's English with each voice pack? Pocketsphinx WER on held-out sentences.

Kokoro speaks the first N sentences of ``data/text/heldout.txt`` (written for the project; none is in the
training corpus) with each voice; pocketsphinx (`helpers.compare.metrics.asr_wer`) transcribes the audio;
the table gives the corpus WER (all word errors / all reference words) per voice, and its change relative
to jf_alpha, the offline default before the English packs shipped. Pocketsphinx is weak: read the WER as
a comparison between voices on the same sentences, not as an absolute score.

    python benchmarks/bench_voices.py                   # 12 sentences x 9 voices: 95 min measured at load 9 on 2 cores
    python benchmarks/bench_voices.py --n 4 --voices af_heart jf_alpha
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from helpers.compare.metrics import asr_wer, normalize_text  # noqa: E402
from helpers.kokoro.loading import load_kokoro  # noqa: E402
from helpers.kokoro.synth import synthesize  # noqa: E402
from helpers.kokoro.voices import DEFAULT_VOICE, ENGLISH_VOICES  # noqa: E402

BASELINE = "jf_alpha"  # the offline default voice before the English packs shipped
BAR = 50.0  # the default English voice must cut jf_alpha's WER by at least this much (relative, %)


def read_sentences(path: Path, n: int) -> list[str]:
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(sentences) < n:
        raise SystemExit(f"{path} has {len(sentences)} sentences, fewer than --n {n}")
    return sentences[:n]


def score_voice(kk, voice: str, sentences: list[str], seed: int) -> dict:
    """Corpus WER of one voice: word errors summed over sentences / reference words summed."""
    errors = words = 0.0
    synth_s = audio_s = 0.0
    worst = (0.0, "", "")
    for text in sentences:
        t0 = time.perf_counter()
        syn = synthesize(kk, text, voice=voice, seed=seed)
        synth_s += time.perf_counter() - t0
        audio_s += syn.seconds
        w, hyp = asr_wer(syn.audio, text)
        n = len(normalize_text(text).split())
        errors, words = errors + w / 100.0 * n, words + n
        if w > worst[0]:
            worst = (w, text, hyp)
    return {
        "voice": voice,
        "wer_pct": 100.0 * errors / words,
        "words": int(words),
        "audio_s": audio_s,
        "synth_s": synth_s,
        "worst": worst,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="offline-int8", help="weights source (see load_kokoro)")
    ap.add_argument("--sentences", type=Path, default=REPO / "data" / "text" / "heldout.txt")
    ap.add_argument("--n", type=int, default=12, help="how many sentences (the first N of the file)")
    ap.add_argument("--voices", nargs="+", default=[BASELINE, *ENGLISH_VOICES])
    ap.add_argument("--seed", type=int, default=0, help="the decoder's noise seed (same for every voice)")
    ap.add_argument("--show-worst", action="store_true", help="print each voice's worst transcript")
    args = ap.parse_args(argv)

    sentences = read_sentences(args.sentences, args.n)
    kk = load_kokoro(args.weights, verbose=False)
    print(f"weights: {kk.note}")
    print(f"{len(sentences)} sentences from {args.sentences.name}; load {os.getloadavg()[0]:.2f}; "
          f"pocketsphinx WER (a relative check only)\n")  # fmt: skip
    rows = []
    for voice in args.voices:
        r = score_voice(kk, voice, sentences, args.seed)
        rows.append(r)
        print(f"  {voice:<11} WER {r['wer_pct']:5.1f}%  ({r['audio_s']:.0f} s of speech, {r['synth_s']:.0f} s to synthesize)",
              flush=True)  # fmt: skip
    base = next((r["wer_pct"] for r in rows if r["voice"] == BASELINE), None)

    print(f"\n| voice | WER % (n = {rows[0]['words']} words) | vs {BASELINE} (relative) |")
    print("|---|---|---|")
    for r in sorted(rows, key=lambda r: r["wer_pct"]):
        rel = f"{100.0 * (r['wer_pct'] - base) / base:+.0f}%" if base else "-"
        tag = (
            " (default)"
            if r["voice"] == DEFAULT_VOICE
            else " (old offline default)"
            if r["voice"] == BASELINE
            else ""
        )
        print(f"| {r['voice']}{tag} | {r['wer_pct']:.1f} | {rel} |")
    if args.show_worst:
        for r in rows:
            w, text, hyp = r["worst"]
            print(f"\n{r['voice']} worst ({w:.0f}%):\n  ref: {text}\n  hyp: {hyp}")
    default = next((r["wer_pct"] for r in rows if r["voice"] == DEFAULT_VOICE), None)
    if base and default is not None:
        cut = 100.0 * (base - default) / base
        verdict = "meets" if cut >= BAR else "MISSES"
        print(
            f"\n{DEFAULT_VOICE} cuts {BASELINE}'s WER by {cut:.0f}% (relative): {verdict} the bar of {BAR:.0f}%"
        )


if __name__ == "__main__":
    main()
