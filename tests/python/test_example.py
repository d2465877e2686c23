#!/usr/bin/python3
"""test_example.py: examples/inference-server.py as a user runs it.

Two models written here, served over stdin/stdout through a private daemon: the
answers are W @ x computed here from the reference bytes; bad requests get an
error line; --shard serves a rank's rows; --listen answers on a Unix socket; and
--direct (plain reads) gives the same answers.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time

import harness
from harness import Daemon, Suite

t = Suite("py-example")
d = Daemon("example")
t.fail_hooks.append(d.tail)
SERVER = os.path.join(harness.ROOT, "examples", "inference-server.py")


def write_f32(path, tensors):
    hdr, blobs, off = {}, [], 0
    for name, rows in tensors:
        b = struct.pack(f"<{len(rows) * len(rows[0])}f", *[v for r in rows for v in r])
        hdr[name] = {"dtype": "F32", "shape": [len(rows), len(rows[0])],
                     "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return path


WA = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1.0, 0.5, 0.25], [7.0, 8.0, 9.0], [0, 0, 1]]
WB = [[2.0, 0.0], [0.0, -3.0]]
A = write_f32(os.path.join(d.dir, "a.safetensors"), [("bias", [[9.0]]), ("w", WA)])
B = write_f32(os.path.join(d.dir, "b.safetensors"), [("w", WB)])


def matvec(w, x):
    return " ".join(f"{sum(a * b for a, b in zip(r, x)):.9g}" for r in w)


def run(args, stdin):
    env = dict(os.environ)
    r = subprocess.run(["/usr/bin/python3", SERVER, *args], input=stdin.encode(),
                       capture_output=True, env=env, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def case_stdin():
    for extra in ([], ["--direct"], ["--whole-file"]):
        rc, out, err = run(["--socket", d.sock, f"a={A}", f"b={B}", "--weight", "w", *extra],
                           "a 1 2 3\nb 1.5 2\nc 1\na 1\na x y z\ninfo\nquit\n")
        t.eq(rc, 0, f"{extra}: exit status ({err[-200:]})")
        lines = out.splitlines()
        t.eq(lines[:5], [matvec(WA, [1, 2, 3]), matvec(WB, [1.5, 2]),
                         "error: no model 'c'", "error: a takes 3 numbers, not 1",
                         "error: the vector must be numbers"], f"{extra}: answers")
        info = json.loads(lines[5]) if len(lines) > 5 else {}
        t.eq(info.get("a", {}).get("shape"), [5, 3], f"{extra}: info")
        if not extra:
            t.check("% of" in err and "(dmaloadd)" in err, f"progress lines: {err[:200]!r}")


def case_shard():
    rc, out, err = run(["--socket", d.sock, f"a={A}", "--weight", "w", "--shard", "1/2"],
                       "a 1 1 1\n")
    t.eq(rc, 0, f"exit status ({err[-200:]})")
    t.eq(out.strip(), matvec(WA[3:], [1, 1, 1]), "rank 1 of 2: rows 3..4")


def case_listen():
    path = os.path.join(d.dir, "serve.sock")
    ready = os.path.join(d.dir, "ready")
    p = subprocess.Popen(["/usr/bin/python3", SERVER, "--socket", d.sock, f"b={B}",
                          "--listen", path, "--ready-file", ready],
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(ready) and os.path.exists(path)):
            if time.monotonic() > deadline or p.poll() is not None:
                t.fail("the server did not start")
                return
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        f = s.makefile("rwb")
        f.write(b"b 3 4\n")
        f.flush()
        t.eq(f.readline().decode().strip(), matvec(WB, [3, 4]), "answer on the socket")
        s.close()
    finally:
        p.kill()
        p.wait()


t.case("stdin/stdout: matmul answers exact, errors, info; --direct, --whole-file alike",
       case_stdin)
t.case("--shard 1/2: rank 1's rows", case_shard)
t.case("--listen: an answer on a Unix socket", case_listen)
sys.exit(t.finish())
