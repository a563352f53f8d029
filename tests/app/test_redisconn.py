"""app.redisconn: REDIS_URL with Redis Sentinel, tested against a real sentinel (redis-server --sentinel) that the
fixture starts with a master and a replica of its own, including a failover."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.errors import ConfigError
from app.redisconn import async_client, parse_sentinel, redis_settings_from_url, sync_client, validate
from tests.conftest import IN_CI, make_settings


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    t = parse_sentinel("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,host3/mymaster/2"
                       "?sentinel_password=sp")
    assert t.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("host3", 26379)]
    assert (t.master, t.db, t.password, t.sentinel_password, t.ssl) == ("mymaster", 2, "s3cret", "sp", False)
    assert parse_sentinel("rediss+sentinel://h:1/m").ssl
    settings = redis_settings_from_url("redis+sentinel://h1:26379,h2:26379/gongdan/3")
    assert (settings.sentinel, settings.host, settings.sentinel_master, settings.database) == (
        True, [("h1", 26379), ("h2", 26379)], "gongdan", 3)
    assert not redis_settings_from_url("redis://127.0.0.1:6379/4").sentinel


@pytest.mark.parametrize("url", ["http://x", "redis+sentinel:///m/0", "redis+sentinel://h:port/m",
                                 "redis+sentinel://h:1/m/zero"])
def test_bad_redis_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError):
        validate(url)


def test_settings_accept_a_sentinel_url_and_a_replica_url() -> None:
    from app.settings import load_settings

    s = load_settings({"GONGDAN_ENV": "test", "REDIS_URL": "redis+sentinel://127.0.0.1:26379/mymaster/0",
                       "DATABASE_REPLICA_URL": "sqlite://:memory:"}, env_file=None)
    assert s.redis_url == "redis+sentinel://127.0.0.1:26379/mymaster/0"
    assert s.database_replica_url == "sqlite://:memory:"
    with pytest.raises(ConfigError):
        load_settings({"GONGDAN_ENV": "test", "REDIS_URL": "memcached://x"}, env_file=None)


# ---- a real Sentinel ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class SentinelSet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.master_port, self.replica_port, self.sentinel_port = _free_port(), _free_port(), _free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def _server(self, *args: str, name: str) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT))

    def start(self) -> None:
        import redis

        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self._server("--port", str(self.master_port), *common, name="master")
        self._server("--port", str(self.replica_port), "--replicaof", "127.0.0.1", str(self.master_port), *common,
                     name="replica")
        conf = self.tmp / "sentinel.conf"
        conf.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.tmp}\n"
                        f"sentinel monitor gdmaster 127.0.0.1 {self.master_port} 1\n"
                        "sentinel down-after-milliseconds gdmaster 1000\n"
                        "sentinel failover-timeout gdmaster 5000\n")
        self._server(str(conf), "--sentinel", name="sentinel")
        replica: Any = redis.Redis(port=self.replica_port)
        _wait(lambda: replica.info("replication")["master_link_status"] == "up", 15, "the replica to sync")
        sentinel: Any = redis.Redis(port=self.sentinel_port)
        _wait(lambda: int(sentinel.sentinel_master("gdmaster")["num-slaves"]) >= 1, 15,
              "the sentinel to see the replica")
        replica.close()
        sentinel.close()

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/gdmaster/0"

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSet]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is required under CI")
        pytest.skip("redis-server is not installed")
    s = SentinelSet(tmp_path)
    try:
        s.start()
        yield s
    finally:
        s.stop()


async def test_clients_and_arq_reach_the_master_through_the_sentinel_and_follow_a_failover(
        sentinel: SentinelSet) -> None:
    from arq.connections import create_pool

    from app.queue import ArqQueue

    client = async_client(sentinel.url)
    await client.set("gd:probe", "1")
    assert await client.get("gd:probe") == b"1"
    assert sync_client(sentinel.url).get("gd:probe") == b"1"
    pool = await create_pool(redis_settings_from_url(sentinel.url))
    queue = ArqQueue(pool)
    await queue.enqueue("process_inbound_event", 1, job_id="inbound:1:0")
    assert await pool.zcard("arq:queue") == 1
    # the written data is on the master we started
    import redis

    assert redis.Redis(port=sentinel.master_port).zcard("arq:queue") == 1

    # failover: the replica becomes the master and the same clients write there
    sentinel_admin: Any = redis.Redis(port=sentinel.sentinel_port)

    def failover() -> bool:
        # right after start the sentinel may not yet rate the replica good enough to promote: ask again
        try:
            sentinel_admin.execute_command("SENTINEL", "FAILOVER", "gdmaster")
        except redis.exceptions.ResponseError as exc:
            if "NOGOODSLAVE" in str(exc):
                return False
            raise
        return True

    _wait(failover, 20, "a replica the sentinel can promote")
    _wait(lambda: int(sentinel_admin.sentinel_get_master_addr_by_name("gdmaster")[1]) == sentinel.replica_port, 20,
          "the sentinel to promote the replica")
    promoted: Any = redis.Redis(port=sentinel.replica_port)
    _wait(lambda: promoted.info("replication")["role"] == "master", 20, "the replica to become master")
    # until the old master is demoted it still takes writes that the promotion loses (Redis replicates
    # asynchronously): a deployment sets min-replicas-to-write; the test waits
    old: Any = redis.Redis(port=sentinel.master_port)
    _wait(lambda: old.info("replication")["role"] == "slave", 20, "the old master to be demoted")
    old.close()
    for _ in range(50):  # connections to the old master fail once; the next one asks the sentinel again
        try:
            await queue.enqueue("process_inbound_event", 2, job_id="inbound:2:0")
            break
        except Exception:
            await asyncio.sleep(0.2)
    assert promoted.zcard("arq:queue") == 2
    await client.set("gd:after", "2")
    assert promoted.get("gd:after") == b"2"
    await client.aclose()
    await queue.close()
    sentinel_admin.close()
    promoted.close()


async def test_the_replay_guard_works_through_the_sentinel(sentinel: SentinelSet) -> None:
    from app.wecom.replay import make_replay_guard

    guard = make_replay_guard(make_settings(redis_url=sentinel.url))
    assert await guard.first_seen("k1", 60)
    assert not await guard.first_seen("k1", 60)
    results = await asyncio.gather(*(guard.first_seen(f"k{n}", 60) for n in range(2, 40)))
    assert all(results)
