"""A quiet console for every CLI: progress, summaries and results only, unless --verbose.

TensorFlow, XLA, the TFLite converter (MLIR) and LiteRT write their log lines from C++
straight to file descriptor 2, which no Python setting reaches once absl's C++ logging is
up ("failed call to cuInit", "Ignored output_format"). So in quiet mode `setup` moves the
terminal to a private descriptor for Python's `sys.stderr` (progress bars, our errors,
tracebacks) and points descriptor 2 itself at a sink (a log file, or /dev/null). Spawned
workers inherit the sink; `trial_log` sends a worker's descriptors 1 and 2 to a per-trial
file. pycocotools prints its progress and tables with `print`: `quiet_stdout` holds them.

Importing this module first in a CLI sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from typing import Iterator, Optional

VERBOSE_ENV = "MNAS_TF_VERBOSE"


def _argv_verbose() -> bool:
    return "--verbose" in sys.argv[1:] or os.environ.get(VERBOSE_ENV) == "1"


# TensorFlow reads this once, when it loads: it must be set before the first import.
if _argv_verbose():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_NOISY_LOGGERS = ("tensorflow", "absl", "tf_keras", "h5py", "matplotlib", "jax", "ray")
_state = {"quiet": False}


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def setup(verbose: bool = False, log_file: Optional[str] = None) -> None:
    """Quiet (default) or verbose console for this process and the workers it spawns.

    Quiet: C++ log lines on descriptor 2 go to `log_file` (or nowhere), Python's library
    loggers and warnings below ERROR are dropped. Idempotent; a second call may name a
    log file. Skipped where stderr is not the process's own (e.g. under pytest capture).
    """
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:
        return
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(?!mnas_tf|search|"
                                                                   r"latency|export)")
    if sys.stderr is sys.__stderr__ or _state["quiet"]:
        _redirect_fd2(log_file)  # else a test harness captures stderr: leave it alone
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with TensorFlow; the toy search needs neither
        return
    # warnings and errors only; mnas_tf.train raises it to INFO for its step lines
    absl_logging.set_verbosity(absl_logging.WARNING)
    absl_logging.get_absl_handler().python_handler.stream = sys.stderr


def _redirect_fd2(log_file: Optional[str]) -> None:
    sys.stderr.flush()
    if not _state["quiet"]:
        terminal = os.dup(2)  # not inheritable: workers never see the terminal
        sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0),
                                      encoding=sys.__stderr__.encoding or "utf-8",
                                      errors="backslashreplace", line_buffering=True,
                                      write_through=True)
        _state["quiet"] = True
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    sink = os.open(log_file or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(sink, 2)
    os.close(sink)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Holds Python prints (pycocotools' "loading annotations...", its eval tables) in
    quiet mode; passes them through with --verbose."""
    if is_verbose():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def trial_log(path: Optional[str]) -> Iterator[None]:
    """Descriptors 1 and 2 (C++ and Python output alike) go to `path` for the block, so a
    worker's trial leaves a log to read; with --verbose the log is echoed afterwards to
    what stderr was before."""
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        if is_verbose():
            with open(path, errors="replace") as f:
                sys.stderr.write(f.read())
            sys.stderr.flush()


VERBOSE_HELP = "show TensorFlow's, the converter's and the libraries' own log lines"


def cli(argv=None, log_file: Optional[str] = None) -> list:
    """For a CLI's `main(argv)`: takes `--verbose` out of the arguments (any subcommand may
    carry it), sets the console up, and returns the rest for argparse."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    setup(verbose, log_file)
    return [a for a in args if a != "--verbose"]


def add_flag(parser) -> None:
    """Lists `--verbose` in a parser's --help (`cli` has already taken it out)."""
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
