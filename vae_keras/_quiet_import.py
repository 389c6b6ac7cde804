"""Import TensorFlow without the C++ start-up lines that ``TF_CPP_MIN_LOG_LEVEL`` misses.

TensorFlow 2.21 (2.19 too, per tensorflow/tensorflow#100442) prints lines such as
``I0000 ... port.cc:153] oneDNN custom operations are on`` and ``cudart_stub.cc:31]
Could not find cuda drivers`` while its shared libraries load, through Abseil's
logging (which writes everything to stderr until ``absl::InitializeLog()`` is called)
and before ``TF_CPP_MIN_LOG_LEVEL`` is applied: a later line of the same kind,
``cpu_feature_guard.cc``'s, does obey it. Two libraries carry their own copy of that
code, so each line comes twice. No TensorFlow setting reaches them: the variable set
in the environment or in ``os.environ`` before the import, ``TF_ENABLE_ONEDNN_OPTS=0``
(removes the oneDNN line, but also oneDNN) and ``CUDA_VISIBLE_DEVICES=-1`` were tried.

So while TensorFlow loads, file descriptor 2 goes through a small filter process that
drops Abseil-format lines below ``TF_CPP_MIN_LOG_LEVEL`` (0 INFO, 1 WARNING, 2 ERROR,
3 FATAL, as TensorFlow reads it) and Abseil's "before absl::InitializeLog()" notice,
and passes everything else through unchanged and at once: errors, Python warnings,
tracebacks. The filter is a separate process so that it outlives a crash: if
TensorFlow aborts while loading (a CPU without the instructions it was built for),
its last words still reach the terminal. ``TF_CPP_MIN_LOG_LEVEL=0`` turns it off.
"""

import os
import re
import subprocess
import sys

# Abseil's format ("I0000 00:00:1795.123456   8926 port.cc:153] ...") and TensorFlow's
# own ("2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...").
_SEVERITY = re.compile(rb"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
                       rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+:\d+\])")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called"
# Notices TensorFlow logs at ERROR level that report no error, dropped whenever the filter is
# on. oneDNN's, once per process on some CPUs: an op on booleans (the text VAE's GRU padding
# mask) runs in Eigen instead of oneDNN; nothing fails.
_HARMLESS_ERRORS = (b"oneDNN supports DT_BOOL only on platforms with AVX-512",)


def min_log_level():
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it: an integer, 0 when unset or unreadable."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def keep_line(line, level):
    """Whether one line of stderr (bytes) passes a filter at ``level``."""
    if line.startswith(_ABSL_NOTICE):
        return level < 1
    match = _SEVERITY.match(line)
    if match is None:
        return True  # not a C++ log line: Python output, tracebacks, continuation lines
    if level >= 1 and any(notice in line for notice in _HARMLESS_ERRORS):
        return False
    return b"IWEF".index(match.group(1) or match.group(2)) >= level


def _filter_main(level):
    """The filter process: stdin to stdout, line by line, dropping what ``keep_line`` drops."""
    for line in sys.stdin.buffer:
        if keep_line(line, level):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()


_FILTER_COMMAND = ("import runpy, sys; "
                   "runpy.run_path(sys.argv[1])['_filter_main'](int(sys.argv[2]))")


class filtered_stderr:
    """Context manager: file descriptor 2 goes through the filter process while inside.

    Falls back to doing nothing where the filter cannot start (no ``sys.executable``,
    no file descriptors, as in some embedded interpreters).
    """

    def __init__(self, level):
        self.level = level
        self.saved = self.process = None

    def __enter__(self):
        if self.level < 1:
            return self
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _FILTER_COMMAND, __file__, str(self.level)],
                stdin=subprocess.PIPE, stdout=self.saved)
            os.dup2(self.process.stdin.fileno(), 2)
        except (OSError, ValueError, AttributeError):
            self._restore()
        return self

    def __exit__(self, *exc_info):
        self._restore()
        return False

    def _restore(self):
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.saved = None
        if self.process is not None:
            self.process.stdin.close()  # end of input: the filter writes what is left, exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass  # something still holds the pipe; the filter ends when it lets go
            self.process = None


def import_tensorflow():
    """``import tensorflow`` with the start-up lines below ``TF_CPP_MIN_LOG_LEVEL`` dropped.

    Does nothing more than the import if TensorFlow is already loaded.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" not in sys.modules:
        with filtered_stderr(min_log_level()):
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]
