"""Entry points: a user's mistake ends as one line on stderr and exit code 2, and known noise is silenced.

Every command of the suite ends with::

    if __name__ == "__main__":
        run_main(main, ConfigError)   # the adapter's own user-error classes, beside USER_ERRORS

A user error (a bad key, a missing file, an unreadable checkpoint) prints ``<command>: error: <message>``,
the message naming the key or file and what to do, and exits with 2 (argparse's code for bad usage). Any
other exception is a bug and keeps its traceback. ``--debug`` (before any ``--``) or ``PSKD_DEBUG=1``
shows the traceback of user errors too.

Known harmless warnings (deprecations inside torch.jit, mmengine and fairseq, which this suite cannot fix)
are silenced by their message only, so that a new warning still shows; the same filters go to the
commands the entry point starts (fairseq-train, search trials) through ``PYTHONWARNINGS``.
This module needs only the standard library (the ``common`` package around it brings torch, never a host
framework), so an adapter can import it before its host framework.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, NoReturn

DEBUG_FLAG = "--debug"
DEBUG_ENV = "PSKD_DEBUG"
USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake the user can fix; the message names the file or key and says what to do."""


# OS errors about a path name the path in their message; a missing file is the typical user mistake.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
)

# (category, start of the message): each is printed by a host framework on every run and needs no action.
# torch.jit: torchvision / mmcv / fairseq still decorate functions with torch.jit.script (deprecated in
# torch 2.14). pkg_resources: mmengine.utils.is_installed imports it at run time. Matched from the start of
# the message, as PYTHONWARNINGS does.
KNOWN_NOISE: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, "`torch.jit.script` is deprecated"),
    (FutureWarning, "`torch.jit.script_method` is deprecated"),
    (FutureWarning, "`torch.jit.trace` is deprecated"),
    (FutureWarning, "`torch.jit.trace_method` is deprecated"),
    (UserWarning, "pkg_resources is deprecated as an API"),
)
# (logger, start of the message): fairseq.tasks imports every task at import time, and the text-to-speech
# task logs this at INFO when tensorboardX is missing (the suite uses torch's own TensorBoard writer).
KNOWN_LOG_NOISE: tuple[tuple[str, str], ...] = (
    ("fairseq.tasks.text_to_speech", "Please install tensorboardX"),
)


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: list[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def silence_known_warnings(environ: MutableMapping[str, str] | None = None) -> None:
    """Ignore :data:`KNOWN_NOISE` in this process and, through ``PYTHONWARNINGS``, in the processes it
    starts (``environ`` defaults to ``os.environ``); drop :data:`KNOWN_LOG_NOISE` in this process.
    Call it before the host framework is imported: some of the noise comes at import time."""
    environ = os.environ if environ is None else environ
    specs = [f"ignore:{message}:{category.__name__}" for category, message in KNOWN_NOISE]
    for category, message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category)
    for name in {name for name, _ in KNOWN_LOG_NOISE}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages([m for n, m in KNOWN_LOG_NOISE if n == name]))
    present = [s for s in environ.get("PYTHONWARNINGS", "").split(",") if s]
    environ["PYTHONWARNINGS"] = ",".join(present + [s for s in specs if s not in present])


def debug_requested(argv: Sequence[str]) -> bool:
    """``--debug`` among the command's own arguments (those before ``--``), or ``PSKD_DEBUG=1``."""
    own = argv[: list(argv).index("--")] if "--" in argv else argv
    return DEBUG_FLAG in own or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def strip_debug_flag(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--debug`` before ``--`` (what follows ``--`` belongs to another tool)."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    return [a for a in argv[:cut] if a != DEBUG_FLAG] + argv[cut:]


def document_debug_flag(parser: argparse.ArgumentParser) -> None:
    """List ``--debug`` in the command's ``--help`` (:func:`run_main` takes it out of argv before parsing)."""
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")


def one_line(err: BaseException) -> str:
    """The exception's message on one line (its class name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def command_name(main: Callable[..., Any]) -> str:
    """``classification.train`` for the main of that module, also when it runs as ``python -m``; the
    script's file name when it runs as ``python path/to/script.py``."""
    spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
    if spec is not None:
        return spec.name
    return os.path.basename(sys.argv[0]) if main.__module__ == "__main__" else main.__module__


def run_main(main: Callable[[list[str]], Any], *user_errors: type[BaseException],
             argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``main(argv)`` and exit: 0 on success, 2 with one line on a user error (see the module doc).

    ``user_errors`` are the caller's own error classes (e.g. ``ConfigError``), beside :data:`USER_ERRORS`.
    A ``SystemExit`` from ``main`` (argparse's usage errors, ``sys.exit``) passes through unchanged.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    silence_known_warnings()
    try:
        main(strip_debug_flag(argv))
    except (*USER_ERRORS, *user_errors) as err:
        if debug:
            traceback.print_exc()
        print(f"{command_name(main)}: error: {one_line(err)}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)
    sys.exit(0)
