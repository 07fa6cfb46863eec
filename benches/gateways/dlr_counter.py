#!/usr/bin/env python3
"""A small, fast dlr-url listener for the gateway benchmark: counts Kannel's delivery-report
callbacks (GET /dlr?s=%d...) and answers each with an empty 200 on the same connection
(keep-alive). GET /count answers "TOTAL DELIVERED" (reports, and those with s=1: delivered).
One asyncio loop, no HTTP framework: a Python http.server falls behind at thousands a second.

Usage: dlr_counter.py PORT
"""
import asyncio
import sys

total = 0
delivered = 0

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global total, delivered
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            out = []
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buf = buf[:end], buf[end + 4:]
                line = head.split(b"\r\n", 1)[0]
                # Kannel's callbacks are GETs without a body.
                if line.startswith(b"GET /count"):
                    body = f"{total} {delivered}\n".encode()
                    out.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                total += 1
                if b"s=1&" in line or line.split(b" ")[1].endswith(b"s=1"):
                    delivered += 1
                out.append(OK)
            if out:
                writer.write(b"".join(out))
    except (ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
