"""Colab set-up, run by the first cell of every notebook (`%run ../scripts/colab_setup.py`).

On Colab: installs this repository into the runtime (editable, with the notebook and eval extras).
Anywhere else: does nothing (`make lab` has already set everything up).
"""

import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{root}[notebook,eval]"], check=True)
    print(f"kokoro-mamba installed from {root}. GPU accelerators (optional): see README, section GPU.")
else:
    print("Not on Colab: nothing to set up here.")
