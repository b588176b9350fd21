"""Ownership of one C handle, shared by Matrix, Stack and Model."""
import ctypes


class Handle:
    """Holds a C handle and releases it with `_free` (a lowbit_*_free/close function) on close(),
    on garbage collection, or at the end of a `with` block."""

    _free = None          # set by each subclass
    _kind = "object"      # for the closed-handle error

    def __init__(self, handle, path=None):
        self._handle = ctypes.c_void_p(handle)
        self.path = None if path is None else str(path)   # the file it came from, if any

    def close(self):
        if self._handle:
            type(self)._free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if not self._handle:
            from . import ArgumentError
            raise ArgumentError(f"{self._kind} is closed")
        return self._handle
