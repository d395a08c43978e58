"""Clients, built lazily once per process and handed to the use cases."""

from concurrent.futures import ThreadPoolExecutor
from functools import cache, cached_property

import redis
from minio import Minio
from psycopg_pool import ConnectionPool

from . import database, storage
from .reader import Reader
from .settings import Settings


class Clients:
    """Everything a use case talks to; each client is created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # batch id -> the last status answer and what it was built from: see status.py
        self.status_cache: dict[str, object] = {}

    @cached_property
    def pool(self) -> ConnectionPool:
        return database.connect_pool(self.settings, "work")

    @cached_property
    def lock_pool(self) -> ConnectionPool:
        """Connections that hold file locks for a whole load: a pool of their own, so a load
        holding one never waits for its second connection behind other files' locks."""
        return database.connect_pool(self.settings, "locks")

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )

    @cached_property
    def store(self) -> Minio:
        return storage.client(self.settings, self.settings.s3_endpoint)

    @cached_property
    def signer(self) -> Minio:
        """Signs URLs for the endpoint browsers reach (the signature covers the host)."""
        return storage.client(self.settings, self.settings.presign_endpoint)

    @cached_property
    def put_signer(self) -> storage.PutSigner:
        return storage.PutSigner(self.settings)

    @cached_property
    def reader(self) -> Reader:
        return Reader(self.settings)

    @cached_property
    def background(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=4, thread_name_prefix="dispatch")

    def forget_status(self, batch_id: str) -> None:
        """This process changed the batch's view: its next status answer is built afresh."""
        self.status_cache.pop(batch_id, None)

    def close(self) -> None:
        for name in ("pool", "lock_pool"):
            if name in self.__dict__:
                self.__dict__[name].close()
        if "background" in self.__dict__:
            self.background.shutdown(wait=True)


@cache
def get_clients() -> Clients:
    """The process-wide clients, built from the environment on first call."""
    return Clients(Settings())  # type: ignore[call-arg]
