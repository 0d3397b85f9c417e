"""How often does the pocketsphinx word check flag a clean clip? Exact vs punctuation-stripped transcripts.

The five LibriVox starter clips are clean (transcripts checked by ear), so every flag is a false flag.
For each clip and each transcript variant the DTW durations are computed as `prepare_dataset` does
(pause-aware DTW against Kokoro's reference synthesis), then checked against pocketsphinx's forced word
alignment (`helpers.data.wordcheck.check_word_boundaries`):

* **exact**: the transcript as shipped (the normalized column: "Mister", commas, dashes, full stops);
* **stripped**: the same words with every punctuation mark removed (apostrophes inside words kept,
  hyphens and dashes become spaces), as many datasets ship them.

    python benchmarks/bench_wordcheck.py                        # offline weights, the default voice
    python benchmarks/bench_wordcheck.py --voice jf_alpha       # a voice by name, or a pack file

Prints one row per clip and variant (the largest disagreement in ms of speech, the verdict, the reason)
and the false-flag rate per variant. About a minute per variant on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from helpers.data.align import align_durations  # noqa: E402
from helpers.data.audio import load_audio  # noqa: E402
from helpers.data.features import fit_to_grid  # noqa: E402
from helpers.data.readers import read_ljspeech  # noqa: E402
from helpers.data.targets import VoicePackStyle, voice_style  # noqa: E402
from helpers.data.wordcheck import CheckSettings, check_word_boundaries  # noqa: E402
from helpers.kokoro.g2p import phonemize  # noqa: E402
from helpers.kokoro.loading import load_kokoro  # noqa: E402
from helpers.kokoro.voices import PACK_FILE_SUFFIXES, read_pack_file  # noqa: E402
from helpers.settings import REPO_ROOT  # noqa: E402


def strip_punctuation(text: str) -> str:
    """Words only: apostrophes inside words stay, every other mark (hyphens and dashes too) becomes a space."""
    text = re.sub(r"(?<=\w)'(?=\w)", "\u0000", text)  # protect "don't"
    text = re.sub(r"[^\w\s\u0000]", " ", text).replace("\u0000", "'")
    return " ".join(text.split())


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT / "data" / "librivox"))
    ap.add_argument("--voice", default="auto", help="a voice name, or a voice pack file")
    ap.add_argument("--variants", default="exact,stripped", help="comma-separated: exact, stripped")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    kokoro = load_kokoro("offline-int8", verbose=False)
    if args.voice.endswith(PACK_FILE_SUFFIXES):
        style = VoicePackStyle(read_pack_file(args.voice), f"file:{Path(args.voice).name}")
    else:
        style = voice_style(kokoro, args.voice)
    rows, t0 = [], time.perf_counter()
    for item in read_ljspeech(args.data):
        y = fit_to_grid(load_audio(item.wav_path).samples)  # (600 F,)
        texts = {"exact": item.tts_text, "stripped": strip_punctuation(item.tts_text)}
        for variant in args.variants.split(","):
            text = texts[variant]
            ps = phonemize(text)
            al = align_durations(kokoro, ps, y, style(ps))
            wc = check_word_boundaries(text, ps, al.durations, y, CheckSettings(), silent=al.silent)
            rows.append(
                {
                    "clip": item.id[-4:],
                    "variant": variant,
                    "checked": wc.checked,
                    "max_speech_err_ms": round(wc.max_speech_error_ms, 1),
                    "mean_err_ms": round(wc.mean_error_ms, 1),
                    "suspect": wc.suspect,
                    "reason": wc.reason,
                }
            )
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200, "display.max_colwidth", 90)
    print(f"\nvoice {style.name}, {time.perf_counter() - t0:.0f} s")
    print(df.to_string(index=False))
    rate = df.groupby("variant")["suspect"].agg(["sum", "count"])
    for variant, r in rate.iterrows():
        print(f"false flags, {variant}: {int(r['sum'])} of {int(r['count'])} clean clips")
    return df


if __name__ == "__main__":
    main()
