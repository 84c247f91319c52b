"""``rdmeval prompts list | show NAME | fetch NAME | verify NAME|FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rdmeval.errors import RdmevalError
from rdmeval.prompts import get_spec, load_prompt_set, registry
from rdmeval.prompts.sources import fetch

EPILOG = """\
examples:
  rdmeval prompts list
  rdmeval prompts show geneval
  rdmeval prompts fetch pickapic-test                       # download into the cache and verify
  rdmeval prompts verify geneval --prompts-file ./evaluation_metadata.jsonl
  rdmeval prompts verify my_prompts.jsonl                   # check a user file parses
  rdmeval prompts show coco-val --prompts-file annotations/captions_val2014.json --n 1000
"""


def _params(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("n", args.n), ("seed", args.seed)) if v is not None}


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, spec in registry().items():
            print(f"{name:<16} {spec.version:<14} {spec.description}")
        return 0
    if not args.name:
        raise RdmevalError(f"rdmeval prompts {args.action}: a NAME (or FILE) is needed, e.g. `rdmeval prompts {args.action} geneval`")
    if args.action == "fetch":
        spec = get_spec(args.name)
        if spec.local:
            print(f"{args.name}: shipped with rdmeval (prompts/{spec.local}); nothing to fetch")
            return 0
        path, digest = fetch(spec.remote, Path(args.prompts_file) if args.prompts_file else None)
        print(f"{args.name}: {path}\nsha256 {digest} (verified)")
        return 0
    ps = load_prompt_set(args.name, path=args.prompts_file, **_params(args))
    d = ps.describe()
    print(f"{d['name']} version {d['version']}: {d['n_prompts']} prompts, sha256 {d['sha256']}")
    print(f"source: {d['source']}")
    print(f"definition: {d['definition']}")
    if ps.tag_counts().keys() != {"-"}:
        print("tags: " + ", ".join(f"{k} {v}" for k, v in ps.tag_counts().items()))
    if args.action == "show":
        if args.name in registry():
            spec = get_spec(args.name)
            print(f"license: {spec.license}\ncitation: {spec.citation}")
        for p in ps.prompts[: args.head]:
            print(f"  [{p.index}] {p.text}")
    else:
        print("verified: parses and matches its pinned hash" if args.name in registry() else "verified: parses")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="list, show, fetch and verify prompt sets", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list", "show", "fetch", "verify"])
    p.add_argument("name", nargs="?", help="a registered set name, or a .jsonl/.txt/.csv file")
    p.add_argument("--prompts-file", help="local copy (file or folder) of a registered set, for offline machines")
    p.add_argument("--n", type=int, help="coco-val: number of images to sample (default 1000)")
    p.add_argument("--seed", type=int, help="coco-val: sampling seed (default 0)")
    p.add_argument("--head", type=int, default=5, help="show: how many prompts to print (default 5)")
    p.set_defaults(func=run)
