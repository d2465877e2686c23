#!/usr/bin/python3
"""inference-server.py: a small multi-model server that gets its weights from dmaloadd.

At start-up it loads every model given on the command line through the daemon,
concurrently (asyncio, one extents load per file, with a progress line each), as
numpy arrays that are views over the daemon's shared buffers: two copies of this
server on one host hold one physical copy of the weights (see README.md, "From
Python"). Then it serves a small computation, y = W @ x for a model's weight W,
over stdin/stdout or a local Unix socket, one request per line:

    MODEL x1 x2 ... xn          ->  y1 y2 ... ym        (W: m x n, float32)
    info                        ->  the models, their weight shapes and buffers
    quit                        ->  (stdin mode) the end

    examples/inference-server.py [--socket DAEMON_SOCK] [--listen PATH]
        [--weight NAME] [--shard RANK/WORLD] [--direct | --whole-file]
        NAME=FILE.safetensors ...

Every tensor of each file is loaded (and touched once); --weight picks the one
served (default: the first 2-d F32 tensor of each file); --shard loads only a
tensor-parallel rank's rows; --whole-file loads each file whole with a plain load
(shared by every process whatever it selects; an extents load is shared by loads
of the same selection); --direct reads the files with plain reads into this process's memory
instead (the comparison the README measures); --ready-file PATH writes "ready"
there once every model is loaded.
"""

import argparse
import asyncio
import json
import os
import sys
import time

import numpy as np

try:
    import dmaload
    from dmaload import safetensors as st
except ImportError:	# run from a checkout: python/ beside examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "python"))
    import dmaload
    from dmaload import safetensors as st


def pick_weight(path, name):
    """The tensor to serve: @name, or the first 2-d F32 tensor of the file."""
    dts = st.dtypes(path)
    if name:
        if name not in dts:
            sys.exit(f"{path}: no tensor {name!r}")
        return name
    for n, (dt, shape) in sorted(dts.items()):
        if dt == "F32" and len(shape) == 2:
            return n
    sys.exit(f"{path}: no 2-d F32 tensor to serve (use --weight)")


def load_direct(path):
    """The comparison: every tensor read with plain reads into private memory."""
    tensors, _ = st.read_header(path)
    out = {}
    with open(path, "rb") as f:
        for n, t in tensors.items():
            f.seek(t.begin)
            a = np.empty(t.nbytes, dtype=np.uint8)
            f.readinto(memoryview(a))
            if t.dtype == "F32":
                a = a.view("<f4").reshape(t.shape)
            out[n] = a
    return out


async def load_models(client, models, weight, shard, direct, whole_file):
    """{model: (weight name, {tensor: array})}: every tensor of each model, the models
    loaded concurrently with a progress line each, then touched once (a checksum,
    as a warm-up pass would) so that every page is really mapped."""
    async def one(name, path):
        w = pick_weight(path, weight)
        start = time.monotonic()
        if direct:
            tensors = await asyncio.to_thread(load_direct, path)
        else:
            last = [0.0]

            def progress(done, total):
                now = time.monotonic()
                if total and (now - last[0] > 0.5 or done == total):
                    last[0] = now
                    print(f"{name}: {100 * done // total}% of {total / 2**20:.1f} MiB",
                          file=sys.stderr, flush=True)
            tensors = await st.load_file_async(path, shard=shard, client=client,
                                               progress=progress, whole_file=whole_file)
        took = time.monotonic() - start
        total = await asyncio.to_thread(
            lambda: sum(float(np.add.reduce(a.reshape(-1).view(np.uint8), dtype=np.uint64))
                        for a in tensors.values() if a.size))
        size = sum(a.nbytes for a in tensors.values())
        print(f"{name}: {len(tensors)} tensors, {size / 2**20:.1f} MiB in {took:.2f} s"
              f"{' (plain reads)' if direct else ' (dmaloadd)'}; byte sum {total:.0f}",
              file=sys.stderr, flush=True)
        return name, w, tensors
    return {n: (w, ts) for n, w, ts in
            await asyncio.gather(*(one(n, p) for n, p in models.items()))}


def answer(models, line):
    parts = line.split()
    if not parts:
        return ""
    if parts[0] == "info":
        return json.dumps({n: {"weight": w, "shape": list(ts[w].shape),
                               "dtype": str(ts[w].dtype), "tensors": len(ts)}
                           for n, (w, ts) in models.items()})
    if parts[0] not in models:
        return f"error: no model {parts[0]!r}"
    w, ts = models[parts[0]]
    a = ts[w]
    try:
        x = np.array([float(v) for v in parts[1:]], dtype=np.float32)
    except ValueError:
        return "error: the vector must be numbers"
    if a.ndim != 2 or x.shape[0] != a.shape[1]:
        return f"error: {parts[0]} takes {a.shape[1]} numbers, not {x.shape[0]}"
    return " ".join(f"{v:.9g}" for v in a @ x)


async def serve_stdin(models):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"quit":
            return
        print(answer(models, line.decode()), flush=True)


async def serve_unix(models, path):
    async def client(r, w):
        while line := await r.readline():
            w.write((answer(models, line.decode()) + "\n").encode())
            await w.drain()
        w.close()
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(client, path)
    print(f"listening on {path}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", metavar="NAME=FILE")
    ap.add_argument("--socket", help="dmaloadd's socket (default: as libdmaload finds it)")
    ap.add_argument("--listen", help="serve on this Unix socket instead of stdin/stdout")
    ap.add_argument("--weight", help="the tensor to serve (default: the first 2-d F32)")
    ap.add_argument("--shard", help="RANK/WORLD: only this rank's rows of the weight")
    ap.add_argument("--direct", action="store_true",
                    help="read the files with plain reads, not through dmaloadd")
    ap.add_argument("--whole-file", action="store_true",
                    help="load each file whole with a plain load instead of one "
                         "extents load of its tensors")
    ap.add_argument("--ready-file", help="write 'ready' here once loaded")
    args = ap.parse_args()
    models = {}
    for m in args.models:
        name, sep, path = m.partition("=")
        if not sep:
            name, path = os.path.basename(m).split(".")[0], m
        models[name] = path
    shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else None
    client = None if args.direct else dmaload.Client(args.socket, name="inference-server")
    try:
        loaded = await load_models(client, models, args.weight, shard, args.direct,
                                   args.whole_file)
    except (dmaload.Error, OSError) as e:
        sys.exit(f"inference-server: {e}")
    if client is not None:
        client.close()	# the arrays keep their mappings; the connection is done
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    if args.listen:
        await serve_unix(loaded, args.listen)
    else:
        await serve_stdin(loaded)


if __name__ == "__main__":
    asyncio.run(main())
