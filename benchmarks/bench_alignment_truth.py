"""The workbook's DTW durations against a speaker with known timing: word boundaries vs Festival's truth.

The rehearsal speaker (scripts/make_rehearsal_speaker.py: Festival's slt HTS voice, each word's true start and
end saved beside its clip) goes through the workbook's own preparation (`prepare_recordings`: validation,
reference voice by F0, pause-aware DTW, pocketsphinx word check, cached under <cache>/datasets/<folder name>).
Each clip's token durations become word starts and ends (helpers.data.truth) and are compared with Festival's:
mean, median and p95 absolute error in ms, % within 20 and 50 ms, over every word start and end of every clip,
next to the word check's verdicts.

    python scripts/make_rehearsal_speaker.py                 # once: the folder (1-2 minutes)
    python benchmarks/bench_alignment_truth.py               # all clips: Kokoro's reference synthesis per clip, cached
    python benchmarks/bench_alignment_truth.py --from-cache  # score what is prepared so far (seconds); --lead 8 adds
                                                             # Kokoro's and Festival's onset conventions
    python benchmarks/bench_alignment_truth.py --limit 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.data.align import DTWSettings, frame_db  # noqa: E402
from helpers.data.festival import read_timing  # noqa: E402
from helpers.data.prepare import ItemTargets  # noqa: E402
from helpers.data.readers import read_dataset  # noqa: E402
from helpers.data.recordings import prepare_recordings, recordings_config  # noqa: E402
from helpers.data.truth import score_clips, summarize  # noqa: E402
from helpers.outputs import dataset_cache_name  # noqa: E402
from helpers.settings import Settings  # noqa: E402


def cached_items(cache: Path) -> list[ItemTargets]:
    """Every item file in a preparation cache (also while a preparation is still writing them)."""
    out = []
    for f in sorted((cache / "items").glob("*.npz")):
        try:
            out.append(ItemTargets.load(f))
        except (OSError, ValueError, KeyError):  # a file being written right now
            continue
    return out


def evaluate(items: list[ItemTargets], folder: Path, space: bool = True) -> dict:
    """Per-clip comparisons of the prepared durations with the truth, and the word check's verdicts."""
    rows, unscored = score_clips(items, folder, space=space)
    return {"rows": rows, "unscored": unscored}


HEADER = f"{'boundaries':<34}{'mean':>7}{'median':>8}{'p95':>7}{'<=20ms':>8}{'<=50ms':>8}{'n':>7}{'signed med':>12}"


def line(name: str, e: np.ndarray) -> str:
    s = summarize(e)
    return (
        f"{name:<34}{s['mean_ms']:7.1f}{s['median_ms']:8.1f}{s['p95_ms']:7.1f}{s['within_20']:7.1f}%"
        f"{s['within_50']:7.1f}%{s['n']:7d}{np.median(e):12.1f}"
    )


def report(ev: dict, title: str) -> None:
    rows = ev["rows"]
    starts = np.concatenate([r["start_ms"] for r in rows])
    ends = np.concatenate([r["end_ms"] for r in rows])
    both = np.concatenate([starts, ends])
    offset = float(np.median(both))
    print(f"\n{title}: {len(rows)} clips, {len(starts)} words scored; {len(ev['unscored'])} clips not {ev['unscored'][:3]}")
    print(HEADER)
    print(line("all (starts + ends)", both))
    print(line("word starts", starts))
    print(line("word ends", ends))
    print(line("ends before a pause", np.concatenate([r["end_ms"][r["pause_after"]] for r in rows])))
    print(line("ends with no pause after", np.concatenate([r["end_ms"][~r["pause_after"]] for r in rows])))
    print(line("clip's first word start", np.array([r["start_ms"][0] for r in rows])))
    print(line("clip's last word end", np.array([r["end_ms"][-1] for r in rows])))
    print(line(f"all, median offset {offset:+.0f} ms removed", both - offset))
    checked = sum(bool(r["checked"]) for r in rows)
    flagged = [r for r in rows if r["suspect"]]
    print(f"word check (pocketsphinx): {checked} of {len(rows)} clips checked, {len(flagged)} flagged suspect")
    if flagged:
        e = np.concatenate([np.concatenate([r["start_ms"], r["end_ms"]]) for r in flagged])
        ok = np.concatenate([np.concatenate([r["start_ms"], r["end_ms"]]) for r in rows if not r["suspect"]])
        print(f"  |error| of flagged clips: mean {np.abs(e).mean():.1f} ms; of the others: {np.abs(ok).mean():.1f} ms")


def onset_ms(y: np.ndarray) -> float:
    """Where speech starts: the end of the leading frames below -50 dBFS (the DTW's reference-silence rule)."""
    loud = np.flatnonzero(frame_db(y) >= DTWSettings().reference_silence_dbfs)
    return float(loud[0] * 12.5) if len(loud) else float("nan")


def kokoro_lead(kk, folder: Path, voice: str, n: int) -> None:
    """Kokoro's own convention: where its audio starts vs where its durations say the first phone starts
    (BOS's end), next to Festival's label vs its audio, on the first n sentences of the speaker."""
    from helpers.data.audio import load_audio
    from helpers.data.targets import voice_style
    from helpers.kokoro.forward import synthesize_ids
    from helpers.kokoro.g2p import phonemes_to_ids, phonemize

    style = voice_style(kk, voice)
    rows = []
    for it in read_dataset(folder)[:n]:
        ps = phonemize(it.tts_text)
        out = synthesize_ids(kk.model, phonemes_to_ids(ps), style(ps), 1.0, 0)
        k_lead = float(out["durations"][0]) * 25.0 - onset_ms(out["audio"].float().numpy())
        f_lead = read_timing(folder, it.id)["words"][0][1] * 1000 - onset_ms(load_audio(it.wav_path).samples)
        rows.append((k_lead, f_lead))
    k, f = np.array(rows).T
    print(f"\nfirst phone's start by the durations/labels minus the audio's onset (-50 dBFS), {len(k)} sentences:")
    print(f"  Kokoro ({voice}): median {np.median(k):+.0f} ms (range {k.min():+.0f} to {k.max():+.0f})")
    print(f"  Festival (slt):  median {np.median(f):+.0f} ms (range {f.min():+.0f} to {f.max():+.0f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="the speaker folder (default <cache>/rehearsal-slt)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--from-cache", action="store_true", help="score what the cache holds now; prepare nothing")
    ap.add_argument("--lead", type=int, default=0, help="also measure Kokoro's onset lead on N sentences")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from helpers.kokoro.loading import load_kokoro

    S0 = Settings.from_env()
    folder = args.data or Path(S0.cache_dir) / "rehearsal-slt"
    if not (folder / "metadata.csv").is_file():
        print(f"error: no speaker at {folder}: run scripts/make_rehearsal_speaker.py first", file=sys.stderr)
        return 2
    S = Settings.from_env(dataset=str(folder))
    kk = None
    if args.from_cache:
        items = cached_items(Path(S.cache_dir) / "datasets" / dataset_cache_name(folder))[: args.limit]
    else:
        t0 = time.perf_counter()
        kk = load_kokoro("offline-int8", verbose=False)
        config = dataclasses.replace(recordings_config(S), limit=args.limit)
        data = prepare_recordings(kk, S, config, progress=True)
        print(data.summary().to_string(index=False))
        print(f"preparation: {time.perf_counter() - t0:.0f} s; voice {data.manifest['reference_voice']['voice']}")
        items = [ItemTargets.load(data.cache_dir / r["file"]) for r in data.manifest["items"]]
    print(f"{len(items)} prepared clips of {folder}")
    report(evaluate(items, folder, space=False), "Word spans = the word check's (phones and stress marks), ms")
    report(evaluate(items, folder), "Word spans = the word check's + the space token before the word, ms")
    if args.lead:
        kk = kk or load_kokoro("offline-int8", verbose=False)
        kokoro_lead(kk, folder, items[0].voice.removeprefix("voice:") if items else "bf_emma", args.lead)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
