"""Apache Kafka's jars for the embedded broker: fetched once from Maven Central, then cached.

deploy/kafka/pom.xml names the one Kafka version. `mvn dependency:copy-dependencies` copies
the broker and its run-time dependencies into a cache outside git
(ANTIFRAUD_CACHE_DIR, default ~/.cache/antifraud), one directory per version; a later run
finds the directory complete (a marker file written last) and makes no network call.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
LOG4J2_CONFIG = POM.parent / "log4j2.properties"
_COMPLETE = ".complete"


class MissingTool(RuntimeError):
    """A program the embedded broker needs is not installed; the message says what to install."""


def kafka_version(pom: Path = POM) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if version is None or not (version.text or "").strip():
        raise ValueError(f"{pom}: no <kafka.version> property")
    return version.text.strip()


def cache_dir() -> Path:
    if "ANTIFRAUD_CACHE_DIR" in os.environ:
        return Path(os.environ["ANTIFRAUD_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "antifraud"


def java_binary() -> str:
    """java from JAVA_HOME, else from PATH; Kafka 4 needs 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise MissingTool("the embedded Kafka broker needs a Java 17+ runtime: install it "
                          "(Debian: apt-get install openjdk-17-jre-headless) or set KAFKA_BOOTSTRAP_SERVERS")
    return candidate


def kafka_classpath(pom: Path = POM) -> str:
    """The classpath of the pinned Kafka broker, fetching its jars on first use."""
    libs = cache_dir() / f"kafka-{kafka_version(pom)}" / "libs"
    if not (libs / _COMPLETE).exists():
        libs.parent.mkdir(parents=True, exist_ok=True)
        # Two processes (tests, a second `make run`) may start at once: one fetches, the other waits.
        with open(libs.parent / ".fetch.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (libs / _COMPLETE).exists():
                _fetch(pom, libs)
    return f"{libs}/*"


def _fetch(pom: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool("the embedded Kafka broker is fetched from Maven Central with Maven: install Maven 3 "
                          "(Debian: apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("fetching Apache Kafka %s from Maven Central into %s (once)", kafka_version(pom), libs)
    done = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={partial}"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mvn could not fetch Kafka (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (partial / _COMPLETE).write_text(kafka_version(pom) + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
