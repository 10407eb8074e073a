"""The `sendmill` command line: the daemon and the operator's tools."""

from __future__ import annotations

import argparse
import asyncio
import sys

from mta.config import ConfigError, load_config


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config (default: $SENDMILL_CONFIG, else configs/sendmill.toml)",
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{config.source_path}: OK")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from mta import database

    config = load_config(args.config)

    async def run() -> list[str]:
        url = await database.resolve_url(config)
        pool = await database.connect(url, 1)
        try:
            async with pool.acquire() as conn:
                return await database.migrate(conn)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    print("\n".join(f"applied {m}" for m in applied) or "schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sendmill", description="Sendmill: a self-hosted email sending server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    _add_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    _add_config(p)
    p.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"sendmill: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
