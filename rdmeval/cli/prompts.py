"""``rdmeval prompts list | show NAME | fetch NAME | verify NAME|FILE | make-heldout``."""

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
  rdmeval prompts make-heldout --prompts-file ./evaluation_metadata.jsonl   # prove the pinned geneval-heldout
  rdmeval prompts make-heldout --prompts-file ./evaluation_metadata.jsonl \\
      --set coco-train2014.path=./captions_train2014.json   # ... and check it against the pools' COCO captions
  rdmeval prompts make-heldout --seed 2 --out heldout-s2.jsonl --prompts-file ./evaluation_metadata.jsonl
"""


def _params(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("n", args.n), ("seed", args.seed)) if v is not None}


def _check_out_file(out: Path) -> None:
    """--out of make-heldout is a file to write: not a folder, and below a folder (or where one can be made)."""
    if out.is_dir():
        raise RdmevalError(f"--out {out}: this is a folder; make-heldout writes a .jsonl file: pass a file path such as {out / 'heldout.jsonl'}")
    from rdmeval.preflight import check_out_folder

    # a path that does not exist yet climbs to its nearest existing parent, which must be a folder one may write to
    problem = None if out.exists() else check_out_folder(out)
    if problem is not None:
        raise RdmevalError(f"--out {out}: {problem.why}; pass another path")


def _make_heldout(args: argparse.Namespace) -> int:
    """--out: make a held-out set against the pools. Without it: prove that the pinned geneval-heldout is
    what its recipe makes, and run the audit's structure level of it against the pools' readable parts."""
    import tempfile

    from rdmeval._assets import asset_dir
    from rdmeval.contamination.heldout import HELDOUT_SEED, NOT_HELD_OUT, exclusion_path, write_heldout, write_heldout_set
    from rdmeval.contamination.heldout_pools import check_against_pools, heldout_exclusion, load_pools

    # the flags first, then the pools' specs, then the official set (which may need a download)
    if args.seed is not None and not args.out:
        raise RdmevalError("rdmeval prompts make-heldout: --seed changes the set; give --out FILE to write it")
    if args.out:
        _check_out_file(Path(args.out))
    local = {"geneval": Path(args.prompts_file)} if args.prompts_file else None
    pools = load_pools(args.pool, args.set, local)
    official = load_prompt_set("geneval", path=args.prompts_file)
    seed = HELDOUT_SEED if args.seed is None else args.seed
    note = f"(single_object not held out: {', '.join(NOT_HELD_OUT)} has no structure outside the official set)"
    if args.out:
        exclusion = heldout_exclusion(official, pools)
        records = write_heldout_set(Path(args.out), seed, exclusion)
        print(f"wrote {len(records)} held-out GenEval prompts (seed {seed}) to {args.out} {note}")
        print(f"excluded: the {len(official)} official prompts and these pool parts "
              f"(recorded in {exclusion_path(Path(args.out))}):")
        for part in exclusion.parts:
            print(f"  {part.line()}")
        return 0
    spec = get_spec("geneval-heldout")
    pinned = asset_dir("prompts") / spec.local
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / spec.local
        write_heldout(fresh, seed, [p.metadata for p in official.prompts], None, local)  # v1's recipe
        same = fresh.read_bytes() == pinned.read_bytes()
    if same:
        print(f"geneval-heldout {spec.version}: prompts/{spec.local} is byte-identical to the generator's output "
              f"with seed {seed} {note}")
    else:
        print(f"geneval-heldout: prompts/{spec.local} is NOT what the generator makes with seed {seed}")
    collisions, parts = check_against_pools(load_prompt_set("geneval-heldout"), pools)
    print(f"the audit's structure level of geneval-heldout {spec.version} against the pools:")
    for part in parts:
        print(f"  {part.line()}")
    for c in collisions:
        print(f"  FOUND {c.line()}")
    unread = [p.label for p in parts if not p.checked]
    if collisions:
        print(f"geneval-heldout {spec.version}: {len({c.prompt_index for c in collisions})} prompt(s) are NOT held out from "
              "these pools; make a new version against them (--out FILE) and register it (docs/heldout.md)")
    elif unread:
        print(f"no held-out prompt is in the parts checked; NOT checked: {', '.join(unread)}")
    else:
        print("no held-out prompt is in any part of these pools")
    return 0 if same and not collisions else 1


def run(args: argparse.Namespace) -> int:
    if args.action == "make-heldout":
        return _make_heldout(args)
    if args.action == "list":
        from rdmeval.prompts.sources import on_this_machine

        specs = registry()
        width = max(16, *(len(name) for name in specs))  # the columns line up however long a set's name
        for name, spec in specs.items():
            where = "shipped" if spec.local else ("cached" if on_this_machine(spec.remote) else "download")
            print(f"{name:<{width}} {spec.version:<14} {where:<9} {spec.description}")
        print("shipped: inside rdmeval; cached: already on this machine (cache or RDMEVAL_PROMPTS_PATH); "
              "download: fetched (and verified) on first use, or pass a local copy with --prompts-file")
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
    p.add_argument("action", choices=["list", "show", "fetch", "verify", "make-heldout"])
    p.add_argument("name", nargs="?", help="a registered set name, or a .jsonl/.txt/.csv file")
    p.add_argument("--prompts-file", help="local copy (file or folder) of a registered set, for offline machines")
    p.add_argument("--n", type=int, help="coco-val: number of images to sample (default 1000)")
    p.add_argument("--seed", type=int, help="coco-val: sampling seed (default 0); make-heldout: its seed (default: v1's)")
    p.add_argument("--out", help="make-heldout: write the set here (without it, check the pinned geneval-heldout)")
    p.add_argument("--pool", action="append", metavar="NAME|SPEC.toml",
                   help="make-heldout: a training pool to exclude (with --out) or to check the pinned set against "
                        "(repeatable; default: the released student's, rdm-s180-generator and rdm-s180-reference)")
    p.add_argument("--set", action="append", metavar="SOURCE.KEY=VALUE",
                   help="make-heldout: override a pool source key, e.g. coco-train2014.path=FILE (repeatable)")
    p.add_argument("--head", type=int, default=5, help="show: how many prompts to print (default 5)")
    p.set_defaults(func=run)
