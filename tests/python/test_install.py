#!/usr/bin/python3
"""test_install.py: `make install` puts the package where /usr/bin/python3 finds it,
and every public call has pydoc help.

make install DESTDIR=tmp PREFIX=/usr (the Debian package's layout) into a temp dir;
then a fresh /usr/bin/python3 with only that dir on its path (PYTHONPATH, and
LD_LIBRARY_PATH for the installed libdmaload.so.0, as ldconfig's cache would give)
imports dmaload from there, loads a file through a daemon, and pydoc shows help for
each public name.
"""

import os
import subprocess
import sys

import harness
from harness import Daemon, Suite, pattern, write_file

t = Suite("py-install")
BUILD = os.path.dirname(os.environ.get("DMALOADD") or os.path.join(harness.ROOT, "build",
                                                                   "dmaloadd"))
CALLS = ["dmaload", "dmaload.Client", "dmaload.Client.load", "dmaload.Client.load_async",
         "dmaload.Client.load_extents", "dmaload.Client.load_extents_async",
         "dmaload.Client.load_into", "dmaload.Client.load_into_async",
         "dmaload.Client.status", "dmaload.Client.stats", "dmaload.Client.evict",
         "dmaload.Client.close", "dmaload.Client.fileno", "dmaload.Buffer",
         "dmaload.Buffer.memoryview", "dmaload.Buffer.close", "dmaload.Error",
         "dmaload.LoadInfo", "dmaload.safetensors", "dmaload.safetensors.load_file",
         "dmaload.safetensors.read_header", "dmaload.safetensors.metadata",
         "dmaload.safetensors.dtypes", "dmaload.safetensors.plan"]


def case_install():
    dest = harness.tmpdir("install")
    d = Daemon("install")
    try:
        r = subprocess.run(["make", "-s", "-C", harness.ROOT, "install", f"BUILD={BUILD}",
                            f"DESTDIR={dest}", "PREFIX=/usr"], capture_output=True,
                           text=True)
        if not t.eq(r.returncode, 0, f"make install: {r.stderr[-300:]}"):
            return
        pkg = os.path.join(dest, "usr/lib/python3/dist-packages")
        t.check(os.path.isfile(os.path.join(pkg, "dmaload/safetensors.py")),
                "dmaload/ in /usr/lib/python3/dist-packages")
        data = pattern(100000, 9)
        f = write_file(os.path.join(d.dir, "f"), data)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pkg,
               "LD_LIBRARY_PATH": os.path.join(dest, "usr/lib")}
        code = ("import dmaload, sys\n"
                "print(dmaload.__file__, flush=True)\n"
                f"with dmaload.Client({d.sock!r}) as c, c.load({f!r}) as b:\n"
                "    sys.stdout.buffer.write(bytes(b.memoryview()))\n")
        r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                           cwd="/")
        t.eq(r.returncode, 0, f"the installed package runs: {r.stderr[-300:]!r}")
        first, _, rest = r.stdout.partition(b"\n")
        t.check(first.decode().startswith(pkg), f"imported from {first!r}")
        t.check(rest == data, "bytes through the installed package")
        for name in CALLS:
            r = subprocess.run(["/usr/bin/python3", "-m", "pydoc", name], env=env,
                               capture_output=True, text=True, cwd="/")
            t.check(r.returncode == 0 and "no Python documentation" not in r.stdout,
                    f"pydoc {name}: {r.stdout[:100]!r}")
            doc = r.stdout.split("\n", 3)[-1]
            t.check(len(doc.strip()) > 40, f"pydoc {name} says something: {doc[:80]!r}")
    finally:
        d.stop()
        import shutil
        shutil.rmtree(dest, ignore_errors=True)


t.case("make install DESTDIR PREFIX=/usr: imported by /usr/bin/python3; pydoc of "
       "every call", case_install)
sys.exit(t.finish())
