"""The ctypes layer: libdmaload.so.0 and the C structs it takes and fills.

This module owns the one binding of the C library. Nothing here speaks the wire
protocol: every message is encoded, sent, received and decoded by libdmaload itself
(one codec, the C one). The structs below mirror client/dmaload.h field for field;
ctypes lays them out with the C compiler's rules, so the mirror is exact as long as
the field order and types follow the header.

The library is found through the dynamic loader (ctypes.CDLL("libdmaload.so.0")),
so LD_LIBRARY_PATH reaches a build tree and ldconfig's cache an installed copy.
$DMALOAD_LIBRARY names another file outright (the tests use it for build/).
"""

import ctypes
import os

# Constants of proto/dmaload-proto.h and client/dmaload.h that the binding uses.
# Frozen by the C library's ABI (dmaload.h: "their numbers are never reused").
DL_ERRMSG_MAX = 1024
DL_PATH_MAX = 4095
DL_NAME_LEN = 32
DL_HEAP_NAME_MAX = 63
DL_STATS_METHODS = 4
TO_EOF = 2**64 - 1

CAP_LOAD_INTO = 1 << 13
CAP_EXTENTS = 1 << 14

DONE_SEALED = 1 << 0
DONE_HUGETLB = 1 << 1
DONE_CFR_SYSCALL = 1 << 2
DONE_CACHED = 1 << 3
DONE_JOINED = 1 << 4
DONE_INTO = 1 << 5

EV_ACCEPTED = 1
EV_PROGRESS = 2
EV_DONE = 3
EV_ERROR = 4
EV_OK = 5

METHODS = {"auto": 0, "direct": 1, "buffered": 2, "cfr": 3}
TARGETS = {"auto": 0, "memfd": 1, "udmabuf": 2, "heap": 3}
PRIORITIES = {"foreground": 0, "background": 1}

# The most extents one load takes (dmaload.h DMALOAD_MAX_EXTENTS).
MAX_EXTENTS = 65536


class Opts(ctypes.Structure):
    """struct dmaload_opts."""
    _fields_ = [
        ("offset", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("rate_limit", ctypes.c_uint64),
        ("progress", ctypes.c_bool),
        ("exact_size", ctypes.c_bool),
        ("pin", ctypes.c_bool),
        ("method", ctypes.c_uint8),
        ("target", ctypes.c_uint8),
        ("priority", ctypes.c_uint8),
        ("dmabuf", ctypes.c_bool),
        ("heap", ctypes.c_char_p),
        ("detach", ctypes.c_bool),
    ]


class Event(ctypes.Structure):
    """struct dmaload_event."""
    _fields_ = [
        ("type", ctypes.c_int),
        ("id", ctypes.c_uint64),
        ("fd", ctypes.c_int),
        ("size", ctypes.c_uint64),
        ("buf_size", ctypes.c_uint64),
        ("file_size", ctypes.c_uint64),
        ("done", ctypes.c_uint64),
        ("total", ctypes.c_uint64),
        ("elapsed_ns", ctypes.c_uint64),
        ("method", ctypes.c_uint8),
        ("target", ctypes.c_uint8),
        ("reason", ctypes.c_uint8),
        ("done_flags", ctypes.c_uint32),
        ("err", ctypes.c_int),
        ("message", ctypes.c_char * (DL_ERRMSG_MAX + 1)),
    ]


class Extent(ctypes.Structure):
    """struct dmaload_extent (issue 13)."""
    _fields_ = [
        ("file_offset", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("buf_offset", ctypes.c_uint64),
    ]


class StatusLoad(ctypes.Structure):
    """struct dmaload_status_load."""
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("done", ctypes.c_uint64),
        ("total", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("state", ctypes.c_uint8),
        ("method", ctypes.c_uint8),
        ("name", ctypes.c_char * (DL_PATH_MAX + 1)),
    ]


class Status(ctypes.Structure):
    """struct dmaload_status."""
    _fields_ = [
        ("uptime_ms", ctypes.c_uint64),
        ("bytes_loaded", ctypes.c_uint64),
        ("loads_done", ctypes.c_uint64),
        ("loads_failed", ctypes.c_uint64),
        ("clients", ctypes.c_uint32),
        ("loads_active", ctypes.c_uint32),
        ("loads_queued", ctypes.c_uint32),
        ("truncated", ctypes.c_bool),
        ("n_loads", ctypes.c_size_t),
        ("loads", ctypes.POINTER(StatusLoad)),
    ]


class StatsClient(ctypes.Structure):
    """struct dmaload_stats_client."""
    _fields_ = [
        ("conn_id", ctypes.c_uint64),
        ("loads", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("throttled_ns", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("name", ctypes.c_char * (DL_NAME_LEN + 1)),
    ]


class Stats(ctypes.Structure):
    """struct dmaload_stats."""
    _fields_ = [
        ("bytes_read", ctypes.c_uint64),
        ("bytes_cached", ctypes.c_uint64),
        ("loads_by_method", ctypes.c_uint64 * DL_STATS_METHODS),
        ("cache_hits", ctypes.c_uint64),
        ("cache_joins", ctypes.c_uint64),
        ("cache_misses", ctypes.c_uint64),
        ("cache_evictions", ctypes.c_uint64),
        ("cache_bytes", ctypes.c_uint64),
        ("cache_limit", ctypes.c_uint64),
        ("cache_entries", ctypes.c_uint32),
        ("cache_pinned", ctypes.c_uint32),
        ("n_clients", ctypes.c_size_t),
        ("clients", ctypes.POINTER(StatsClient)),
    ]


_P = ctypes.c_void_p
_U64P = ctypes.POINTER(ctypes.c_uint64)
_OPTS = ctypes.POINTER(Opts)
_EV = ctypes.POINTER(Event)
_EXT = ctypes.POINTER(Extent)

# name: (restype, argtypes). Every call the package makes, and only those.
_SIGNATURES = {
    "dmaload_opts_init": (None, [_OPTS]),
    "dmaload_default_socket": (ctypes.c_char_p, []),
    "dmaload_connect_ex": (ctypes.c_int, [ctypes.POINTER(_P), ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_int,
                                          ctypes.c_char_p, ctypes.c_size_t]),
    "dmaload_close": (_P, [_P]),
    "dmaload_fd": (ctypes.c_int, [_P]),
    "dmaload_daemon_caps": (ctypes.c_uint32, [_P]),
    "dmaload_daemon_version": (ctypes.c_uint32, [_P]),
    "dmaload_max_load_size": (ctypes.c_uint64, [_P]),
    "dmaload_set_timeout": (None, [_P, ctypes.c_int]),
    "dmaload_load_path": (ctypes.c_int, [_P, ctypes.c_char_p, _OPTS, _U64P]),
    "dmaload_load_fd": (ctypes.c_int, [_P, ctypes.c_int, _OPTS, _U64P]),
    "dmaload_cancel": (ctypes.c_int, [_P, ctypes.c_uint64, _U64P]),
    "dmaload_next_event": (ctypes.c_int, [_P, _EV, ctypes.c_int]),
    "dmaload_status": (ctypes.c_int, [_P, ctypes.POINTER(Status)]),
    "dmaload_status_free": (None, [ctypes.POINTER(Status)]),
    "dmaload_stats": (ctypes.c_int, [_P, ctypes.POINTER(Stats)]),
    "dmaload_stats_free": (None, [ctypes.POINTER(Stats)]),
    "dmaload_evict": (ctypes.c_int, [_P, ctypes.c_char_p, _U64P]),
    "dmaload_state_name": (ctypes.c_char_p, [ctypes.c_uint]),
    "dl_method_name": (ctypes.c_char_p, [ctypes.c_uint]),
    "dl_target_name": (ctypes.c_char_p, [ctypes.c_uint]),
    "dl_reason_name": (ctypes.c_char_p, [ctypes.c_uint]),
    # issue 13: loads of extent lists and into the caller's buffer
    "dmaload_load_extents_path": (ctypes.c_int, [_P, ctypes.c_char_p, _EXT, ctypes.c_size_t,
                                                 ctypes.c_int, _OPTS, _U64P]),
    "dmaload_load_extents_fd": (ctypes.c_int, [_P, ctypes.c_int, _EXT, ctypes.c_size_t,
                                               ctypes.c_int, _OPTS, _U64P]),
    "dmaload_load_into_path": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int,
                                              ctypes.c_uint64, _OPTS, _U64P]),
    "dmaload_load_into_fd": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_uint64, _OPTS, _U64P]),
}


class _Lib:
    """libdmaload with its calls typed; a call the loaded library lacks is absent
    (hasattr() says whether a library has issue 13's calls)."""

    def __init__(self, name):
        self.name = name
        self._dll = ctypes.CDLL(name, use_errno=True)
        for fn, (res, args) in _SIGNATURES.items():
            try:
                f = getattr(self._dll, fn)
            except AttributeError:
                continue
            f.restype = res
            f.argtypes = args
            setattr(self, fn, f)


_lib = None


def lib():
    """The loaded library (loaded on first use, so `import dmaload` works without it,
    e.g. for pydoc)."""
    global _lib
    if _lib is None:
        _lib = _Lib(os.environ.get("DMALOAD_LIBRARY") or "libdmaload.so.0")
    return _lib


def cstr(b):
    """A C char array or char* as str (bytes a daemon sent may be any bytes)."""
    if b is None:
        return ""
    return bytes(b).split(b"\0", 1)[0].decode("utf-8", "replace")


def name_of(fn, value):
    """dl_method_name() and friends as str."""
    return cstr(getattr(lib(), fn)(value))
