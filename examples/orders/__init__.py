"""The reference order domain, written only on saga-outbox's public API, like any user's app:
tables, the ``place_order`` command, the saga steps and the app object that wires them."""
