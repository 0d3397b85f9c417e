"""python -m helpers.speak: text (or a text file) -> one wav, with an adapter or Kokoro's own LSTM.

Everything the user gave is checked before the model loads (text file, voice, output path), and nothing
existing is replaced without --overwrite. Errors print one line naming what is wrong and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from helpers.kokoro.forward import check_speed
from helpers.kokoro.g2p import G2PError
from helpers.kokoro.voices import VoiceError
from helpers.speak.model import add_model_args, is_pack_file, model_from_args, voice_pack
from helpers.speak.reader import check_out, read_text_file, speak, write_speech


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.speak",
                                description="Speak English text of any length with your adapter (or Kokoro's LSTM).")  # fmt: skip
    add_model_args(p)
    p.add_argument("--voice", default="af_heart",
                   help="a voice name (af_heart, am_michael, ...) or a pack file (.safetensors/.pt/.npy), "
                        "e.g. one fitted by helpers.train.fit_voice")  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text to say")
    src.add_argument("--text-file", type=Path, help="a UTF-8 text file to read aloud")
    p.add_argument("--out", required=True, type=Path, help="the .wav to write (24 kHz, 16-bit)")
    p.add_argument("--speed", type=float, default=1.0, help="1 = Kokoro's pace (0 < speed <= 4)")
    p.add_argument("--seed", type=int, default=0, help="the decoder's noise seed (default 0)")
    p.add_argument("--per-piece", action="store_true", help="also write out-001.wav, ... one per piece")
    p.add_argument("--overwrite", action="store_true", help="replace --out (and piece files) when they exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        text = args.text if args.text is not None else read_text_file(args.text_file)
        if not text.strip():
            raise G2PError("--text is empty: nothing to say")
        check_speed(args.speed)
        check_out(args.out, args.overwrite)
        if is_pack_file(args.voice) or args.weights == "offline-int8" or os.environ.get("HF_HUB_OFFLINE") == "1":
            voice_pack(args.voice)  # a bad pack file or an unknown offline name fails before the model loads
        kk = model_from_args(args)
        pack = voice_pack(args.voice, kk.source)
        speech = speak(kk, text, voice=pack, speed=args.speed, seed=args.seed, progress=not args.quiet)
        paths = write_speech(speech, args.out, per_piece=args.per_piece, overwrite=args.overwrite)
    except (VoiceError, G2PError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {paths[0]}" + (f" and {len(paths) - 1} piece files" if len(paths) > 1 else "")
          + f": {speech.summary()}; {kk.note}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
