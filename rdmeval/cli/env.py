"""``rdmeval env``: versions, devices and cache location (paste it into bug reports)."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

from rdmeval.cache import cache_dir

PACKAGES = ("rdmeval", "torch", "torchvision", "diffusers", "transformers", "tokenizers", "safetensors",
            "accelerate", "open_clip_torch", "mmdet", "mmcv", "mmengine", "pycocotools", "numpy", "pillow",
            "pandas", "pyarrow", "datasketch", "sentence-transformers", "setuptools")


def collect() -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info: dict = {"python": platform.python_version(), "platform": platform.platform(), "packages": versions,
                  "cache": str(cache_dir())}
    try:
        import torch

        info["cuda_available"] = torch.cuda.is_available()
        info["cuda_version"] = torch.version.cuda
        info["devices"] = [
            {"index": i, "name": torch.cuda.get_device_name(i), "capability": "%d.%d" % torch.cuda.get_device_capability(i)}
            for i in range(torch.cuda.device_count())
        ]
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["cuda_available"] = False
    try:
        import mmcv.ops  # noqa: F401

        info["mmcv_ops"] = "compiled ops load"
    except Exception as exc:  # noqa: BLE001 - report whatever is wrong
        info["mmcv_ops"] = f"unavailable ({type(exc).__name__}: {exc})"
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"python     {info['python']}  ({info['platform']})")
    for pkg, ver in info["packages"].items():
        print(f"{pkg:<22} {ver or '-'}")
    print(f"cuda       {info.get('cuda_available')} (CUDA {info.get('cuda_version')})")
    for d in info.get("devices", []):
        print(f"  cuda:{d['index']} {d['name']} sm_{d['capability'].replace('.', '')}")
    print(f"mmcv ops   {info['mmcv_ops']}")
    print(f"cache      {info['cache']}  (set RDMEVAL_CACHE to move it)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="show versions, devices and the cache location",
                       epilog="examples:\n  rdmeval env\n  rdmeval env --json > env.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
