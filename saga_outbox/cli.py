"""The ``saga-outbox`` command: one parser, one error rule.

``outbox_relay`` owns ``relay`` and ``outbox …``; the other sub-packages (and any installed
package) add commands through the ``saga_outbox.commands`` entry-point group. Every error ends
the command with one line, ``saga-outbox: error: <message>``, and exit status 2: errors the
package raises (:class:`saga_outbox.Error`), usage errors, a missing optional extra (the line
names the ``pip install`` that brings it) and unexpected exceptions (``-v`` adds the traceback).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence

from ._errors import Error

__all__ = ["main"]

# The loggers whose INFO lines are what a command reports; every other library (botocore's
# "Found credentials", werkzeug's request lines, moto) is heard only from WARNING unless -v.
_OWN_LOGGERS = ("saga_outbox", "outbox_relay")


def _configure_logging(verbose: int) -> None:
    root = logging.getLogger()
    if root.handlers:  # embedded in a program (or a test run) that set up logging: leave it be
        return
    logging.basicConfig(
        level=logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose == 0 else logging.DEBUG)


def _fail(message: str) -> int:
    # One line even when a message (a driver's, say) spans several.
    print(f"saga-outbox: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    from outbox_relay.cli import build_parser, missing_extra_message

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except Error as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except ImportError as exc:
        hint = missing_extra_message(exc, getattr(args, "command", None))
        if hint is not None:
            return _fail(hint)
        return _unexpected(exc, args.verbose)
    except Exception as exc:
        return _unexpected(exc, args.verbose)


def _stdout_closed() -> int:
    """The reader went away (``saga-outbox ... | head``): quiet, as other Unix tools are, and
    with stdout pointed at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's StringIO): nothing to protect
        pass
    finally:
        os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it


def _unexpected(exc: Exception, verbose: int) -> int:
    """A bug or an error nobody translated yet: still one line; -v shows where it came from."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    first = (str(exc).strip().splitlines() or [""])[0]
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return _fail(f"unexpected {detail}" + ("" if verbose else " (run with -v for the traceback)"))


if __name__ == "__main__":
    sys.exit(main())
