"""Make the rehearsal speaker: Festival's slt HTS voice speaks data/text/rehearsal_slt.txt, with true timing.

    python scripts/make_rehearsal_speaker.py                  # -> $KOKORO_MAMBA_CACHE/rehearsal-slt (1-2 minutes)
    python scripts/make_rehearsal_speaker.py --out DIR --limit 20
    KOKORO_MAMBA_DATASET=<that folder> KOKORO_MAMBA_MODE=full ...   # the workbook's notebooks 04-06 then use it

Writes an LJSpeech-shaped folder (metadata.csv + wavs/, 24 kHz) and timing/<id>.json with every word's and
phone's start and end (helpers.data.festival). Needs Festival and the voice:
`sudo apt-get install -y festival festvox-us-slt-hts` (Debian/Ubuntu); without them it says so and exits 2.
A folder that already holds the same build is left alone; any other non-empty folder is refused (--force
writes over the files this script makes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.data.festival import make_speaker  # noqa: E402
from helpers.settings import REPO_ROOT, Settings  # noqa: E402

SENTENCES = REPO_ROOT / "data" / "text" / "rehearsal_slt.txt"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="dataset folder (default: <cache>/rehearsal-slt)")
    ap.add_argument("--sentences", type=Path, default=SENTENCES, help="one sentence a line")
    ap.add_argument("--limit", type=int, default=None, help="only the first N sentences")
    ap.add_argument("--force", action="store_true", help="write over this script's files in a non-empty --out")
    args = ap.parse_args(argv)
    out = args.out or Path(Settings.from_env().cache_dir) / "rehearsal-slt"
    sentences = [s.strip() for s in args.sentences.read_text(encoding="utf-8").splitlines() if s.strip()]
    sentences = sentences[: args.limit] if args.limit else sentences
    try:
        build = make_speaker(sentences, out, force=args.force)
    except RuntimeError as exc:  # Festival or the voice missing (the message has the apt line), or it failed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if build.skipped:
        print(f"{out}: already holds these {len(build.ids)} clips ({build.audio_s:.0f} s of audio); nothing to do")
    else:
        print(f"{out}: {len(build.ids)} clips, {build.audio_s:.0f} s of audio at 24 kHz, in {build.seconds:.0f} s")
    print(f"use it: KOKORO_MAMBA_DATASET={out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
