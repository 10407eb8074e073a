"""bench/mta_throughput: Sendmill's SMTP intake and signed end-to-end delivery rate.

20,000 messages of about 4 KB to recipients spread over 100 domains, submitted over SMTP by 20
concurrent sessions, delivered DKIM-signed (RSA-2048) to a receiving sink on loopback. Prints the
acceptance rate, the end-to-end delivery rate, p50/p99 time in queue, peak RSS and CPU seconds
per 1,000 messages. Then, when Postfix and OpenDKIM are available (Debian packages, installed
with --install-postfix), the same workload through them, and the ratio.

Usage: .venv/bin/python bench/mta_throughput.py [--messages N] [--sessions N] [--processes N]
The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_database  # noqa: E402

OUT = ROOT / "bench" / "out" / "mta_throughput"
PY = sys.executable


SINK = r"""
import asyncio, os, sys
from aiosmtpd.smtp import SMTP
class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 2.0.0 OK"
async def report(path):
    while True:
        with open(path + ".tmp", "w") as f:
            f.write(str(Sink.count))
        os.replace(path + ".tmp", path)
        await asyncio.sleep(0.2)
async def main():
    loop = asyncio.get_running_loop()
    asyncio.ensure_future(report(sys.argv[2]))
    handler = Sink()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink", data_size_limit=None), "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
import uvloop; uvloop.install(); asyncio.run(main())
"""


def write_config(state: Path, sink_port: int, processes: int) -> tuple[Path, dict[str, int]]:
    ports = {name: free_port() for name in ("smtp", "smtps", "bounce", "http")}
    config = f"""
hostname = "bench.sendmill.test"
state_dir = "{state}"
secret = "bench-secret"
[database]
pool_size = 10
[smtp]
listen = "127.0.0.1:{ports["smtp"]}"
listen_tls = "127.0.0.1:{ports["smtps"]}"
plaintext_auth_on_loopback = true
[http]
listen = "127.0.0.1:{ports["http"]}"
[bounce]
domain = "bounces.bench.test"
listen = "127.0.0.1:{ports["bounce"]}"
[delivery]
processes = {processes}
batch_size = 500
poll_interval = "0.2s"
[log]
level = "warning"
format = "text"
[limits.default]
connections = 20
messages_per_connection = 1000
[[routes]]
domain = "*"
host = "127.0.0.1:{sink_port}"
tls = "none"
[[sending_domains]]
domain = "bench.test"
company = "bench"
dkim = [{{ selector = "b1", key_file = "{state}/dkim/bench.test.b1.pem" }}]
"""
    path = state.parent / "sendmill.toml"
    path.write_text(config)
    return path, ports


def body(i: int) -> bytes:
    filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 70)[:3800]
    text = (
        f"From: app@bench.test\r\nTo: user{i}@d{i % 100}.bench-dest.test\r\n"
        f"Subject: bench message {i}\r\nMessage-ID: <bench{i}@bench.test>\r\n\r\n"
    )
    lines = [filler[j : j + 76] for j in range(0, len(filler), 76)]
    return (text + "\r\n".join(lines) + "\r\n").encode()


async def submit(
    port: int, username: str | None, password: str | None, total: int, sessions: int
) -> float:
    import aiosmtplib

    counter = iter(range(total))
    started = time.monotonic()

    async def session() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            if username:
                await client.login(username, password)
            for i in counter:
                await client.sendmail(
                    "app@bench.test", [f"user{i}@d{i % 100}.bench-dest.test"], body(i)
                )

    await asyncio.gather(*(session() for _ in range(sessions)))
    return time.monotonic() - started


def tree_stats(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU seconds) of a process and its children."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    rss = cpu = 0.0
    for p in procs:
        try:
            if p.name() == "postgres":
                continue
            rss += p.memory_info().rss
            t = p.cpu_times()
            cpu += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return rss / 1e6, cpu


async def run_sendmill(args: argparse.Namespace) -> dict[str, float]:
    if OUT.exists():
        shutil.rmtree(OUT)
    state = OUT / "state"
    state.mkdir(parents=True)
    sink_port = free_port()
    sink = subprocess.Popen(
        [PY, "-c", SINK, str(sink_port), str(OUT / "sink.count")], stdout=subprocess.PIPE
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
    config, ports = write_config(state, sink_port, args.processes)
    env = {**os.environ, "SENDMILL_CONFIG": str(config)}
    sendmill = str(Path(PY).parent / "sendmill")
    out = subprocess.run(
        [sendmill, "credentials", "create", "--company", "bench", "--username", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    password = out.split("password:")[1].split()[0]
    daemon = subprocess.Popen([sendmill, "serve"], env=env)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", ports["smtp"]), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        from mta import database
        from mta.config import load_config

        url = await database.resolve_url(load_config(config))
        db = await asyncpg.connect(url)
        _, cpu0 = tree_stats(daemon.pid)
        peak = 0.0
        print(f"submitting {args.messages} messages over {args.sessions} sessions...")
        started = time.monotonic()
        submit_task = asyncio.create_task(
            submit(ports["smtp"], "bench", password, args.messages, args.sessions)
        )
        done = 0
        while True:
            await asyncio.sleep(0.5)
            rss, _ = tree_stats(daemon.pid)
            peak = max(peak, rss)
            done = await db.fetchval(
                "SELECT count(*) FROM recipients WHERE state IN ('delivered','bounced','expired')"
            )
            print(f"  {done}/{args.messages} final, {time.monotonic() - started:.1f}s", flush=True)
            if done >= args.messages or time.monotonic() - started > args.timeout:
                break
        accept_s = await submit_task
        total_s = time.monotonic() - started
        _, cpu1 = tree_stats(daemon.pid)
        p50, p99 = await db.fetchrow(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY s) FROM "
            "(SELECT extract(epoch FROM finished_at - created_at) AS s FROM recipients "
            " WHERE state = 'delivered') q"
        )
        delivered = await db.fetchval("SELECT count(*) FROM recipients WHERE state='delivered'")
        await db.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        sink.kill()
        if (state / "pgdata").exists():
            stop_database(state)
    return {
        "accepted_per_s": round(args.messages / accept_s, 1),
        "delivered_per_s": round(delivered / total_s, 1),
        "p50_queue_s": round(float(p50 or 0), 3),
        "p99_queue_s": round(float(p99 or 0), 3),
        "peak_rss_mb": round(peak, 1),
        "cpu_s_per_1000": round((cpu1 - cpu0) / max(1, delivered) * 1000, 2),
        "delivered": delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--skip-postfix", action="store_true", help="no Postfix comparison")
    args = parser.parse_args()
    figures = asyncio.run(run_sendmill(args))
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    postfix = None
    if not args.skip_postfix:
        from bench.postfix_peer import run_postfix

        postfix = run_postfix(args.messages, args.sessions, body, submit, SINK)
        if postfix is not None:
            print(f"postfix+opendkim delivered_per_s: {postfix}")
    figures["postfix_delivered_per_s"] = postfix
    figures["ratio_vs_postfix"] = (
        round(figures["delivered_per_s"] / postfix, 2) if postfix else None
    )
    figures.pop("delivered")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
