"""Wheels for packaging tests, which cannot download any: an installed distribution packed back into
the wheel it came from (same files, same tags). A plain module: `from wheels import repack_installed`."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path


def repack_installed(distribution: str, folder: Path) -> Path:
    """The wheel an installed distribution came from, packed back from its installed files and tags."""
    dist = importlib.metadata.distribution(distribution)
    info = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip().split("-") for line in info.splitlines() if line.startswith("Tag:")]
    # A compressed tag set, as wheel names write several: cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    path = folder / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    root = Path(dist.locate_file(""))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for file in dist.files or ():
            name = file.as_posix()
            if name.startswith("..") or "__pycache__" in name or name.endswith(
                    ("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")):
                continue
            data = (root / file).read_bytes()
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([name, f"sha256={digest}", len(data)])
        record_name = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/RECORD"
        writer.writerow([record_name, "", ""])
        zf.writestr(record_name, record.getvalue())
    return path
