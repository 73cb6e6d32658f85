"""The ``saga-outbox`` command: one parser, one error rule.

``outbox_relay`` owns ``relay`` and ``outbox …``; the other sub-packages (and any installed
package) add commands through the ``saga_outbox.commands`` entry-point group. Every error the
package raises derives from :class:`saga_outbox.Error`: it is printed as one line and the
command exits 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ._errors import Error

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from outbox_relay.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except Error as exc:
        print(f"saga-outbox: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
