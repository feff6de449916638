"""The one fetch engine a process uses for S3, chosen, sized and timed from the settings.

obstore when it is installed (its transfers run outside the interpreter lock, so a fetch
does not slow the `import tensorflow` it overlaps); botocore otherwise, said in one line.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from preheat import constants as c
from preheat.cache.engine import Engine
from preheat.exceptions import ConfigurationError
from preheat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("preheat")

_lock = threading.Lock()
_clients: dict[tuple[str, int, float], Engine] = {}


def _obstore_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("obstore") is not None


def engine_name(settings: Settings) -> str:
    """The engine these settings get: "auto" is obstore when installed, else botocore."""
    if settings.fetch_engine == "auto":
        if _obstore_installed():
            return "obstore"
        log.info(
            "fetch engine: obstore is not installed; fetching with botocore, whose reads "
            "hold the interpreter lock (pip install obstore, or set %s=botocore to choose it)",
            c.ENV_FETCH_ENGINE,
        )
        return "botocore"
    if settings.fetch_engine == "obstore" and not _obstore_installed():
        raise ConfigurationError(
            c.ENV_FETCH_ENGINE,
            "obstore",
            "obstore is not installed; pip install obstore, or use auto or botocore",
        )
    return settings.fetch_engine


def make_client(settings: Settings) -> Engine:
    """A new engine: one attempt per request, the settings' timeouts.

    preheat retries each chunk itself (with backoff, and stopping when the fetch stalls),
    so every request is counted against fetch_retries and a stalled read costs one
    fetch_timeout_s. Endpoint, region and credentials are boto3's.
    """
    name = engine_name(settings)
    if name == "obstore":
        from preheat.cache.engine_obstore import ObstoreEngine
        from preheat.cache.s3env import target_from

        return ObstoreEngine(target_from(os.environ), settings.fetch_timeout_s)
    from preheat.cache.engine_botocore import BotocoreEngine

    return BotocoreEngine.for_settings(settings)


def as_engine(client: Engine | S3Client) -> Engine:
    """An engine for what a caller passed: an engine as is, a boto3 client wrapped."""
    if isinstance(client, Engine):
        return client
    from preheat.cache.engine_botocore import BotocoreEngine

    return BotocoreEngine(client)


def default_client(settings: Settings) -> Engine:
    """The process-wide engine for these settings, created on first use (INIT) and reused."""
    key = (settings.fetch_engine, settings.fetch_concurrency, settings.fetch_timeout_s)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make_client(settings)
        return client


def forget() -> int:
    """Close and drop the process's engines; the next fetch makes new ones. Engines closed.

    Before a SnapStart snapshot so that no connection is frozen into it, and after a
    restore, when connections and credentials from before the snapshot are stale.
    """
    with _lock:
        engines = list(_clients.values())
        _clients.clear()
    for engine in engines:
        engine.close()
    return len(engines)
