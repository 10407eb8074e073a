"""The bounce package's commands, registered into `sendmill` by mta/cli.py:

sendmill bounce parse [--json] PATH...       classify messages by hand
sendmill suppressions list [--company NAME]  review suppressions and their evidence
sendmill suppressions lift ADDRESS --company NAME
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bounce.parse import parse_message


def register(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the `bounce` and `suppressions` commands to the `sendmill` parser."""
    bounce = sub.add_parser("bounce", help="bounce processing tools").add_subparsers(
        dest="bounce_command", required=True, metavar="ACTION"
    )
    p = bounce.add_parser(
        "parse",
        help="parse and classify bounce messages (files or directories)",
        description="Prints one line per failed recipient: file, recipient, reason, hard/soft,"
        " status, action, diagnostic and remote MTA.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="message file or directory")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_bounce_parse)
    p = bounce.add_parser(
        "signals",
        help="destinations that refused our reputation or policy lately (never suppressions)",
    )
    add_config(p)
    p.add_argument("--hours", type=int, default=24, help="seen in the last N hours (24)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_bounce_signals)

    supp = sub.add_parser(
        "suppressions", help="review and lift suppressed addresses"
    ).add_subparsers(dest="suppressions_command", required=True, metavar="ACTION")
    p = supp.add_parser("list", help="list suppressions with their reason and evidence")
    add_config(p)
    p.add_argument("--company", help="only this company (tenant) name")
    p.add_argument("--address", help="only this address")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_suppressions_list)
    p = supp.add_parser("lift", help="lift a suppression: the address may be sent to again")
    add_config(p)
    p.add_argument("address", help="the suppressed address")
    p.add_argument("--company", required=True, help="company (tenant) name")
    p.set_defaults(func=cmd_suppressions_lift)


def _files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.parts)
            )
        else:
            yield path


def cmd_bounce_parse(args: argparse.Namespace) -> int:
    status = 0
    for path in _files(args.paths):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"sendmill: {path}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        report = parse_message(raw)
        for r in report.recipients:
            line = {
                "file": str(path),
                "recipient": r.recipient,
                "reason": r.reason.value,
                "hard": r.hard,
                "status": r.status,
                "action": r.action,
                "diagnostic": r.diagnostic,
                "remote_mta": r.remote_mta,
            }
            if args.json:
                print(json.dumps(line, ensure_ascii=False))
            else:
                hard = {True: "hard", False: "soft", None: "-"}[r.hard]
                print(
                    f"{path}\t{r.recipient or '-'}\t{r.reason.value}\t{hard}\t"
                    f"{r.status or '-'}\t{r.diagnostic[:120]}"
                )
    return status


def _run(config_path: str | None, work: Callable[[Any], Any]) -> Any:
    from mta import database
    from mta.config import load_config

    config = load_config(config_path)

    async def main() -> Any:
        url = await database.resolve_url(config)
        pool = await database.connect(url, 2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def cmd_bounce_signals(args: argparse.Namespace) -> int:
    from mta.queries import Queries

    sql = Queries("bounce")["list-signals"]
    rows = _run(args.config, lambda db: db.fetch(sql, args.hours))
    for r in rows:
        if args.json:
            print(
                json.dumps(
                    {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
                )
            )
        else:
            last = f"{r['last_at']:%Y-%m-%d %H:%M}"
            print(f"{r['domain']:<32} {r['reason']:<16} {r['count']:>7}  last {last}")
            print(f"    {r['last_evidence'][:200]}")
    return 0


def cmd_suppressions_list(args: argparse.Namespace) -> int:
    from bounce import suppressions

    rows = _run(
        args.config,
        lambda db: suppressions.list_suppressions(db, args.company, args.address, args.limit),
    )
    for s in rows:
        if args.json:
            print(json.dumps({**asdict(s), "created_at": s.created_at.isoformat()}))
        else:
            print(f"{s.company:<20} {s.address:<40} {s.reason:<16} {s.created_at:%Y-%m-%d %H:%M}")
            if s.evidence:
                print(f"    {s.evidence[:200]}")
    return 0


def cmd_suppressions_lift(args: argparse.Namespace) -> int:
    from bounce import suppressions

    lifted = _run(args.config, lambda db: suppressions.lift(db, args.company, args.address))
    print("lifted" if lifted else "no such suppression")
    return 0 if lifted else 1
