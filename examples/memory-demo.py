#!/usr/bin/python3
"""memory-demo.py: what two inference servers cost in memory, through dmaloadd and not.

Runs examples/inference-server.py twice at once on one model of at least 1 GiB:
through a private dmaloadd (its cache on: the second server gets the first one's
buffer) with safetensors' extents loads, then with --whole-file (plain loads of the
whole file), then with --direct (each server reads the file into its own memory),
and prints one Markdown table row per case:

  - system-wide, from /proc/meminfo, the change from before the servers started to
    when both are loaded: Shmem (memfd pages), huge pages in use
    (HugePages_Total - HugePages_Free, times Hugepagesize), AnonPages, and Cached
    (page cache; includes Shmem);
  - per process, from /proc/PID/smaps_rollup: the two servers' Pss (their share of
    the pages they map; huge pages not included) and Shared_Hugetlb +
    Private_Hugetlb.

The model file's pages are dropped from the page cache before each case
(posix_fadvise DONTNEED), so neither starts warm. Other processes on the host move
the system-wide numbers too: run it on a quiet machine, or read the Pss column.

    examples/memory-demo.py [--model FILE] [--gib 1] [--build build]
"""

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
from dmaload import safetensors as st  # noqa: E402


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])	# kB, or pages for HugePages_*
    out["HugeUsed"] = (out["HugePages_Total"] - out["HugePages_Free"]) * out["Hugepagesize"]
    return out


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                out[parts[0][:-1]] = int(parts[1])
    return out


def make_model(path, gib):
    """@gib GiB of F32 weights in 256 MiB tensors (8192 x 8192), a cheap fill."""
    rows = 8192
    n = int(gib * 4)
    row = (np.arange(rows, dtype=np.float32) % 251) / 251
    hdr = {}
    off = 0
    size = rows * rows * 4
    for i in range(n):
        hdr[f"layer{i}.w"] = {"dtype": "F32", "shape": [rows, rows],
                              "data_offsets": [off, off + size]}
        off += size
    h = json.dumps(hdr).encode()
    h += b" " * (-(8 + len(h)) % 4096)	# the data page-aligned, as writers pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        block = np.tile(row, (256, 1))
        for i in range(n):
            for _ in range(rows // 256):
                f.write((block + i).tobytes())
    return path


def drop_file_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_case(label, model, build, sock, mode, tmp):
    drop_file_cache(model)
    time.sleep(1)
    before = meminfo()
    env = dict(os.environ, LD_LIBRARY_PATH=build,
               PYTHONPATH=os.path.join(ROOT, "python"))
    procs, readies = [], []
    for k in range(2):
        ready = os.path.join(tmp, f"ready{k}")
        readies.append(ready)
        args = ["/usr/bin/python3", os.path.join(HERE, "inference-server.py"),
                "--ready-file", ready, f"m={model}"]
        if mode == "direct":
            args.append("--direct")
        else:
            args += ["--socket", sock]
            if mode == "whole":
                args.append("--whole-file")
        procs.append(subprocess.Popen(args, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 600
    while not all(os.path.exists(r) for r in readies):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            sys.exit(f"{label}: the servers did not get ready")
        time.sleep(0.1)
    time.sleep(1)
    after = meminfo()
    rolls = [rollup(p.pid) for p in procs]
    for p in procs:
        p.stdin.close()
        p.wait(30)
    for r in readies:
        os.unlink(r)
    d = {k: (after[k] - before[k]) / 1024 for k in ("Shmem", "HugeUsed", "AnonPages",
                                                     "Cached")}
    pss = sum(r["Pss"] for r in rolls) / 1024
    huge = sum(r.get("Shared_Hugetlb", 0) + r.get("Private_Hugetlb", 0) for r in rolls) / 1024
    return (f"| {label} | {d['Shmem']:.0f} | {d['HugeUsed']:.0f} | {d['AnonPages']:.0f} | "
            f"{d['Cached']:.0f} | {pss:.0f} | {huge:.0f} |")


def start_daemon(build, conf, sock, tmp):
    log = open(os.path.join(tmp, "daemon.log"), "ab")
    if os.path.exists(sock):
        os.unlink(sock)
    daemon = subprocess.Popen([os.path.join(build, "dmaloadd"), "--config", conf,
                               "--socket", sock], stdout=log, stderr=log)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return daemon


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a .safetensors file (default: one is written)")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the written model")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dmaload-memdemo.", dir="/var/tmp")
    daemon = None
    try:
        model = args.model or make_model(os.path.join(tmp, "model.safetensors"), args.gib)
        size = sum(t.nbytes for t in st.read_header(model)[0].values())
        sock = os.path.join(tmp, "sock")
        conf = os.path.join(tmp, "dmaloadd.conf")
        with open(conf, "w") as f:
            f.write(f"[daemon]\nsocket_mode = 0600\n[cache]\n"
                    f"cache_limit = {2 * size // 2**20 + 64}M\n")
        print(f"model: {size / 2**20:.0f} MiB of weights; two servers each; MiB")
        print("| case | Shmem | huge pages | AnonPages | Cached | servers' Pss | "
              "servers' hugetlb |")
        print("|---|---|---|---|---|---|---|")
        for label, mode in (("two servers through dmaloadd, safetensors extents loads",
                             "extents"),
                            ("two servers through dmaloadd, --whole-file loads", "whole")):
            daemon = start_daemon(args.build, conf, sock, tmp)
            print(run_case(label, model, args.build, sock, mode, tmp), flush=True)
            daemon.send_signal(signal.SIGTERM)	# its cache goes with it
            daemon.wait(30)
            daemon = None
            time.sleep(1)
        print(run_case("two servers reading the file themselves", model, args.build, sock,
                       "direct", tmp), flush=True)
    finally:
        if daemon is not None:
            daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
