"""Time `python -m helpers.speak` on a 1,000-word text with the shipped adapter (issue 26's closing figure).

    python benchmarks/bench_speak.py [--words 1000] [--adapter results/distill-cpu/adapter] [--out DIR]

The text is the workbook's own: the first sentences of data/text/written.txt (written for the project),
in paragraphs of six, until the word count is reached. It is written to DIR/text.txt and spoken to
DIR/speech.wav by the command itself (model loading included in the wall time).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import soundfile as sf

from helpers.settings import REPO_ROOT, runs_root


def thousand_words(n_words: int = 1000, per_paragraph: int = 6) -> str:
    lines = [s.strip() for s in (REPO_ROOT / "data" / "text" / "written.txt").read_text().splitlines() if s.strip()]
    picked, count = [], 0
    for line in lines:
        if count >= n_words:
            break
        picked.append(line)
        count += len(line.split())
    paragraphs = [" ".join(picked[i : i + per_paragraph]) for i in range(0, len(picked), per_paragraph)]
    return "\n\n".join(paragraphs) + "\n"


def main(argv: list[str] | None = None) -> int:
    from helpers.speak.__main__ import main as speak_main

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--words", type=int, default=1000)
    p.add_argument("--adapter", default=str(REPO_ROOT / "results" / "distill-cpu" / "adapter"))
    p.add_argument("--voice", default="af_heart")
    p.add_argument("--out", type=Path, default=runs_root() / "bench-speak")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    text_file = args.out / "text.txt"
    text_file.write_text(thousand_words(args.words))
    words = len(text_file.read_text().split())
    wav = args.out / "speech.wav"
    t0 = time.perf_counter()
    rc = speak_main(["--adapter", args.adapter, "--voice", args.voice, "--text-file", str(text_file),
                     "--out", str(wav), "--overwrite"])  # fmt: skip
    wall = time.perf_counter() - t0
    if rc:
        return rc
    info = sf.info(str(wav))
    print(f"{words} words -> {info.duration:.1f} s of audio ({info.duration / 60:.1f} min) in {wall:.1f} s wall "
          f"(model load included; real-time factor {wall / info.duration:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
