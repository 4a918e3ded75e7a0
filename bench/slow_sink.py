#!/usr/bin/env python3
"""An SMTP sink that answers each message after a delay, as a real relay does (bench only).

`slow_sink.py PORT DELAY_MS COUNT_FILE`: listens on 127.0.0.1:PORT, takes every message
(ESMTP with PIPELINING, no TLS, no login), answers its DATA after DELAY_MS milliseconds, and on
SIGTERM writes how many messages it took to COUNT_FILE. Postfix's smtp-sink can only wait whole
seconds; a relay's real latency is tens of milliseconds.
"""

import asyncio
import signal
import sys

PORT, DELAY, COUNT_FILE = int(sys.argv[1]), int(sys.argv[2]) / 1000, sys.argv[3]
taken = 0


async def session(reader, writer):
    global taken
    writer.write(b"220 slow-sink ESMTP\r\n")
    try:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-slow-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                while (body := await reader.readline()) not in (b".\r\n", b""):
                    pass
                await asyncio.sleep(DELAY)
                taken += 1
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:  # MAIL, RCPT, RSET, NOOP
                writer.write(b"250 ok\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", PORT, backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    with open(COUNT_FILE, "w") as out:
        out.write(f"{taken}\n")


asyncio.run(main())
