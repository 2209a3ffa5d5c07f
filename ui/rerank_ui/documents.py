"""Turning what a person typed or uploaded into a list of documents, and checking it against the caps.

Pure functions: no Gradio, no HTTP. Every problem is reported as a `DocumentError` whose message
says what to fix (which line, which column, which limit).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

SUPPORTED_UPLOADS = (".txt", ".csv", ".jsonl")
# Column names / JSON keys recognised as "the document text", in order of preference.
TEXT_FIELDS = ("text", "document", "content", "passage", "doc", "body")


class DocumentError(ValueError):
    """Input the UI will not send to the engine; the message is shown to the person as is."""


def split_lines(text: str | None) -> list[str]:
    """One document per non-blank line, surrounding whitespace removed."""
    if not text:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def to_one_line(document: str) -> str:
    """Collapse internal line breaks so an uploaded document survives the one-per-line text box."""
    return " ".join(document.split())


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DocumentError(
            f"{filename} is not UTF-8 text (byte {err.start} cannot be decoded); save it as UTF-8 and upload again"
        ) from None


def _pick_text_field(names: Sequence[str]) -> str | None:
    lowered = {name.strip().lower(): name for name in names if isinstance(name, str)}
    for field in TEXT_FIELDS:
        if field in lowered:
            return lowered[field]
    return None


def parse_txt(content: str) -> list[str]:
    return split_lines(content)


def parse_csv(content: str, filename: str = "the CSV file") -> list[str]:
    """A CSV with a header naming the text column (text/document/content/passage), or one column, no header."""
    try:
        rows = [row for row in csv.reader(io.StringIO(content)) if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise DocumentError(f"{filename} is not valid CSV: {err}") from None
    if not rows:
        return []
    column = _pick_text_field(rows[0])
    if column is not None:
        index = [cell.strip().lower() for cell in rows[0]].index(column.strip().lower())
        body = rows[1:]
    elif all(len(row) == 1 for row in rows):
        index, body = 0, rows
    else:
        raise DocumentError(
            f"{filename} has {max(len(row) for row in rows)} columns but no header naming the document column; "
            f"add a header row with a column called one of: {', '.join(TEXT_FIELDS)}"
        )
    documents = []
    for line_number, row in enumerate(body, start=2 if column is not None else 1):
        if index >= len(row):
            raise DocumentError(f"{filename} row {line_number} has no value in the document column")
        if row[index].strip():
            documents.append(row[index].strip())
    return documents


def parse_jsonl(content: str, filename: str = "the JSONL file") -> list[str]:
    """One JSON value per line: a string, or an object with a text/document/content/passage field."""
    documents = []
    for line_number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise DocumentError(f"{filename} line {line_number} is not valid JSON ({err.msg})") from None
        if isinstance(value, dict):
            field = _pick_text_field(list(value))
            if field is None:
                raise DocumentError(
                    f"{filename} line {line_number} has no text field; use one of: {', '.join(TEXT_FIELDS)}"
                )
            value = value[field]
        if not isinstance(value, str):
            raise DocumentError(
                f"{filename} line {line_number}: the document must be a string, got {type(value).__name__}"
            )
        if value.strip():
            documents.append(value.strip())
    return documents


def parse_upload(path: str | Path, *, max_bytes: int) -> list[str]:
    """Documents from an uploaded .txt, .csv or .jsonl file."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_UPLOADS:
        raise DocumentError(f"{name}: unsupported file type; upload one of {', '.join(SUPPORTED_UPLOADS)}")
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentError(f"{name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB")
    content = _decode(path.read_bytes(), name)
    if suffix == ".csv":
        documents = parse_csv(content, name)
    elif suffix == ".jsonl":
        documents = parse_jsonl(content, name)
    else:
        documents = parse_txt(content)
    if not documents:
        raise DocumentError(f"{name} contains no documents")
    return documents


def validate_request(query: str, documents: Sequence[str], *, max_documents: int, max_chars: int) -> None:
    """Refuse a request the engine would reject or that would hog it, before any call is made."""
    if not query or not query.strip():
        raise DocumentError("Enter a query to rank the documents against.")
    if not documents:
        raise DocumentError("Add at least one document: one per line, or upload a .txt, .csv or .jsonl file.")
    if len(query) > max_chars:
        raise DocumentError(f"The query is {len(query):,} characters long; the limit is {max_chars:,}.")
    if len(documents) > max_documents:
        raise DocumentError(
            f"{len(documents):,} documents given; this deployment accepts at most {max_documents:,} per request."
        )
    too_long = [number for number, doc in enumerate(documents, start=1) if len(doc) > max_chars]
    if too_long:
        shown = ", ".join(str(n) for n in too_long[:10]) + (" …" if len(too_long) > 10 else "")
        raise DocumentError(
            f"{len(too_long)} document(s) exceed {max_chars:,} characters (line {shown}); shorten or split them."
        )
