"""Uploading a 256 MB training file to Azurite: ``BlobStore.upload`` vs ``upload_blob``.

Both use ``max_concurrency=4`` (BlobStore's default) against the same Azurite, runs
interleaved; the file is generated in a temporary directory and deleted afterwards, and
every uploaded blob is deleted after its run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import Report, Row, median

NAME = "upload"
TITLE = "uploading a 256 MB training file to Azurite"
CONCURRENCY = 4
CONTAINER = "benchupload"


def _make_file(path: Path, size: int) -> None:
    """A CSV-like file of ``size`` bytes (random digits: not compressible)."""
    chunk = 4 * 1024 * 1024
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            want = min(chunk, size - written)
            block = os.urandom(want // 2 + 1).hex().encode()[:want]
            handle.write(block)
            written += len(block)


def run(quick: bool) -> Report:
    """Upload the file with both, interleaved, and compare throughputs."""
    import logging

    from azure.storage.blob import BlobServiceClient

    from amlretrain.emulator.azurite import Azurite
    from amlretrain.storage import BlobStore

    logging.getLogger("azure").setLevel(logging.ERROR)
    size = (16 if quick else 256) * 1024 * 1024
    reps = 1 if quick else 3
    report = Report(name=NAME, title=f"uploading a {size >> 20} MB training file to Azurite")
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="amlretrain-bench-") as tmp, Azurite() as azurite:
        path = Path(tmp) / "training.csv"
        _make_file(path, size)
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container(CONTAINER)
        store = BlobStore.from_connection_string(azurite.connection_string)
        for rep in range(reps):
            order = ("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours")
            for who in order:
                name = f"{who}-{rep}.csv"
                started = time.monotonic()
                if who == "ours":
                    store.upload(
                        path, container=CONTAINER, blob_name=name, max_concurrency=CONCURRENCY
                    )
                    ours.append(time.monotonic() - started)
                else:
                    blob = service.get_blob_client(CONTAINER, name)
                    with open(path, "rb") as handle:
                        blob.upload_blob(
                            handle, length=size, overwrite=True, max_concurrency=CONCURRENCY
                        )
                    theirs.append(time.monotonic() - started)
                service.get_blob_client(CONTAINER, name).delete_blob()
        service.close()
    mb = size / 1024 / 1024
    t_ours, t_theirs = median(ours), median(theirs)
    ratio = (mb / t_ours) / (mb / t_theirs)
    report.rows.append(
        Row(
            what=f"{mb:.0f} MB upload throughput, max_concurrency={CONCURRENCY}",
            figure=f"{mb / t_ours:.1f} MB/s",
            baseline=f"{mb / t_theirs:.1f} MB/s",
            ratio=ratio,
            ratio_label=" of its throughput",
            target=">= 0.9 of its throughput",
            passed=ratio >= 0.9,
        )
    )
    report.notes.append(
        f"medians of {reps} interleaved runs (alternating who goes first): BlobStore "
        f"{', '.join(f'{t:.1f}' for t in ours)} s; upload_blob "
        f"{', '.join(f'{t:.1f}' for t in theirs)} s"
    )
    return report
