#!/usr/bin/python3
"""test_safetensors.py: dmaload.safetensors.load_file against a real daemon.

The test writes its .safetensors files itself (tensor bytes from a seeded generator)
and checks every result against a reference reader written here with plain reads:
every dtype, for numpy and torch (bytes exact, dtype, shape, a few known values, BF16
as torch.bfloat16); names and predicates; shards for world sizes 1, 2, 3 and 8 with
uneven splits (numpy.array_split of the reference; the ranks' slices put together
give the tensor); an index of three files; headers that lie (a clear dmaload.Error,
the client still serving); the buffer layout (offsets congruent mod 4096); STATS:
only the selected tensors' bytes were read, in one load; writes to the results.
Needs issue 13's extents load in libdmaload and the daemon.
"""

import errno
import json
import os
import random
import struct
import sys

import harness
from harness import Daemon, Suite

try:
    import numpy as np
except ImportError:
    np = None
try:
    import torch
except ImportError:
    torch = None

import dmaload
from dmaload import safetensors as st

t = Suite("py-safetensors")
d = Daemon("st")
t.fail_hooks.append(d.tail)
DIR = d.dir

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
         "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
         "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}
PACKED = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


def tensor_bytes(dtype, shape, rng):
    n = 1
    for s in shape:
        n *= s
    if dtype in PACKED:
        return rng.randbytes((n * PACKED[dtype] + 7) // 8)
    if dtype == "BOOL":
        return bytes(rng.randrange(2) for _ in range(n))
    return rng.randbytes(n * SIZES[dtype])


def write_st(path, tensors, metadata=None, pad=0, header=None):
    """Writes @tensors [(name, dtype, shape, bytes)] in order; @pad spaces after the
    JSON (the data start's alignment); @header replaces the JSON text."""
    hdr = {}
    off = 0
    for name, dtype, shape, data in tensors:
        hdr[name] = {"dtype": dtype, "shape": list(shape),
                     "data_offsets": [off, off + len(data)]}
        off += len(data)
    if metadata is not None:
        hdr["__metadata__"] = metadata
    text = header if header is not None else json.dumps(hdr).encode()
    text += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for *_, data in tensors:
            f.write(data)
    return path


def ref_read(path, name):
    """The reference reader: the header parsed here, the bytes by plain reads."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(n))
        b, e = hdr[name]["data_offsets"]
        f.seek(8 + n + b)
        return hdr[name]["dtype"], tuple(hdr[name]["shape"]), f.read(e - b)


def np_ref(dtype, shape, data):
    raw = {2: "<u2", 1: "u1"}
    npd = {"BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2",
           "F16": "<f2", "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8",
           "U64": "<u8", "F64": "<f8", "C64": "<c8"}.get(dtype) or raw[SIZES[dtype]]
    return np.frombuffer(data, dtype=npd).reshape(shape)


def tbytes(x):
    """A torch tensor's bytes."""
    if x.dtype == torch.bfloat16:
        x = x.view(torch.int16)
    return x.contiguous().numpy().tobytes()


def need(mod, what):
    if mod is None:
        raise harness.Skip(f"no {what} (python3-{what}, tests/deps.sh)")


def need_extents(c):
    if not hasattr(dmaload._lib.lib(), "dmaload_load_extents_path") or \
            not c.caps & dmaload._lib.CAP_EXTENTS:
        raise harness.Skip("libdmaload or the daemon has no extents load (issue 13)")


rng = random.Random(14)
ALL = []
for i, dt in enumerate(list(SIZES) + list(PACKED)):
    shape = [(3, 5), (7,), (2, 3, 4), (), (0, 4), (1,)][i % 6]
    if dt in PACKED:
        shape = (4, 6)
    ALL.append((f"t.{dt.lower()}", dt, shape, tensor_bytes(dt, shape, rng)))
KNOWN_F32 = [1.5, -2.0, 0.25, 1024.0, -0.0, 7.0]	# exact in F32 and BF16
KNOWN_BF16 = struct.pack("<6f", *KNOWN_F32)
KNOWN_BF16 = b"".join(KNOWN_BF16[i + 2:i + 4] for i in range(0, 24, 4))
ALL.append(("known.f32", "F32", (2, 3), struct.pack("<6f", *KNOWN_F32)))
ALL.append(("known.bf16", "BF16", (2, 3), KNOWN_BF16))
ALL.append(("known.i64", "I64", (3,), struct.pack("<3q", -5, 2**40, 7)))
F_ALL = write_st(os.path.join(DIR, "all.safetensors"), ALL, {"format": "pt", "k": "v"},
                 pad=3)	# an odd data start: nothing is aligned by accident


def check_np(res, path, names, what):
    t.eq(sorted(res), sorted(names), f"{what}: names")
    for n in names:
        dt, shape, data = ref_read(path, n)
        a = res.get(n)
        if a is None:
            continue
        if dt in PACKED:
            t.eq(a.tobytes(), data, f"{what}: {n} bytes")
            t.eq(a.safetensors_dtype, dt, f"{n} dtype name")
            t.eq(a.safetensors_shape, shape, f"{n} shape")
            continue
        t.eq(a.shape, shape, f"{what}: {n} shape")
        t.eq(a.dtype, np_ref(dt, shape, data).dtype, f"{what}: {n} dtype")
        t.eq(a.tobytes(), data, f"{what}: {n} bytes")
        t.check(not a.flags.writeable, f"{what}: {n} read-only")
        if dt in ("BF16",) or dt.startswith("F8"):
            t.eq(getattr(a, "safetensors_dtype", None), dt, f"{n}: dtype name attached")


def case_numpy_all():
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        res = st.load_file(F_ALL, client=c)
        check_np(res, F_ALL, [x[0] for x in ALL], "numpy")
        t.eq(res["known.f32"].tolist(), [KNOWN_F32[:3], KNOWN_F32[3:]], "F32 values")
        t.eq(res["known.i64"].tolist(), [-5, 2**40, 7], "I64 values")
        a = res["t.f32"]
        try:
            a[0] = 1
            t.fail("a write to a numpy result did not raise")
        except ValueError:
            pass
        t.eq(st.metadata(F_ALL), {"format": "pt", "k": "v"}, "__metadata__")
        t.eq(st.dtypes(F_ALL)["t.bf16"], ("BF16", (3, 5)), "dtypes()")


def case_torch_all():
    need(torch, "torch")
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        res = st.load_file(F_ALL, framework="torch", client=c)
        t.eq(sorted(res), sorted(x[0] for x in ALL), "names")
        for n, dt, shape, data in ALL:
            x = res[n]
            if dt in PACKED:
                t.eq(tbytes(x), data, f"{n} bytes")
                continue
            t.eq(tuple(x.shape), tuple(shape), f"{n} shape")
            t.eq(tbytes(x), data, f"{n} bytes")
        t.eq(res["t.bf16"].dtype, torch.bfloat16, "BF16 is torch.bfloat16")
        t.eq(res["known.bf16"].float().tolist(), [KNOWN_F32[:3], KNOWN_F32[3:]],
             "BF16 values")
        t.eq(res["known.f32"].tolist(), [KNOWN_F32[:3], KNOWN_F32[3:]], "F32 values")
        t.eq(res["t.bool"].dtype, torch.bool, "BOOL")
        t.eq(res["t.c64"].dtype, torch.complex64, "C64")
        if not hasattr(torch, "float8_e4m3fn"):
            t.eq(res["t.f8_e4m3"].dtype, torch.uint8, "F8 raw uint8 on this torch")
            t.eq(res["t.f8_e4m3"].safetensors_dtype, "F8_E4M3", "F8 dtype name")
        if not hasattr(torch, "uint16"):
            t.eq(res["t.u16"].safetensors_dtype, "U16", "U16 raw, named")
        # a write is copy-on-write: this tensor only
        w = res["known.f32"]
        w[0, 0] = 42.0
        t.eq(w[0, 0].item(), 42.0, "own write seen")
        again = st.load_file(F_ALL, names=["known.f32"], framework="torch", client=c)
        t.eq(again["known.f32"][0, 0].item(), 1.5, "a new load has the file's value")
        t.eq(ref_read(F_ALL, "known.f32")[2], struct.pack("<6f", *KNOWN_F32),
             "the file unchanged")


def case_names():
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        res = st.load_file(F_ALL, names=["t.i16", "known.f32"], client=c)
        check_np(res, F_ALL, ["t.i16", "known.f32"], "list")
        res = st.load_file(F_ALL, names=lambda n: n.startswith("known."), client=c)
        check_np(res, F_ALL, ["known.f32", "known.bf16", "known.i64"], "predicate")
        res = st.load_file(F_ALL, names=lambda n: False, client=c)
        t.eq(res, {}, "nothing selected")
        t.raises(KeyError, None, st.load_file, F_ALL, names=["nope"], client=c)


SH = [("rows7", "F32", (7, 3)), ("rows1", "I64", (1, 2)), ("rows0", "F16", (0, 5)),
      ("rows10", "BF16", (10,)), ("rows3", "U8", (3, 4, 2)), ("scalar", "F64", ()),
      ("rows16", "I8", (16, 1)), ("rows9", "F8_E5M2", (9, 3))]
rng2 = random.Random(99)
F_SH = write_st(os.path.join(DIR, "shard.safetensors"),
                [(n, dt, s, tensor_bytes(dt, s, rng2)) for n, dt, s in SH])


def case_shards():
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        for world in (1, 2, 3, 8):
            parts = [st.load_file(F_SH, shard=(r, world), client=c) for r in range(world)]
            for n, dt, shape in SH:
                _, _, data = ref_read(F_SH, n)
                full = np_ref(dt, shape, data)
                if not shape:
                    for r in range(world):
                        t.eq(parts[r][n].tobytes(), data, f"{n}: 0-d whole on rank {r}")
                    continue
                want = np.array_split(full, world)
                for r in range(world):
                    a = parts[r][n]
                    t.eq(a.shape, want[r].shape, f"world {world} rank {r} {n} shape")
                    t.eq(a.tobytes(), want[r].tobytes(), f"world {world} rank {r} {n}")
                t.eq(np.concatenate([p[n] for p in parts]).tobytes(), data,
                     f"world {world} {n}: the ranks' slices make the tensor")
        t.raises(ValueError, None, st.load_file, F_SH, shard=(3, 3), client=c)
        if torch is not None:
            x = st.load_file(F_SH, names=["rows10"], shard=(1, 3), framework="torch",
                             client=c)["rows10"]
            _, _, data = ref_read(F_SH, "rows10")
            t.eq(tbytes(x), data[8:14], "torch BF16 shard 1 of 3 (rows 4..6)")


def case_index():
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        r = random.Random(3)
        files = {}
        wm = {}
        for k in range(3):
            ts = [(f"layer{k}.{j}.w", "F32", (5 + j, 4), None) for j in range(4)]
            ts = [(n, dt, s, tensor_bytes(dt, s, r)) for n, dt, s, _ in ts]
            fn = f"model-{k + 1:05d}-of-00003.safetensors"
            write_st(os.path.join(DIR, fn), ts, pad=k)
            for n, *_ in ts:
                wm[n] = fn
            files[fn] = ts
        ip = os.path.join(DIR, "model.safetensors.index.json")
        with open(ip, "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)
        res = st.load_file(ip, client=c)
        t.eq(len(res), 12, "all 12 tensors")
        for n, fn in wm.items():
            _, _, data = ref_read(os.path.join(DIR, fn), n)
            t.eq(res[n].tobytes(), data, f"{n} from {fn}")
        res = st.load_file(ip, names=lambda n: n.endswith(".1.w"), shard=(1, 2), client=c)
        t.eq(sorted(res), [f"layer{k}.1.w" for k in range(3)], "predicate over the index")
        for k in range(3):
            n = f"layer{k}.1.w"
            _, _, data = ref_read(os.path.join(DIR, wm[n]), n)
            t.eq(res[n].tobytes(), data[3 * 16:], f"{n} rank 1 of 2 (rows 3..5)")
        import asyncio
        ares = asyncio.run(st.load_file_async(ip, names=lambda n: n.endswith(".1.w"),
                                              shard=(1, 2), client=c))
        t.eq(sorted(ares), sorted(res), "load_file_async: names")
        for n in res:
            t.eq(ares[n].tobytes(), res[n].tobytes(), f"load_file_async: {n}")
        bad = os.path.join(DIR, "bad.index.json")
        with open(bad, "w") as f:
            json.dump({"weight_map": {"x": "../../etc/passwd"}}, f)
        t.raises(dmaload.Error, errno.EINVAL, st.load_file, bad, client=c)
        with open(bad, "w") as f:
            json.dump({"weight_map": {"ghost": "model-00001-of-00003.safetensors"}}, f)
        t.raises(dmaload.Error, errno.EINVAL, st.load_file, bad, client=c)
        with open(bad, "w") as f:
            f.write('{"weight_map": ')
        t.raises(dmaload.Error, errno.EINVAL, st.load_file, bad, client=c)


def lie_files():
    good = [("a", "F32", (4,), b"\1" * 16), ("b", "I8", (8,), b"\2" * 8)]
    p = lambda n: os.path.join(DIR, f"lie-{n}.safetensors")
    h = lambda d_: json.dumps(d_).encode()
    yield "offsets past EOF", write_st(p(1), good, header=h(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "I8", "shape": [8], "data_offsets": [16, 24 + 4096]}}))
    yield "offsets past EOF, size matching", write_st(p(2), good, header=h(
        {"a": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}))
    yield "overlapping tensors", write_st(p(3), good, header=h(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "I8", "shape": [8], "data_offsets": [12, 20]}}))
    yield "size not shape x dtype", write_st(p(4), good, header=h(
        {"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}))
    yield "bad JSON", write_st(p(5), good, header=b'{"a": {"dtype": "F32",')
    yield "not UTF-8", write_st(p(6), good, header=b'{"\xff": 1}')
    yield "JSON not an object", write_st(p(7), good, header=b"[1, 2]")
    yield "duplicate name", write_st(p(8), good, header=(
        b'{"a": {"dtype": "I8", "shape": [8], "data_offsets": [0, 8]},'
        b' "a": {"dtype": "I8", "shape": [8], "data_offsets": [8, 16]}}'))
    yield "unknown dtype", write_st(p(9), good, header=h(
        {"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}))
    yield "negative shape", write_st(p(10), good, header=h(
        {"a": {"dtype": "I8", "shape": [-8], "data_offsets": [0, 8]}}))
    yield "reversed offsets", write_st(p(11), good, header=h(
        {"a": {"dtype": "I8", "shape": [0], "data_offsets": [8, 0]}}))
    yield "bad __metadata__", write_st(p(12), good, header=h(
        {"__metadata__": {"k": 1}}))
    with open(p(13), "wb") as f:	# a huge header length
        f.write(struct.pack("<Q", 2**63 + 5) + b"{}")
    yield "huge header length", p(13)
    with open(p(14), "wb") as f:	# header length past the file, under the limit
        f.write(struct.pack("<Q", 1000) + b'{"a": 1}')
    yield "header length past EOF", p(14)
    with open(p(15), "wb") as f:
        f.write(b"\1\0\0")
    yield "shorter than 8 bytes", p(15)
    yield "float in shape", write_st(p(16), good, header=h(
        {"a": {"dtype": "I8", "shape": [8.0], "data_offsets": [0, 8]}}))


def case_lies():
    need(np, "numpy")
    with dmaload.Client(d.sock) as c:
        for what, path in lie_files():
            for fw in ("numpy",) + (("torch",) if torch is not None else ()):
                e = t.raises(dmaload.Error, errno.EINVAL, st.load_file, path,
                             framework=fw, client=c)
                t.check(e is None or os.path.basename(path) in str(e),
                        f"{what}: the file named in {e}")
        need_extents(c)
        res = st.load_file(F_ALL, names=["t.i32"], client=c)
        check_np(res, F_ALL, ["t.i32"], "after the lies")


def case_layout():
    pieces = [(4096 * 3 + 17, 100), (8, 4000), (4008, 96), (4096 * 9, 5000),
              (4096 * 3 + 117, 10), (50000, 0)]
    offs, ext = st.plan(pieces)
    for (fo, ln), b in zip(pieces, offs):
        if ln:
            t.eq(b % 4096, fo % 4096, f"piece {fo}: congruent mod 4096")
    t.eq(len(ext), 3, f"adjacent pieces merged: {ext}")
    spans = sorted((b, b + ln) for fo, ln, b in ext)
    t.check(all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "no overlap")
    for fo, ln, b in ext:
        t.eq(b % 4096, fo % 4096, f"extent {fo} congruent")
    t.check(max(b + ln for _, ln, b in ext) <= 4 * 4096 + 5000, "packed tight")


def case_stats():
    need(np, "numpy")
    r = random.Random(7)
    ts = [(f"w{k}", "F32", (256, 1024), r.randbytes(1 << 20)) for k in range(8)]
    path = write_st(os.path.join(DIR, "big.safetensors"), ts, pad=5)
    with dmaload.Client(d.sock) as c:
        need_extents(c)
        before = c.stats()
        res = st.load_file(path, names=["w2", "w5"], shard=(1, 4), client=c)
        after = c.stats()
        # rows 64..127 of each: 256 KiB each
        t.eq(after["bytes_read"] - before["bytes_read"], 2 * (256 << 10),
             "bytes read: only the selected rows")
        loads = sum(after["loads_by_method"].values()) - \
            sum(before["loads_by_method"].values())
        t.eq(loads, 1, "one load")
        for n in ("w2", "w5"):
            _, _, data = ref_read(path, n)
            t.eq(res[n].tobytes(), data[256 << 10:512 << 10], f"{n} rows 64..127")


def case_whole_file():
    need(np, "numpy")
    dc = Daemon("st-cache", cache=True)
    try:
        with dmaload.Client(dc.sock) as c:
            want = st.load_file(F_SH, shard=(2, 3), client=c)
            a = st.load_file(F_SH, shard=(2, 3), client=c, whole_file=True)
            before = c.stats()
            b = st.load_file(F_SH, shard=(2, 3), client=c, whole_file=True)
            after = c.stats()
            for n in want:
                t.eq(a[n].tobytes(), want[n].tobytes(), f"whole_file {n}")
                t.eq(b[n].tobytes(), want[n].tobytes(), f"whole_file again {n}")
                t.eq(a[n].shape, want[n].shape, f"{n} shape")
            t.eq(after["cache_hits"] - before["cache_hits"], 1,
                 "the second whole-file load is the cached buffer")
            t.eq(after["bytes_read"], before["bytes_read"], "nothing read again")
        # another connection's extents load of the same selection: the cached buffer
        with dmaload.Client(dc.sock) as c1, dmaload.Client(dc.sock) as c2:
            st.load_file(F_SH, shard=(0, 2), client=c1)
            before = c2.stats()
            e = st.load_file(F_SH, shard=(0, 2), client=c2)
            after = c2.stats()
            t.eq(after["cache_hits"] - before["cache_hits"], 1,
                 "a second extents load of the selection is the cached buffer")
            t.eq(after["bytes_read"], before["bytes_read"], "extents: nothing read again")
            _, _, data = ref_read(F_SH, "rows7")
            t.eq(e["rows7"].tobytes(), data[:4 * 12], "rows 0..3 of rows7")
    finally:
        dc.stop()


t.case("every dtype, numpy: bytes, dtypes, shapes, values, read-only, BF16/F8 raw+named",
       case_numpy_all)
t.case("every dtype, torch: bytes, bfloat16 values, raw+named, copy-on-write writes",
       case_torch_all)
t.case("names: a list, a predicate, none, a missing name", case_names)
t.case("shards for world 1, 2, 3, 8, uneven: array_split of the reference", case_shards)
t.case("model.safetensors.index.json over 3 files, with selection and shard; async; "
       "indexes that lie",
       case_index)
t.case("headers that lie: dmaload.Error EINVAL naming the file; serves on", case_lies)
t.case("layout: offsets congruent mod 4096, adjacent merged, no overlap", case_layout)
t.case("STATS: only the selected rows read, in one load", case_stats)
t.case("the cache: extents loads of one selection and whole_file loads are shared",
       case_whole_file)
sys.exit(t.finish())
