"""dmaload.Client: one connection to dmaloadd, its loads blocking or with asyncio.

A Client owns one struct dmaload (libdmaload's connection) and the table of its
requests in flight. Every event of the connection is read by one place, _drain(),
which runs with the client's lock held and hands each event to its request: a
blocking caller waiting in _wait(), an asyncio future, or nobody (a load whose
await was cancelled: its late DONE's fd is closed there).

Threads: every C call runs under the lock. A blocking load sends, then waits:
one waiter at a time polls the socket (without the lock) and drains; the others
sleep on the condition and are woken by each drain. Whoever else drains (an
asyncio loop's reader, a status() call) wakes the polling waiter through an
eventfd, so an event read by someone else is never waited for in poll().

asyncio: the loops with loads in flight watch dmaload_fd() with loop.add_reader;
the reader drains without blocking (dmaload_next_event(..., 0)). Many loads may be
in flight on one connection.

fork: the child must not use the parent's connection (the daemon's replies would
go to whichever process reads first). A forked child's Client connects again on
its first call, with the same socket and name; the loads the parent had in flight
stay the parent's.
"""

import asyncio
import errno
import fcntl
import os
import select
import threading
import weakref

from . import _lib
from .buffer import Buffer
from .errors import Error, check, from_event

_clients = weakref.WeakSet()


def _after_fork_in_child():
    # A lock held by another thread at fork() stays held forever in the child.
    for c in list(_clients):
        c._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LoadInfo:
    """What a load into the caller's buffer did (Client.load_into's result).

    Attributes: size (bytes written into the buffer), method, reason, elapsed
    (seconds, daemon side)."""

    def __init__(self, ev):
        self.size = ev.size
        self.method = _lib.name_of("dl_method_name", ev.method)
        self.reason = _lib.name_of("dl_reason_name", ev.reason)
        self.elapsed = ev.elapsed_ns / 1e9

    def __repr__(self):
        return f"<dmaload.LoadInfo size={self.size} method={self.method} reason={self.reason}>"


class _Request:
    """A request in flight: who waits for it, and its final event once read."""

    __slots__ = ("id", "what", "progress", "final", "taken", "abandoned", "future",
                 "loop", "into", "layout", "__weakref__")

    def __init__(self, rid, what, progress):
        self.id = rid
        self.what = what		# for error messages: "load /path"
        self.progress = progress	# callable(done, total) or None
        self.final = None		# the DONE / ERROR / OK event (a copy)
        self.taken = False		# its result (and DONE's fd) went to the caller
        self.abandoned = False		# nobody waits: a late DONE's fd is closed
        self.future = None		# asyncio: the future the awaiting task holds
        self.loop = None
        self.into = False		# a load into the caller's buffer: LoadInfo
        self.layout = None		# an extents load's buffer length


def _src_of(src):
    """('path', bytes) or ('fd', int) of a load's source."""
    if isinstance(src, int):
        return "fd", src
    if hasattr(src, "fileno") and not isinstance(src, (str, bytes, os.PathLike)):
        return "fd", src.fileno()
    return "path", os.fsencode(src)


def _buf_fd_of(buf):
    if isinstance(buf, int):
        return buf
    if hasattr(buf, "fileno"):
        return buf.fileno()
    raise TypeError("buf must be an fd or have fileno()")


def _set_future(fut, value, exc):
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


class Client:
    """A connection to dmaloadd.

    Client(socket=None, name=None, timeout=None)

    socket: the daemon's socket path; None finds it as libdmaload does
      ($DMALOAD_SOCKET, else /run/dmaloadd/dmaloadd.sock for root, else
      $XDG_RUNTIME_DIR/dmaloadd.sock, falling back to the system socket).
    name: the client's name in the daemon's STATUS and logs (default: the program).
    timeout: seconds the connect and the request-reply calls (status(), stats(),
      evict()) wait for the daemon at most; None waits forever. Loads wait as long
      as they take; a daemon that goes away fails them with dmaload.Error.

    A context manager: `with dmaload.Client() as c:` closes it at the end. Safe to
    use from several threads, and from a forked child (which connects again).
    Raises dmaload.Error when the daemon cannot be reached or refuses.
    """

    def __init__(self, socket=None, name=None, timeout=None):
        self.socket = os.fsdecode(socket) if socket is not None else None
        self.name = name
        self.timeout = timeout
        self._dl = None
        self._reqs = {}
        self._broken = None		# the Error that broke the connection
        self._watching = {}		# loop -> loads in flight from it
        self._reset_locks()
        with self._cond:
            self._connect()
        _clients.add(self)

    # -- the connection -------------------------------------------------------------

    def _reset_locks(self):
        self._cond = threading.Condition(threading.Lock())
        self._polling = False
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)

    def _reset_after_fork(self):
        # The parent's requests, readers and wake-up fd are the parent's.
        if self._wake >= 0:
            os.close(self._wake)
        self._reset_locks()
        self._reqs = {}
        self._watching = {}

    def _connect(self):
        l = _lib.lib()
        dl = _lib.ctypes.c_void_p()
        msg = _lib.ctypes.create_string_buffer(_lib.DL_ERRMSG_MAX + 1)
        tmo = -1 if self.timeout is None else int(self.timeout * 1000)
        sock = os.fsencode(self.socket) if self.socket is not None else None
        name = self.name.encode() if self.name is not None else None
        r = l.dmaload_connect_ex(_lib.ctypes.byref(dl), sock, name, tmo, msg,
                                 len(msg))
        if r < 0:
            where = self.socket or _lib.cstr(l.dmaload_default_socket())
            raise Error(-r, _lib.cstr(msg.value), what=f"connect {where}")
        self._dl = dl.value
        self._pid = os.getpid()
        self._broken = None
        if self.timeout is not None:
            l.dmaload_set_timeout(self._dl, tmo)
        self.caps = l.dmaload_daemon_caps(self._dl)
        self.version = l.dmaload_daemon_version(self._dl)
        self.max_load_size = l.dmaload_max_load_size(self._dl)

    def _conn(self):
        """The C connection, connected again in a forked child. Lock held."""
        if self._dl is not None and self._pid != os.getpid():
            # the child's copy of the parent's socket: closing it leaves the
            # parent's connection as it was
            _lib.lib().dmaload_close(self._dl)
            self._dl = None
            self._connect()
        if self._dl is None:
            raise Error(errno.EBADF, what="dmaload.Client is closed")
        if self._broken is not None:
            raise self._broken
        return self._dl

    def fileno(self):
        """The connection's socket (dmaload_fd()): readable when events may be ready."""
        with self._cond:
            return _lib.lib().dmaload_fd(self._conn())

    def close(self):
        """Closes the connection; the daemon cancels the loads still in flight.
        Their waiters get dmaload.Error(ECONNRESET)."""
        with self._cond:
            if self._dl is None:
                return
            for loop in list(self._watching):
                self._unwatch(loop, force=True)
            if self._pid == os.getpid():
                _lib.lib().dmaload_close(self._dl)
            self._dl = None
            self._fail_all(Error(errno.ECONNRESET, what="the client was closed"))
            self._cond.notify_all()
            if not self._polling and self._wake >= 0:
                os.close(self._wake)
                self._wake = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._dl is not None and self._pid == os.getpid():
                _lib.lib().dmaload_close(self._dl)
                self._dl = None
            if self._wake >= 0:
                os.close(self._wake)
        except Exception:
            pass

    # -- events ---------------------------------------------------------------------

    def _fail_all(self, err):
        """Ends every request in flight with @err. Lock held; returns callbacks."""
        for req in list(self._reqs.values()):
            self._reqs.pop(req.id, None)
            if req.future is not None:
                try:
                    req.loop.call_soon_threadsafe(_set_future, req.future, None, err)
                except RuntimeError:
                    pass	# its loop is closed: nobody awaits it
            req.final = err

    def _drain(self):
        """Reads and dispatches every event ready. Lock held. Returns the progress
        callbacks to call once the lock is released."""
        l = _lib.lib()
        calls = []
        ev = _lib.Event()
        delivered = False
        while self._dl is not None and self._broken is None:
            r = l.dmaload_next_event(self._dl, _lib.ctypes.byref(ev), 0)
            if r == 0:
                break
            if r < 0:
                self._broken = Error(-r, what="connection to dmaloadd")
                self._fail_all(self._broken)
                delivered = True
                break
            e = _lib.Event.from_buffer_copy(ev)
            req = self._reqs.get(e.id)
            if req is None:
                if e.type == _lib.EV_DONE and e.fd >= 0:
                    os.close(e.fd)	# nobody's (cannot happen, but never leak)
                continue
            if e.type in (_lib.EV_ACCEPTED, _lib.EV_PROGRESS):
                if req.progress is not None and not req.abandoned:
                    done, total = (0, e.size) if e.type == _lib.EV_ACCEPTED else \
                        (e.done, e.total)
                    if req.future is not None:
                        req.loop.call_soon_threadsafe(req.progress, done, total)
                    else:
                        calls.append((req.progress, done, total))
                continue
            del self._reqs[e.id]
            delivered = True
            if req.abandoned:
                if e.type == _lib.EV_DONE and e.fd >= 0:
                    os.close(e.fd)
                req.taken = True
                continue
            req.final = e
            if req.future is not None:
                req.loop.call_soon_threadsafe(self._settle_future, req)
        if delivered:
            self._cond.notify_all()
            if self._polling and self._wake >= 0:
                os.eventfd_write(self._wake, 1)
        return calls

    @staticmethod
    def _run_calls(calls):
        for fn, done, total in calls:
            fn(done, total)

    def _wait(self, req):
        """Blocks until @req's final event. Called with the lock held; returns with it
        held."""
        while req.final is None:
            if self._polling:
                self._cond.wait()
                continue
            calls = self._drain()
            if calls:
                self._cond.release()
                try:
                    self._run_calls(calls)
                finally:
                    self._cond.acquire()
                continue
            if req.final is not None:
                break
            if self._dl is None or self._broken is not None:
                break
            fd = _lib.lib().dmaload_fd(self._dl)
            self._polling = True
            self._cond.release()
            try:
                p = select.poll()
                p.register(fd, select.POLLIN)
                p.register(self._wake, select.POLLIN)
                p.poll()
                try:
                    os.eventfd_read(self._wake)
                except BlockingIOError:
                    pass
            finally:
                self._cond.acquire()
                self._polling = False
                self._cond.notify_all()
        if req.final is None:
            req.final = self._broken or Error(errno.ECONNRESET,
                                              what="connection to dmaloadd")

    def _result(self, req):
        """@req's outcome: a Buffer, LoadInfo or None (a plain OK); raises its Error."""
        f = req.final
        req.taken = True
        if isinstance(f, BaseException):
            raise f
        if f.type == _lib.EV_ERROR:
            raise from_event(f, what=req.what)
        if f.type == _lib.EV_DONE:
            if req.into:
                if f.fd >= 0:
                    os.close(f.fd)
                return LoadInfo(f)
            return Buffer(f, req.layout)
        return None

    # -- sending --------------------------------------------------------------------

    @staticmethod
    def _opts(offset=0, length=None, method="auto", target="memfd", priority="foreground",
              rate=None, pin=False, progress=None, exact_size=False):
        o = _lib.Opts()
        _lib.lib().dmaload_opts_init(_lib.ctypes.byref(o))
        o.offset = offset
        o.length = _lib.TO_EOF if length is None else length
        o.rate_limit = int(rate or 0)
        o.progress = progress is not None
        o.exact_size = bool(exact_size)
        o.pin = bool(pin)
        try:
            o.method = _lib.METHODS[method]
            o.priority = _lib.PRIORITIES[priority]
        except KeyError as e:
            raise ValueError(f"unknown method or priority {e.args[0]!r}") from None
        if target == "dmabuf":		# the best dma-buf the host has, else a memfd
            o.target = _lib.TARGETS["auto"]
            o.dmabuf = True
        elif target.startswith("heap:"):
            o.target = _lib.TARGETS["heap"]
            o.heap = target[5:].encode()	# ctypes keeps the bytes alive
        elif target in _lib.TARGETS:
            o.target = _lib.TARGETS[target]
        else:
            raise ValueError(f"unknown target {target!r}")
        return o

    @staticmethod
    def _extents(extents):
        ext = list(extents)
        arr = (_lib.Extent * max(len(ext), 1))()
        end = 0
        for i, e in enumerate(ext):
            fo, ln, bo = e
            if fo < 0 or ln < 0 or bo < 0:
                raise ValueError(f"negative extent {e!r}")
            arr[i] = _lib.Extent(fo, ln, bo)
            end = max(end, bo + ln)
        return arr, len(ext), end

    def _need(self, fn):
        l = _lib.lib()
        if not hasattr(l, fn):
            raise Error(errno.EOPNOTSUPP,
                        what=f"{l.name} has no {fn} (libdmaload before issue 13)")
        return getattr(l, fn)

    def _start(self, kind, src, opts, progress, extents=None, buf=None, buf_offset=0):
        """Sends one request and registers it. Lock held. Returns the _Request."""
        dl = self._conn()
        l = _lib.lib()
        how, s = _src_of(src)
        rid = _lib.ctypes.c_uint64()
        ref = _lib.ctypes.byref
        if kind == "load":
            r = (l.dmaload_load_path(dl, s, ref(opts), ref(rid)) if how == "path" else
                 l.dmaload_load_fd(dl, s, ref(opts), ref(rid)))
        elif kind == "extents":
            arr, n, layout = self._extents(extents)
            bfd = -1 if buf is None else _buf_fd_of(buf)
            fn = self._need("dmaload_load_extents_path" if how == "path" else
                            "dmaload_load_extents_fd")
            r = fn(dl, s, arr, n, bfd, ref(opts), ref(rid))
        else:	# "into": a range at @buf_offset
            fn = self._need("dmaload_load_into_path" if how == "path" else
                            "dmaload_load_into_fd")
            r = fn(dl, s, _buf_fd_of(buf), buf_offset, ref(opts), ref(rid))
        what = f"load {os.fsdecode(s)}" if how == "path" else f"load fd {s}"
        check(r, what)
        req = _Request(rid.value, what, progress)
        req.into = buf is not None
        if kind == "extents":
            req.layout = layout
        self._reqs[req.id] = req
        return req

    def _run(self, *args, **kw):
        with self._cond:
            req = self._start(*args, **kw)
            self._wait(req)
            return self._result(req)

    # -- asyncio --------------------------------------------------------------------

    def _watch(self, loop):
        """Lock held: @loop reads the socket while it has loads in flight."""
        n = self._watching.get(loop, 0)
        if n == 0:
            loop.add_reader(_lib.lib().dmaload_fd(self._dl), self._on_readable)
        self._watching[loop] = n + 1

    def _unwatch(self, loop, force=False):
        n = self._watching.get(loop, 0) - 1
        if n > 0 and not force:
            self._watching[loop] = n
            return
        self._watching.pop(loop, None)
        if self._dl is not None and not loop.is_closed():
            loop.remove_reader(_lib.lib().dmaload_fd(self._dl))

    def _on_readable(self):
        with self._cond:
            calls = self._drain()
            if self._broken is not None or self._dl is None:
                # a dead socket stays readable: stop watching it
                for loop in list(self._watching):
                    if self._dl is not None and not loop.is_closed():
                        loop.remove_reader(_lib.lib().dmaload_fd(self._dl))
                self._watching.clear()
        self._run_calls(calls)

    def _settle_future(self, req):
        """In the loop's thread: hands @req's final event to its future, or, when the
        await was cancelled meanwhile, closes the DONE's fd."""
        with self._cond:
            if req.taken:
                return
            if req.future.done():	# cancelled: the awaiting task is gone
                req.taken = True
                if req.final.type == _lib.EV_DONE and req.final.fd >= 0:
                    os.close(req.final.fd)
                return
            req.future.set_result(None)

    async def _run_async(self, *args, **kw):
        loop = asyncio.get_running_loop()
        with self._cond:
            req = self._start(*args, **kw)
            req.loop = loop
            req.future = loop.create_future()
            self._watch(loop)
            # events read before the future existed (a drain by another thread)
            calls = self._drain()
        self._run_calls(calls)
        try:
            await req.future
        except asyncio.CancelledError:
            self._abandon(req)
            raise
        finally:
            with self._cond:
                if self._watching.get(loop):
                    self._unwatch(loop)
        with self._cond:
            return self._result(req)

    def _abandon(self, req):
        """The await of @req was cancelled: CANCEL the load; its DONE, if one still
        comes, has its fd closed."""
        with self._cond:
            if req.taken:
                return
            if req.final is not None:
                req.taken = True
                if not isinstance(req.final, BaseException) and \
                        req.final.type == _lib.EV_DONE and req.final.fd >= 0:
                    os.close(req.final.fd)
                return
            req.abandoned = True
            if self._dl is None or self._broken is not None:
                return
            cid = _lib.ctypes.c_uint64()
            if _lib.lib().dmaload_cancel(self._dl, req.id, _lib.ctypes.byref(cid)) == 0:
                # the CANCEL's own OK (or ENOENT) is nobody's
                c = _Request(cid.value, "cancel", None)
                c.abandoned = True
                self._reqs[c.id] = c

    # -- the calls ------------------------------------------------------------------

    def load(self, src, offset=0, length=None, *, method="auto", target="memfd",
             priority="foreground", rate=None, pin=False, exact_size=False,
             progress=None):
        """Loads a file (or its range) into a new shared buffer; returns a Buffer.

        src: a path (str, bytes, os.PathLike), or an open file: an int fd or an
          object with fileno() (borrowed: its offset and flags stay as they are).
        offset, length: the range; length None loads to the end of the file.
        method: "auto", "direct", "buffered" or "cfr" (a method the daemon cannot
          use fails with dmaload.Error EINVAL).
        target: "memfd" (sealed, the default), "auto", "udmabuf", "heap:NAME",
          or "dmabuf" (the best dma-buf the host has, else a memfd).
        priority: "foreground" or "background".
        rate: bytes per second at most (None: the daemon's limit).
        pin: keep the buffer in the daemon's cache until evicted.
        exact_size: no rounding up to whole huge pages.
        progress: callable(done, total), called with (0, length) when the daemon
          accepted the load, then a few times a second, in whichever thread
          reads the connection's events (without the client's lock held).

        Raises dmaload.Error with the daemon's errno and message.
        """
        o = self._opts(offset, length, method, target, priority, rate, pin, progress,
                       exact_size)
        return self._run("load", src, o, progress)

    def load_extents(self, src, extents, *, method="auto", target="memfd",
                     priority="foreground", rate=None, pin=False, exact_size=False,
                     progress=None):
        """Loads a list of extents of a file into one new buffer; returns a Buffer.

        extents: (file_offset, length, buffer_offset) tuples; the buffer is
          max(buffer_offset + length) bytes, zero where no extent lands. Buffer
          ranges must not overlap. Buffer.size is the sum of the lengths.
        More than one load takes (dmaload._lib.MAX_EXTENTS, 65536) are split over
        several loads into a sealed memfd of this process (then not shared with
        other processes' loads, and pin / target do not apply).
        The other arguments are load()'s. Needs a daemon with DL_CAP_EXTENTS.
        """
        extents = list(extents)
        if len(extents) > _lib.MAX_EXTENTS:
            return self._load_extents_split(src, extents, method=method,
                                            priority=priority, rate=rate,
                                            progress=progress)
        o = self._opts(0, None, method, target, priority, rate, pin, progress, exact_size)
        return self._run("extents", src, o, progress, extents=extents)

    def _load_extents_split(self, src, extents, **kw):
        """More extents than one load takes: a sealed memfd of this process's, filled by
        load_into() MAX_EXTENTS at a time, then sealed against writes. (Not shared
        with other processes' loads of the same extents, as one load would be.)"""
        layout = max(bo + ln for _, ln, bo in extents)
        fd = os.memfd_create("dmaload-extents", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, layout)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            total = 0
            info = None
            for i in range(0, len(extents), _lib.MAX_EXTENTS):
                part = extents[i:i + _lib.MAX_EXTENTS]
                info = self.load_into(fd, src, part, **kw)
                total += info.size
            ev = _lib.Event()
            ev.fd, ev.size, ev.buf_size = fd, total, layout
            ev.method = _lib.METHODS.get(info.method, 0)
            ev.target = _lib.TARGETS["memfd"]
            try:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW |
                            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
                ev.done_flags = _lib.DONE_SEALED
            except OSError:
                pass
            return Buffer(ev, layout)
        except BaseException:
            os.close(fd)
            raise

    def load_into(self, buf, src, extents_or_range, *, method="auto",
                  priority="foreground", rate=None, progress=None):
        """Loads file bytes into a buffer the caller owns; returns a LoadInfo.

        buf: an fd or an object with fileno(): a writable memfd (not write-sealed)
          or dma-buf, big enough; borrowed.
        extents_or_range: (offset, length), placed at buffer offset 0, or a list of
          (file_offset, length, buffer_offset) extents.
        The other arguments are load()'s. Needs a daemon with DL_CAP_LOAD_INTO.
        """
        o = self._opts(0, None, method, "auto", priority, rate, False, progress)
        kind, kw = self._into_args(buf, extents_or_range, o)
        return self._run(kind, src, o, progress, **kw)

    @staticmethod
    def _into_args(buf, x, o):
        if isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, int) for v in x):
            o.offset = x[0]
            o.length = _lib.TO_EOF if x[1] is None else x[1]
            return "into", {"buf": buf, "buf_offset": 0}
        return "extents", {"buf": buf, "extents": x}

    async def load_async(self, src, offset=0, length=None, *, method="auto",
                         target="memfd", priority="foreground", rate=None, pin=False,
                         exact_size=False, progress=None):
        """load() for asyncio: `buf = await client.load_async(path)`.

        The running loop watches the connection's fd (loop.add_reader); any number
        of loads may be in flight. Cancelling the await sends CANCEL to the daemon;
        a DONE that still arrives has its fd closed. progress is called in the
        loop's thread.
        """
        o = self._opts(offset, length, method, target, priority, rate, pin, progress,
                       exact_size)
        return await self._run_async("load", src, o, progress)

    async def load_extents_async(self, src, extents, *, method="auto", target="memfd",
                                 priority="foreground", rate=None, pin=False,
                                 exact_size=False, progress=None):
        """load_extents() for asyncio (see load_async())."""
        o = self._opts(0, None, method, target, priority, rate, pin, progress, exact_size)
        return await self._run_async("extents", src, o, progress, extents=extents)

    async def load_into_async(self, buf, src, extents_or_range, *, method="auto",
                              priority="foreground", rate=None, progress=None):
        """load_into() for asyncio (see load_async())."""
        o = self._opts(0, None, method, "auto", priority, rate, False, progress)
        kind, kw = self._into_args(buf, extents_or_range, o)
        return await self._run_async(kind, src, o, progress, **kw)

    def status(self):
        """The daemon's STATUS: a dict of its counters and "loads", a list of dicts
        (id, done, total, pid, uid, state, method, name) this user may see."""
        l = _lib.lib()
        st = _lib.Status()
        with self._cond:
            dl = self._conn()
            check(l.dmaload_status(dl, _lib.ctypes.byref(st)), "status")
            try:
                out = {k: getattr(st, k) for k in ("uptime_ms", "bytes_loaded",
                                                   "loads_done", "loads_failed",
                                                   "clients", "loads_active",
                                                   "loads_queued", "truncated")}
                out["loads"] = [{
                    "id": x.id, "done": x.done, "total": x.total, "pid": x.pid,
                    "uid": x.uid, "state": _lib.cstr(l.dmaload_state_name(x.state)),
                    "method": _lib.name_of("dl_method_name", x.method),
                    "name": _lib.cstr(x.name)} for x in st.loads[:st.n_loads]]
            finally:
                l.dmaload_status_free(_lib.ctypes.byref(st))
            calls = self._drain()	# events the reply's wait queued
        self._run_calls(calls)
        return out

    def stats(self):
        """The daemon's STATS: a dict (bytes_read, bytes_cached, cache_hits, ...,
        loads_by_method {name: n}, clients [dicts])."""
        l = _lib.lib()
        st = _lib.Stats()
        with self._cond:
            dl = self._conn()
            check(l.dmaload_stats(dl, _lib.ctypes.byref(st)), "stats")
            try:
                out = {k: getattr(st, k) for k in (
                    "bytes_read", "bytes_cached", "cache_hits", "cache_joins",
                    "cache_misses", "cache_evictions", "cache_bytes", "cache_limit",
                    "cache_entries", "cache_pinned")}
                out["loads_by_method"] = {_lib.name_of("dl_method_name", i): n
                                          for i, n in enumerate(st.loads_by_method)}
                out["clients"] = [{
                    "conn_id": c.conn_id, "loads": c.loads, "bytes": c.bytes,
                    "throttled_ns": c.throttled_ns, "pid": c.pid, "uid": c.uid,
                    "name": _lib.cstr(c.name)} for c in st.clients[:st.n_clients]]
            finally:
                l.dmaload_stats_free(_lib.ctypes.byref(st))
            calls = self._drain()
        self._run_calls(calls)
        return out

    def evict(self, path=None):
        """Drops the daemon's kept buffers of @path (all this user may see when None).
        Returns (entries, bytes); dmaload.Error ENOENT when none matched."""
        n = _lib.ctypes.c_uint64()
        with self._cond:
            dl = self._conn()
            r = _lib.lib().dmaload_evict(dl, None if path is None else os.fsencode(path),
                                         _lib.ctypes.byref(n))
            calls = self._drain()
        self._run_calls(calls)
        check(r, f"evict {path or 'all'}")
        return r, n.value
