"""The `sendmill` command line: the daemon and the operator's tools. Every command has --help."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mta.config import Config, ConfigError, load_config


def _add_config(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a parser where --config is not given leaves the value another level parsed,
    # so `sendmill --config F queue retry` and `sendmill queue --config F retry` both work.
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML config (default: $SENDMILL_CONFIG, else configs/sendmill.toml)",
    )


async def _with_db(config: Config, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from mta import database

    url = await database.resolve_url(config)
    pool = await database.connect(url, 2)
    try:
        return await work(pool)
    finally:
        await pool.close()


# --- serve / migrate / check-config ---------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    services = (config.delivery.processes, config.tracker.processes, config.control.processes)
    if max(services) > 1:
        # prometheus-client picks its multiprocess storage at import: set it up first.
        metrics_dir = config.state_path.absolute() / "metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        for f in metrics_dir.glob("*.db"):
            f.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from mta.daemon import serve

    return serve(config)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for domain in config.sending_domains:
        for key in domain.dkim:
            if not Path(key.key_file).exists():
                print(f"note: DKIM key {key.key_file} will be generated on first start")
    print(f"{config.source_path}: OK")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """A new deployment in DIR: a commented config, an env file with a fresh server secret
    (mode 0600) and the state directory."""
    import secrets
    import socket
    from importlib import resources

    folder = Path(args.dir).absolute()
    config, env = folder / "sendmill.toml", folder / "env"
    state = Path(args.state_dir).absolute() if args.state_dir else folder / "state"
    if (config.exists() or env.exists()) and not args.force:
        print(f"sendmill: {config} or {env} exists (use --force to replace)", file=sys.stderr)
        return 1
    hostname = args.hostname or socket.getfqdn()
    template = (resources.files("mta") / "deployment.toml").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    state.mkdir(mode=0o750, parents=True, exist_ok=True)
    config.write_text(template.replace("@HOSTNAME@", hostname).replace("@STATE_DIR@", str(state)))
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# Secrets of this Sendmill deployment (systemd: EnvironmentFile=). Keep it 0600.\n"
            f"SENDMILL_SECRET={secrets.token_hex(32)}\n"
            "# SENDMILL_DATABASE__URL=postgresql://sendmill@localhost/sendmill\n"
        )
    print(f"wrote {config}\nwrote {env} (the server secret; mode 0600)\ncreated {state}")
    print("next: edit the config, then")
    print(f"  set -a; . {env}; set +a")
    print(f"  sendmill check-config --config {config}")
    print(f"  sendmill serve --config {config}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from mta import database

    config = load_config(args.config)

    async def work(pool: Any) -> list[str]:
        async with pool.acquire() as conn:
            return await database.migrate(conn)

    applied = asyncio.run(_with_db(config, work))
    print("\n".join(f"applied {m}" for m in applied) or "schema is up to date")
    return 0


# --- db ---------------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    """The embedded PostgreSQL: status, start (runs until stopped), stop."""
    from mta import embedded_postgres as pg

    config = load_config(args.config)
    if config.database.url:
        print("sendmill: database.url is set: the database is an external server, not embedded")
        return 0 if args.db_command == "status" else 2
    state = config.state_path
    try:
        if args.db_command == "start":
            print(f"embedded PostgreSQL running: {pg.start(state)}")
            print("it runs until `sendmill db stop`")
            return 0
        if args.db_command == "stop":
            pg.stop(state, force=args.force)
            print("embedded PostgreSQL stopped")
            return 0
    except pg.EmbeddedPostgresError as exc:
        print(f"sendmill: {exc}", file=sys.stderr)
        return 1
    status = pg.status(state)
    print(f"data directory: {status.pgdata}{'' if status.initialised else ' (not created yet)'}")
    if status.running_pid is None:
        print("server: stopped")
        return 3  # like `systemctl status` / LSB: not running
    owner = "the operator (sendmill db start)" if status.operator_started else "its users"
    print(f"server: running, pid {status.running_pid}; stopped by {owner}")
    print(f"used by: {', '.join(map(str, status.users)) or 'no process'}")
    print(f"setup log: {state / pg.SETUP_LOG}; server log: {status.pgdata / 'log'}")
    return 0


# --- dkim -------------------------------------------------------------------------------------


def cmd_dkim_generate(args: argparse.Namespace) -> int:
    from mta.dkim import generate_key

    out = Path(args.out or f"{args.domain}.{args.selector}.pem")
    if out.exists() and not args.force:
        print(f"sendmill: {out} exists (use --force to replace it)", file=sys.stderr)
        return 1
    record = generate_key(out, args.algorithm)
    print(f"private key written to {out}")
    print("publish this DNS TXT record:")
    print(f'{args.selector}._domainkey.{args.domain}. IN TXT "{record}"')
    print("and add to the config:")
    print(
        f'[[sending_domains]]\ndomain = "{args.domain}"\n'
        f'dkim = [{{ selector = "{args.selector}", key_file = "{out}", '
        f'algorithm = "{args.algorithm}" }}]'
    )
    return 0


def cmd_dkim_show(args: argparse.Namespace) -> int:
    """The TXT record of every key of a domain: from the config's key files, or the database."""
    from mta.dkim import DkimError, public_txt_record
    from mta.dns import to_ascii

    config = load_config(args.config)
    domain = to_ascii(args.domain)
    configured = config.sending_domain(domain)
    if configured is not None and configured.dkim:
        for key in configured.dkim:
            try:
                record = public_txt_record(Path(key.key_file), key.algorithm)
            except DkimError as exc:
                print(f"sendmill: {exc}", file=sys.stderr)
                return 1
            _print_txt(f"{key.selector}._domainkey.{domain}", record, "config")
        return 0
    view = _run_domains(config, lambda m: m.get(None, domain))
    if view is None:
        return 1
    for record in view["records"]:
        if record["purpose"] == "dkim":
            _print_txt(record["name"], record["value"], record["key_state"])
    return 0


def _print_txt(name: str, value: str, state: str) -> None:
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    print(f"{name}. IN TXT {strings}  ; {state}")


# --- sending domains --------------------------------------------------------------------------


def _run_domains(config: Config, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work` with a DomainManager; prints a refusal and returns None."""
    from mta import database
    from mta.domain_keys import KeySeal
    from mta.secret import server_secret
    from mta.sending_domains import DomainManager, SendingDomainError

    async def with_manager(pool: Any) -> Any:
        async with pool.acquire() as conn:
            await database.migrate(conn)
        return await work(DomainManager(pool, config, KeySeal(server_secret(config))))

    try:
        return asyncio.run(_with_db(config, with_manager))
    except SendingDomainError as exc:
        print(f"sendmill: {exc}", file=sys.stderr)
        return None


def _print_domain(view: dict[str, Any]) -> None:
    state = "sendable" if view["sendable"] else "not sendable yet (DKIM not verified)"
    print(f"{view['domain']}  company {view['company']}  {view['origin']}  {state}")
    for key in view["dkim_keys"]:
        print(f"  DKIM {key['selector']} {key['algorithm']} {key['state']}")
    checked = {(f["purpose"], f["name"]): f for f in view["last_check"] or []}
    print("  records to publish:")
    for record in view["records"]:
        found = checked.get((record["purpose"], record["name"]))
        status = f"  ; {found['status']} {found['detail']}".rstrip() if found else ""
        optional = "" if record["required"] else " (optional)"
        print(f"    {record['zone_line']}{optional}{status}")


def cmd_domains(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    action = args.domains_command

    async def work(manager: Any) -> Any:
        company_id = None
        if args.company:
            company_id = await manager.company(args.company, create=action == "add")
        if action == "list":
            return await manager.list(company_id)
        if action == "add":
            return await manager.add(company_id, args.domain, ed25519=args.ed25519)
        if action == "show":
            return await manager.get(company_id, args.domain)
        if action == "verify":
            return await manager.verify(company_id, args.domain)
        if action == "rotate":
            return await manager.rotate(company_id, args.domain, ed25519=args.ed25519 or None)
        await manager.delete(company_id, args.domain)
        return "deleted"

    result = _run_domains(config, work)
    if result is None:
        return 1
    if action == "list":
        for view in result:
            state = "sendable" if view["sendable"] else "pending"
            print(f"{view['domain']:<40} {view['company']:<20} {view['origin']:<7} {state}")
    elif action == "delete":
        print(f"{args.domain}: deleted")
    else:
        _print_domain(result)
    return 0


# --- credentials ------------------------------------------------------------------------------


def cmd_credentials_create(args: argparse.Namespace) -> int:
    from mta import credentials, tenants

    config = load_config(args.config)

    async def work(pool: Any) -> Any:
        from mta import database

        async with pool.acquire() as conn:
            await database.migrate(conn)
        await tenants.sync_sending_domains(pool, config)
        company_id = await tenants.ensure_company(pool, args.company)
        if args.kind == "smtp":
            username = args.username or f"{args.company}-{os.urandom(3).hex()}"
            return await credentials.create_smtp_login(pool, company_id, username, args.note)
        return await credentials.create_api_key(pool, company_id, args.note)

    issued = asyncio.run(_with_db(config, work))
    if args.kind == "smtp":
        print(f"SMTP login for company {args.company} (shown once):")
        print(f"  username: {issued.login}\n  password: {issued.secret}")
    else:
        print(f"API key for company {args.company} (shown once):\n  {issued.secret}")
    return 0


def cmd_credentials_list(args: argparse.Namespace) -> int:
    from mta.queries import Queries

    config = load_config(args.config)
    rows = asyncio.run(_with_db(config, lambda db: db.fetch(Queries("mta")["list-credentials"])))
    print(f"{'id':>5}  {'kind':<4}  {'company':<20} {'login / key':<32} status")
    for r in rows:
        name = r["username"] or f"sm_{r['key_prefix']}_…"
        status = "revoked" if r["revoked_at"] else "active"
        print(f"{r['id']:>5}  {r['kind']:<4}  {r['company']:<20} {name:<32} {status}")
    return 0


def cmd_credentials_revoke(args: argparse.Namespace) -> int:
    from mta import credentials

    config = load_config(args.config)
    done = asyncio.run(_with_db(config, lambda db: credentials.revoke(db, args.id)))
    print("revoked" if done else "no such active credential")
    return 0 if done else 1


# --- queue ------------------------------------------------------------------------------------


def cmd_queue(args: argparse.Namespace) -> int:
    from mta import queue, tenants
    from mta.progress import Progress

    config = load_config(args.config)
    action = getattr(args, "action", None)
    if action:
        ids = [int(i) for i in args.id] if args.id else None
        if not (args.domain or args.company or ids or args.all):
            print("sendmill: give --domain, --company, --id or --all", file=sys.stderr)
            return 2

        async def work(db: Any) -> int:
            company_id = None
            if args.company:
                company_id = await tenants.company_by_name(db, args.company)
                if company_id is None:
                    raise ConfigError(f"no company named {args.company!r}")
            progress = Progress(f"queue {action}")
            done = await queue.operate(
                db,
                action,
                domain=args.domain,
                company_id=company_id,
                ids=ids,
                progress=progress.update,
            )
            progress.finish(done)
            return done

        n = asyncio.run(_with_db(config, work))
        print(f"{action}: {n} recipient{'s' if n != 1 else ''}")
        return 0
    rows = asyncio.run(_with_db(config, lambda db: queue.counts(db, args.domain)))
    if args.json:
        for r in rows:
            print(json.dumps({"domain": r["domain"], "state": r["state"], "count": r["n"]}))
        return 0
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        table.setdefault(r["domain"], {})[r["state"]] = r["n"]
    states = ["queued", "deferred", "sending", "held", "delivered", "bounced", "expired"]
    states.append("suppressed")
    print(f"{'domain':<32}" + "".join(f"{s:>11}" for s in states))
    totals = dict.fromkeys(states, 0)
    for domain, counts in sorted(table.items()):
        print(f"{domain:<32}" + "".join(f"{counts.get(s, 0):>11}" for s in states))
        for s in states:
            totals[s] += counts.get(s, 0)
    print(f"{'total':<32}" + "".join(f"{totals[s]:>11}" for s in states))
    return 0


# --- send ---------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    """Submit one message over SMTP to the running daemon (a smoke test of the whole path)."""
    import smtplib
    import ssl
    from email.message import EmailMessage

    from mta.config import parse_hostport

    config = load_config(args.config)
    message = EmailMessage()
    message["From"] = args.sender
    message["To"] = ", ".join(args.to)
    message["Subject"] = args.subject
    message.set_content(args.body if args.body is not None else sys.stdin.read())
    host, port = parse_hostport(args.server or config.smtp.listen, 587, "--server")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # dev certificates are self-signed
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        smtp.login(args.username, args.password)
        refused = smtp.send_message(message, from_addr=args.sender, to_addrs=args.to)
        code, _reply = smtp.noop()
    for rcpt, (c, text) in refused.items():
        print(f"refused {rcpt}: {c} {text.decode()}")
    print("submitted" if not refused else "partly refused")
    return 0 if not refused and code == 250 else 1


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sendmill", description="Sendmill: a self-hosted email sending server."
    )
    _add_config(parser)
    parser.set_defaults(config=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the daemon until SIGTERM")
    _add_config(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    _add_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "init", help="write a commented config, a secret and a state directory for a deployment"
    )
    p.add_argument("dir", nargs="?", default=".", help="where (default: the current directory)")
    p.add_argument("--hostname", help="the server's name (default: this host's FQDN)")
    p.add_argument("--state-dir", help="the state directory (default: DIR/state)")
    p.add_argument("--force", action="store_true", help="replace an existing config and env")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    _add_config(p)
    p.set_defaults(func=cmd_migrate)

    db = sub.add_parser(
        "db", help="the embedded PostgreSQL (no database.url): status, start, stop"
    ).add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "whether it runs, its pid and the processes using it (exit 3: stopped)"),
        ("start", "start it and keep it running until `sendmill db stop`"),
        ("stop", "stop it (refused while a daemon or command uses it)"),
    ):
        p = db.add_parser(name, help=text)
        _add_config(p)
        if name == "stop":
            p.add_argument("--force", action="store_true", help="stop it even while in use")
        p.set_defaults(func=cmd_db)

    dkim = sub.add_parser("dkim", help="DKIM keys").add_subparsers(
        dest="dkim_command", required=True, metavar="ACTION"
    )
    p = dkim.add_parser(
        "generate", help="write a new DKIM key and print the DNS TXT record to publish"
    )
    p.add_argument("domain", help="the sending domain, e.g. example.com")
    p.add_argument("--selector", required=True, help="DKIM selector, e.g. s2026")
    p.add_argument(
        "--algorithm",
        default="rsa-sha256",
        choices=["rsa-sha256", "ed25519-sha256"],
        help="key type (default rsa-sha256, 2048 bits)",
    )
    p.add_argument("--out", metavar="PATH", help="key file (default DOMAIN.SELECTOR.pem)")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.set_defaults(func=cmd_dkim_generate)
    p = dkim.add_parser("show", help="print the DNS TXT record of every key of a domain")
    _add_config(p)
    p.add_argument("domain", help="a sending domain (from the config or added at run time)")
    p.set_defaults(func=cmd_dkim_show)

    domains = sub.add_parser(
        "domains", help="sending domains managed at run time (also the control API)"
    ).add_subparsers(dest="domains_command", required=True, metavar="ACTION")
    for name, text in (
        ("list", "list sending domains"),
        ("add", "add a domain for a company: DKIM keys generated, records printed"),
        ("show", "a domain, its keys and the DNS records to publish"),
        ("verify", "check the domain's records in DNS now; verified keys start signing"),
        ("rotate", "new DKIM keys under a new selector (the old stay published a while)"),
        ("delete", "remove a domain added at run time, and its keys"),
    ):
        p = domains.add_parser(name, help=text)
        _add_config(p)
        if name != "list":
            p.add_argument("domain", help="the sending domain, e.g. mail.example.com")
        p.add_argument(
            "--company",
            required=name == "add",
            help="company (tenant) name" + ("" if name == "add" else "; default: any"),
        )
        if name in ("add", "rotate"):
            p.add_argument("--ed25519", action="store_true", help="an Ed25519 key beside RSA")
        p.set_defaults(func=cmd_domains)

    creds = sub.add_parser("credentials", help="SMTP logins and API keys").add_subparsers(
        dest="credentials_command", required=True, metavar="ACTION"
    )
    p = creds.add_parser("create", help="create an SMTP login or an API key for a company")
    _add_config(p)
    p.add_argument("--company", default="default", help="company (tenant) name")
    p.add_argument(
        "--kind", choices=["smtp", "api"], default="smtp", help="SMTP login or HTTP API key"
    )
    p.add_argument("--username", help="SMTP login name (default: generated)")
    p.add_argument("--note", default="", help="description shown in listings")
    p.set_defaults(func=cmd_credentials_create)
    p = creds.add_parser("list", help="list credentials")
    _add_config(p)
    p.set_defaults(func=cmd_credentials_list)
    p = creds.add_parser("revoke", help="revoke a credential by id")
    _add_config(p)
    p.add_argument("id", type=int, help="the credential's id (see credentials list)")
    p.set_defaults(func=cmd_credentials_revoke)

    p = sub.add_parser(
        "queue",
        help="show the queue by destination and state, or act on it",
        description="Without an action: counts by destination domain and state.",
    )
    _add_config(p)
    p.add_argument("--domain", help="only this recipient domain")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (
        ("retry", "make queued/deferred recipients due now"),
        ("hold", "hold recipients: never attempted until released"),
        ("release", "release held recipients"),
        ("delete", "remove recipients from delivery (recorded as bounced by the operator)"),
    ):
        a = actions.add_parser(name, help=text)
        _add_config(a)
        a.add_argument("--domain", help="recipient domain")
        a.add_argument("--company", help="company name")
        a.add_argument("--id", action="append", help="recipient id (repeatable)")
        a.add_argument("--all", action="store_true", help="every matching recipient")
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("send", help="submit one message over SMTP (smoke test)")
    _add_config(p)
    p.add_argument("--from", dest="sender", required=True, help="the From address")
    p.add_argument("--to", action="append", required=True, help="a recipient (repeatable)")
    p.add_argument("--subject", default="Sendmill test message", help="the Subject")
    p.add_argument("--body", help="text body (default: read stdin)")
    p.add_argument("--username", required=True, help="SMTP login (credentials create)")
    p.add_argument(
        "--password",
        default=os.environ.get("SENDMILL_SMTP_PASSWORD"),
        help="SMTP password (default: $SENDMILL_SMTP_PASSWORD)",
    )
    p.add_argument("--server", help="host:port (default: smtp.listen from the config)")
    p.set_defaults(func=cmd_send)

    # The control API's commands live with it (control/cli.py); only this hook knows them.
    from control.cli import add_commands

    add_commands(sub, _add_config)

    # The bounce package's commands (bounce parse, suppressions): its only entry point here.
    from bounce.cli import register as register_bounce

    register_bounce(sub, _add_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"sendmill: config error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `sendmill bounce parse ... | head`: the reader has had enough; end quietly, and keep
        # Python from complaining again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
