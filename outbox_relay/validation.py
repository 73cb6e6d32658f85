"""Checks enqueue runs before any SQL, so that bad input raises a named error and leaves the
caller's transaction usable (a statement that fails inside PostgreSQL aborts the transaction).

:func:`jsonb_text_size` walks a payload once: it refuses what PostgreSQL or SQS would refuse
later, and measures the bytes of the text PostgreSQL prints for the jsonb value, which is what
the relay splices into the message (numbers print as numeric: ``1e300`` becomes 301 digits).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .exceptions import (
    DuplicateKeyError,
    InvalidEventIdError,
    InvalidUnicodeError,
    NulCharacterError,
    PayloadNotJsonError,
    PayloadTooDeepError,
)

__all__ = ["MAX_DEPTH", "check_event_id", "check_text", "jsonb_text_size"]

#: nesting levels a payload may have; far above any real event, far below Python's recursion
#: limit and PostgreSQL's stack depth
MAX_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
# SQS refuses characters outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF in
# message attribute values (event_type travels as one)
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_text(value: str, *, what: str, event_id: str, sqs_attribute: bool = False) -> None:
    """PostgreSQL text cannot hold NUL; UTF-8 cannot encode a lone surrogate."""
    if "\x00" in value:
        raise NulCharacterError(
            f"event {event_id}: {what} contains a NUL character (\\x00), which PostgreSQL text and "
            "jsonb cannot store; strip it or encode the value (e.g. base64)"
        )
    if _SURROGATE.search(value):
        raise InvalidUnicodeError(
            f"event {event_id}: {what} contains a lone surrogate ({_SURROGATE.search(value).group()!a}), "  # type: ignore[union-attr]
            "which is not valid Unicode and cannot be encoded as UTF-8"
        )
    if sqs_attribute and (bad := _NOT_SQS_TEXT.search(value)):
        raise InvalidUnicodeError(
            f"event {event_id}: {what} contains {bad.group()!a}, a character SQS refuses in a message "
            "attribute"
        )


def check_event_id(event_id: Any) -> uuid.UUID:
    if isinstance(event_id, uuid.UUID):
        return event_id
    if isinstance(event_id, str):
        try:
            return uuid.UUID(event_id)
        except ValueError:
            pass
    raise InvalidEventIdError(f"event_id must be a UUID (uuid.UUID or its text form), got {event_id!r}")


def _key_text(key: Any, *, what: str, event_id: str) -> str:
    # the text json.dumps gives a key: only these types are accepted as keys
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return _number_text(key, what=what, event_id=event_id, json_form=True)
    raise PayloadNotJsonError(
        f"event {event_id}: {what} has a key of type {type(key).__name__} ({key!r}); keys must be strings"
    )


def _number_text(value: int | float, *, what: str, event_id: str, json_form: bool = False) -> str:
    try:
        if isinstance(value, int):
            return str(int(value))
        if not math.isfinite(value):
            raise PayloadNotJsonError(
                f"event {event_id}: {what} holds {value!r}: Out of range float values are not JSON compliant"
            )
        if json_form:
            return float.__repr__(value)
        # PostgreSQL's numeric prints plain notation, no exponent, and has no negative zero
        text = format(Decimal(float.__repr__(value)), "f")
        return text[1:] if value == 0 and text.startswith("-") else text
    except ValueError as exc:  # an int past Python's int-to-str digit limit
        raise PayloadNotJsonError(
            f"event {event_id}: {what} holds a number JSON cannot carry: {exc}"
        ) from exc


def _string_size(value: str) -> int:
    # jsonb escapes ", \ and control characters exactly as json.dumps(ensure_ascii=False) does:
    # 2 bytes for the quotes, 1 more per short escape, 5 more per \u00XX
    size = len(value.encode("utf-8")) + 2
    for ch in value:
        if ch in '"\\\b\f\n\r\t':
            size += 1
        elif ch < " ":
            size += 5
    return size


def jsonb_text_size(value: Any, *, what: str = "payload", event_id: str = "-", _depth: int = 0) -> int:
    """Bytes of ``value`` as PostgreSQL prints it as jsonb (", " and ": " separators); raises a
    named :class:`InvalidEventError` for what cannot be stored or sent."""
    if _depth > MAX_DEPTH:
        raise PayloadTooDeepError(
            f"event {event_id}: {what} is nested too deep (more than {MAX_DEPTH} levels of objects "
            "and arrays); flatten it"
        )
    if isinstance(value, str):
        check_text(value, what=what, event_id=event_id)
        return _string_size(value)
    if value is None or value is True or value is False:
        return {None: 4, True: 4, False: 5}[value]
    if isinstance(value, int | float):
        return len(_number_text(value, what=what, event_id=event_id))
    if isinstance(value, Mapping):
        seen: dict[str, Any] = {}
        size = 2 + max(0, len(value) - 1) * 2  # braces, ", " between members
        for key, item in value.items():
            text = _key_text(key, what=what, event_id=event_id)
            if text in seen:
                raise DuplicateKeyError(
                    f"event {event_id}: {what} has keys {seen[text]!r} and {key!r}, which are both "
                    f"{text!r} in JSON: one would silently replace the other"
                )
            seen[text] = key
            check_text(text, what=f"a key of {what}", event_id=event_id)
            size += (
                _string_size(text)
                + 2
                + jsonb_text_size(item, what=what, event_id=event_id, _depth=_depth + 1)
            )
        return size
    if isinstance(value, list | tuple):
        size = 2 + max(0, len(value) - 1) * 2
        for item in value:
            size += jsonb_text_size(item, what=what, event_id=event_id, _depth=_depth + 1)
        return size
    raise PayloadNotJsonError(
        f"event {event_id}: {what} is not JSON-serializable: Object of type {type(value).__name__} "
        "is not JSON serializable"
    )
