"""Where moto's SQS is less safe than SQS, made as safe, before anything sends or receives.

``Queue.delete_message`` (moto 5.x) rebuilds the queue's message list from the list it started
with and assigns the copy back, without the queue's lock. When two deletes overlap (the threaded
moto server serving two dispatcher pollers), the one that assigns last throws away the other's
list: a message sent in between is gone, though SendMessageBatch reported it accepted, and the
message the other delete removed comes back. SQS does neither. This made the chaos harness report
"never received" events (17 and 44 of 100,000 in two default-scale runs on a loaded machine) that
no code of ours lost. The FIFO deduplication check in ``add_message`` also runs outside the lock,
so two concurrent sends of one MessageDeduplicationId could both be kept.

Both now run under the queue's own lock (a ``Condition`` over a re-entrant lock). :func:`apply`
is idempotent and called by everything that starts moto: the local runtime, ``local up``, the
chaos harness and the test suite. ``tests/integration/test_moto_fixes.py`` shows the loss
without it.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["apply"]

_APPLIED = "_saga_outbox_locked"


def apply() -> None:
    from moto.sqs.models import Queue

    for name in ("delete_message", "add_message"):
        original = getattr(Queue, name)
        if getattr(original, _APPLIED, False):
            continue
        setattr(Queue, name, _locked(original))


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def under_queue_lock(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._messages_lock:
            return method(self, *args, **kwargs)

    setattr(under_queue_lock, _APPLIED, True)
    return under_queue_lock
