"""``rdmeval train import-released``: check and convert the published geALLcoco bundles and τ table.

``python -m rdmeval.distill.released_cli SRC --out ASSETS [--pool rdm-s180-generator --set ...]``
(see docs/reference-assets.md). With ``--pool`` the τ table's row alignment with the pool's prompts
is checked (the pool's COCO captions must then be available); with ``--ctx-table`` the ctx table must
come from the same prompts.
"""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  hf download Lanl11/irdm-flux-geall-assets --repo-type dataset --local-dir released/
  rdmeval train import-released released/ --out assets/geall
  rdmeval train import-released released/ --out assets/geall --pool rdm-s180-generator \\
      --set coco-train2014.path=captions_train2014.json --ctx-table assets/geall/ctx

outputs: OUT/bundles/<encoder>.safetensors, OUT/tau (a sharded table) and OUT/released.json (each
source file's sha256 and the checks that ran). Nothing is written unless every check passes.
"""


def build_parser(prog: str = "python -m rdmeval.distill.released_cli") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Check and convert the released RDM training assets.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="local copy of the Hugging Face dataset Lanl11/irdm-flux-geall-assets")
    p.add_argument("--out", required=True, help="assets folder to write (bundles/, tau/, released.json)")
    p.add_argument("--pool", help="the generator pool spec (name or TOML) whose prompts the τ rows must follow")
    p.add_argument("--set", action="append", default=[], metavar="SOURCE.KEY=VALUE", help="override a pool source key (repeatable)")
    p.add_argument("--ctx-table", help="a ctx table built from the same pool: its rows must align with τ")
    p.add_argument("--encoders", help="comma-separated subset of the ten encoders (default: all)")
    return p


def run(args: argparse.Namespace) -> int:
    from rdmeval.distill.released import import_released

    prompts = None
    if args.pool:
        from rdmeval.distill.conditioning import pool_rows

        prompts = pool_rows(args.pool, args.set).prompts
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()] if args.encoders else None
    record = import_released(args.src, args.out, prompts=prompts, encoders=encoders, ctx_table=args.ctx_table)
    checked = "checked against the pool's prompts" if prompts is not None else "not checked against a pool (pass --pool)"
    print(f"{len(record['bundles'])} bundles and the τ table ({record['tau']['rows']:,} rows, alignment {checked}) -> {args.out}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog or "python -m rdmeval.distill.released_cli").parse_args(argv)
    from rdmeval.failures import module_main

    return module_main(lambda: run(args), on_interrupt="run the same command again (it checks and converts the files again)")


if __name__ == "__main__":
    raise SystemExit(main())
