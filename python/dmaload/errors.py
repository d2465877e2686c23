"""dmaload.Error: every failure the package reports.

An OSError, so `except OSError` catches it and `.errno` / `.strerror` work as for
any system call; `.message` is the daemon's own text when the daemon refused (empty
when the failure was local, e.g. the socket is gone), and `.request` the request id
it answered, when there was one.
"""

import errno as _errno
import os


class Error(OSError):
    """A failed dmaload call: errno, strerror, and the daemon's message.

    >>> try:
    ...     client.load("/nonexistent")
    ... except dmaload.Error as e:
    ...     print(e.errno, e.message)
    2 open /nonexistent: No such file or directory
    """

    def __init__(self, err, message="", request=None, what=None):
        err = abs(int(err)) or _errno.EIO
        strerror = os.strerror(err)
        text = message or strerror
        if what:
            text = f"{what}: {text}"
        super().__init__(err, text)
        self.message = message
        self.request = request

    def __str__(self):
        return f"[Errno {self.errno}] {self.strerror}"


def check(r, what):
    """Raises Error for a negative errno return of a C call; returns r otherwise."""
    if r < 0:
        raise Error(-r, what=what)
    return r


def from_event(ev, what=None):
    """The Error of an ERROR event (the daemon's errno and message)."""
    msg = bytes(ev.message).split(b"\0", 1)[0].decode("utf-8", "replace")
    return Error(ev.err, msg, request=ev.id, what=what)
