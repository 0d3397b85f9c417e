"""A second speaker with known timing: Festival's HTS voice `cmu_us_slt_arctic_hts` speaks our sentences.

Festival (Debian packages ``festival`` and ``festvox-us-slt-hts``) synthesizes each sentence and tells us where
every word and phone starts and ends: the truth the workbook's DTW durations can be measured against
(`helpers.data.truth`). Its rhythm and melody are not Kokoro's, so it is also a speaker stage 2 can learn from.

    festival_available() -> str | None           # None when usable, else why not (and the apt line)
    make_speaker(sentences, out, prefix="slt") -> SpeakerBuild
        out/metadata.csv     LJSpeech-shaped: id|text|text (helpers.data.readers reads it)
        out/wavs/<id>.wav    mono 16-bit 24 kHz (Festival's 32 kHz resampled, 3/4 polyphase)
        out/timing/<id>.json {"id", "text", "words": [[word, start_s, end_s], ...],
                              "phones": [[phone, start_s, end_s], ...]}   # pauses are "pau" phones
        out/rehearsal.json   what made the folder (voice, sentences' hash, count), so a re-run can skip it
    read_timing(folder, item_id) -> dict         # one clip's timing file

All sentences go through one `festival -b` process (a generated Scheme file, `utt.synth` per sentence), so the
voice loads once: about 0.2-0.5 s a sentence on a laptop-class CPU core.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.grid import SAMPLE_RATE

VOICE = "cmu_us_slt_arctic_hts"
APT_LINE = "apt-get install -y festival festvox-us-slt-hts"  # as root (sudo) on Debian/Ubuntu
HOW_TO_GET = (
    f"Festival with the slt HTS voice is needed: on Debian or Ubuntu run `sudo {APT_LINE}` "
    "(other systems: build Festival 2.5 and the cmu_us_slt_arctic_hts voice from their sources)"
)
FESTIVAL_RATE = 32000  # the slt HTS voice's sample rate


@dataclass
class SpeakerBuild:
    """What `make_speaker` wrote (or found already written)."""

    out: Path
    ids: list[str]
    seconds: float  # wall-clock of the build (0 when it was already there)
    audio_s: float  # total audio written
    skipped: bool = False  # True: the folder already held this exact build


def festival_available(timeout: float = 60.0) -> str | None:
    """None when `festival` runs and has the slt voice; otherwise the reason, with how to get it."""
    exe = shutil.which("festival")
    if exe is None:
        return f"festival is not installed. {HOW_TO_GET}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.scm"
        probe.write_text(f'(voice_{VOICE})\n(format t "voice-ok\\n")\n')
        try:
            run = subprocess.run([exe, "-b", str(probe)], capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"festival did not run ({exc}). {HOW_TO_GET}"
    if "voice-ok" not in run.stdout:
        why = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"festival runs but the voice {VOICE} is missing ({why[0][:160]}). {HOW_TO_GET}"
    return None


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scheme(sentences: list[str], ids: list[str], tmp: Path) -> str:
    """The Scheme program: the voice once, then per sentence synthesize, save the wave, print the timing."""
    lines = [f"(voice_{VOICE})"]
    for item_id, text in zip(ids, sentences):
        wav = _scheme_string(str(tmp / f"{item_id}.wav"))
        lines += [
            f"(set! utt1 (Utterance Text {_scheme_string(text)}))",
            "(utt.synth utt1)",
            f"(utt.save.wave utt1 {wav} 'riff)",
            f'(format t "BEGIN\\t%s\\n" "{item_id}")',
            '(mapcar (lambda (w) (format t "W\\t%s\\t%s\\t%s\\n" '
            '(item.feat w "R:SylStructure.daughter1.daughter1.segment_start") '
            '(item.feat w "R:SylStructure.daughtern.daughtern.segment_end") (item.name w))) '
            "(utt.relation.items utt1 'Word))",
            '(mapcar (lambda (s) (format t "P\\t%s\\t%s\\t%s\\n" (item.feat s "segment_start") '
            "(item.feat s \"segment_end\") (item.name s))) (utt.relation.items utt1 'Segment))",
            f'(format t "END\\t%s\\n" "{item_id}")',
        ]
    return "\n".join(lines) + "\n"


def _parse(stdout: str) -> dict[str, dict]:
    """{id: {"words": [[w, start, end]], "phones": [[p, start, end]]}} from the program's printout."""
    out, cur = {}, None
    for line in stdout.splitlines():
        kind, *rest = line.split("\t")
        if kind == "BEGIN" and rest:
            cur = out.setdefault(rest[0], {"words": [], "phones": []})
        elif kind in ("W", "P") and cur is not None and len(rest) == 3:
            a, b, name = rest
            key = "words" if kind == "W" else "phones"
            cur[key].append([name, round(float(a), 4), round(float(b), 4)])
        elif kind == "END":
            cur = None
    return out


def to_24k(samples: np.ndarray, rate: int) -> np.ndarray:
    """(n,) int16 or float at `rate` -> float32 at 24 kHz (polyphase; 32 kHz -> 24 kHz is 3/4)."""
    from math import gcd

    from scipy.signal import resample_poly

    y = samples.astype(np.float32) / (32768.0 if samples.dtype == np.int16 else 1.0)
    g = gcd(SAMPLE_RATE, rate)
    return resample_poly(y, SAMPLE_RATE // g, rate // g).astype(np.float32)


def _fingerprint(sentences: list[str], prefix: str) -> str:
    return hashlib.sha256(json.dumps([VOICE, prefix, sentences]).encode()).hexdigest()[:16]


def make_speaker(
    sentences: list[str], out: str | Path, prefix: str = "slt", force: bool = False, progress: bool = True
) -> SpeakerBuild:
    """Festival speaks `sentences` into the dataset folder `out` (module docstring for the layout).

    A folder that already holds this exact build is left as it is (skipped=True). Any other non-empty folder
    is refused unless `force` (then the files this function writes are replaced; nothing else is deleted).
    Raises RuntimeError (with the apt line) when Festival or the voice is missing.
    """
    out = Path(out)
    if not sentences:
        raise ValueError("no sentences to speak")
    bad = [s for s in sentences if "|" in s or "\n" in s]
    if bad:
        raise ValueError(f"sentence {bad[0]!r}: '|' and line breaks cannot go into metadata.csv")
    ids = [f"{prefix}_{i:04d}" for i in range(1, len(sentences) + 1)]
    stamp = {"voice": VOICE, "sentences_sha256": _fingerprint(sentences, prefix), "clips": len(ids)}
    marker = out / "rehearsal.json"
    if marker.is_file() and all((out / "wavs" / f"{i}.wav").is_file() for i in ids):
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in stamp} == stamp:
            return SpeakerBuild(out, ids, 0.0, float(old.get("audio_s", 0.0)), skipped=True)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(
            f"{out} is not empty and holds no build of these sentences: choose another folder or pass force "
            "(--force) to write over the files this script makes there"
        )
    why = festival_available()
    if why:
        raise RuntimeError(why)
    from scipy.io import wavfile

    t0 = time.perf_counter()
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "timing").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        program = tmp / "speak.scm"
        program.write_text(_scheme(sentences, ids, tmp), encoding="utf-8")
        proc = subprocess.Popen(["festival", "-b", str(program)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines, done = [], 0
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("END\t"):
                done += 1
                if progress and (done % 50 == 0 or done == len(ids)):
                    print(f"  festival: {done}/{len(ids)} sentences ({time.perf_counter() - t0:.0f} s)", flush=True)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait() != 0:
            raise RuntimeError(f"festival failed (exit {proc.returncode}): {err.strip()[-300:]}")
        timing = _parse("".join(lines))
        missing = [i for i in ids if i not in timing or not (tmp / f"{i}.wav").is_file()]
        if missing:
            raise RuntimeError(f"festival wrote no audio or timing for {missing[:3]} ({err.strip()[-200:]})")
        audio_s, rows = 0.0, []
        for item_id, text in zip(ids, sentences):
            rate, samples = wavfile.read(tmp / f"{item_id}.wav")
            y = to_24k(samples if samples.ndim == 1 else samples[:, 0], rate)
            audio_s += len(y) / SAMPLE_RATE
            pcm = (np.clip(y, -1.0, 1.0) * 32767).round().astype(np.int16)
            wavfile.write(out / "wavs" / f"{item_id}.wav", SAMPLE_RATE, pcm)
            clip = {"id": item_id, "text": text, "source_rate": int(rate), **timing[item_id]}
            (out / "timing" / f"{item_id}.json").write_text(json.dumps(clip, indent=1), encoding="utf-8")
            rows.append(f"{item_id}|{text}|{text}")
    (out / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({**stamp, "audio_s": round(audio_s, 1), "build_s": round(seconds, 1)}, indent=2))
    return SpeakerBuild(out, ids, seconds, audio_s)


def read_timing(folder: str | Path, item_id: str) -> dict:
    """The timing file of one clip: {"id", "text", "words": [[w, start_s, end_s]], "phones": [...]}."""
    path = Path(folder) / "timing" / f"{item_id}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no timing for clip {item_id!r} (was the folder made by make_speaker?)")
    return json.loads(path.read_text(encoding="utf-8"))
