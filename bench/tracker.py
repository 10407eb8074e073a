"""bench/tracker: the tracker's open pixel and click redirect under load, against nginx.

Starts `sendmill serve` (embedded PostgreSQL, `[tracker] processes` workers on one
SO_REUSEPORT port) and a private nginx serving the same 43-byte GIF (`empty_gif`) and a 302
from a config this script writes. Then, each against `/o/` and `/c/` with valid tokens, one per
recipient (1,000 for wrk through a Lua script, 200 for h2load):

1. throughput: wrk, 100 connections, 15 s (nginx first, then the tracker);
2. latency under load: h2load (HTTP/1.1) at a fixed offered rate of 5,000 req/s over 500
   connections for 30 s; p50/p99 from h2load's per-request log;

then it waits for the tracker to write its buffers and counts, per phase (each phase uses its
own campaign id), that every request the tracker recorded became exactly one event row.

wrk, nginx and h2load (nghttp2-client) are Debian packages; missing ones are installed with
apt-get. Usage: .venv/bin/python bench/tracker.py [--processes 2] [--duration 15]
[--latency-duration 30] [--rate 5000]. The last output line is one JSON object:
{"open_rps", "click_rps", "nginx_rps", "ratio_vs_nginx", "p99_ms_at_5000", "errors",
 "events_lost"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_database, wait_port  # noqa: E402

OUT = ROOT / "bench" / "out" / "tracker"
PY = sys.executable
PACKAGES = {"wrk": "wrk", "nginx": "nginx-light", "h2load": "nghttp2-client"}
TARGET = "https://www.example.com/products/shoes?utm_source=newsletter&id=9"
COMPANY = 1


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None]
    if not missing and Path("/usr/sbin/nginx").exists():
        return
    print(f"installing {' '.join(missing)} (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], env=env, check=True, capture_output=True
    )


# --- nginx ------------------------------------------------------------------------------------


def start_nginx(port: int) -> Path:
    conf_dir = OUT / "nginx"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes auto;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {conf_dir}/tmp;
    proxy_temp_path {conf_dir}/tmp;
    fastcgi_temp_path {conf_dir}/tmp;
    uwsgi_temp_path {conf_dir}/tmp;
    scgi_temp_path {conf_dir}/tmp;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /o/ {{ empty_gif; add_header Cache-Control no-store; }}
        location /c/ {{ return 302 {TARGET}; }}
    }}
}}
"""
    )
    (conf_dir / "tmp").mkdir(exist_ok=True)
    subprocess.run(["nginx", "-c", str(conf), "-p", str(conf_dir)], check=True)
    wait_port(port)
    return conf


def stop_nginx(conf: Path) -> None:
    subprocess.run(["nginx", "-c", str(conf), "-p", str(conf.parent), "-s", "quit"])


# --- load generators ----------------------------------------------------------------------


WRK_PATHS = """
paths = {{{paths}}}
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", paths[(counter % #paths) + 1])
end
"""


def wrk(
    url: str, seconds: int, connections: int = 100, paths: list[str] | None = None
) -> tuple[float, int, int]:
    """(requests/s, requests, errors) — errors are socket errors plus non-2xx/3xx answers.
    With `paths`, each request takes the next one (a Lua script), e.g. one token per recipient."""
    script = []
    if paths:
        lua = OUT / "paths.lua"
        lua.write_text(WRK_PATHS.format(paths=", ".join(f'"{p}"' for p in paths)))
        script = ["-s", str(lua)]
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return rps, total, errors


def h2load(urls: list[str], rate: int, connections: int, seconds: int) -> dict[str, float]:
    """A fixed offered rate: each of `connections` clients sends rate/connections requests a
    second. Clients start evenly over one request interval (10 ms apart in groups), so the
    offered load is smooth; started together, h2load's clients fire in bursts of
    `connections` requests and even nginx then shows a 25 ms p99 here."""
    log = OUT / "h2load.log"
    log.unlink(missing_ok=True)
    per_client = max(1, rate // connections)
    interval_ms = 1000 / per_client
    groups = max(1, int(interval_ms // 10))  # one group of clients every 10 ms
    out = subprocess.run(
        [
            "h2load",
            "--h1",
            "-t2",
            f"-c{connections}",
            f"-r{max(1, connections // groups)}",
            "--rate-period=10ms",
            f"--rps={per_client}",
            f"-n{rate * seconds}",
            f"--log-file={log}",
            *urls,  # taken in turn
        ],
        capture_output=True,
        text=True,
    ).stdout
    durations = []
    bad = 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            status, micros = int(parts[1]), int(parts[2])
            durations.append(micros / 1000)
            if status < 200 or status >= 400:
                bad += 1
    m = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    failed = sum(int(x) for x in m.groups()) if m else 0
    durations.sort()
    q = statistics.quantiles(durations, n=100) if len(durations) > 100 else [0.0] * 99
    return {
        "requests": len(durations),
        "rps": len(durations) / seconds,
        "p50_ms": q[49],
        "p99_ms": q[98],
        "errors": failed + bad,
    }


# --- sendmill ---------------------------------------------------------------------------------


def write_config(state: Path, ports: dict[str, int], processes: int) -> Path:
    config = f"""
hostname = "bench.sendmill.test"
state_dir = "{state}"
secret = "bench-secret"
[database]
pool_size = 10
[smtp]
listen = "127.0.0.1:{ports["smtp"]}"
listen_tls = "127.0.0.1:{ports["smtps"]}"
[http]
listen = "127.0.0.1:{ports["http"]}"
[bounce]
domain = "bounces.bench.test"
listen = "127.0.0.1:{ports["bounce"]}"
[tracker]
listen = "127.0.0.1:{ports["tracker"]}"
base_url = "http://127.0.0.1:{ports["tracker"]}"
processes = {processes}
[log]
level = "warning"
format = "text"
"""
    path = state.parent / "sendmill.toml"
    path.write_text(config)
    return path


def recorded(http_port: int) -> dict[str, float]:
    """The tracker's own count of recorded requests, from /metrics (all processes)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
    found: dict[str, float] = {}
    pattern = r"sendmill_tracker_(requests_total|events_dropped_total)\{?([^}\s]*)\}?\s+([\d.e+]+)"
    for name, labels, value in re.findall(pattern, text):
        found[f"{name}{{{labels}}}"] = float(value)
    return found


async def settle(db: asyncpg.Connection, http_port: int, seconds: float = 60) -> tuple[int, float]:
    """Wait until the tracker has written all it recorded: (rows, recorded requests). The
    tracker publishes its counts a few times a second, so both must hold still."""
    deadline = time.monotonic() + seconds
    last = (-1, -1.0)
    while True:
        await asyncio.sleep(0.5)
        metrics = recorded(http_port)
        server = sum(
            v for k, v in metrics.items() if "requests_total" in k and 'outcome="recorded"' in k
        )
        rows = await db.fetchval("SELECT count(*) FROM tracking_events")
        if ((rows, server) == last and rows >= server) or time.monotonic() > deadline:
            return rows, server
        last = (rows, server)


async def main(args: argparse.Namespace) -> None:
    ensure_tools()
    if OUT.exists():
        shutil.rmtree(OUT)
    state = OUT / "state"
    state.mkdir(parents=True)
    ports = {n: free_port() for n in ("smtp", "smtps", "bounce", "http", "tracker", "nginx")}
    config_path = write_config(state, ports, args.processes)
    env = {**os.environ, "SENDMILL_CONFIG": str(config_path)}
    sendmill = str(Path(PY).parent / "sendmill")
    daemon = subprocess.Popen([sendmill, "serve"], env=env)
    nginx = start_nginx(ports["nginx"])
    db = None
    try:
        wait_port(ports["tracker"])
        wait_port(ports["http"])
        from mta import database
        from mta.config import load_config
        from tracker.server import build_codec
        from tracker.tokens import Token, TokenKind

        config = load_config(config_path)
        codec = build_codec(config)
        db = await asyncpg.connect(await database.resolve_url(config))
        sent = int(time.time()) - 3600
        tracker = f"http://127.0.0.1:{ports['tracker']}"
        nginx_url = f"http://127.0.0.1:{ports['nginx']}"

        def paths(kind: TokenKind, campaign: int, count: int) -> list[str]:
            """One token per recipient, as a campaign sends them (same link, own identity)."""
            prefix = "o" if kind is TokenKind.OPEN else "c"
            tokens = (
                Token(kind, 10_000 + i, COMPANY, campaign, 1, sent, 0, TARGET) for i in range(count)
            )
            return [f"/{prefix}/{codec.make(token)}" for token in tokens]

        phases: dict[int, str] = {}
        print(f"throughput: wrk -c100 {args.duration}s per endpoint", flush=True)
        open_paths, click_paths = paths(TokenKind.OPEN, 1, 1000), paths(TokenKind.CLICK, 2, 1000)
        # nginx gets the same requests through the same Lua script: the client costs the same
        nginx_open, _, e1 = wrk(nginx_url, args.duration, paths=open_paths)
        nginx_click, _, e2 = wrk(nginx_url, args.duration, paths=click_paths)
        print(f"  nginx        /o/ {nginx_open:9.0f} req/s   /c/ {nginx_click:9.0f} req/s")
        phases[1], phases[2] = "wrk /o/", "wrk /c/"
        open_rps, open_n, e3 = wrk(tracker, args.duration, paths=open_paths)
        click_rps, click_n, e4 = wrk(tracker, args.duration, paths=click_paths)
        print(f"  tracker      /o/ {open_rps:9.0f} req/s   /c/ {click_rps:9.0f} req/s")
        errors = e3 + e4

        await settle(db, ports["http"])  # the latency test starts with empty buffers
        print(
            f"latency: h2load {args.rate} req/s over 500 connections, {args.latency_duration}s",
            flush=True,
        )
        latency = {}
        for campaign, kind in ((3, TokenKind.OPEN), (4, TokenKind.CLICK)):
            phases[campaign] = f"h2load {kind.name.lower()}"
            await settle(db, ports["http"])
            urls = [tracker + p for p in paths(kind, campaign, 200)]
            result = h2load(urls, args.rate, 500, args.latency_duration)
            latency[kind.name.lower()] = result
            errors += int(result["errors"])
            print(
                f"  {kind.name.lower():5}  {result['rps']:7.0f} req/s  p50 {result['p50_ms']:6.2f}"
                f" ms  p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}"
            )

        # every recorded request must become one event row
        rows, server_recorded = await settle(db, ports["http"])
        metrics = recorded(ports["http"])
        by_phase = dict(
            await db.fetch("SELECT campaign_id, count(*) FROM tracking_events GROUP BY 1")
        )
        dropped = sum(v for k, v in metrics.items() if "dropped" in k)
        client_sent = open_n + click_n + sum(r["requests"] for r in latency.values())
        print(
            f"events: {rows} rows; the tracker recorded {server_recorded:.0f} requests, dropped "
            f"{dropped:.0f}; load generators counted {client_sent} completed requests "
            "(wrk does not count the up to 100 in flight when it stops)"
        )
        for campaign, name in phases.items():
            if campaign in by_phase:
                print(f"  {name:14} {by_phase[campaign]} events")
        events_lost = int(server_recorded - rows)  # dropped events are among these

        nginx_rps = (nginx_open + nginx_click) / 2
        ratio = min(open_rps / nginx_open, click_rps / nginx_click)
        p99 = max(r["p99_ms"] for r in latency.values())
        print(
            json.dumps(
                {
                    "open_rps": round(open_rps),
                    "click_rps": round(click_rps),
                    "nginx_rps": round(nginx_rps),
                    "ratio_vs_nginx": round(ratio, 3),
                    "p99_ms_at_5000": round(p99, 2),
                    "errors": errors + e1 + e2,
                    "events_lost": events_lost,
                }
            )
        )
    finally:
        stop_nginx(nginx)
        if db is not None:
            await db.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if (state / "pgdata").exists():
            stop_database(state)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="tracker processes")
    parser.add_argument("--duration", type=int, default=15, help="wrk seconds per endpoint")
    parser.add_argument("--latency-duration", type=int, default=30, help="h2load seconds")
    parser.add_argument("--rate", type=int, default=5000, help="offered requests/s for h2load")
    asyncio.run(main(parser.parse_args()))
