"""dmaload.Buffer: one loaded buffer, its fd and how it was loaded.

A Buffer owns the fd of a DONE event: a sealed memfd (target memfd) or a dma-buf
(udmabuf, heap). close() (or the end of a `with`) closes that fd; the daemon's
cache and other processes keep their own references to the same pages.

memoryview() maps the buffer once and hands out read-only views of its data. The
mapping is MAP_PRIVATE with PROT_READ|PROT_WRITE where the kernel allows it (memfds,
also sealed ones): nobody writes through the views this package gives, but a
consumer that writes anyway (a torch tensor over the buffer, see safetensors) gets
copy-on-write pages of its own instead of a SIGSEGV, and the shared pages never
change. dma-bufs refuse private mappings; theirs are MAP_SHARED read-only, and only
read-only views exist of them.

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
        self._map = None
        self._writable_map = False
        self._lock = threading.Lock()

    def fileno(self):
        """The buffer's fd (so a Buffer is a valid `buf` of Client.load_into)."""
        return self.fd

    def _mapping(self):
        """The one mmap of the buffer, made on first use."""
        with self._lock:
            if self._map is None:
                if self.fd < 0:
                    raise ValueError("dmaload.Buffer is closed")
                # hugetlb: the mapping covers whole huge pages (buf_size)
                length = max(self.buf_size, self.length) if self.hugetlb else \
                    self.length
                try:
                    self._map = mmap.mmap(self.fd, length, flags=mmap.MAP_PRIVATE,
                                          prot=mmap.PROT_READ | mmap.PROT_WRITE)
                    self._writable_map = True
                except OSError:
                    # dma-bufs take only shared mappings; a private hugetlb
                    # mapping may find no huge page to reserve
                    self._map = mmap.mmap(self.fd, length, flags=mmap.MAP_SHARED,
                                          prot=mmap.PROT_READ)
                    self._writable_map = False
            return self._map

    def memoryview(self):
        """A read-only memoryview of the buffer's `length` bytes (the data; for an
        extents load the whole layout, zeros where no extent landed).

        Views share one mapping, which lives until the last view is gone (also
        after close()). Writing to the view raises TypeError.
        """
        if self.length == 0:
            return memoryview(b"")
        return memoryview(self._mapping())[:self.length].toreadonly()

    def _private_view(self):
        """A writable view over the private (copy-on-write) mapping: writes change only
        this process's pages. None where only a shared read-only mapping exists."""
        if self.length == 0:
            return memoryview(bytearray())
        m = self._mapping()
        if not self._writable_map:
            return None
        return memoryview(m)[:self.length]

    def close(self):
        """Closes the fd. Views made by memoryview() stay valid until they are gone."""
        with self._lock:
            if self._map is not None:
                try:
                    self._map.close()
                except BufferError:
                    pass	# views exist: the mapping goes with the last of them
                self._map = None
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
