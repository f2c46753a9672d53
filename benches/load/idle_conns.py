#!/usr/bin/env python3
"""Open N idle TLS keep-alive connections to a loopback server and report
the server's memory per connection.

Each connection does a full TLS handshake, sends one authenticated
`GET PATH` over HTTP/1.1, reads the whole response and then stays open,
idle. Once all are open the RSS (VmRSS, summed over the given PIDs and
their children) is read and compared with the reading before the first
connection. Bounded: at most 20000 connections, loopback targets only,
every connection is closed before exit.

usage: idle_conns.py URL COUNT --pids PID[,PID...] [--user U --password P]
       [--concurrency 200] [--hold 2]
prints: RSS_RESULT label= conns= rss_before_kib= rss_after_kib= per_conn_kib=
"""
import argparse
import asyncio
import base64
import os
import ssl
import sys
import time
import urllib.parse


def pid_tree(pids):
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_kib(pids):
    total = 0
    for p in pid_tree(pids):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def one(host, port, ctx, request, conns, sem, errors):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"), 30)
            w.write(request)
            await w.drain()
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(r.readexactly(length), 30)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            conns.append((r, w))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            errors.append(repr(e))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("count", type=int)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--user", default=os.environ.get("BENCH_USER", "bench"))
    ap.add_argument("--password", default=os.environ.get("BENCH_PASS", "bench-Secret-42"))
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("only loopback targets are allowed")
    if not 1 <= a.count <= 20000:
        sys.exit("count must be 1..20000")
    pids = [int(p) for p in a.pids.split(",")]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    auth = base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
    request = (f"GET {u.path or '/'} HTTP/1.1\r\nHost: localhost\r\n"
               f"Authorization: Basic {auth}\r\n\r\n").encode()
    before = rss_kib(pids)
    conns, errors = [], []
    sem = asyncio.Semaphore(a.concurrency)
    t0 = time.monotonic()
    await asyncio.gather(*(one(u.hostname, u.port or 443, ctx, request, conns, sem, errors)
                           for _ in range(a.count)))
    opened = time.monotonic() - t0
    await asyncio.sleep(a.hold)
    after = rss_kib(pids)
    # still open? (a server that timed them out would have closed them)
    alive = sum(1 for r, _ in conns if not r.at_eof())
    for _, w in conns:
        w.close()
    per = (after - before) / max(alive, 1)
    print(f"opened {len(conns)} in {opened:.1f}s, {alive} still open, errors {len(errors)} "
          f"{errors[:3]}", file=sys.stderr)
    print(f"RSS_RESULT label={a.label} conns={alive} rss_before_kib={before} "
          f"rss_after_kib={after} per_conn_kib={per:.1f}")


asyncio.run(main())
