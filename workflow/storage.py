"""Evidence files: checked by content, stored outside the web root under their
sha256, written to a temporary file and renamed so that no half-written file
is ever visible under a real name."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile

from flask import current_app

# extension -> (mime type, content check)
ALLOWED = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
KIND_NAMES = "PDF、Word（.doc/.docx）、Excel（.xls/.xlsx）或图片（.png/.jpg/.gif/.webp）"


class FileRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _ooxml_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if any(n.startswith("word/") for n in names):
        return ".docx"
    if any(n.startswith("xl/") for n in names):
        return ".xlsx"
    return None


def sniff(data: bytes) -> set[str]:
    """The extensions the bytes really are (by magic numbers, not by name)."""
    if data.startswith(b"%PDF-"):
        return {".pdf"}
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return {".png"}
    if data.startswith(b"\xff\xd8\xff"):
        return {".jpg", ".jpeg"}
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return {".gif"}
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return {".webp"}
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):   # OLE2: legacy Word and Excel
        return {".doc", ".xls"}
    if data.startswith(b"PK\x03\x04"):
        kind = _ooxml_kind(data)
        return {kind} if kind else set()
    return set()


def check(data: bytes, filename: str) -> str:
    """Return the mime type, or raise FileRefused with a Chinese reason."""
    limit_mb = current_app.config["MAX_UPLOAD_MB"]
    if not data:
        raise FileRefused("文件是空的，请重新选择。")
    if len(data) > limit_mb * 1024 * 1024:
        raise FileRefused(f"文件超过 {limit_mb} MB 的上限，请压缩或拆分后再上传。")
    ext = os.path.splitext(filename)[1].lower()
    if ext not in ALLOWED:
        raise FileRefused(f"不支持的文件类型“{ext or '无扩展名'}”，只接受{KIND_NAMES}。")
    if ext not in sniff(data):
        raise FileRefused(f"文件内容与扩展名“{ext}”不符（可能是其他格式改了名字），未保存。")
    return ALLOWED[ext]


def clean_filename(filename: str) -> str:
    """Keep the user's (Chinese) name for display; drop any path and control
    characters. Never used to build a path: files are stored by hash."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    return name.strip()[:200] or "文件"


def path_for(sha256: str) -> str:
    return os.path.join(current_app.config["UPLOAD_FOLDER"], sha256[:2], sha256)


def store(data: bytes) -> tuple[str, bool]:
    """Store the bytes; returns (sha256, created) — created False when the
    same content was already there."""
    sha = hashlib.sha256(data).hexdigest()
    return sha, write_once(path_for(sha), data)


def write_once(target: str, data: bytes) -> bool:
    """Write ``data`` to ``target`` unless it exists, through a temporary file
    in the same folder and a rename, so that a crash never leaves a
    half-written file under the real name. Returns whether it wrote."""
    if os.path.exists(target):
        return False
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return True


def discard(sha256: str) -> None:
    """Remove a file stored by a transaction that then failed."""
    try:
        os.remove(path_for(sha256))
    except FileNotFoundError:
        pass
