#!/usr/bin/env bash
# One entry point for the workbook's set-up and runs:
#   scripts/workbook.sh setup     create .venv and install the project (idempotent, fast when done)
#   scripts/workbook.sh lab       set up, then open JupyterLab on notebooks/
#   scripts/workbook.sh execute   set up, then run every notebook headless into build/notebooks/
#   scripts/workbook.sh test      set up, then ruff, pytest (helpers) and nbval (notebooks, CI mode)
#   scripts/workbook.sh freeze    set up, then rewrite constraints.txt from what is installed (CPU machines)
# The local set-up installs the offline payload (extra "offline"); Colab uses scripts/colab_setup.py instead.
# On Debian-like machines, as root, the set-up also installs Festival (apt-get) for the rehearsal speaker.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}
CONSTRAINTS=$( [ -f constraints.txt ] && echo "$ROOT/constraints.txt" || true )

has_cuda() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

# Festival and its slt voice: the rehearsal speaker (scripts/make_rehearsal_speaker.py) and its CI test. Installed
# on Debian-like machines when running as root with apt-get; elsewhere skipped with the reason (the test then
# skips too). Never fails the set-up. SKIP_FESTIVAL=1 skips it.
festival_setup() {
  if [ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] && command -v festival >/dev/null 2>&1; then
    return 0
  fi
  local why=""
  if [ -n "${SKIP_FESTIVAL:-}" ]; then why="SKIP_FESTIVAL is set"
  elif ! command -v apt-get >/dev/null 2>&1; then why="no apt-get (not a Debian-like system)"
  elif [ "$(id -u)" != 0 ]; then why="not root"
  fi
  if [ -z "$why" ]; then
    echo "installing Festival and the slt voice (apt-get, for the rehearsal speaker)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q festival festvox-us-slt-hts >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q festival festvox-us-slt-hts >/dev/null 2>&1; }; then
      return 0
    fi
    why="apt-get could not install festival festvox-us-slt-hts"
  fi
  echo "Festival not installed ($why): the rehearsal-speaker test will be skipped." \
    "To get it: sudo apt-get install -y festival festvox-us-slt-hts"
}

setup() {
  festival_setup || true
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  local stamp="$VENV/.kokoro-mamba-installed-$(cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  python -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} --upgrade pip  # pip itself pinned too
  if ! python -c "import torch" >/dev/null 2>&1; then
    if has_cuda; then
      python -m pip install -q torch            # CUDA build
    else
      # CPU build pinned first, so nothing later pulls several GB of CUDA wheels.
      # Set TORCH_INDEX_URL to PyTorch's CPU wheel index on machines whose default index serves CUDA builds.
      python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION:-2.13.0}"
    fi
  fi
  # exact versions from constraints.txt (torch is not in it: installed above, CPU or CUDA build)
  python -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".[notebook,test,eval,offline]"
  # speaker similarity: resemblyzer without its declared deps (pyproject.toml, eval: webrtcvad-wheels instead)
  python -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} --no-deps "resemblyzer==0.1.4"
  python -m ipykernel install --sys-prefix --name kokoro-mamba --display-name "kokoro-mamba" >/dev/null
  rm -f "$VENV"/.kokoro-mamba-installed-*
  touch "$stamp"
}

run_tests() {
  export HF_HUB_OFFLINE=1 KOKORO_MAMBA_MODE=ci MPLBACKEND=Agg PYTHONUNBUFFERED=1
  echo "== ruff"; ruff check .
  echo "== pytest (helpers)"; python -m pytest tests -q -m "not gpu" -p no:cacheprovider
  echo "== nbval (notebooks, CI mode)"
  python -m pytest --nbval-lax notebooks -q -p no:cacheprovider --nbval-kernel-name kokoro-mamba --nbval-cell-timeout 1800
}

execute_notebooks() {
  mkdir -p build/notebooks
  for nb in notebooks/[0-9]*.ipynb; do
    echo "== executing $nb"
    jupyter nbconvert --to notebook --execute "$nb" --output-dir build/notebooks \
      --ExecutePreprocessor.kernel_name=kokoro-mamba --ExecutePreprocessor.timeout=-1
  done
  echo "executed copies: build/notebooks/"
}

freeze_constraints() {
  {
    echo "# Exact versions CI resolves: pip freeze of the CPU set-up (scripts/workbook.sh), minus the project itself"
    echo "# and torch (the set-up installs torch first: the CPU build here, the CUDA build on GPU machines)."
    echo "# scripts/workbook.sh installs with it, so a new upstream release cannot change what CI runs."
    echo "# Regenerate on a CPU machine after changing dependencies: scripts/workbook.sh freeze"
    # soupsieve 4.x needs Python >= 3.11.5: Debian 12's python3 (3.11.2) gets the last 2.x (beautifulsoup4 takes both)
    python -m pip freeze --all --exclude-editable | grep -v '^#' | grep -v -i -E '^(torch|kokoro-mamba)==' |
      sed -E 's/^soupsieve==(.*)$/soupsieve==\1; python_full_version >= "3.11.5"\nsoupsieve==2.8.3; python_full_version < "3.11.5"/'
  } > constraints.txt.tmp
  mv constraints.txt.tmp constraints.txt
  echo "constraints.txt: $(grep -c '==' constraints.txt) pinned packages"
}

cmd=${1:-lab}
setup
case "$cmd" in
  setup) echo "environment ready: . $VENV/bin/activate" ;;
  lab) exec jupyter lab --notebook-dir="$ROOT/notebooks" ;;
  execute) execute_notebooks ;;
  test) run_tests ;;
  freeze) freeze_constraints ;;
  *) echo "usage: $0 {setup|lab|execute|test|freeze}" >&2; exit 2 ;;
esac
