#!/usr/bin/python3
"""test_async.py: dmaload's asyncio loads against a real daemon.

32 loads in flight on one client (bytes of each exact), progress in the loop's
thread, a cancelled await (CANCEL sent: STATUS shows no load left; a DONE that
raced the cancel has its fd closed: the fd count is back), the daemon killed
mid-load (an Error, no hang), sync and async loads of one client from two threads.
"""

import asyncio
import errno
import os
import sys
import threading
import time

import harness
from harness import Daemon, Suite, pattern, write_file

import dmaload

t = Suite("py-async")
d = Daemon("async", "chunk_size = 256K\n")
t.fail_hooks.append(d.tail)
DATA = pattern(4 * 1024 * 1024 + 999, seed=5)
F = write_file(os.path.join(d.dir, "data.bin"), DATA)


def case_32():
    async def main():
        with dmaload.Client(d.sock) as c:
            ranges = [(i * 100003, 65536 + i * 7919) for i in range(32)]
            bufs = await asyncio.gather(*(c.load_async(F, o, n) for o, n in ranges))
            for (o, n), b in zip(ranges, bufs):
                t.check(b.memoryview() == DATA[o:o + n], f"load {o}+{n}: bytes")
                b.close()
            t.eq(c._watching, {}, "the loop stopped watching")
    asyncio.run(main())


def case_progress():
    seen = []
    main_thread = threading.get_ident()

    async def main():
        with dmaload.Client(d.sock) as c:
            def prog(a, b):
                seen.append((a, b, threading.get_ident()))
            b = await c.load_async(F, rate=8 << 20, progress=prog)
            t.check(b.memoryview() == DATA, "bytes")
            b.close()
    asyncio.run(main())
    t.check(len(seen) >= 2 and seen[0][:2] == (0, len(DATA)), f"progress {seen[:2]}")
    t.check(all(x[2] == main_thread for x in seen), "progress in the loop's thread")


def case_cancel():
    async def main():
        base = harness.proc_fds()
        with dmaload.Client(d.sock) as c:
            # a slow load: 1 MiB/s for 4 MiB
            task = asyncio.ensure_future(c.load_async(F, rate=1 << 20))
            await asyncio.sleep(0.3)
            t.eq(len(c.status()["loads"]), 1, "the load is running")
            task.cancel()
            try:
                await task
                t.fail("the cancelled await returned")
            except asyncio.CancelledError:
                pass
            deadline = time.monotonic() + 5
            while c.status()["loads"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            t.eq(c.status()["loads"], [], "STATUS: the daemon cancelled the load")
            # a cancel that loses the race to DONE: the late DONE's fd is closed
            for i in range(10):
                task = asyncio.ensure_future(c.load_async(F, 0, 4096))
                await asyncio.sleep(0.002 * i)
                task.cancel()
                try:
                    b = await task
                    b.close()
                except asyncio.CancelledError:
                    pass
            # round trips drain what is left
            b = await c.load_async(F, 0, 10)
            t.check(b.memoryview() == DATA[:10], "the client serves on")
            b.close()
            await asyncio.sleep(0.2)
            c.status()
            t.eq(c._reqs, {}, "no request left")
            t.eq(harness.proc_fds(), base + 2, "fds: only the socket and the eventfd")
        t.eq(harness.memfds(), 0, "no buffer fd left")
    asyncio.run(main())


def case_daemon_gone():
    d2 = Daemon("async-gone", "chunk_size = 256K\n")
    big = write_file(os.path.join(d2.dir, "big.bin"), pattern(8 << 20, 6))

    async def main():
        with dmaload.Client(d2.sock) as c:
            tasks = [asyncio.ensure_future(c.load_async(big, rate=1 << 20))
                     for _ in range(4)]
            await asyncio.sleep(0.3)
            d2.kill()
            res = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                         10)
            for r in res:
                t.check(isinstance(r, dmaload.Error) and
                        r.errno in (errno.ECONNRESET, errno.EPIPE), f"result {r!r}")
            try:
                await c.load_async(big)
                t.fail("a load on a dead connection did not fail")
            except dmaload.Error:
                pass
    asyncio.run(main())
    d2.stop()


def case_mixed_threads():
    errs = []
    with dmaload.Client(d.sock) as c:
        def sync_worker():
            try:
                for i in range(20):
                    with c.load(F, i * 5000, 30000) as b:
                        if b.memoryview() != DATA[i * 5000:i * 5000 + 30000]:
                            errs.append(f"sync {i}")
            except Exception as e:
                errs.append(repr(e))

        async def main():
            th = threading.Thread(target=sync_worker)
            th.start()
            for k in range(5):
                bufs = await asyncio.gather(*(c.load_async(F, i * 777, 20000)
                                              for i in range(8)))
                for i, b in enumerate(bufs):
                    if b.memoryview() != DATA[i * 777:i * 777 + 20000]:
                        errs.append(f"async {k}/{i}")
                    b.close()
            await asyncio.get_running_loop().run_in_executor(None, th.join)
        asyncio.run(main())
    t.eq(errs, [], "errors")


def case_async_extents():
    with dmaload.Client(d.sock) as c:
        if not hasattr(dmaload._lib.lib(), "dmaload_load_extents_path") or \
                not c.caps & dmaload._lib.CAP_EXTENTS:
            raise harness.Skip("libdmaload or the daemon has no extents (issue 13)")

        async def main():
            ext = [(8192, 5000, 0), (100, 300, 8192)]
            b = await c.load_extents_async(F, ext)
            v = b.memoryview()
            t.eq(b.size, 5300, "size")
            t.check(v[0:5000] == DATA[8192:13192], "extent 0")
            t.check(v[8192:8492] == DATA[100:400] if len(v) >= 8492 else False,
                    f"extent 1 (view {len(v)})")
            b.close()
        asyncio.run(main())


t.case("32 async loads on one client: bytes of each", case_32)
t.case("progress of an async load, in the loop's thread", case_progress)
t.case("a cancelled await: CANCEL, late DONEs closed, no fd left", case_cancel)
t.case("the daemon killed with 4 loads in flight: Errors, no hang", case_daemon_gone)
t.case("one client: a thread's sync loads and the loop's async ones", case_mixed_threads)
t.case("load_extents_async: two extents, bytes", case_async_extents)
sys.exit(t.finish())
