"""The real app served by uvicorn on a loopback port (for the Python client and the SDK)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from cloud.core.settings import Settings


def serve(database_url: str, pg_pool: Any) -> Iterator[str]:
    """Start the API, yield its base URL, stop it after."""
    from cloud.api.app import create_app

    settings = Settings(
        database_url=database_url,
        jwt_secret="events-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398",
        ratelimit_storage="memory",
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings, pool=pg_pool), log_config=None,
                            timeout_graceful_shutdown=1)  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if srv.started:
            break
        threading.Event().wait(0.02)
    assert srv.started, "the API did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()
