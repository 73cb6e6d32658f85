"""A small local web page over the inspector: ThreadingHTTPServer in a daemon thread."""

from __future__ import annotations

import json
import logging
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import page
from .errors import ExecutionNotFound, InspectorAWSError, InspectorError, StateMachineNotFound
from .inspector import ExecutionInspector

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["InspectorServer", "serve_inspector"]

log = logging.getLogger(__name__)

#: what a socket raises when the browser closed the connection first
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_SECURITY_HEADERS = {
    # Everything is served from this origin; nothing may reach the network.
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_STATIC = {
    "/static/inspector.js": ("text/javascript; charset=utf-8", page.APP_JS),
    "/static/inspector.css": ("text/css; charset=utf-8", page.STYLE_CSS),
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, "application/json", json.dumps(payload, default=str))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            self._route(url.path, parts, parse_qs(url.query))
        except (ExecutionNotFound, StateMachineNotFound) as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except InspectorAWSError as exc:  # Step Functions answered with an error
            self._json(HTTPStatus.BAD_GATEWAY, {"error": str(exc)})
        except InspectorError as exc:  # a bad filter in the query
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except _GONE as exc:
            # The browser went away mid-answer (reload, closed tab, a poll cut short): nobody is
            # left to read an error page, and writing one would only fail again.
            self.close_connection = True
            log.debug("inspector client left during %s: %r", self.path, exc)
        except Exception as exc:  # a page must answer, never hang the browser
            log.exception("inspector request failed: %s", self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc!r}"})

    def _route(self, raw_path: str, parts: list[str], query: dict[str, list[str]]) -> None:
        inspector = self.server.inspector
        html = "text/html; charset=utf-8"
        if raw_path in _STATIC:
            content_type, body = _STATIC[raw_path]
            self._send(HTTPStatus.OK, content_type, body)
        elif not parts:
            self._send(HTTPStatus.OK, html, page.INDEX_HTML)
        elif parts[0] == "executions" and len(parts) == 2:
            self._send(HTTPStatus.OK, html, page.EXECUTION_HTML)
        elif parts[:2] == ["api", "state-machines"] and len(parts) == 2:
            self._json(HTTPStatus.OK, [sm.to_dict() for sm in inspector.list_state_machines()])
        elif parts[:2] == ["api", "state-machines"] and len(parts) == 4 and parts[3] == "graph":
            self._json(HTTPStatus.OK, inspector.state_machine_graph(parts[2]).to_dict())
        elif parts[:2] == ["api", "executions"] and len(parts) == 2:
            limit = query.get("limit", [""])[0]
            items = inspector.list_executions(
                state_machine=query.get("state_machine", [None])[0] or None,
                status=query.get("status", [None])[0] or None,
                outcome=query.get("outcome", [None])[0] or None,
                max_results=int(limit) if limit.isdigit() else None,
            )
            self._json(HTTPStatus.OK, [e.to_dict() for e in items])
        elif parts[:2] == ["api", "executions"] and len(parts) == 3:
            self._json(HTTPStatus.OK, inspector.describe_execution(parts[2]).to_dict())
        elif parts[:2] == ["api", "executions"] and len(parts) == 4 and parts[3] == "history":
            self._json(HTTPStatus.OK, [r.to_dict() for r in inspector.history(parts[2])])
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {raw_path}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    inspector: ExecutionInspector

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints every handler exception as a traceback on stderr; a client that
        # hung up while its request was read is routine, the rest goes to the log.
        exc = sys.exc_info()[1]
        if isinstance(exc, _GONE):
            log.debug("inspector client %s left: %r", client_address, exc)
            return
        log.error("inspector connection from %s failed", client_address, exc_info=exc)


class InspectorServer:
    """A running inspector page; ``url`` is its base address, ``stop()`` shuts it down."""

    def __init__(self, inspector: ExecutionInspector, *, host: str, port: int) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.inspector = inspector
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="sfn-inspector", daemon=True
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def execution_url(self, execution_arn: str) -> str:
        from urllib.parse import quote

        return f"{self.url}/executions/{quote(execution_arn, safe='')}"

    def start(self) -> InspectorServer:
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` is called (or timeout); True when stopped."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.server_close()

    def __enter__(self) -> InspectorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_inspector(
    *, sfn_client: SFNClient | None, host: str = "127.0.0.1", port: int = 0
) -> InspectorServer:
    """Start the page in a daemon thread (``port=0`` picks a free port). ``sfn_client=None`` creates
    the default ``boto3.client("stepfunctions")`` on first request."""
    return InspectorServer(ExecutionInspector(sfn_client), host=host, port=port).start()
