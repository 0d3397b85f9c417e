"""Kokoro's time grid, defined once for the whole workbook.

    audio            24 kHz (Kokoro's output rate; every recording is resampled to it)
    duration frame   600 samples = 25 ms   one unit of a token's duration (Kokoro's alignment grid)
    F0 / N frame     300 samples = 12.5 ms  F0, energy, log-mel: two per duration frame

A clip of F duration frames has 600 F samples and 2 F F0/energy/mel frames.
"""

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 600  # one duration frame (25 ms)
SAMPLES_PER_F0_FRAME = 300  # one F0 / energy / log-mel frame (12.5 ms)
F0_PER_FRAME = SAMPLES_PER_FRAME // SAMPLES_PER_F0_FRAME  # 2
FRAME_MS = 1000.0 * SAMPLES_PER_FRAME / SAMPLE_RATE  # 25.0
F0_FRAME_MS = 1000.0 * SAMPLES_PER_F0_FRAME / SAMPLE_RATE  # 12.5
