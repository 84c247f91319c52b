#!/usr/bin/env bash
# Build (once) and install mmcv 2.1.0 with compiled ops against the installed torch.
#
# Why: mmdet 3.3.0 needs mmcv<2.2 with ops; PyPI has no mmcv 2.1.0 wheel for torch 2.14, and the
# sdist does not compile as shipped: torch 2.14's headers need C++20 while mmcv's setup.py forces
# -std=c++17 (open-mmlab/mmcv#3341). mmcv's setup.py and mmengine import pkg_resources, which
# setuptools>=81 removed, so setuptools stays <81. docs/geneval.md (section Install) lists the
# same steps for a build by hand.
#
# The built wheel is cached under $RDMEVAL_CACHE/wheels (default ~/.cache/rdmeval/wheels), keyed
# by mmcv, torch, CUDA and Python versions and GPU architectures, so later installs take seconds.
# With a GPU visible, the CUDA ops are built for that GPU's architecture (TORCH_CUDA_ARCH_LIST),
# which needs nvcc; without one, a CPU build (FORCE_CUDA=0).
#
# Usage: PYTHON=.venv/bin/python scripts/install_mmcv.sh [--force]
set -euo pipefail
PY=${PYTHON:-python}
MMCV_VERSION=2.1.0
force=${1:-}

if [ "$force" != "--force" ] && "$PY" - <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
import mmcv, mmcv.ops  # noqa: F401  (fails if ops were not compiled)
from mmcv.ops import nms  # noqa: F401
if md.version("mmcv") != "2.1.0":
    sys.exit(1)
import torch
if torch.cuda.is_available():
    # a CPU-only build, or one for other GPU architectures, must be rebuilt on this machine: compare
    # the compiled deformable attention with mmcv's pure-PyTorch version on a tiny input
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction as F, multi_scale_deformable_attn_pytorch as ref
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[6, 4], [3, 2]])
    start = torch.tensor([0, 24])
    v, loc, w = torch.rand(1, 30, 2, 8, generator=g), torch.rand(1, 5, 2, 2, 2, 2, generator=g), torch.rand(1, 5, 2, 2, 2, generator=g)
    try:
        out = F.apply(v.cuda(), shapes.cuda(), start.cuda(), loc.cuda(), w.cuda(), 64).cpu()
    except RuntimeError:
        sys.exit(1)
    sys.exit(0 if torch.allclose(out, ref(v, shapes, loc, w), atol=1e-4) else 1)
sys.exit(0)
PYEOF
then
  echo "install_mmcv: mmcv ${MMCV_VERSION} with working compiled ops is already installed; nothing to do."
  exit 0
fi

"$PY" -m pip install -q "setuptools>=77,<81" wheel ninja psutil "mmengine==0.10.7"

key=$("$PY" - <<'PYEOF'
import sys, torch
cuda = "cpu"
arch = ""
if torch.cuda.is_available():
    cuda = "cu" + (torch.version.cuda or "").replace(".", "")
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    arch = "-sm" + "_".join(f"{a}{b}" for a, b in caps)
print(f"torch{torch.__version__.split('+')[0]}-{cuda}{arch}-cp{sys.version_info.major}{sys.version_info.minor}")
PYEOF
)
cache=${RDMEVAL_CACHE:-$HOME/.cache/rdmeval}/wheels/mmcv-${MMCV_VERSION}-${key}
mkdir -p "$cache"
wheel=$(ls "$cache"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)

if [ -z "$wheel" ]; then
  echo "install_mmcv: building mmcv ${MMCV_VERSION} (${key}); this takes ~15 min on 2 cores."
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$work"
  tar xzf "$work/mmcv-${MMCV_VERSION}.tar.gz" -C "$work"
  sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-${MMCV_VERSION}/setup.py"
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  arch_list=$("$PY" -c "import torch; print(';'.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})) if torch.cuda.is_available() else '')")
  if [ -n "$arch_list" ]; then
    export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch_list"
    command -v nvcc >/dev/null || { echo "install_mmcv: a GPU is visible but nvcc is not on PATH; install the CUDA toolkit matching torch ($("$PY" -c 'import torch; print(torch.version.cuda)'))." >&2; exit 1; }
    echo "install_mmcv: building CUDA ops for arch ${TORCH_CUDA_ARCH_LIST}"
  else
    export FORCE_CUDA=0
  fi
  "$PY" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$work/mmcv-${MMCV_VERSION}" > "$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; echo "install_mmcv: build failed; full log above (tail)." >&2; exit 1; }
  built=$(ls "$work"/dist/mmcv-*.whl)
  cp "$built" "$cache/.$(basename "$built").tmp" && mv "$cache/.$(basename "$built").tmp" "$cache/$(basename "$built")"
  wheel="$cache/$(basename "$built")"
fi

"$PY" -m pip install -q --no-deps "$wheel"
"$PY" -c "import mmcv, mmcv.ops; print('install_mmcv: mmcv', mmcv.__version__, 'with ops from', mmcv.ops.__file__)"
