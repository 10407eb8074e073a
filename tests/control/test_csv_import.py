"""Streamed CSV contact import: tables of files and what the importer makes of them, chunk
boundaries anywhere, bounded memory on a million rows."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from control.csv_import import (
    ContactCsvParser,
    ContactRow,
    CsvFormatError,
    ImportBatch,
    RowError,
    import_csv,
    import_csv_async,
)
from control.email_syntax import AddressError, normalize_address
from tests.support.csv_rows import generated

# --- email syntax --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("bob+news@mail.example.co.uk", "bob+news@mail.example.co.uk"),
        ("o'hara@example.ie", "o'hara@example.ie"),
        ("x@bücher.example", "x@xn--bcher-kva.example"),
        ("x@BÜCHER.example", "x@xn--bcher-kva.example"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("user@例え.jp", "user@xn--r8jz45g.jp"),
        ("a@b-c.example", "a@b-c.example"),
    ],
)
def test_valid_addresses_are_normalized(text: str, normalized: str) -> None:
    assert normalize_address(text) == normalized


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("ann.example.com", "no @"),
        ("@example.com", "nothing before"),
        ("ann@", "nothing after"),
        ("a@b@example.com", "more than one @"),
        ("ann lee@example.com", "space"),
        (".ann@example.com", "dot at the start"),
        ("ann..lee@example.com", "two in a row"),
        ("ann(x)@example.com", "'('"),
        ('"ann lee"@example.com', "quoted"),
        ("zoë@example.com", "SMTPUTF8"),
        ("a" * 65 + "@example.com", "longer than 64"),
        ("ann@localhost", "no dot"),
        ("ann@example..com", "empty label"),
        ("ann@example.com.", "ends with a dot"),
        ("ann@-example.com", "hyphen"),
        ("ann@example-.com", "hyphen"),
        ("ann@exa_mple.com", "not allowed"),
        ("ann@" + "a" * 64 + ".com", "longer than 63"),
        ("ann@192.0.2.1", "IP address"),
        ("ann@[192.0.2.1]", "literals"),
        ("ann@xn--.example", "hyphen"),
        ("ann@bü_cher.example", "internationalised"),
        ("ann@" + ".".join(["abcdefghij"] * 25) + ".com", "longer than"),
    ],
)
def test_invalid_addresses_say_why(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason.replace("(", r"\(")):
        normalize_address(text)


# --- helpers -------------------------------------------------------------------------------------


def run(data: bytes, chunk: int = 64 * 1024, **options: object) -> list[ImportBatch]:
    return list(import_csv([data[i : i + chunk] for i in range(0, len(data), chunk)], **options))


def rows_of(batches: list[ImportBatch]) -> list[ContactRow]:
    return [row for batch in batches for row in batch.rows]


def errors_of(batches: list[ImportBatch]) -> list[RowError]:
    return [error for batch in batches for error in batch.errors]


# --- encodings, delimiters, line ends ------------------------------------------------------------

ZOE = "email,first_name\r\nzoe@example.com,Zoë\r\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (ZOE.encode("utf-8"), "utf-8-sig"),
        (b"\xef\xbb\xbf" + ZOE.encode("utf-8"), "utf-8-sig"),
        (ZOE.encode("latin-1"), "latin-1"),
        (ZOE.encode("utf-16"), "utf-16"),  # Excel's "Unicode text", BOM first
    ],
)
def test_encoding_is_detected(data: bytes, encoding: str) -> None:
    parser = ContactCsvParser()
    batches = parser.feed(data) + parser.close()
    assert parser.encoding == encoding
    assert [(r.email, r.first_name) for r in rows_of(batches)] == [("zoe@example.com", "Zoë")]


def test_stray_latin1_bytes_in_a_utf8_file_are_read_as_latin1() -> None:
    data = "email,first_name\nann@example.com,Zoë\n".encode() + b"bob@example.com,Jos\xe9\n"
    assert [r.first_name for r in rows_of(run(data))] == ["Zoë", "José"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected_from_the_header(delimiter: str) -> None:
    d = delimiter
    data = f'email{d}first_name{d}city\nann@example.com{d}Ann{d}"Lyon{d} France"\n'.encode()
    parser = ContactCsvParser()
    (row,) = rows_of(parser.feed(data) + parser.close())
    assert parser.delimiter == delimiter
    assert row.attributes == {"city": f"Lyon{d} France"}


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_ends(newline: str) -> None:
    data = newline.join(["email", "a@example.com", "b@example.com", ""]).encode()
    assert [r.email for r in rows_of(run(data))] == ["a@example.com", "b@example.com"]


# --- header mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "fields"),
    [
        ("email,first_name,last_name", ("email", "first_name", "last_name")),
        ("E-Mail,First Name,Surname", ("email", "first_name", "last_name")),
        ("Email Address,firstname,Family-Name", ("email", "first_name", "last_name")),
        (" EMAIL ,Given Name,LastName", ("email", "first_name", "last_name")),
        ("\ufeffemail,forename,last", ("email", "first_name", "last_name")),
    ],
)
def test_header_aliases(header: str, fields: tuple[str, ...]) -> None:
    data = f"{header}\nann@example.com,Ann,Lee\n".encode()
    parser = ContactCsvParser()
    (row,) = rows_of(parser.feed(data) + parser.close())
    assert parser.columns is not None
    assert tuple(str(c.field) for c in parser.columns) == fields
    assert (row.email, row.first_name, row.last_name) == ("ann@example.com", "Ann", "Lee")


def test_other_columns_are_custom_attributes_and_empty_values_are_left_out() -> None:
    data = b"email,City,Plan,\nann@example.com,Lyon,,x\n"
    (row,) = rows_of(run(data))
    assert row.attributes == {"City": "Lyon"}  # the unnamed column is ignored


def test_an_explicit_mapping_overrides_detection() -> None:
    data = b"Adresse,Vorname,Kundennummer,Notes\nann@example.com,Ann,K-17,secret\n"
    mapping = {
        "Adresse": "email",
        "Vorname": "first_name",
        "Kundennummer": "attribute:customer_id",
        "Notes": None,
    }
    (row,) = rows_of(run(data, mapping=mapping))
    assert (row.email, row.first_name, row.attributes) == (
        "ann@example.com",
        "Ann",
        {"customer_id": "K-17"},
    )


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"", {}, "empty"),
        (b"\n\n  \n", {}, "empty"),
        (b"name,city\nAnn,Lyon\n", {}, "no email column: the header has 'name', 'city'"),
        (b"email,e-mail\n", {}, "both map to email"),
        (b"email,x\n", {"mapping": {"x": "phone"}}, "'phone' is not a contact field"),
        (b",,\n", {}, "empty"),
        (b"\x00\x01\x02PK\x03\x04", {}, "not a CSV text file"),
        (b"email\n", {"encoding": "klingon"}, "unknown encoding"),
    ],
)
def test_file_level_problems_raise_before_any_row(
    data: bytes, options: dict[str, object], message: str
) -> None:
    with pytest.raises(CsvFormatError, match=message):
        run(data, **options)


def test_a_header_only_file_imports_nothing() -> None:
    (batch,) = run(b"email,first_name\r\n")
    assert (batch.rows, batch.errors, batch.final) == ([], [], True)


# --- rows ----------------------------------------------------------------------------------------

HEADER = "email,first_name,last_name,consent_source,consent_at,consent_ip,double_opt_in\n"


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("not-an-address,A,B,,,,", "email", "no @"),
        (",A,B,,,,", "email", "empty"),
        ("ann@example.com,A,B,,yesterday,,", "consent_at", "ISO 8601"),
        ("ann@example.com,A,B,,,300.1.1.1,", "consent_ip", "not an IP address"),
        ("ann@example.com,A,B,,,,maybe", "double_opt_in", "yes/no"),
        ("ann@example.com," + "A" * 201 + ",B,,,,", "first_name", "longer than 200"),
        ("ann@example.com,A,B,,,,,extra", None, "8 values but the header has 7 columns"),
        # names reach Subject and To through placeholders (issue 10.8)
        ("ann@example.com,Ann\x0bBcc,B,,,,", "first_name", "control characters"),
        ("ann@example.com,A,Lee\u2028X,,,,", "last_name", "line separators"),
    ],
)
def test_row_errors_name_the_row_field_and_reason(
    line: str, field: str | None, message: str
) -> None:
    batches = run(f"{HEADER}ok@example.com,,,,,,\n{line}\nok2@example.com,,,,,,\n".encode())
    assert [r.email for r in rows_of(batches)] == ["ok@example.com", "ok2@example.com"]
    (error,) = errors_of(batches)
    assert (error.row, error.field) == (3, field)
    assert message in error.message
    assert batches[-1].progress.rows_invalid == 1 and batches[-1].progress.rows_valid == 2


def test_consent_fields_are_parsed() -> None:
    data = f"{HEADER}ann@example.com,A,B,signup form,2026-03-01T14:30:00,2001:db8::1,yes\n"
    (row,) = rows_of(run(data.encode()))
    assert row.consent is not None
    assert row.consent.source == "signup form"
    assert row.consent.at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert (row.consent.ip, row.consent.double_opt_in) == ("2001:db8::1", True)
    (row,) = rows_of(run(f"{HEADER}ann@example.com,A,B,,,,\n".encode()))
    assert row.consent is None


def test_trailing_empty_values_and_short_rows_are_accepted() -> None:
    data = f"{HEADER}ann@example.com,Ann\nbob@example.com,Bob,Lee,,,,,,\n".encode()
    assert [r.first_name for r in rows_of(run(data))] == ["Ann", "Bob"]


def test_duplicates_within_the_file_name_the_first_row() -> None:
    data = b"email\nann@example.com\nbob@example.com\nANN@Example.com\n ann@example.com \n"
    batches = run(data)
    assert [r.email for r in rows_of(batches)] == ["ann@example.com", "bob@example.com"]
    assert [(e.row, e.message) for e in errors_of(batches)] == [
        (4, "duplicate of row 2"),
        (5, "duplicate of row 2"),
    ]
    without = [r.email for r in rows_of(run(data, dedupe=False))]
    assert without == ["ann@example.com", "bob@example.com", "ann@example.com", "ann@example.com"]


def test_duplicate_detection_survives_table_growth() -> None:
    addresses = [f"user{i}@example.com" for i in range(20_000)]
    data = ("email\n" + "\n".join(addresses + addresses[::997]) + "\n").encode()
    batches = run(data)
    assert len(rows_of(batches)) == 20_000
    errors = errors_of(batches)
    assert len(errors) == len(addresses[::997])
    assert errors[1].message == "duplicate of row 999"  # user997 is on row 999


def test_rows_are_numbered_as_a_spreadsheet_shows_them() -> None:
    data = (
        b"email,note\n"  # row 1
        b"a@example.com,one\n"  # row 2
        b"\n"  # row 3: blank, skipped
        b'b@example.com,"two\nlines, and ""quotes"""\n'  # row 4 (two lines in the file)
        b"bad,x\n"  # row 5
        b"c@example.com,three\n"  # row 6
    )
    batches = run(data)
    assert [(r.row, r.email) for r in rows_of(batches)] == [
        (2, "a@example.com"),
        (4, "b@example.com"),
        (6, "c@example.com"),
    ]
    assert rows_of(batches)[1].attributes == {"note": 'two\nlines, and "quotes"'}
    assert [e.row for e in errors_of(batches)] == [5]


@pytest.mark.parametrize(
    ("line", "note"),
    [
        ('a@example.com,5" screen', '5" screen'),  # a quote inside an unquoted field is a quote
        ('a@example.com,say "hi"', 'say "hi"'),
        ('"a@example.com","fully, quoted"', "fully, quoted"),
        ('"a@example.com","with ""doubled"" quotes"', 'with "doubled" quotes'),
        ('a@example.com,"closed" then more', "closed then more"),  # as the csv module reads it
        ('a@example.com,"two\nlines"', "two\nlines"),
        (
            'a@example.com,"ends with quote ""\n"" on next line"',
            'ends with quote "\n" on next line',
        ),
        ('a@example.com, "space first', '"space first'),  # not at the field's start: literal
    ],
)
def test_quotes_are_read_as_the_csv_module_reads_them(line: str, note: str) -> None:
    data = f"email,note\n{line}\nb@example.com,next\n".encode()
    batches = run(data)
    assert errors_of(batches) == []
    assert [(r.row, r.email, r.attributes.get("note")) for r in rows_of(batches)] == [
        (2, "a@example.com", note),
        (3, "b@example.com", "next"),
    ]


def test_an_unclosed_quote_costs_one_row_not_the_file() -> None:
    lines = ["email,note", 'a@example.com,"never closed'] + [
        f"x{i}@example.com,n" for i in range(50)
    ]
    data = ("\n".join(lines) + "\n").encode()
    batches = run(data, max_record_bytes=300)
    (error,) = errors_of(batches)
    assert error.row == 2 and "not closed within 300 characters" in error.message
    # The lines swallowed by the open quote are lost with it; everything after is imported.
    emails = [r.email for r in rows_of(batches)]
    assert emails[-1] == "x49@example.com" and len(emails) > 30


def test_an_unclosed_quote_at_the_end_of_file_is_an_error() -> None:
    batches = run(b'email,note\na@example.com,ok\nb@example.com,"open\n')
    assert [e.row for e in errors_of(batches)] == [3]
    assert "not closed before the end" in errors_of(batches)[0].message


def test_a_line_without_end_is_refused_within_the_record_limit() -> None:
    data = b"email\na@example.com\n" + b"z" * 10_000 + b"\nb@example.com\n"
    batches = run(data, chunk=512, max_record_bytes=1000)
    assert [r.email for r in rows_of(batches)] == ["a@example.com", "b@example.com"]
    (error,) = errors_of(batches)
    assert error.row == 3 and "longer than 1000 characters" in error.message


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 4096])
def test_chunk_boundaries_do_not_matter(chunk: int) -> None:
    text = (
        "\ufeffE-Mail;Prénom;Ville\r\n"
        "zoé@bücher.example;x;y\r\n"  # refused: non-ASCII local part
        'anna@bücher.example;Anna;"Köln;\r\nDeutschland"\r\n'
        "\r\n"
        "bob@example.com;Bob;Łódź\r\n"
        "bad address;B;\r\n"
        "eve@example.com;Ève;Paris"  # no line end at the end of the file
    )
    data = text.encode()
    expected = run(data, chunk=len(data))
    got = run(data, chunk=chunk)
    assert [(r.row, r.email, r.first_name, r.attributes) for r in rows_of(got)] == [
        (r.row, r.email, r.first_name, r.attributes) for r in rows_of(expected)
    ]
    # "Prénom" is no alias of first_name: a custom attribute.
    assert rows_of(got)[0].attributes == {"Prénom": "Anna", "Ville": "Köln;\r\nDeutschland"}
    assert [r.email for r in rows_of(got)] == [
        "anna@xn--bcher-kva.example",
        "bob@example.com",
        "eve@example.com",
    ]
    assert [(e.row, e.field) for e in errors_of(got)] == [(2, "email"), (6, "email")]


# --- batches and progress ------------------------------------------------------------------------


def test_batches_have_the_requested_size_and_progress_grows() -> None:
    data = ("email\n" + "".join(f"u{i}@example.com\n" for i in range(9500))).encode()
    assert len(data) > 2 * 64 * 1024  # more than the detection sample
    batches = run(data, chunk=1000, batch_size=1000, total_bytes=len(data))
    assert [len(b.rows) for b in batches] == [1000] * 9 + [500]
    assert [b.final for b in batches] == [False] * 9 + [True]
    reads = [b.progress.bytes_read for b in batches]
    assert reads == sorted(reads) and reads[-1] == len(data)
    assert [b.progress.rows_read for b in batches] == [*range(1000, 9001, 1000), 9500]
    assert batches[-1].progress.fraction == 1.0
    assert 0 < batches[0].progress.fraction < 1  # type: ignore[operator]
    assert run(data)[0].progress.fraction is None  # total unknown


async def test_an_async_stream_gives_the_same_batches() -> None:
    data = (
        "email,first_name\n" + "".join(f"u{i}@example.com,U{i}\n" for i in range(3000))
    ).encode()

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 777):
            yield data[i : i + 777]

    batches = [b async for b in import_csv_async(stream(), batch_size=500)]
    assert len(rows_of(batches)) == 3000 and batches[-1].final
    assert rows_of(batches)[2999].first_name == "U2999"


def test_feed_after_close_is_refused() -> None:
    parser = ContactCsvParser()
    parser.feed(b"email\n")
    parser.close()
    with pytest.raises(ValueError, match="after close"):
        parser.feed(b"a@example.com\n")


# --- memory and speed ----------------------------------------------------------------------------


def _traced_peak(rows: int, *, dedupe: bool = False) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for batch in import_csv(generated(rows), dedupe=dedupe, batch_size=1000):
            assert batch.rows or batch.errors or batch.final
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file_tracemalloc() -> None:
    small, large = _traced_peak(5_000), _traced_peak(40_000)
    # 8x the rows: the same peak (one batch, one chunk, the csv buffers), within 256 KiB,
    # where holding the rows would add ~15 MB.
    assert large - small < 256 * 1024, (small, large)
    assert large < 4 * 1024 * 1024
    # Duplicate detection costs at most 64 bytes an address (a set of the strings: over 100).
    assert _traced_peak(40_000, dedupe=True) - large < 40_000 * 64


MILLION = """
import json, resource, sys, time
sys.path[:0] = {paths!r}
from tests.support.csv_rows import generated
from control.csv_import import import_csv
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in import_csv(generated(2000, notes={notes})):
    pass  # warm up: imports, codecs, regexes
before = rss()
valid = invalid = size = 0
started = time.perf_counter()
for batch in import_csv(generated({rows}, notes={notes})):
    valid += len(batch.rows)
    invalid, size = batch.progress.rows_invalid, batch.progress.bytes_read
elapsed = time.perf_counter() - started
print(json.dumps({{"valid": valid, "invalid": invalid, "bytes": size, "seconds": elapsed,
                  "rows_per_s": {rows} / elapsed, "rss_growth": rss() - before}}))
"""


@pytest.mark.slow
def test_a_million_rows_stream_in_bounded_memory() -> None:
    """1,000,000 rows (~250 MB) through a fresh interpreter; its peak RSS may grow by the
    duplicate table (12 bytes a slot, ~24 MB) and buffers, never by the file."""
    script = MILLION.format(paths=sys.path, rows=1_000_000, notes=130)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\n1,000,000-row import: {result['rows_per_s']:,.0f} rows/s, "
        f"{result['bytes'] / 1e6:.0f} MB in {result['seconds']:.1f} s, "
        f"peak RSS growth {result['rss_growth'] / 1e6:.1f} MB"
    )
    assert (result["valid"], result["invalid"]) == (990_000, 10_000)
    assert result["bytes"] > 200e6
    assert result["rss_growth"] < 64e6, result


# --- hostile input -------------------------------------------------------------------------------

ALPHABET = [
    b",",
    b";",
    b'"',
    b'""',
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"a",
    b"@",
    b".",
    b"x@y.example",
    b" ",
    b"\t",
    b"\xef\xbb\xbf",
    b"email",
]


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_never_crash_the_importer(seed: int) -> None:
    rng = random.Random(seed)
    body = b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 3000)))
    data = (b"email,note\n" if seed % 2 else b"") + body
    try:
        batches = run(data, chunk=rng.choice([1, 7, 100, 4096]), max_record_bytes=500)
    except CsvFormatError:
        return
    assert batches[-1].final
    for row in rows_of(batches):
        assert normalize_address(row.email) == row.email
    progress = batches[-1].progress
    assert progress.rows_read == progress.rows_valid + progress.rows_invalid
    assert progress.bytes_read == len(data)
