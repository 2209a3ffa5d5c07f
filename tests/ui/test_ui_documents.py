"""Typed and uploaded documents → list of documents, and the request caps."""

import json

import pytest

from rerank_ui.documents import (
    DocumentError,
    parse_csv,
    parse_jsonl,
    parse_upload,
    split_lines,
    to_one_line,
    validate_request,
)


def test_split_lines_drops_blank_lines_and_trims():
    assert split_lines("  first \n\n\tsecond\r\n   \nthird") == ["first", "second", "third"]
    assert split_lines("") == []
    assert split_lines(None) == []


def test_to_one_line_collapses_line_breaks():
    assert to_one_line("def f():\n    return 1\n") == "def f(): return 1"


def test_csv_with_a_text_header_uses_that_column():
    content = "id,Text,source\n1,pandas chunksize,blog\n2,\"dask, in parallel\",docs\n3,,empty\n"
    assert parse_csv(content) == ["pandas chunksize", "dask, in parallel"]


def test_csv_with_one_column_and_no_header_uses_every_row():
    assert parse_csv("alpha\nbeta\n\ngamma\n") == ["alpha", "beta", "gamma"]


def test_csv_cell_may_span_lines():
    assert parse_csv('document\n"line one\nline two"\n') == ["line one\nline two"]


def test_csv_with_several_columns_and_no_known_header_is_refused():
    with pytest.raises(DocumentError, match="no header naming the document column.*text"):
        parse_csv("a,b\nc,d\n", "docs.csv")


def test_csv_row_missing_the_document_column_names_the_row():
    with pytest.raises(DocumentError, match="docs.csv row 3"):
        parse_csv("id,text\n1,ok\n2\n", "docs.csv")


def test_jsonl_accepts_strings_and_objects():
    content = "\n".join([json.dumps("plain string"), json.dumps({"id": 2, "content": "from content"}), "",
                         json.dumps({"text": "from text", "document": "ignored"})])
    assert parse_jsonl(content) == ["plain string", "from content", "from text"]


def test_jsonl_bad_line_is_named():
    with pytest.raises(DocumentError, match="docs.jsonl line 2 is not valid JSON"):
        parse_jsonl('"ok"\n{"text": \n', "docs.jsonl")


def test_jsonl_object_without_text_field_is_named():
    with pytest.raises(DocumentError, match="line 1 has no text field"):
        parse_jsonl('{"title": "x"}', "docs.jsonl")


def test_jsonl_non_string_document_is_refused():
    with pytest.raises(DocumentError, match="must be a string, got int"):
        parse_jsonl('{"text": 5}', "docs.jsonl")


@pytest.mark.parametrize("name, content, expected", [
    ("docs.txt", "one\ntwo\n", ["one", "two"]),
    ("docs.CSV", "text\none\ntwo\n", ["one", "two"]),
    ("docs.jsonl", '{"text": "one"}\n{"text": "two"}\n', ["one", "two"]),
    ("bom.txt", "\ufeffone\n", ["one"]),
])
def test_parse_upload_by_extension(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert parse_upload(path, max_bytes=10_000) == expected


def test_parse_upload_refuses_other_file_types(tmp_path):
    path = tmp_path / "docs.pdf"
    path.write_bytes(b"%PDF-1.7")
    with pytest.raises(DocumentError, match="docs.pdf: unsupported file type; upload one of .txt, .csv, .jsonl"):
        parse_upload(path, max_bytes=10_000)


def test_parse_upload_refuses_non_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DocumentError, match="latin1.txt is not UTF-8"):
        parse_upload(path, max_bytes=10_000)


def test_parse_upload_refuses_oversized_files(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("x" * 5000)
    with pytest.raises(DocumentError, match="big.txt is 0.0 MB; the limit"):
        parse_upload(path, max_bytes=1024)


def test_parse_upload_refuses_empty_files(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DocumentError, match="empty.jsonl contains no documents"):
        parse_upload(path, max_bytes=1024)


def test_validate_accepts_a_request_within_the_caps():
    validate_request("query", ["a", "b"], max_documents=2, max_chars=5)


@pytest.mark.parametrize("query, documents, fragment", [
    ("", ["a"], "Enter a query"),
    ("   ", ["a"], "Enter a query"),
    ("q", [], "Add at least one document"),
    ("q" * 11, ["a"], "query is 11 characters long; the limit is 10"),
    ("q", ["a"] * 4, "4 documents given; this deployment accepts at most 3"),
    ("q", ["x" * 11, "ok", "y" * 12], "2 document(s) exceed 10 characters (line 1, 3)"),
])
def test_validate_refuses_with_a_reason(query, documents, fragment):
    with pytest.raises(DocumentError) as excinfo:
        validate_request(query, documents, max_documents=3, max_chars=10)
    assert fragment in str(excinfo.value)
