"""WARC and ARC archives: planning record-aligned shards, and decoding records into HTML documents.

Facts taken from datatrove's `WarcReader` (`process_record`): payload records are `response` (and
`conversion` in WET files); Common Crawl names the sniffed type in `WARC-Identified-Payload-Type`,
older crawls need libmagic; undeclared charsets are detected with cchardet. `process_record` itself
is not reused because it drops a record silently (`None`) for every reason, and this pipeline must
say where each record went: a non-HTML payload is rejected with its type, an undecodable one is
quarantined with the error. It also ignores the charset the server declared, which the decoding
here tries first.

Shards: a per-record gzip archive (the WARC standard, and every Common Crawl file) can be entered at
any record boundary, so a large file is cut into byte ranges, and each task reads the records that
start in its range: it seeks to its start, finds the first record boundary there (a gzip member that
warcio parses as a WARC header), and stops at the first record at or past its end. Every record is
read by exactly one task, and planning reads no archive. A file gzipped as one stream has a single
member: the first task reads it whole, the others find no boundary.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatrove.data import Document
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeadersParserException

from pipeline.docio import open_input

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")
PAYLOAD_RECORDS = ("response", "conversion", "resource")
OTHER_RECORDS = ("warcinfo", "request", "metadata", "revisit", "continuation")
# Content below this many bytes is sniffed by libmagic when no type is declared (its own default).
_SNIFF_BYTES = 2048
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# Errors warcio and zlib raise on a broken archive; after one, the stream cannot be resynchronised.
ARCHIVE_ERRORS = (ArchiveLoadFailed, StatusAndHeadersParserException, EOFError, OSError, zlib.error, ValueError)
_GZIP_MAGIC = b"\x1f\x8b\x08"
_SYNC_BLOCK = 1 << 20


def is_warc(path: str) -> bool:
    return path.lower().endswith(WARC_SUFFIXES)


def plan_warc(path: str, size: int, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges [start, stop) of about equal size; stop -1 = end of file.

    A task reads the records that start in its range: it finds its first record boundary itself
    (`_first_record`), and its last record may end past `stop`. The planner reads nothing, so
    planning a crawl of thousands of 1 GB archives costs one listing, not a decompression of each.
    Plain ARC has no marker to find a boundary by: it stays whole.
    """
    if parts <= 1 or size <= 0 or path.lower().endswith(".arc"):
        return [(0, -1)]
    cuts = [size * i // parts for i in range(parts)]
    return list(zip(cuts, cuts[1:] + [-1]))


def _first_record(f: Any, start: int, stop: int, compressed: bool) -> int | None:
    """Offset of the first record boundary in [start, stop), or None: a gzip member header (per-record
    gzip), or `WARC/` at a line start, that warcio parses as a record header."""
    magic = _GZIP_MAGIC if compressed else b"\nWARC/"
    pos = start - (0 if compressed else 1)  # the newline before `WARC/` may be the byte before `start`
    while stop < 0 or pos < stop:
        f.seek(pos)
        block = f.read(_SYNC_BLOCK + len(magic))
        found = block.find(magic)
        while 0 <= found < _SYNC_BLOCK:
            candidate = pos + found + (0 if compressed else 1)
            if 0 <= stop <= candidate:
                return None
            if _record_header_at(f, candidate):
                return candidate
            found = block.find(magic, found + 1)
        if len(block) <= _SYNC_BLOCK:
            return None
        pos += _SYNC_BLOCK
    return None


def _record_header_at(f: Any, offset: int) -> bool:
    f.seek(offset)
    try:
        record = next(iter(ArchiveIterator(f, no_record_parse=True)))
    except (StopIteration, *ARCHIVE_ERRORS):
        return False
    return record.rec_type is not None


def warc_records(path: str, start: int, stop: int) -> Iterator[tuple[int, Document | str | None]]:
    """(record offset, payload): a Document (HTML, or a non-HTML placeholder the extractor rejects),
    an error string for an unparseable or truncated record, or None for a record that carries no
    payload (warcinfo, request, metadata, revisit): those are not documents and are only counted."""
    seen = 0
    offset = start
    try:
        with open_input(path) as f:
            if start > 0:
                first = _first_record(f, start, stop, path.lower().endswith(".gz"))
                if first is None:
                    return
                start = offset = first
            f.seek(start)
            for offset, payload in _iterate(f, path, stop):
                seen += 1
                yield offset, payload
    except ArchiveLoadFailed as exc:
        if start == 0 and "non-chunked gzip" in str(exc):
            # Gzipped as one stream (ClueWeb does this): readable only from the start, as datatrove
            # reads every file; the other tasks found no record boundary. Offsets are uncompressed.
            yield from _whole_gzip_records(path, skip=seen)
        else:
            yield offset, f"unparseable WARC record at byte {offset}: {type(exc).__name__}: {exc}"
    except ARCHIVE_ERRORS as exc:
        yield offset, f"unparseable WARC record at byte {offset}: {type(exc).__name__}: {exc}"


def _whole_gzip_records(path: str, skip: int) -> Iterator[tuple[int, Document | str | None]]:
    offset = 0
    try:
        with open_input(path) as raw, gzip.open(raw, "rb") as f:
            for i, (offset, payload) in enumerate(_iterate(f, path, -1)):
                if i >= skip:
                    yield offset, payload
    except ARCHIVE_ERRORS as exc:
        yield offset, f"unparseable WARC record at uncompressed byte {offset}: {type(exc).__name__}: {exc}"


def _iterate(f: Any, path: str, stop: int) -> Iterator[tuple[int, Document | str | None]]:
    archive = ArchiveIterator(f, arc2warc=True)
    for record in archive:
        offset = archive.offset
        if 0 <= stop <= offset:
            return
        if record.rec_type in OTHER_RECORDS:
            yield offset, None
        elif record.rec_type not in PAYLOAD_RECORDS:
            yield offset, f"WARC record at byte {offset} has no known WARC-Type (found {record.rec_type!r})"
        else:
            try:
                payload = record_document(record, path, offset)
            except Exception as exc:  # bad chunking or Content-Encoding: this record's payload only
                payload = f"undecodable WARC record at byte {offset}: {type(exc).__name__}: {exc}"
            yield offset, payload


def record_document(record: ArcWarcRecord, path: str, offset: int) -> Document | str:
    """An HTML document with url, date and record id; a placeholder for non-HTML; or an error."""
    headers = record.rec_headers
    record_id = headers.get_header("WARC-Record-ID") or f"{Path(path).name}@{offset}"
    metadata: dict[str, Any] = {
        "source": f"{path}@{offset}",
        "url": headers.get_header("WARC-Target-URI") or headers.get_header("uri"),
        "date": headers.get_header("WARC-Date") or headers.get_header("archive-date"),
    }
    content = record.content_stream().read()
    # warcio returns a short read, not an error, when the archive ends inside a record
    missing = getattr(record.raw_stream, "limit", 0)
    if missing > 0:
        return f"truncated WARC record at byte {offset}: {missing} of {record.length} bytes missing"
    declared = _http_header(record, "Content-Type") or (record.content_type if record.rec_type == "resource" else "")
    payload_type = headers.get_header("WARC-Identified-Payload-Type") or declared.split(";")[0].strip().lower()
    if not payload_type or payload_type == "application/octet-stream":
        payload_type = _sniff(content)
    if payload_type not in HTML_TYPES and not (record.rec_type == "conversion" and payload_type == "text/plain"):
        metadata["payload_type"] = payload_type or "unknown"
        return Document(text="", id=record_id, metadata=metadata)
    html = decode_payload(content, declared)
    if html is None:
        return f"undecodable {payload_type} payload ({len(content)} bytes, declared {declared!r})"
    metadata["payload_type"] = payload_type
    return Document(text=html, id=record_id, metadata=metadata)


def decode_payload(content: bytes, content_type: str = "") -> str | None:
    """The declared charset, then UTF-8, then cchardet's guess; None when none of them decodes."""
    import cchardet

    declared = _CHARSET.search(content_type)
    candidates = [declared.group(1)] if declared else []
    candidates.append("utf-8")
    for charset in candidates:
        try:
            return content.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = cchardet.detect(content).get("encoding")
    if guess:
        try:
            return content.decode(guess)
        except (UnicodeDecodeError, LookupError):
            return None
    return None


def _http_header(record: ArcWarcRecord, name: str) -> str:
    if record.http_headers is None:
        return ""
    return record.http_headers.get_header(name) or ""


def _sniff(content: bytes) -> str:
    import magic

    return magic.from_buffer(content[:_SNIFF_BYTES], mime=True) if content else ""
