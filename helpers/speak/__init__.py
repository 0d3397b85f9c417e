"""Use what you trained: speak text of any length with an adapter (or Kokoro's LSTM), from Python or a shell.

    python -m helpers.speak --adapter results/distill-cpu/adapter --voice af_heart \\
        --text-file chapter.txt --out chapter.wav [--speed 1.0] [--seed 0] [--device cpu] [--per-piece]

    from helpers.speak import speaking_model, speak, write_speech, kpipeline
    kk = speaking_model("results/distill-cpu/adapter")
    write_speech(speak(kk, open("chapter.txt").read(), voice="af_heart"), "chapter.wav")

    model    speaking_model (Kokoro + adapter, or the LSTM), voice_pack, kpipeline (kokoro's KPipeline, offline)
    pieces   long text -> pieces of at most 510 phonemes (sentences, then clauses, then words)
    reader   speak (progress bar, one wav), write_speech, read_text_file (clear errors)
"""

from helpers.speak.model import kpipeline, speaking_model, voice_pack
from helpers.speak.pieces import Piece, split_text
from helpers.speak.reader import Speech, TextFileError, read_text_file, speak, write_speech

__all__ = [
    "Piece",
    "Speech",
    "TextFileError",
    "kpipeline",
    "read_text_file",
    "speak",
    "speaking_model",
    "split_text",
    "voice_pack",
    "write_speech",
]
