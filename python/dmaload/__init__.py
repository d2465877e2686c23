"""dmaload: files into shared buffers through dmaloadd, from Python.

A binding over libdmaload.so.0 (ctypes): the C library speaks the protocol, this
package only calls it. No third-party dependency; numpy and torch are optional, for
dmaload.safetensors.

    import dmaload

    with dmaload.Client() as c:                       # socket as libdmaload finds it
        with c.load("/models/m.bin", progress=print) as buf:
            data = buf.memoryview()                   # read-only, no copy

    buf = await client.load_async(path)               # asyncio: many in flight

    from dmaload import safetensors
    tensors = safetensors.load_file("model.safetensors", names=lambda n: "attn" in n,
                                    shard=(rank, world), framework="torch")

Names:
  Client      a connection: load(), load_extents(), load_into(), their *_async()
              twins, status(), stats(), evict()
  Buffer      a loaded buffer: fd, size, method, reason, target, hugetlb, shared,
              memoryview(), close()
  LoadInfo    what a load into your own buffer did
  Error       OSError with errno and the daemon's message
  safetensors load_file(): tensors by name and shard, views over one buffer

libdmaload.so.0 is found by the dynamic loader (LD_LIBRARY_PATH, ldconfig's cache);
$DMALOAD_LIBRARY names a file instead. See dmaload-ctl(1) and README.md for the
daemon's side.
"""

from .buffer import Buffer
from .client import Client, LoadInfo
from .errors import Error

__all__ = ["Client", "Buffer", "LoadInfo", "Error", "safetensors"]
__version__ = "0.1"


def __getattr__(name):
    # `dmaload.safetensors` without importing it (and numpy) up front
    if name == "safetensors":
        import importlib
        return importlib.import_module(".safetensors", __name__)
    raise AttributeError(f"module 'dmaload' has no attribute {name!r}")
