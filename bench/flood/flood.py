"""Hostile clients for bench/flood.sh: holds many idle connections, slowloris requests on
HTTP/1.1 and HTTP/2, oversized and endless bodies against a Quiver server, reopening each
connection the server closes, until it is killed.

    python flood.py HTTP_ADDR GRPC_ADDR IDLE SLOW

IDLE idle connections (half to the HTTP listener, half to gRPC) that send nothing; SLOW of
each slow kind (each reconnecting 1 s after the server closes it): HTTP/1.1 headers a line every 2 s, an HTTP/2 preface then silence (on gRPC), a
body declared as 1 GiB sent at 1 KiB/s, and a chunked body that never ends. Prints one JSON
line every 2 s: connections open now, opened and closed by the server so far, refused.
"""

import asyncio
import json
import sys
import time

HTTP, GRPC = sys.argv[1], sys.argv[2]
IDLE, SLOW = int(sys.argv[3]), int(sys.argv[4])
stats = {"open": 0, "opened": 0, "closed_by_server": 0, "refused": 0}


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


async def hold(addr, send):
    """Connects, runs `send` (which writes slowly or not at all), counts what the server does;
    reconnects after a close."""
    host, port = split(addr)
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(1)
            continue
        stats["open"] += 1
        stats["opened"] += 1
        sender = asyncio.create_task(send(writer))
        try:
            # Whatever the server answers (a 408 or 503, a GOAWAY), read until it closes.
            while await reader.read(65536):
                pass
        except OSError:
            pass
        sender.cancel()
        stats["open"] -= 1
        stats["closed_by_server"] += 1
        writer.close()
        await asyncio.sleep(1)


async def silent(writer):
    await asyncio.Event().wait()


async def slow_headers(writer):
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: q\r\n")
    while True:
        await asyncio.sleep(2)
        writer.write(b"X-Slow: 1\r\n")
        await writer.drain()


async def h2_preface_then_silence(writer):
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    # An empty SETTINGS frame, then nothing.
    writer.write(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    await writer.drain()
    await asyncio.Event().wait()


async def oversized_body(writer):
    writer.write(
        b"PUT /FeatureGroup/quiver_bench HTTP/1.1\r\nHost: q\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1073741824\r\n\r\n"
    )
    while True:
        writer.write(b"x" * 1024)
        await writer.drain()
        await asyncio.sleep(1)


async def endless_chunks(writer):
    writer.write(
        b"PUT /FeatureGroup/quiver_bench HTTP/1.1\r\nHost: q\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    while True:
        writer.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)


async def report():
    while True:
        print(json.dumps({"t": round(time.time(), 1), **stats}), flush=True)
        await asyncio.sleep(2)


async def main():
    tasks = [asyncio.create_task(report())]
    kinds = [(HTTP, slow_headers), (GRPC, h2_preface_then_silence), (HTTP, oversized_body),
             (HTTP, endless_chunks)]
    for addr, send in kinds:
        for _ in range(SLOW):
            tasks.append(asyncio.create_task(hold(addr, send)))
    for i in range(IDLE):
        tasks.append(asyncio.create_task(hold(HTTP if i % 2 else GRPC, silent)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)


asyncio.run(main())
