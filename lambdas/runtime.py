"""Process-wide wiring of the handlers: configuration, SQLAlchemy engine, boto3 clients.

Everything is lazy: importing a handler module reads no environment variable and opens no
connection. On the first invocation the module-level ``handler`` of each
``saga_outbox.lambdas.handlers.*`` module calls :func:`get_runtime`, which (unless :func:`configure` was
called) validates the environment into a :class:`~saga_outbox.lambdas.config.RuntimeConfig` and
builds a :class:`Runtime`; the handler built from it is cached for the life of the process.

Injection (tests, the local runtime)::

    from saga_outbox.lambdas.config import RuntimeConfig
    from saga_outbox.lambdas import runtime

    runtime.configure(
        RuntimeConfig(database_url=url, state_machine_arns={...}, idempotency_table="idem", ...),
        engine=engine,                  # shared engine; never disposed by us
        sfn_client=moto_sfn, sqs_client=moto_sqs, dynamodb_client=moto_ddb,
    )
    saga_outbox.lambdas.handlers.steps.handler(payload, context)   # now uses the injected clients

or build one handler explicitly with its factory, e.g.
``saga_outbox.lambdas.handlers.dispatcher.make_handler(Runtime(config, sfn_client=...))``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# Imported where used, not here: a handler module imports this one, and a cold start should
# not pay for SQLAlchemy (the dispatcher opens no database), pydantic (only the environment's
# validation in RuntimeConfig.from_env uses it) or the exceptions' workflow definitions before
# the first invocation needs them.
if TYPE_CHECKING:
    import sqlalchemy as sa

    from saga_outbox._app import SagaApp

    from .config import RuntimeConfig

__all__ = ["LazyHandler", "Runtime", "configure", "get_runtime", "reset"]

Handler = Callable[[dict[str, Any], Any], Any]


class Runtime:
    """Configuration plus lazily created clients. Injected clients/engines are used as given
    and never closed; the engine this object creates itself is disposed by :meth:`close`."""

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        app: SagaApp | None = None,
        engine: sa.Engine | None = None,
        boto3_session: Any | None = None,
        sfn_client: Any | None = None,
        sqs_client: Any | None = None,
        dynamodb_client: Any | None = None,
        secrets_client: Any | None = None,
        rds_client: Any | None = None,
    ) -> None:
        self.config = config
        self._app = app
        self._engine = engine
        self._owns_engine = False
        self._session: Any = boto3_session
        self._clients: dict[str, Any] = {
            k: v
            for k, v in {
                "stepfunctions": sfn_client,
                "sqs": sqs_client,
                "dynamodb": dynamodb_client,
                "secretsmanager": secrets_client,
                "rds": rds_client,
            }.items()
            if v is not None
        }
        self._handlers: dict[object, Handler] = {}
        self._lock = threading.RLock()

    @property
    def app(self) -> SagaApp:
        """The user's app: the injected one, or ``SAGA_OUTBOX_APP`` imported and checked once
        (a workflow whose action nobody registered fails the cold start, naming it)."""
        with self._lock:
            if self._app is None:
                from saga_outbox._discovery import load_app

                self.config.require("app")
                assert self.config.app is not None
                self._app = load_app(self.config.app)
            return self._app

    # ------------------------------------------------------------------ clients
    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    import boto3

                    self._session = boto3.session.Session()
                self._clients[service] = self._session.client(service, config=_client_config(service))
            return self._clients[service]

    @property
    def sfn_client(self) -> Any:
        return self.client("stepfunctions")

    @property
    def sqs_client(self) -> Any:
        return self.client("sqs")

    @property
    def dynamodb_client(self) -> Any:
        return self.client("dynamodb")

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
                self._owns_engine = True
            return self._engine

    def _create_engine(self) -> sa.Engine:
        import sqlalchemy as sa

        cfg = self.config
        cfg.require("database")
        # A Lambda handles one request at a time: a tiny pool, checked before use.
        options: dict[str, Any] = {
            "pool_size": 1,
            "max_overflow": 2,
            "pool_pre_ping": True,
            "pool_recycle": 600,
        }
        if cfg.database_url is not None:
            from outbox_relay.embedded import sqlalchemy_url

            return sa.create_engine(sqlalchemy_url(cfg.database_url), **options)
        return self._create_iam_engine(options)

    def _create_iam_engine(self, options: dict[str, Any]) -> sa.Engine:
        import sqlalchemy as sa
        from botocore.exceptions import BotoCoreError, ClientError

        from .exceptions import ConfigurationError

        cfg = self.config
        assert cfg.database_proxy_endpoint and cfg.database_name and cfg.database_secret_arn
        host, _, port_text = cfg.database_proxy_endpoint.partition(":")
        port = int(port_text) if port_text else 5432
        try:
            secret = self.client("secretsmanager").get_secret_value(SecretId=cfg.database_secret_arn)
            username = json.loads(secret["SecretString"])["username"]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigurationError(
                f"cannot read DATABASE_SECRET_ARN {cfg.database_secret_arn}: {exc}"
            ) from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"DATABASE_SECRET_ARN {cfg.database_secret_arn} has no JSON 'username' field"
            ) from exc
        url = sa.URL.create(
            "postgresql+psycopg",
            username=username,
            host=host,
            port=port,
            database=cfg.database_name,
            query={"sslmode": "require"},
        )
        engine = sa.create_engine(url, **options)
        rds = self.client("rds")

        @sa.event.listens_for(engine, "do_connect")
        def _iam_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            # Tokens live 15 minutes and are only checked at connect: sign one per connection.
            cparams["password"] = rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=username)

        return engine

    # ------------------------------------------------------------------ handlers
    def cached_handler(self, factory: Callable[[Runtime], Handler]) -> Handler:
        """Build ``factory(self)`` once (cold start) and reuse it."""
        with self._lock:
            handler = self._handlers.get(factory)
            if handler is None:
                handler = factory(self)
                self._handlers[factory] = handler
            return handler

    def close(self) -> None:
        with self._lock:
            if self._owns_engine and self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._owns_engine = False
            self._handlers.clear()


_current: Runtime | None = None
_current_lock = threading.Lock()


def configure(config: RuntimeConfig | None = None, **clients: Any) -> Runtime:
    """Install the process-wide runtime used by the module-level ``handler`` functions.

    ``clients`` are the keyword arguments of :class:`Runtime` (``engine``, ``sfn_client``,
    ``sqs_client``, ``dynamodb_client``, ``boto3_session``, ...). ``config`` defaults to the
    environment. Replaces (and closes) a previous runtime."""
    global _current
    if config is None:
        from .config import RuntimeConfig

        config = RuntimeConfig.from_env()
    runtime = Runtime(config, **clients)
    with _current_lock:
        previous, _current = _current, runtime
    if previous is not None:
        previous.close()
    return runtime


def get_runtime() -> Runtime:
    """The configured runtime, or one built from the environment on first use."""
    global _current
    with _current_lock:
        if _current is None:
            from .config import RuntimeConfig

            _current = Runtime(RuntimeConfig.from_env())
        return _current


def reset() -> None:
    """Forget (and close) the process-wide runtime; the next invocation re-reads the environment."""
    global _current
    with _current_lock:
        previous, _current = _current, None
    if previous is not None:
        previous.close()


class LazyHandler:
    """A Lambda entry point that builds its real handler from :func:`get_runtime` on first call."""

    def __init__(self, factory: Callable[[Runtime], Handler]) -> None:
        self._factory = factory
        self.__doc__ = factory.__doc__

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return get_runtime().cached_handler(self._factory)(event, context)


def _client_config(service: str) -> Any:
    """SQS clients publish for the relay: they get the relay's timeouts, so that an attempt
    always fits inside a lease (see ``SqsFifoPublisher.client_config``)."""
    if service != "sqs":
        return None
    from outbox_relay.publisher import SqsFifoPublisher

    return SqsFifoPublisher.client_config()
