"""The machine, the versions and the settings a result was measured with."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {
        "cores": os.cpu_count() or 0,
        "cpu_model": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions(redis_url: str | None) -> dict:
    import confluent_kafka

    from streams.kafka_provision import kafka_version

    return {
        "python": platform.python_version(),
        "antifraud": _package("antifraud"),
        "faust": _package("faust-streaming"),
        "aiokafka": _package("aiokafka"),
        "confluent_kafka": _package("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "msgspec": _package("msgspec"),
        "kafka": kafka_version(),  # the pinned broker version (deploy/kafka/pom.xml)
        "valkey": valkey_version(redis_url),
    }


def valkey_version(redis_url: str | None) -> str:
    if not redis_url:
        return "unknown"
    import redis

    try:
        info = redis.Redis.from_url(redis_url, socket_timeout=5).info("server")
    except redis.RedisError:
        return "unreachable"
    return str(info.get("valkey_version") or info.get("redis_version") or "unknown")
