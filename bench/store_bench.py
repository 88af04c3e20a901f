"""Benchmark: the file stores (workflow/filestore.py), a folder and an S3 bucket.

    .venv/bin/python bench/store_bench.py [--files N] [--sizes 100,1000,5000]

Starts the tests' SeaweedFS server (tests/s3server.py) in a temporary folder and,
for each size in KiB, puts N new objects, reads each back, checks them with
exists, walks the store, then removes them — in a folder store (fsync'd, as the
app writes) and in the bucket. Prints per operation the median and slowest time
and the throughput, so that a deployment can tell what the object store costs
an upload (the app's own request comes on top).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, items) -> list[float]:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - started)
    return times


def run(label: str, store, files: int, kib: int) -> None:
    payloads = [os.urandom(kib * 1024) for _ in range(files)]
    keys = [f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}" for _ in range(files)]

    def read(key):
        with store.open(key) as fh:
            fh.read()

    phases = [
        ("put_once", timed(lambda kv: store.put_once(*kv), zip(keys, payloads))),
        ("open+read", timed(read, keys)),
        ("exists", timed(store.exists, keys)),
    ]
    started = time.perf_counter()
    walked = sum(1 for _ in store.walk())
    phases.append(("walk (all)", [time.perf_counter() - started]))
    phases.append(("remove", timed(store.remove, keys)))
    assert walked >= files
    for name, times in phases:
        total = sum(times)
        rate = f"{len(times) / total:8.0f}/s" if len(times) > 1 else f"{walked:6d} objects"
        mb = f"{len(times) * kib / 1024 / total:7.1f} MB/s" if name in ("put_once", "open+read") else ""
        print(f"{label:<8} {kib:>6} KiB {name:<11} median {statistics.median(times) * 1000:7.2f} ms  "
              f"max {max(times) * 1000:7.2f} ms  {rate} {mb}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--sizes", default="100,1000,5000", help="object sizes in KiB, comma-separated")
    args = parser.parse_args()

    from tests import s3server
    from workflow.filestore import LocalStore, S3Store

    with tempfile.TemporaryDirectory() as tmp:
        server = s3server.start(Path(tmp) / "s3")
        try:
            client = server.client()
            client.create_bucket(Bucket="luoshi-bench")
            stores = [("folder", LocalStore(str(Path(tmp) / "folder"))),
                      ("s3", S3Store(client, "luoshi-bench", "bench/"))]
            print(f"SeaweedFS on {server.endpoint}; {args.files} objects per size\n")
            for kib in (int(s) for s in args.sizes.split(",")):
                for label, store in stores:
                    run(label, store, args.files, kib)
                print()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
