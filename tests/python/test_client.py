#!/usr/bin/python3
"""test_client.py: dmaload.Client and dmaload.Buffer against a real daemon.

Loads by path, fd and file object, ranges, every method, the Buffer's attributes,
its read-only view (a write raises, never crashes) that outlives close(), progress,
dmaload.Error with the daemon's errno and message, STATUS/STATS, threads sharing one
client, a forked child that reconnects, a hugetlb daemon, and no leaked fds.
"""

import errno
import os
import sys
import threading

import harness
from harness import Daemon, Suite, pattern, read_range, write_file

import dmaload

t = Suite("py-client")
d = Daemon("client")
t.fail_hooks.append(d.tail)
DATA = pattern(3 * 1024 * 1024 + 12345, seed=1)
F = write_file(os.path.join(d.dir, "data.bin"), DATA)
EMPTY = write_file(os.path.join(d.dir, "empty.bin"), b"")


def check_buf(b, want, what):
    t.eq(b.size, len(want), f"{what}: size")
    t.check(b.memoryview() == want, f"{what}: bytes differ")
    t.check(b.fd >= 0, f"{what}: fd")


def case_connect():
    with dmaload.Client(d.sock, name="py-test") as c:
        t.check(c.caps & 1, "caps has DL_CAP_LOAD_FD")
        t.check(c.version >= 1, f"version {c.version}")
        t.check(c.fileno() >= 0, "fileno")
        names = [x["name"] for x in c.stats()["clients"]]
        t.check("py-test" in names, f"HELLO name in STATS: {names}")
    os.environ["DMALOAD_SOCKET"] = d.sock	# socket=None: found as libdmaload does
    try:
        with dmaload.Client() as c, c.load(F, 0, 100) as b:
            check_buf(b, DATA[:100], "Client() on $DMALOAD_SOCKET")
    finally:
        del os.environ["DMALOAD_SOCKET"]
    e = t.raises(dmaload.Error, errno.ENOENT, dmaload.Client,
                 os.path.join(d.dir, "nosock"))
    t.check(isinstance(e, OSError), "Error is an OSError")


def case_path_methods():
    with dmaload.Client(d.sock) as c:
        for m in ("auto", "direct", "buffered", "cfr"):
            with c.load(F, method=m) as b:
                check_buf(b, DATA, m)
                if m != "auto":
                    t.eq(b.method, m, "method")
                    t.eq(b.reason, "asked", "reason")
                t.eq(b.target, "memfd", "target")
                t.check(b.sealed, "sealed")
                t.check(not b.shared, "not shared (cache off)")


def case_ranges():
    with dmaload.Client(d.sock) as c:
        for off, ln in ((0, 1), (4096, 8192), (1, 4095), (12345, 1000000),
                        (len(DATA) - 7, None), (len(DATA) - 100, 100)):
            with c.load(F, off, ln) as b:
                want = read_range(F, off, len(DATA) if ln is None else ln)
                check_buf(b, want, f"range {off}+{ln}")
        with c.load(EMPTY) as b:
            t.eq(b.size, 0, "empty size")
            t.eq(bytes(b.memoryview()), b"", "empty view")


def case_fd_and_file():
    with dmaload.Client(d.sock) as c, open(F, "rb") as f:
        f.seek(77)
        with c.load(f) as b:
            check_buf(b, DATA, "file object")
        t.eq(f.tell(), 77, "file offset left alone")
        fd = os.open(F, os.O_RDONLY)
        try:
            with c.load(fd, 100, 5000, method="buffered") as b:
                check_buf(b, DATA[100:5100], "fd range")
        finally:
            os.close(fd)


def case_view_readonly():
    with dmaload.Client(d.sock) as c:
        b = c.load(F, 0, 65536)
        v = b.memoryview()
        t.check(v.readonly, "view is read-only")
        try:
            v[0] = 1
            t.fail("a write to the view did not raise")
        except TypeError:
            pass
        b.close()
        t.eq(b.fd, -1, "fd after close")
        # the mapping lives while the view does
        t.check(v == DATA[:65536], "view after close()")
        t.raises(ValueError, None, b.memoryview)
        # a second buffer of the same file is intact (the write went nowhere)
        with c.load(F, 0, 65536) as b2:
            t.check(b2.memoryview() == DATA[:65536], "second load intact")


def case_private_write():
    # the package's copy-on-write view: a write stays in this process
    with dmaload.Client(d.sock) as c:
        with c.load(F, 0, 8192) as b:
            w = b._private_view()
            t.check(w is not None and not w.readonly, "private view is writable")
            w[0:4] = b"XXXX"
            t.eq(bytes(w[0:4]), b"XXXX", "own write seen")
            os.lseek(b.fd, 0, os.SEEK_SET)
            t.eq(os.pread(b.fd, 4, 0), DATA[:4], "buffer itself unchanged")


def case_progress():
    seen = []
    with dmaload.Client(d.sock) as c:
        with c.load(F, rate=4 * 1024 * 1024, progress=lambda a, b: seen.append((a, b))) as b:
            check_buf(b, DATA, "progress load")
    t.check(seen and seen[0] == (0, len(DATA)), f"first progress {seen[:1]}")
    t.check(all(tot == len(DATA) for _, tot in seen), "totals")
    t.check(all(x <= y for (x, _), (y, _) in zip(seen, seen[1:])), "monotonic")
    t.check(len(seen) >= 2, f"{len(seen)} progress calls")


def case_errors():
    with dmaload.Client(d.sock) as c:
        e = t.raises(dmaload.Error, errno.ENOENT, c.load, os.path.join(d.dir, "nope"))
        t.check(e is not None and e.message, f"daemon's message: {e and e.message!r}")
        t.check(e is not None and "nope" in str(e), f"path in the text: {e}")
        t.raises(dmaload.Error, errno.EISDIR, c.load, d.dir)
        e = t.raises(dmaload.Error, None, c.load, F, len(DATA) + 10, 5)
        t.check(e is not None and e.errno in (errno.EINVAL, errno.ERANGE),
                f"range past EOF: {e}")
        t.raises(ValueError, None, c.load, F, method="fast")
        t.raises(ValueError, None, c.load, F, target="gpu")
        # the connection still serves
        with c.load(F, 0, 10) as b:
            check_buf(b, DATA[:10], "after errors")


def case_threads():
    errs = []
    with dmaload.Client(d.sock) as c:
        def worker(k):
            try:
                for i in range(8):
                    off = (k * 8 + i) * 1000
                    with c.load(F, off, 50000) as b:
                        if b.memoryview() != DATA[off:off + 50000]:
                            errs.append(f"thread {k} load {i}: bytes")
            except Exception as e:
                errs.append(f"thread {k}: {e!r}")
        ths = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        t.eq(c.status()["loads_active"], 0, "no loads left")
    t.eq(errs, [], "thread errors")


def case_fork():
    with dmaload.Client(d.sock) as c:
        with c.load(F, 0, 1000) as b:
            check_buf(b, DATA[:1000], "parent before fork")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok = b"0"
            try:
                os.close(r)
                with c.load(F, 1000, 1000) as b:
                    ok = b"1" if b.memoryview() == DATA[1000:2000] else b"2"
                pids = [x["pid"] for x in c.stats()["clients"]]
                if os.getpid() not in pids:
                    ok = b"3"
            except BaseException:
                ok = b"4"
            os.write(w, ok)
            os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        t.eq(got, b"1", "child's load over its own connection")
        with c.load(F, 2000, 1000) as b:
            check_buf(b, DATA[2000:3000], "parent after fork")


def case_daemon_gone():
    d2 = Daemon("gone")
    big = write_file(os.path.join(d2.dir, "big.bin"), pattern(8 << 20, 2))
    with dmaload.Client(d2.sock) as c:
        def kill_soon(a, b):
            if a == 0:
                d2.kill()
        e = t.raises(dmaload.Error, None, c.load, big, rate=1 << 20, progress=kill_soon)
        t.check(e is not None and e.errno in (errno.ECONNRESET, errno.EPIPE),
                f"error when the daemon died: {e}")
        t.raises(dmaload.Error, None, c.load, big)
    d2.stop()


NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


def free_huge_pages():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


def case_hugetlb():
    # As the C tests do (tests/lib/hugepages.c): root grows the pool by what it
    # lacks and puts it back after.
    old = None
    free = free_huge_pages()
    if free < 4 and os.geteuid() == 0 and os.access(NR_HUGEPAGES, os.W_OK):
        with open(NR_HUGEPAGES) as f:
            old = f.read().strip()
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(int(old) + 4 - free))
        free = free_huge_pages()
    d3 = None
    try:
        if free < 4:
            raise harness.Skip("no free huge pages")
        d3 = Daemon("huge", "hugetlb = on\n")
        data = pattern(3 << 20, 3)
        p = write_file(os.path.join(d3.dir, "h.bin"), data)
        with dmaload.Client(d3.sock) as c, c.load(p) as b:
            t.check(b.hugetlb, f"hugetlb buffer: {b}")
            t.eq(b.buf_size, 4 << 20, "buf_size rounded to huge pages")
            check_buf(b, data, "hugetlb")
    finally:
        if d3:
            d3.stop()
        if old is not None:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(old)


def need_extents(c):
    if not hasattr(dmaload._lib.lib(), "dmaload_load_extents_path") or \
            not c.caps & dmaload._lib.CAP_EXTENTS:
        raise harness.Skip("libdmaload or the daemon has no extents load (issue 13)")


def own_memfd(size):
    import fcntl
    fd = os.memfd_create("py-test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    return fd


def case_extents():
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        ext = [(5000, 3000, 904), (0, 10, 0), (len(DATA) - 5, 5, 20000)]
        with c.load_extents(F, ext) as b:
            t.eq(b.size, 3015, "size: the sum of the extents")
            t.eq(b.length, 20005, "length: the layout's end")
            v = b.memoryview()
            t.eq(len(v), 20005, "view covers the layout")
            want = bytearray(20005)
            for fo, ln, bo in ext:
                want[bo:bo + ln] = DATA[fo:fo + ln]
            t.check(v == bytes(want), "bytes, zeros between")
        with open(F, "rb") as f, c.load_extents(f, [(4096, 8192, 4096)]) as b:
            t.check(b.memoryview()[4096:] == DATA[4096:12288], "by file object")
        t.raises(dmaload.Error, errno.EINVAL, c.load_extents, F, [(0, 10, 0), (20, 10, 5)])
        t.raises(dmaload.Error, errno.EINVAL, c.load_extents, F,
                 [(len(DATA) - 5, 10, 0)])
        t.raises(dmaload.Error, errno.EINVAL, c.load_extents, F, [])


def case_extents_split():
    # more extents than one load takes: split over loads into a memfd of ours
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        n = dmaload._lib.MAX_EXTENTS + 1000
        ext = [(2 * i, 1, i) for i in range(n)]
        with c.load_extents(F, ext) as b:
            t.eq(b.size, n, "size")
            t.check(b.memoryview() == DATA[0:2 * n:2], "every other byte")
            t.check(b.sealed, "sealed")


def case_into():
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        fd = own_memfd(1 << 20)
        try:
            info = c.load_into(fd, F, (1000, 50000))
            t.eq(info.size, 50000, "range: size")
            t.eq(os.pread(fd, 50000, 0), DATA[1000:51000], "range at 0")
            info = c.load_into(fd, F, [(0, 100, 60000), (9000, 4096, 65536)])
            t.eq(info.size, 4196, "extents: size")
            t.eq(os.pread(fd, 100, 60000), DATA[:100], "extent 0")
            t.eq(os.pread(fd, 4096, 65536), DATA[9000:13096], "extent 1")
            t.eq(os.pread(fd, 50000, 0), DATA[1000:51000], "the rest untouched")
            t.raises(dmaload.Error, None, c.load_into, fd, F, [(0, 100, (1 << 20) - 50)])
            t.eq(harness.memfds(), 1, "no buffer fd came back")
        finally:
            os.close(fd)


def case_default_socket():
    # as nobody: $XDG_RUNTIME_DIR/dmaloadd.sock when it exists, else the system's
    if os.geteuid() != 0:
        raise harness.Skip("needs root to become nobody")
    xdg = harness.tmpdir("xdg")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = b"?"
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            os.environ.pop("DMALOAD_SOCKET", None)
            os.environ["XDG_RUNTIME_DIR"] = xdg
            f = dmaload._lib.lib().dmaload_default_socket
            a = dmaload._lib.cstr(f())
            os.environ["XDG_RUNTIME_DIR"] = "/"	# a dir without one
            b = dmaload._lib.cstr(f())
            out = f"{a}|{b}".encode()
        except BaseException as e:
            out = repr(e).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    got = os.read(r, 8192).decode()
    os.close(r)
    os.waitpid(pid, 0)
    import shutil
    shutil.rmtree(xdg, ignore_errors=True)
    t.eq(got, "/run/dmaloadd/dmaloadd.sock|/run/dmaloadd/dmaloadd.sock",
         "no socket in $XDG_RUNTIME_DIR: the system's")


def case_default_socket_xdg():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to become nobody")
    import socket as so
    import shutil
    xdg = harness.tmpdir("xdg")
    s = so.socket(so.AF_UNIX, so.SOCK_SEQPACKET)
    s.bind(os.path.join(xdg, "dmaloadd.sock"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = b"?"
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            os.environ.pop("DMALOAD_SOCKET", None)
            os.environ["XDG_RUNTIME_DIR"] = xdg
            out = dmaload._lib.cstr(dmaload._lib.lib().dmaload_default_socket()).encode()
        except BaseException as e:
            out = repr(e).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    got = os.read(r, 8192).decode()
    os.close(r)
    os.waitpid(pid, 0)
    s.close()
    shutil.rmtree(xdg, ignore_errors=True)
    t.eq(got, os.path.join(xdg, "dmaloadd.sock"), "the user's socket when it exists")


def case_no_leaks():
    base = harness.proc_fds()
    dbase = d.fds_settle(-1, 0.5)
    with dmaload.Client(d.sock) as c:
        for i in range(20):
            b = c.load(F, i * 4096, 4096)
            v = b.memoryview()
            t.check(v == DATA[i * 4096:(i + 1) * 4096], "bytes")
            b.close()
            del v
    t.eq(harness.proc_fds(), base, "our fds back to the start")
    t.eq(harness.memfds(), 0, "no memfd left open")
    t.eq(d.fds_settle(dbase), dbase, "the daemon's fds back to the start")


t.case("connect, HELLO name, caps, $DMALOAD_SOCKET; no socket: Error ENOENT",
       case_connect)
t.case("load by path with every method: bytes, method, reason, target", case_path_methods)
t.case("ranges: unaligned, tails, to EOF, empty file", case_ranges)
t.case("load of a file object and an fd: bytes, offset left alone", case_fd_and_file)
t.case("memoryview read-only: a write raises; view outlives close()", case_view_readonly)
t.case("private mapping: a write is copy-on-write, the buffer unchanged", case_private_write)
t.case("progress: (0, length) first, monotonic, totals", case_progress)
t.case("errors: errno and the daemon's message; bad arguments", case_errors)
t.case("8 threads x 8 loads on one client", case_threads)
t.case("fork: the child reconnects, the parent keeps its connection", case_fork)
t.case("the daemon killed mid-load: Error, no hang", case_daemon_gone)
t.case("hugetlb daemon: buf_size, bytes", case_hugetlb)
t.case("load_extents: bytes, layout, zeros; bad extents: EINVAL", case_extents)
t.case("load_extents over the extent limit: split into one sealed memfd", case_extents_split)
t.case("load_into a memfd of ours: a range, extents, too small", case_into)
t.case("default socket as nobody: the system's when $XDG_RUNTIME_DIR has none",
       case_default_socket)
t.case("default socket as nobody: $XDG_RUNTIME_DIR/dmaloadd.sock when it exists",
       case_default_socket_xdg)
t.case("20 loads and closes: no fd or memfd leaks here or in the daemon", case_no_leaks)
sys.exit(t.finish())
