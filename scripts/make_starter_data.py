#!/usr/bin/env python
"""Build the workbook's starter data in data/ (rerunnable; the outputs are committed).

1. data/librivox/: the five LibriVox clips shipped in Debian's ``pocketsphinx-testdata`` package
   (one reader, "Sense and Sensibility" by Jane Austen, chapter 1), converted from 16 kHz to 24 kHz mono
   16-bit wav, in the LJSpeech layout (metadata.csv + wavs/), with LICENSE and NOTICE.md.
   Needs the Debian package:  apt-get install pocketsphinx-testdata
2. data/text/sentences.txt: the text-only distillation corpus, built from data/text/handwritten.txt and
   data/text/written.txt plus the template generator in helpers/data/corpus.py, with NOTICE.md.

Usage:  python scripts/make_starter_data.py [--only librivox|text] [--source DIR] [--check-phonemes]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from helpers.data.audio import read_audio, resample, save_wav, to_mono  # noqa: E402
from helpers.data.corpus import (  # noqa: E402
    WRITTEN_FILES,
    build_corpus,
    check_sentences,
    corpus_stats,
    load_sentences,
)
from helpers.data.readers import write_ljspeech_metadata  # noqa: E402
from helpers.data.text_corpus import heldout_halves  # noqa: E402
from helpers.grid import SAMPLE_RATE  # noqa: E402

DEBIAN_SOURCE = Path("/usr/share/pocketsphinx/test/data/librivox")
N_GENERATED = 850  # template sentences added to the written ones (the first corpus had 350 + 850)
CORPUS_SEED = 0

# id -> (text, normalized). The Debian transcript is lower case without punctuation; the text column adds
# sentence case and punctuation following the novel ("Mr.", hyphens), the normalized column spells "Mr."
# out as read. Words are exactly as spoken, including the reader's slip "a more— a amiable".
TRANSCRIPTS = {
    "sense_and_sensibility_01_austen_64kb-0870": (
        "And Mr. John Dashwood had then leisure to consider how much there might be prudently in his power "
        "to do for them.",
        "And Mister John Dashwood had then leisure to consider how much there might be prudently in his power "
        "to do for them.",
    ),
    "sense_and_sensibility_01_austen_64kb-0880": ("He was not an ill-disposed young man,", None),
    "sense_and_sensibility_01_austen_64kb-0890": (
        "Unless to be rather cold-hearted and rather selfish is to be ill-disposed.",
        None,
    ),
    "sense_and_sensibility_01_austen_64kb-0920": (
        "Had he married a more— a amiable woman, he might have been made still more respectable than he was.",
        None,
    ),
    "sense_and_sensibility_01_austen_64kb-0930": ("He might even have been made amiable himself.", None),
}

BSD2_LICENSE = """\
The audio in this folder was converted from files in Debian's pocketsphinx-testdata package,
distributed under the following licence (as stated in /usr/share/doc/pocketsphinx-testdata/copyright).
The recordings themselves are LibriVox recordings, which LibriVox releases into the public domain.

Copyright 1995-2014 Carnegie Mellon University.  All rights reserved.
Copyright 2014-2015 Alpha Cephei Inc.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions
are met:

1. Redistributions of source code must retain the above copyright
   notice, this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright
   notice, this list of conditions and the following disclaimer in the
   documentation and/or other materials provided with the
   distribution.

This work was supported in part by funding from the Defense Advanced
Research Projects Agency and the National Science Foundation of the
United States of America, and the CMU Sphinx Speech Consortium.

THIS SOFTWARE IS PROVIDED BY CARNEGIE MELLON UNIVERSITY ``AS IS'' AND
ANY EXPRESSED OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO,
THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
PURPOSE ARE DISCLAIMED.  IN NO EVENT SHALL CARNEGIE MELLON UNIVERSITY
NOR ITS EMPLOYEES BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
(INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

LIBRIVOX_NOTICE = """\
# LibriVox starter clips

Five short clips of one reader, about {total:.1f} s of speech in all, used by the workbook as a tiny
real-speech dataset that works offline and in CI.

**Origin.** A LibriVox reading of "Sense and Sensibility" by Jane Austen, chapter 1
(LibriVox file `sense_and_sensibility_01_austen_64kb`), as cut into clips and transcribed by the CMU
Sphinx project for its test suite, taken from Debian's `pocketsphinx-testdata` package
(version {deb_version}), directory `/usr/share/pocketsphinx/test/data/librivox/`.

**Licence.** LibriVox recordings are in the public domain. The Debian package is distributed under the
BSD-2-Clause licence of Carnegie Mellon University, reproduced in `LICENSE`. The novel (1811) is in the
public domain.

**What was changed** (by `scripts/make_starter_data.py`, which rebuilds this folder):

- audio: 16 kHz mono 16-bit PCM resampled to {sr} Hz mono 16-bit PCM with soxr (high quality);
  nothing else (no trimming, no level change). The source is band-limited to 8 kHz, so **the upsampled
  audio has no energy above 8 kHz**: spectrograms are empty above that line, and a model fine-tuned on
  these clips alone would learn to produce dull, band-limited speech. Use them to exercise the pipeline,
  not to judge high-frequency quality.
- transcripts (`transcription` in the source: lower case, no punctuation): the `text` column adds
  sentence case and punctuation following the novel (`Mr.`, `ill-disposed`, `cold-hearted`); the
  `normalized` column is the same with `Mr.` spelled `Mister`, as read. Words are kept exactly as spoken,
  including the reader's slip "a more— a amiable". Clip 0880 ends mid-sentence and keeps the novel's comma.

`metadata.csv` is LJSpeech-style: `id|text|normalized`, no header; audio in `wavs/<id>.wav`.

| id | seconds | source sha256 |
|---|---|---|
{rows}
"""

TEXT_NOTICE = """\
# Text corpus for distillation

`sentences.txt`: {n} English sentences, one per line, no duplicates, for text-only distillation (the
teacher model speaks them; no recordings are involved). {n_written} are written text ({n_hand} from
`handwritten.txt`, {n_more} from `written.txt`) and {n_gen} come from the template generator;
{min_chars} to {max_chars} characters and {min_words} to {max_words} words each ({mean_words} on average).

**Origin.** All written for the kokoro-mamba project:

- `handwritten.txt` ({n_hand} sentences): written by hand; statements, questions, exclamations, lists,
  numbers, dates, times, prices, short and long.
- `written.txt` ({n_more} sentences): written for the project in 2026, in batches by genre and register:
  narrative prose, dialogue in quotation marks, questions of many forms, instructions and recipes, news
  reports and sports commentary, places and weather, science and technology, history and customs, letters,
  emails and notices, jokes, exclamations and very short lines, lists, numbers, dates, money and
  abbreviations ("Dr.", "e.g."), long sentences with parentheses, dashes and semicolons. Original text,
  not copied from books, websites or data sets.
- the other {n_gen}: the deterministic template generator in `helpers/data/corpus.py` (templates and word
  lists also written for the project); they are repetitive by design, so they are the minority.

`scripts/make_starter_data.py --only text` merges the three (no sentence twice, none from `heldout.txt`),
shuffles them with seed {seed} and rebuilds `sentences.txt` and this file exactly.

**Licence.** CC0 1.0: dedicated to the public domain; use it for anything, no attribution needed.
Names of people and places are invented or generic (historical figures excepted); any resemblance is
coincidental.

## Held-out evaluation sentences

`heldout.txt`: {n_heldout} English sentences, one per line, written by hand for the kokoro-mamba project as an
evaluation set of a **different origin** from the training corpus: none comes from the written files or
the template generator, and they vary in register (narrative, dialogue, questions, instructions,
exclamations) and length. No digits, so WER references need no number normalisation. Used by the
distillation evaluation (`python -m helpers.compare.distillation`) and the voice comparison. Same
licence: CC0 1.0. `written.txt` was checked against it: no sentence in common, none starting with the
same six words as a held-out one, and every pair sharing a third or more of their content words read by
hand and rewritten where the two came close.

`heldout_dev.txt` and `heldout_test.txt` ({n_dev} and {n_test} sentences) are the two halves of `heldout.txt`, by the
sha256 of each sentence (`helpers.data.text_corpus.heldout_halves`; this script writes both): every stage-1 recipe or
milestone choice reads the dev half, the reported stage-1 figures the test half. Same licence: CC0 1.0.
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def debian_version(package: str = "pocketsphinx-testdata") -> str:
    status = Path("/var/lib/dpkg/status")
    if status.is_file():
        m = re.search(rf"Package: {package}\n(?:.*\n)*?Version: (\S+)", status.read_text(errors="replace"))
        if m:
            return m.group(1)
    return "unknown"


def read_debian_transcripts(source: Path) -> dict[str, str]:
    """`<s> words </s> (id)` lines -> {id: words}."""
    out = {}
    for line in (source / "transcription").read_text().splitlines():
        m = re.match(r"\s*<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*$", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def spoken_words(text: str) -> str:
    """'And Mister John ... ill-disposed,' -> 'and mister john ... ill disposed' for comparison."""
    return " ".join(re.sub(r"[^a-z']+", " ", text.lower()).split())


def make_librivox(source: Path, out: Path) -> None:
    if not (source / "transcription").is_file():
        raise SystemExit(f"{source}: not found; install it with: apt-get install pocketsphinx-testdata")
    debian = read_debian_transcripts(source)
    rows, table = [], []
    total = 0.0
    for item_id, (text, normalized) in TRANSCRIPTS.items():
        normalized = normalized or text
        if spoken_words(normalized) != debian[item_id]:
            raise SystemExit(
                f"{item_id}: transcript {normalized!r} does not match Debian's {debian[item_id]!r}"
            )
        src = source / f"{item_id}.wav"
        y, sr = read_audio(src)  # [n, 1] at 16 kHz
        y24 = resample(to_mono(y), sr, SAMPLE_RATE)  # [n * 1.5]
        save_wav(out / "wavs" / f"{item_id}.wav", y24, SAMPLE_RATE, "PCM_16")
        seconds = len(y24) / SAMPLE_RATE
        total += seconds
        rows.append((item_id, text, normalized))
        table.append(f"| {item_id} | {seconds:.2f} | `{sha256(src)}` |")
        print(f"  {item_id}: {sr} Hz -> {SAMPLE_RATE} Hz, {seconds:.2f} s, peak {abs(y24).max():.3f}")
    write_ljspeech_metadata(out / "metadata.csv", rows)
    (out / "LICENSE").write_text(BSD2_LICENSE)
    (out / "NOTICE.md").write_text(
        LIBRIVOX_NOTICE.format(
            total=total, deb_version=debian_version(), sr=SAMPLE_RATE, rows="\n".join(table)
        )
    )


def make_text(out: Path, check_phonemes: bool) -> None:
    written = []
    for name in WRITTEN_FILES:
        lines = load_sentences(out / name)
        problems = check_sentences(lines)
        if problems:
            raise SystemExit(f"{name}: " + "; ".join(problems))
        written.append(lines)
    hand, more = written
    heldout = load_sentences(out / "heldout.txt")
    problems = [p for p in check_sentences(hand + more + heldout) if "duplicate" in p]
    if problems:  # a sentence in two files, or in the held-out set
        raise SystemExit(f"{' + '.join(WRITTEN_FILES)} + heldout.txt: " + "; ".join(problems))
    halves = heldout_halves(heldout)  # dev: every stage-1 choice; test: the reported figures
    for half, lines in halves.items():
        (out / f"heldout_{half}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sentences = build_corpus(hand + more, N_GENERATED, seed=CORPUS_SEED)
    (out / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    stats = corpus_stats(sentences)
    print(f"  {stats}")
    n_words = [len(x.split()) for x in sentences]
    (out / "NOTICE.md").write_text(
        TEXT_NOTICE.format(
            n=len(sentences),
            n_written=len(hand) + len(more),
            n_hand=len(hand),
            n_more=len(more),
            n_gen=len(sentences) - len(hand) - len(more),
            min_chars=stats["min_chars"],
            max_chars=stats["max_chars"],
            mean_words=round(sum(n_words) / len(n_words), 1),
            min_words=min(n_words),
            max_words=max(n_words),
            n_heldout=len(heldout),
            n_dev=len(halves["dev"]),
            n_test=len(halves["test"]),
            seed=CORPUS_SEED,
        )
    )
    if check_phonemes:
        from tqdm.auto import tqdm

        from helpers.kokoro.g2p import G2PError, phonemize

        lengths, refused = [], []
        for x in tqdm(sentences, desc="phonemizing"):
            try:
                lengths.append(len(phonemize(x, strict=True)))  # the screen prepare_text_corpus applies
            except G2PError as exc:
                refused.append(f"{x!r}: {exc}")
        print(f"  phonemes per sentence: min {min(lengths)}, max {max(lengths)} (Kokoro reads up to 510)")
        if refused:
            raise SystemExit("G2P refused:\n  " + "\n  ".join(refused))
        if max(lengths) > 510:
            raise SystemExit("a sentence is over Kokoro's 510-phoneme limit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["librivox", "text"], help="build one part only")
    ap.add_argument(
        "--source", type=Path, default=DEBIAN_SOURCE, help="pocketsphinx-testdata librivox folder"
    )
    ap.add_argument("--data", type=Path, default=REPO / "data", help="output root (default: data/)")
    ap.add_argument(
        "--check-phonemes", action="store_true", help="phonemize the corpus (helpers.kokoro.g2p) to check"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.only in (None, "librivox"):
        print("data/librivox:")
        make_librivox(args.source, args.data / "librivox")
    if args.only in (None, "text"):
        print("data/text:")
        make_text(args.data / "text", args.check_phonemes)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
