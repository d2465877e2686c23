"""dmaload.Buffer: one loaded buffer, its fd and how it was loaded.

A Buffer owns the fd of a DONE event: a sealed memfd (target memfd) or a dma-buf
(udmabuf, heap). close() (or the end of a `with`) closes that fd; the daemon's
cache and other processes keep their own references to the same pages.

memoryview() maps the buffer once, MAP_SHARED and PROT_READ, and hands out
read-only views of it: a write raises TypeError, and numpy arrays over them are
read-only. Consumers that need a writable buffer (torch.frombuffer, see
safetensors) get views of a second mapping, MAP_PRIVATE with PROT_READ|PROT_WRITE
(memfds allow it, sealed ones too): a write there copies the page it touches for
this process alone, never a SIGSEGV, and the shared pages never change. dma-bufs
refuse private mappings; they have only the read-only one.

The mapping lives as long as any view of it: close() drops the Buffer's reference,
and the kernel unmaps when the last memoryview / numpy array / tensor over it goes.
"""

import mmap
import os
import threading

from . import _lib


class Buffer:
    """A loaded buffer (the fd of a DONE event).

    Attributes:
      fd        the buffer's file descriptor (owned by this object; -1 once closed)
      size      bytes of file data (an extents load: the sum of the extents)
      length    bytes memoryview() covers: size, or for an extents load the
                layout's end, max(buffer_offset + length)
      buf_size  size of the buffer object (>= size: huge pages round it up)
      method    how the daemon read it: "direct", "buffered" or "cfr"
      reason    why that method ("asked", "not-cached", ...: dl_reason_name())
      target    "memfd", "udmabuf" or "heap"
      hugetlb   huge pages back it
      sealed    a memfd sealed against writes, shrinking and growing
      cached    served from the daemon's cache: nothing was read for this load
      joined    joined a load of the same range already running: one read for both
      shared    cached or joined: the pages are shared with another load
      elapsed   seconds the daemon spent on it (LOAD received to DONE sent)
    """

    def __init__(self, ev, length=None):
        self.fd = ev.fd
        self.size = ev.size
        # the bytes memoryview() covers: the data, or an extents load's layout
        self.length = ev.size if length is None else length
        self.buf_size = ev.buf_size
        self.method = _lib.name_of("dl_method_name", ev.method)
        self.reason = _lib.name_of("dl_reason_name", ev.reason)
        self.target = _lib.name_of("dl_target_name", ev.target)
        self.flags = ev.done_flags
        self.hugetlb = bool(ev.done_flags & _lib.DONE_HUGETLB)
        self.sealed = bool(ev.done_flags & _lib.DONE_SEALED)
        self.cached = bool(ev.done_flags & _lib.DONE_CACHED)
        self.joined = bool(ev.done_flags & _lib.DONE_JOINED)
        self.shared = self.cached or self.joined
        self.elapsed = ev.elapsed_ns / 1e9
        self._maps = {}		# private (bool) -> mmap, or None: refused
        self._lock = threading.Lock()

    def fileno(self):
        """The buffer's fd (so a Buffer is a valid `buf` of Client.load_into)."""
        return self.fd

    def _mapping(self, private):
        """The buffer's shared read-only mapping, or (@private) its private
        copy-on-write one; each made once, on first use. None when the kernel
        refuses a private one."""
        with self._lock:
            if self.fd < 0 and (self._maps.get(private) is None):
                raise ValueError("dmaload.Buffer is closed")
            if private not in self._maps:
                # hugetlb: a mapping covers whole huge pages (buf_size)
                length = max(self.buf_size, self.length) if self.hugetlb else \
                    self.length
                if private:
                    try:
                        m = mmap.mmap(self.fd, length, flags=mmap.MAP_PRIVATE,
                                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
                    except OSError:
                        # dma-bufs take shared mappings only; a private hugetlb
                        # mapping may find no huge pages to reserve for its copies
                        m = None
                else:
                    m = mmap.mmap(self.fd, length, flags=mmap.MAP_SHARED,
                                  prot=mmap.PROT_READ)
                self._maps[private] = m
            return self._maps[private]

    def memoryview(self):
        """A read-only memoryview of the buffer's `length` bytes (the data; for an
        extents load the whole layout, zeros where no extent landed).

        Views share one read-only shared mapping (PROT_READ: no page is copied),
        which lives until the last view is gone (also after close()). Writing to
        the view raises TypeError.
        """
        if self.length == 0:
            return memoryview(b"")
        return memoryview(self._mapping(False))[:self.length].toreadonly()

    def _private_view(self):
        """A writable view over a private (copy-on-write) mapping: a write changes only
        this process's copy of the page. None where the kernel refuses a private
        mapping (dma-bufs; hugetlb without huge pages to reserve)."""
        if self.length == 0:
            return memoryview(bytearray())
        m = self._mapping(True)
        return None if m is None else memoryview(m)[:self.length]

    def close(self):
        """Closes the fd. Views made by memoryview() stay valid until they are gone."""
        with self._lock:
            for m in self._maps.values():
                if m is None:
                    continue
                try:
                    m.close()
                except BufferError:
                    pass	# views exist: the mapping goes with the last of them
            self._maps = {}
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        except Exception:
            pass

    def __repr__(self):
        return (f"<dmaload.Buffer fd={self.fd} size={self.size} length={self.length} target={self.target} "
                f"method={self.method} reason={self.reason}"
                f"{' hugetlb' if self.hugetlb else ''}{' shared' if self.shared else ''}>")
