"""dmaload.safetensors: tensors of a .safetensors file, by name and shard, as views
over one buffer the daemon loaded.

load_file() reads the file's header itself (a few plain reads), picks the tensors
and rows asked for, and has the daemon load exactly their bytes with ONE extents
load (Client.load_extents); the arrays it returns are views over that buffer: no
copy in this process, and one physical copy for every process on the host that
loads the same selection.

The format (from its public description): 8 bytes, a little-endian u64 N; N bytes
of a JSON object (UTF-8, maybe padded with spaces) mapping each tensor's name to
{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, offsets relative to
the data that starts at 8 + N, and an optional "__metadata__" of str to str; then the
data, little-endian, C order. A header that lies (offsets past the end, tensors that
overlap, a size that does not match shape and dtype, a header length past the file,
bad JSON, duplicate names) is a dmaload.Error (EINVAL) naming the problem: never a
crash, never a wrong tensor.

Buffer layout: each selected piece lands at a buffer offset congruent to its file
offset modulo 4096, so the daemon can read it with O_DIRECT; pieces adjacent in the
file stay adjacent (one extent).

Writing to the results:
  numpy  arrays are read-only (flags.writeable False): a write raises ValueError.
  torch  tensors are writable copy-on-write: the buffer is mapped MAP_PRIVATE, so a
         write changes only this process's copy of the pages it touches; the
         daemon's buffer and every other process's tensors are unchanged. (Where a
         buffer can only be mapped shared and read-only, e.g. a dma-buf, torch gets
         a copy instead of a view.)

dtypes: BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 F32 F64 C64 as themselves. BF16 and
the 8-bit floats (F8_E4M3, F8_E5M2, F8_E8M0) have no numpy dtype (numpy 1.24): they
come back as raw uint16 / uint8 arrays of class RawArray whose .safetensors_dtype
names the format's dtype. torch gets torch.bfloat16, and the float8 types where it
has them (torch >= 2.1); the rest (float8 on torch 1.13, U16/U32/U64 before torch
2.3) are raw views of the same size (uint8, int16, int32, int64) with the attribute
.safetensors_dtype set. The packed sub-byte types (F4, F6_E2M3, F6_E3M2) are raw
uint8 bytes, 1-D, with .safetensors_dtype and .safetensors_shape.
dtypes(path) lists every tensor's dtype name and shape from the header.
"""

import errno
import json
import os
import struct

from . import _lib
from .errors import Error

# dtype name -> (bits per element, numpy dtype string or None for raw)
DTYPES = {
    "BOOL": (8, "?"), "U8": (8, "u1"), "I8": (8, "i1"),
    "I16": (16, "<i2"), "U16": (16, "<u2"), "F16": (16, "<f2"), "BF16": (16, None),
    "I32": (32, "<i4"), "U32": (32, "<u4"), "F32": (32, "<f4"),
    "I64": (64, "<i8"), "U64": (64, "<u8"), "F64": (64, "<f8"), "C64": (64, "<c8"),
    "F8_E4M3": (8, None), "F8_E5M2": (8, None), "F8_E8M0": (8, None),
    "F4": (4, None), "F6_E2M3": (6, None), "F6_E3M2": (6, None),
}

# The largest header accepted: the format's own reader stops at 100 MB.
MAX_HEADER = 100_000_000
PAGE = 4096


class Tensor:
    """One tensor of a header: name, dtype, shape, and where its bytes are (absolute
    file offsets)."""

    __slots__ = ("name", "dtype", "shape", "begin", "end", "path")

    def __init__(self, name, dtype, shape, begin, end, path):
        self.name, self.dtype, self.shape = name, dtype, shape
        self.begin, self.end, self.path = begin, end, path

    @property
    def nbytes(self):
        return self.end - self.begin

    def __repr__(self):
        return f"<Tensor {self.name} {self.dtype}{list(self.shape)} @{self.begin}>"


def _lie(path, why):
    return Error(errno.EINVAL, f"{os.fsdecode(path)}: {why}", what="safetensors")


def _nelem(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _nbytes(dtype, n):
    bits = DTYPES[dtype][0]
    return (n * bits + 7) // 8


def read_header(path):
    """Reads and checks the header of @path. Returns (tensors {name: Tensor},
    metadata dict). Raises dmaload.Error (EINVAL) for a header that lies, or
    the OSError of the read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise _lie(path, f"{size} bytes: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise _lie(path, f"header length {n} over the limit of {MAX_HEADER}")
        if 8 + n > size:
            raise _lie(path, f"header length {n} past the end of the file ({size} bytes)")
        raw = f.read(n)
    if len(raw) != n:
        raise _lie(path, "the file shrank while its header was read")

    def no_dups(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise ValueError(f"duplicate key {k!r}")
            d[k] = v
        return d
    try:
        hdr = json.loads(raw.decode("utf-8"), object_pairs_hook=no_dups)
    except (ValueError, UnicodeDecodeError) as e:
        raise _lie(path, f"header is not valid JSON: {e}") from None
    if not isinstance(hdr, dict):
        raise _lie(path, "header is not a JSON object")
    meta = hdr.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise _lie(path, "__metadata__ is not an object of strings")
    data_start = 8 + n
    tensors = {}
    for name, t in hdr.items():
        if not isinstance(t, dict):
            raise _lie(path, f"tensor {name!r}: not an object")
        dtype, shape, offs = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        if dtype not in DTYPES:
            raise _lie(path, f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
                type(s) is int and s >= 0 for s in shape):
            raise _lie(path, f"tensor {name!r}: bad shape {shape!r}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(
                type(o) is int and o >= 0 for o in offs) or offs[0] > offs[1]:
            raise _lie(path, f"tensor {name!r}: bad data_offsets {offs!r}")
        want = _nbytes(dtype, _nelem(shape))
        if offs[1] - offs[0] != want:
            raise _lie(path, f"tensor {name!r}: data_offsets {offs} hold "
                             f"{offs[1] - offs[0]} bytes, {dtype}{shape} needs {want}")
        if data_start + offs[1] > size:
            raise _lie(path, f"tensor {name!r}: data_offsets {offs} past the end of "
                             f"the file ({size - data_start} bytes of data)")
        tensors[name] = Tensor(name, dtype, tuple(shape), data_start + offs[0],
                               data_start + offs[1], path)
    prev = None
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if prev is not None and t.begin < prev.end and t.nbytes and prev.nbytes:
            raise _lie(path, f"tensors {prev.name!r} and {t.name!r} overlap")
        if t.nbytes:
            prev = t
    return tensors, meta


def _select(names, all_names):
    if names is None:
        return list(all_names)
    if callable(names):
        return [n for n in all_names if names(n)]
    if isinstance(names, str):
        names = [names]
    return list(names)


def _shard(t, shard):
    """The (file offset, length, shape) of @t's rows for shard (rank, world): a
    contiguous slice of dim 0, the first (dim0 % world) ranks one row more (as
    numpy.array_split). 0-d tensors are whole on every rank."""
    if shard is None or not t.shape:
        return t.begin, t.nbytes, t.shape
    rank, world = shard
    rows = t.shape[0]
    q, r = divmod(rows, world)
    start = rank * q + min(rank, r)
    count = q + (1 if rank < r else 0)
    row_elems = _nelem(t.shape[1:])
    bits = DTYPES[t.dtype][0]
    if (row_elems * bits) % 8:
        raise Error(errno.EINVAL, f"tensor {t.name!r}: rows of {t.dtype} are not whole "
                                  f"bytes; it cannot be sharded", what="safetensors")
    row_bytes = row_elems * bits // 8
    return t.begin + start * row_bytes, count * row_bytes, (count,) + t.shape[1:]


def plan(pieces):
    """Buffer offsets for @pieces [(file_offset, length)]: each at an offset congruent
    to its file offset mod 4096, in file order, adjacent ones adjacent. Returns (buffer
    offsets in @pieces' order, the extents [(file_offset, length, buffer_offset)])."""
    order = sorted(range(len(pieces)), key=lambda i: pieces[i][0])
    offs = [0] * len(pieces)
    extents = []
    cursor = 0
    for i in order:
        fo, ln = pieces[i]
        if ln == 0:
            offs[i] = 0
            continue
        if extents and extents[-1][0] + extents[-1][1] == fo:
            # adjacent in the file: cursor is already congruent
            offs[i] = cursor
            e = extents[-1]
            extents[-1] = (e[0], e[1] + ln, e[2])
        elif extents and extents[-1][0] + extents[-1][1] > fo:
            # the same bytes again (two names of one range): share them
            e = extents[-1]
            offs[i] = e[2] + (fo - e[0])
            if fo + ln > e[0] + e[1]:
                raise Error(errno.EINVAL, "overlapping tensors", what="safetensors")
            continue
        else:
            b = (cursor - cursor % PAGE) + fo % PAGE
            if b < cursor:
                b += PAGE
            offs[i] = b
            extents.append((fo, ln, b))
        cursor = offs[i] + ln
    return offs, extents


def _numpy_view(np, mv, off, t_dtype, shape):
    bits, npd = DTYPES[t_dtype]
    if npd is None:
        raw = "<u2" if bits == 16 else "u1"
        if bits < 8:
            n = _nbytes(t_dtype, _nelem(shape))
            a = np.frombuffer(mv, dtype=raw, count=n, offset=off) if n else \
                np.empty(0, raw)
            a = a.view(RawArray(np))
            a.safetensors_dtype, a.safetensors_shape = t_dtype, shape
            a.flags.writeable = False
            return a
        npd = raw
    n = _nelem(shape)
    a = np.frombuffer(mv, dtype=npd, count=n, offset=off) if n else np.empty(0, npd)
    a = a.reshape(shape)
    if DTYPES[t_dtype][1] is None:
        a = a.view(RawArray(np))
        a.safetensors_dtype = t_dtype
        a.safetensors_shape = shape
    a.flags.writeable = False
    return a


_raw_class = None


def RawArray(np):
    """numpy.ndarray with .safetensors_dtype (and .safetensors_shape): the class of
    BF16 / F8 / F4 / F6 results, raw integer views of their bits."""
    global _raw_class
    if _raw_class is None:
        class RawArray(np.ndarray):
            """A raw view of a dtype numpy lacks; .safetensors_dtype names it."""
            def __array_finalize__(self, obj):
                self.safetensors_dtype = getattr(obj, "safetensors_dtype", None)
                self.safetensors_shape = getattr(obj, "safetensors_shape", None)
        _raw_class = RawArray
    return _raw_class


def _torch_dtype(torch, name):
    """(torch dtype, raw) for a format dtype: raw when torch lacks it and the result is
    a same-size integer view of the bits."""
    direct = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16",
              "F16": "float16", "BF16": "bfloat16", "I32": "int32", "F32": "float32",
              "I64": "int64", "F64": "float64", "C64": "complex64",
              "U16": "uint16", "U32": "uint32", "U64": "uint64",
              "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
              "F8_E8M0": "float8_e8m0fnu"}
    fallback = {16: torch.int16, 32: torch.int32, 64: torch.int64, 8: torch.uint8}
    dt = getattr(torch, direct.get(name, "-"), None)
    if dt is not None:
        return dt, False
    bits = DTYPES[name][0]
    return fallback.get(bits, torch.uint8), True


def _torch_view(torch, mv, off, t_dtype, shape):
    dt, raw = _torch_dtype(torch, t_dtype)
    bits = DTYPES[t_dtype][0]
    if bits < 8:
        n, shp = _nbytes(t_dtype, _nelem(shape)), None
    else:
        n, shp = _nelem(shape), shape
    if n == 0:
        x = torch.empty(shp if shp is not None else (0,), dtype=dt)
    else:
        x = torch.frombuffer(mv, dtype=dt, count=n, offset=off)
        if shp is not None:
            x = x.reshape(shp)
    if raw:
        x.safetensors_dtype = t_dtype
        x.safetensors_shape = shape
    return x


def _prepare(path, tensors, want, shard, whole_file=False):
    """The pieces of @want's tensors (file offset, length, shape), their buffer
    offsets and the extents of the one load (whole_file: the file's own offsets)."""
    pieces = [_shard(tensors[n], shard) for n in want]
    if whole_file:
        return pieces, [fo for fo, _, _ in pieces], None
    offs, extents = plan([(fo, ln) for fo, ln, _ in pieces])
    return pieces, offs, extents


def _views(buf, tensors, want, pieces, offs, framework, mod):
    """The arrays over @buf (None: nothing to load); closes @buf's fd (the views keep
    the mapping)."""
    mv = memoryview(b"")
    if buf is not None:
        try:
            if framework == "torch":
                mv = buf._private_view()
                if mv is None:	# a shared read-only mapping only: torch gets a copy
                    mv = memoryview(bytearray(buf.memoryview()))
            else:
                mv = buf.memoryview()
        finally:
            buf.close()
    out = {}
    for name, (fo, ln, shape), off in zip(want, pieces, offs):
        dt = tensors[name].dtype
        if framework == "torch":
            out[name] = _torch_view(mod, mv, off, dt, shape)
        else:
            out[name] = _numpy_view(mod, mv, off, dt, shape)
    return out


def _framework(framework):
    if framework == "numpy":
        import numpy as mod
        return "numpy", mod
    if framework in ("torch", "pt"):
        import torch as mod
        return "torch", mod
    raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")


def _files(path, names, shard):
    """[(file, tensors, names)] to load: one file, or an index's."""
    if shard is not None:
        rank, world = shard
        if not (isinstance(world, int) and isinstance(rank, int) and world >= 1
                and 0 <= rank < world):
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world: {shard}")
    if os.fsdecode(path).endswith(".json"):
        files = _index(path, names)
    else:
        tensors, _ = read_header(path)
        files = [(path, tensors, _select(names, tensors))]
    for p, tensors, want in files:
        for n in want:
            if n not in tensors:
                raise KeyError(f"{os.fsdecode(p)} has no tensor {n!r}")
    return files


def load_file(path, names=None, shard=None, framework="numpy", client=None, *,
              method="auto", target="memfd", priority="foreground", rate=None,
              pin=False, progress=None, whole_file=False):
    """Loads tensors of a .safetensors file (or of a sharded checkpoint's
    model.safetensors.index.json) through dmaloadd; returns {name: array}.

    names: None (all), a list of names, or a predicate callable(name) -> bool.
      A listed name the file lacks is a KeyError.
    shard: None, or (rank, world): each tensor's contiguous slice of dim 0 for that
      rank, the first (rows % world) ranks one row more (numpy.array_split's split);
      0-d tensors whole on every rank.
    framework: "numpy" (read-only arrays) or "torch" (copy-on-write tensors); see the
      module's help for dtypes and what writes do.
    client: a dmaload.Client; None opens one for the call.
    method, target, priority, rate, pin, progress: Client.load()'s, for the load.
    whole_file: load each file whole with one plain load instead (header and
      unselected tensors too) and make the views over it: every process that
      loads the file, whatever it selects, shares the daemon's one buffer of it.
      (Extents loads are shared too, between loads of the same selection.)

    Only the selected bytes are read: one extents load per file. Raises
    dmaload.Error (EINVAL) for a header that lies, with the daemon's errno for a
    refused load.
    """
    framework, mod = _framework(framework)
    files = _files(path, names, shard)
    load_kw = dict(method=method, target=target, priority=priority, rate=rate, pin=pin,
                   progress=progress)
    own = client is None
    if own:
        from .client import Client
        client = Client()
    try:
        out = {}
        for p, tensors, want in files:
            pieces, offs, extents = _prepare(p, tensors, want, shard, whole_file)
            if whole_file:
                buf = client.load(p, **load_kw)
            else:
                buf = client.load_extents(p, extents, **load_kw) if extents else None
            out.update(_views(buf, tensors, want, pieces, offs, framework, mod))
        return out
    finally:
        if own:
            client.close()


async def load_file_async(path, names=None, shard=None, framework="numpy", *, client,
                          method="auto", target="memfd", priority="foreground",
                          rate=None, pin=False, progress=None, whole_file=False):
    """load_file() for asyncio, on @client (required): the files of an index load
    concurrently, each with one extents load (Client.load_extents_async). The
    headers are read with plain blocking reads (a few KiB)."""
    import asyncio
    framework, mod = _framework(framework)
    files = _files(path, names, shard)
    load_kw = dict(method=method, target=target, priority=priority, rate=rate, pin=pin,
                   progress=progress)

    async def one(p, tensors, want):
        pieces, offs, extents = _prepare(p, tensors, want, shard, whole_file)
        if whole_file:
            buf = await client.load_async(p, **load_kw)
        else:
            buf = await client.load_extents_async(p, extents, **load_kw) if extents \
                else None
        return _views(buf, tensors, want, pieces, offs, framework, mod)
    out = {}
    for part in await asyncio.gather(*(one(*f) for f in files)):
        out.update(part)
    return out


def _index(path, names):
    """The files of a model.safetensors.index.json and the names to load from each."""
    try:
        with open(path, "rb") as f:
            idx = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise _lie(path, f"index is not valid JSON: {e}") from None
    wm = idx.get("weight_map") if isinstance(idx, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
        raise _lie(path, "index has no weight_map of name -> file")
    want = _select(names, wm)
    for n in want:
        if n not in wm:
            raise KeyError(f"{os.fsdecode(path)} has no tensor {n!r}")
    base = os.path.dirname(os.fsdecode(path))
    by_file = {}
    for n in want:
        f = wm[n]
        if os.path.isabs(f) or ".." in f.split("/"):
            raise _lie(path, f"weight_map names a file outside its directory: {f!r}")
        by_file.setdefault(f, []).append(n)
    files = []
    for f, ns in by_file.items():
        p = os.path.join(base, f)
        tensors, _ = read_header(p)
        for n in ns:
            if n not in tensors:
                raise _lie(path, f"weight_map puts {n!r} in {f}, which has no such tensor")
        files.append((p, tensors, ns))
    return files


def metadata(path):
    """The "__metadata__" of a .safetensors file (a dict of str)."""
    return read_header(path)[1]


def dtypes(path):
    """{name: (dtype, shape)} of a .safetensors file's tensors, from its header."""
    return {n: (t.dtype, t.shape) for n, t in read_header(path)[0].items()}
