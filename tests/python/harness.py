"""harness.py: what the Python tests share (tests/lib/ in Python).

- Suite: cases and checks with the C suite's output (tests/lib/check.h): one line per
  case, `PASS|FAIL|SKIP <suite>: <case>[: why]`, the first failure of a case kept;
  an exception ends the case as a FAIL; a watchdog (SIGALRM, $CHECK_CASE_TIMEOUT or
  60 s) prints FAIL for a hanging case, kills the daemons and exits. finish() is
  the exit status.
- Daemon: the real $DMALOADD on its own socket, config and log in a private temp dir
  under $DMALOAD_TEST_TMP (tests/lib/daemon.c's way: cache off unless a test turns it
  on, SIGKILL when the test dies, SIGTERM at the end, the log tail on a failure).
- pattern files and a reference reader with plain reads.
"""

import ctypes
import os
import random
import shutil
import signal
import socket as socketmod
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

_daemons = []


class Suite:
    def __init__(self, name):
        self.name = name
        self.failed = 0
        self._case = None
        self._why = None
        self._skip = None
        self.timeout = int(os.environ.get("CHECK_CASE_TIMEOUT", "60"))
        signal.signal(signal.SIGALRM, self._watchdog)
        self.fail_hooks = []

    def _watchdog(self, *_):
        print(f"FAIL {self.name}: {self._case}: timed out after {self.timeout} s",
              flush=True)
        for d in _daemons:
            d.kill()
        os._exit(1)

    def case(self, name, fn, *args):
        """Runs fn(*args) as one case."""
        self._case, self._why, self._skip = name, None, None
        signal.alarm(self.timeout)
        try:
            fn(*args)
        except Skip as s:
            self._skip = str(s)
        except Exception:
            tb = traceback.format_exc()
            sys.stderr.write(tb)
            last = tb.strip().splitlines()[-1]
            self.fail(f"exception: {last}")
        finally:
            signal.alarm(0)
        if self._why is not None:
            print(f"FAIL {self.name}: {name}: {self._why}", flush=True)
            self.failed += 1
            for h in self.fail_hooks:
                h()
        elif self._skip is not None:
            print(f"SKIP {self.name}: {name}: {self._skip}", flush=True)
        else:
            print(f"PASS {self.name}: {name}", flush=True)

    def fail(self, why):
        if self._why is None:
            self._why = why
        return False

    def check(self, cond, why):
        """Records @why as the case's failure unless @cond; returns cond."""
        if not cond:
            caller = traceback.extract_stack(limit=2)[0]
            self.fail(f"{why} ({os.path.basename(caller.filename)}:{caller.lineno})")
        return bool(cond)

    def eq(self, a, b, what):
        return self.check(a == b, f"{what}: {a!r} != {b!r}"[:400])

    def raises(self, exc, errno_, fn, *a, **kw):
        """fn(*a, **kw) must raise @exc (with errno @errno_ unless None); returns it."""
        try:
            fn(*a, **kw)
        except exc as e:
            if errno_ is not None:
                self.check(getattr(e, "errno", None) == errno_,
                           f"errno {getattr(e, 'errno', None)} != {errno_}: {e}")
            return e
        except Exception as e:
            self.fail(f"raised {type(e).__name__} {e}, not {exc.__name__}")
            return e
        self.fail(f"no {exc.__name__} raised")
        return None

    def finish(self):
        for d in list(_daemons):
            d.stop()
        return 1 if self.failed else 0


class Skip(Exception):
    """Raised in a case: the case is a SKIP with this reason."""


def tmpdir(tag):
    base = os.environ.get("DMALOAD_TEST_TMP") or "/var/tmp"
    d = tempfile.mkdtemp(prefix=f"dmaload-py-{tag}.", dir=base)
    os.chmod(d, 0o755)
    return d


_libc = ctypes.CDLL(None, use_errno=True)


def _pdeathsig():
    _libc.prctl(1, signal.SIGKILL)	# PR_SET_PDEATHSIG


class Daemon:
    """A private dmaloadd; Daemon(tag, io_extra="", more="") starts it."""

    def __init__(self, tag, io_extra="", more="", cache=False):
        self.dir = tmpdir(tag)
        self.sock = os.path.join(self.dir, "sock")
        self.conf = os.path.join(self.dir, "dmaloadd.conf")
        self.log = os.path.join(self.dir, "daemon.log")
        with open(self.conf, "w") as f:
            f.write("# written by the dmaloadd Python test harness\n[daemon]\n"
                    "socket_mode = 0666\nlog_level = debug\n\n")
            if not cache:
                f.write("[cache]\ncache_limit = 0\n\n")
            f.write(f"[io]\n{io_extra}\n")
            if more:
                f.write(f"\n{more}\n")
        binary = os.environ.get("DMALOADD") or os.path.join(ROOT, "build", "dmaloadd")
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen([binary, "--config", self.conf, "--socket",
                                          self.sock], stdin=subprocess.DEVNULL,
                                         stdout=lf, stderr=lf, close_fds=True,
                                         preexec_fn=_pdeathsig)
        _daemons.append(self)
        deadline = time.monotonic() + 20
        while True:
            s = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_SEQPACKET)
            try:
                s.connect(self.sock)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.tail()
                    raise RuntimeError(f"daemon did not start (see {self.log})")
                time.sleep(0.02)
            finally:
                s.close()

    @property
    def pid(self):
        return self.proc.pid

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fds_settle(self, want, timeout=10):
        """The daemon's fd count once it is @want (it frees on workers, a little
        after a DONE), or the last count after @timeout s."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.fds()
            if n == want or time.monotonic() > deadline:
                return n
            time.sleep(0.02)

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                lines = f.readlines()[-n:]
            sys.stderr.write(f"---- {self.log} (last {len(lines)} lines) ----\n")
            sys.stderr.writelines(lines)
        except OSError:
            pass

    def kill(self):
        try:
            self.proc.kill()
        except Exception:
            pass

    def stop(self):
        """SIGTERM; the exit status (0 is a clean stop)."""
        if self in _daemons:
            _daemons.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not os.environ.get("DMALOAD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


def pattern(n, seed=0):
    """@n deterministic pseudo-random bytes of @seed (random.Random is C-fast)."""
    return random.Random(seed).randbytes(n)


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def read_range(path, offset, length):
    """The reference reader: plain reads."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def proc_fds():
    return len(os.listdir("/proc/self/fd"))


def memfds():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:"):
                n += 1
        except OSError:
            pass
    return n
