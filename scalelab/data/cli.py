"""``scalelab data generate | info``: write the lab's dataset, or describe one."""

from __future__ import annotations

import argparse
import json
import time

from scalelab.errors import ConfigError

SPEC_FIELDS = (
    "rows",
    "customers",
    "skew",
    "alpha",
    "hot_keys",
    "hot_share",
    "seed",
    "payload_bytes",
    "days",
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``data`` subcommand and its own subcommands."""
    data = sub.add_parser("data", help="generate or describe the partitioning lab's dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="write orders and customers as Parquet")
    # Defaults come from DatasetSpec when the command runs (pydantic is not imported for --help).
    gen.add_argument("--rows", type=int, help="orders (default 1,000,000)")
    gen.add_argument("--customers", type=int, help="customers (default 10,000)")
    gen.add_argument("--skew", help="uniform (default) | zipf | hotspot: orders over customers")
    gen.add_argument("--alpha", type=float, help="zipf: the exponent (default 1.0)")
    gen.add_argument("--hot-keys", type=float, help="hotspot: share of hot customers (0.1)")
    gen.add_argument("--hot-share", type=float, help="hotspot: their share of orders (0.9)")
    gen.add_argument("--seed", type=int, help="the same seed writes the same data (0)")
    gen.add_argument("--payload-bytes", type=int, help="width of the payload column (64)")
    gen.add_argument("--days", type=int, help="span of ts from 2026-01-01 (365)")
    gen.add_argument(
        "--partition-by",
        default="hash:customer_id",
        help="hash[:key] | range[:key] | column[:region]: how orders are split into files",
    )
    gen.add_argument("--files", type=int, default=8, help="files for hash and range layouts")
    gen.add_argument("--out", default="", help="dataset folder (default: data/orders-<params>)")
    info = data_sub.add_parser("info", help="describe a dataset folder")
    info.add_argument("path", metavar="DIR")


def data_from_args(args: argparse.Namespace) -> int:
    """Run ``scalelab data ...``."""
    from scalelab.data.layout import Layout, default_path, read_info, write_dataset
    from scalelab.validation import describe_validation_error

    if args.data_command == "info":
        print(json.dumps(read_info(args.path).describe(), indent=1))
        return 0
    from pydantic import ValidationError

    from scalelab.data.config import DatasetSpec

    given = {k: getattr(args, k) for k in SPEC_FIELDS if getattr(args, k) is not None}
    try:
        spec = DatasetSpec.model_validate(given)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "scalelab data generate")) from None
    layout = Layout.parse(args.partition_by, args.files)
    out = args.out or str(default_path(spec))
    started = time.perf_counter()
    info = write_dataset(spec, out, layout)
    print(
        f"wrote {info.rows:,} orders of {info.customers:,} customers in {len(info.files)} files "
        f"({layout.kind}: {layout.column}) to {info.path} in {time.perf_counter() - started:.1f} s"
    )
    return 0
