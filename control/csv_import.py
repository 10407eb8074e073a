"""Streamed CSV import of contacts: bytes in, batches of valid contacts and per-row errors out.

The file is never held in memory: bytes are fed in chunks (from an upload stream, sync or async),
decoded incrementally, cut into records and parsed with the `csv` module, and every
`batch_size` rows an `ImportBatch` comes out with the valid rows, the errors and the progress.
What grows with the file is the duplicate detector only: an open-addressing table of 12-byte
slots (64-bit fingerprint + first row) at most 3/4 full, 25 MB for a million distinct addresses
(38 MB for the moment it doubles); `dedupe=False` turns it off.

    async for batch in import_csv_async(request.stream(), total_bytes=content_length):
        await insert_contacts(batch.rows)          # ContactRow records
        await record_errors(batch.errors)          # RowError(row, field, message, value)
        await publish_progress(batch.progress)     # ImportProgress(bytes_read, rows_read...)

Detection, on the first 64 KiB:
- encoding: a UTF-8 BOM (dropped), a UTF-16 BOM (Excel's "Unicode text"), else UTF-8 when the
  sample decodes as UTF-8 or holds UTF-8 sequences, else Latin-1. In a UTF-8 file, a byte that
  is not UTF-8 is read as Latin-1 (files pasted together from several exports), never rejected
  nor lost;
- delimiter: the most frequent of `,` `;` tab `|` in the header line, `,` when none;
- line ends: `\\n`, `\\r\\n` or old Mac `\\r`. Quoted fields may hold delimiters, quotes (doubled)
  and line breaks.

Header mapping (`HEADER_ALIASES`): names compare lower-cased with spaces and hyphens as `_`.
`email` (also `e-mail`, `email address`, `mail`...) is required; `first_name`, `last_name`, and
the consent fields `consent_source`, `consent_at` (ISO 8601 time, UTC when no offset),
`consent_ip`, `double_opt_in` (true/false, yes/no, 1/0, y/n) are recognised; every other column is
a custom attribute named by its header. `mapping=` overrides: `{"E-Mail Adresse": "email",
"Kundennummer": "attribute:customer_id", "Notes": None}` (None ignores the column).

Row numbers are the rows a spreadsheet shows: the header is row 1, a record spanning several
lines (a quoted line break) is one row, blank rows count and are skipped silently.
Per-row errors (the row is left out, the import goes on): an invalid address (with the reason),
a duplicate address (naming the first row), an over-long value, a bad consent time, IP or
opt-in flag, a row with more values than the header, an unterminated quote or a row over
`max_record_bytes` characters. File-level problems (no header, no email column, the same field
twice, a binary file) raise `CsvFormatError` before any row; so does, where it occurs, a byte
that is not valid in an encoding without fallback (UTF-16, or one the caller named).
"""

from __future__ import annotations

import codecs
import csv
import enum
import ipaddress
import re
from array import array
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from control.email_syntax import AddressError, normalize_address
from mta.header_text import header_text_problem

__all__ = [
    "CHUNK_SIZE",
    "HEADER_ALIASES",
    "Column",
    "Consent",
    "ContactCsvParser",
    "ContactField",
    "ContactRow",
    "CsvFormatError",
    "ImportBatch",
    "ImportProgress",
    "RowError",
    "import_csv",
    "import_csv_async",
    "read_chunks",
]

CHUNK_SIZE = 64 * 1024
SNIFF_BYTES = 64 * 1024
DEFAULT_BATCH_SIZE = 1000
MAX_RECORD_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
MAX_ATTRIBUTE_CHARS = 1000
_DELIMITERS = (",", ";", "\t", "|")
_ERROR_VALUE_CHARS = 100  # how much of a faulty value an error quotes back


class ContactField(enum.StrEnum):
    EMAIL = "email"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    CONSENT_SOURCE = "consent_source"
    CONSENT_AT = "consent_at"
    CONSENT_IP = "consent_ip"
    DOUBLE_OPT_IN = "double_opt_in"


_F = ContactField
#: Normalised header name → field. Anything else becomes a custom attribute.
HEADER_ALIASES: Mapping[str, ContactField] = {
    **dict.fromkeys(
        ("email", "e_mail", "email_address", "e_mail_address", "mail", "emailaddress"), _F.EMAIL
    ),
    **dict.fromkeys(
        ("first_name", "firstname", "first", "given_name", "givenname", "forename"),
        _F.FIRST_NAME,
    ),
    **dict.fromkeys(
        ("last_name", "lastname", "last", "surname", "family_name", "familyname"), _F.LAST_NAME
    ),
    **dict.fromkeys(
        ("consent_source", "source", "opt_in_source", "signup_source"), _F.CONSENT_SOURCE
    ),
    **dict.fromkeys(
        ("consent_at", "consent_time", "consented_at", "opt_in_at", "opt_in_time", "signup_time"),
        _F.CONSENT_AT,
    ),
    **dict.fromkeys(("consent_ip", "opt_in_ip", "signup_ip", "ip", "ip_address"), _F.CONSENT_IP),
    **dict.fromkeys(("double_opt_in", "double_optin", "confirmed", "doi"), _F.DOUBLE_OPT_IN),
}
# A multi-byte UTF-8 sequence: rare by chance in Latin-1 text ("Ã©" and the like).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_CONSENT_FIELDS = (_F.CONSENT_SOURCE, _F.CONSENT_AT, _F.CONSENT_IP, _F.DOUBLE_OPT_IN)
_TRUE = frozenset({"true", "yes", "y", "1", "t", "confirmed"})
_FALSE = frozenset({"false", "no", "n", "0", "f", "pending", "unconfirmed"})


class CsvFormatError(ValueError):
    """The file as a whole cannot be imported (the API answers 422)."""

    error_code = "csv_format"


@dataclass(frozen=True, slots=True)
class Consent:
    """The consent record of a contact, as far as the file says (blueprint §5.4)."""

    source: str | None = None
    at: datetime | None = None
    ip: str | None = None
    double_opt_in: bool | None = None


@dataclass(slots=True)
class ContactRow:
    row: int
    email: str  # normalised: lower case, ASCII (IDNA) domain
    first_name: str = ""
    last_name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    consent: Consent | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None  # a field or attribute name; None for the row as a whole
    message: str
    value: str | None = None  # the faulty value (cut to 100 characters)


@dataclass(frozen=True, slots=True)
class ImportProgress:
    bytes_read: int
    total_bytes: int | None
    rows_read: int  # data rows seen (header and blank rows excluded)
    rows_valid: int
    rows_invalid: int

    @property
    def fraction(self) -> float | None:
        """0.0-1.0 when the total is known."""
        if not self.total_bytes:
            return None
        return min(1.0, self.bytes_read / self.total_bytes)


@dataclass(frozen=True, slots=True)
class ImportBatch:
    rows: list[ContactRow]
    errors: list[RowError]
    progress: ImportProgress
    final: bool = False  # the last batch of the file


@dataclass(frozen=True, slots=True)
class Column:
    """Where one CSV column goes: a contact field, an attribute, or nowhere."""

    index: int
    header: str
    field: ContactField | None = None
    attribute: str | None = None  # when not a field; both None: ignored


# --- duplicate detection -------------------------------------------------------------------------


class _SeenAddresses:
    """A set of address fingerprints remembering each one's first row, in flat arrays.

    A Python set of a million strings costs ~100 MB; this costs 12 bytes per slot. Fingerprints
    are 64-bit (the interpreter's SipHash of the address): the chance that two different
    addresses of a million-row file collide is about 3 in 100 million.
    """

    _EMPTY = 0

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._keys = array("Q", [0]) * capacity
        self._rows = array("I", [0]) * capacity
        self._mask = capacity - 1
        self._count = 0

    def add(self, address: str, row: int) -> int | None:
        """Remember `address` at `row`; return the earlier row if it was already there."""
        fingerprint = (hash(address) & 0xFFFF_FFFF_FFFF_FFFF) or 1
        keys, mask = self._keys, self._mask
        slot = fingerprint & mask
        while True:
            key = keys[slot]
            if key == fingerprint:
                return self._rows[slot]
            if key == self._EMPTY:
                keys[slot] = fingerprint
                self._rows[slot] = row
                self._count += 1
                if self._count * 4 > (mask + 1) * 3:  # keep probes short: load ≤ 3/4
                    self._grow()
                return None
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        capacity = (self._mask + 1) * 2
        self._keys = keys = array("Q", [0]) * capacity
        self._rows = rows = array("I", [0]) * capacity
        self._mask = mask = capacity - 1
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                rows[slot] = row


# --- the parser ----------------------------------------------------------------------------------


class _QuoteScanner:
    """Whether a line ends inside a quoted field, read as the `csv` module reads it.

    A quote opens a quoted field only as the first character of a field; inside one, `""` is a
    quote and a lone `"` closes it. A quote anywhere else is an ordinary character
    (`5" screen`), which is why counting quotes is not enough.
    """

    def __init__(self, delimiter: str) -> None:
        d = re.escape(delimiter)
        field = rf'(?:"(?:[^"]|"")*"|[^"{d}]*)'
        self.delimiter = delimiter
        #: A line of well-formed fields (quoted or not) is a whole record: one C-level match.
        self.whole = re.compile(rf"{field}(?:{d}{field})*\r?").fullmatch
        self._marks = re.compile(rf'["{d}]').finditer

    def ends_quoted(self, line: str, in_quote: bool) -> bool:
        """True when `line`, started inside a quoted field or not, ends inside one."""
        field_start = -1 if in_quote else 0
        skip_to = 0
        for mark in self._marks(line):
            pos = mark.start()
            if pos < skip_to:
                continue  # the second quote of a doubled one
            if in_quote:
                if line[pos] == '"':
                    if line.startswith('"', pos + 1):
                        skip_to = pos + 2
                    else:
                        in_quote = False
            elif line[pos] == self.delimiter:
                field_start = pos + 1
            elif pos == field_start:
                in_quote = True
        return in_quote


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode bytes that are not UTF-8 as Latin-1 (registered as codec error handler)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("sendmill-latin1-fallback", _latin1_fallback)


def _normal_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").lower())


def _cut(value: str) -> str:
    return value if len(value) <= _ERROR_VALUE_CHARS else value[:_ERROR_VALUE_CHARS] + "…"


class ContactCsvParser:
    """A push parser: `feed()` bytes as they arrive, `close()` at the end; both return batches.

    Options: `total_bytes` (for `progress.fraction`), `batch_size` (rows + errors per batch),
    `mapping` (header → field, "attribute:NAME" or None), `delimiter` and `encoding` (skip
    detection), `dedupe` (report duplicate addresses, default on), `max_record_bytes` (the
    longest row accepted, in characters: it bounds what one row can make the parser hold).
    After the header is read, `columns`, `encoding` and `delimiter` say what was used.
    """

    def __init__(
        self,
        *,
        total_bytes: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        mapping: Mapping[str, str | None] | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
        dedupe: bool = True,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if delimiter is not None and len(delimiter) != 1:
            raise ValueError("delimiter must be one character")
        self.total_bytes = total_bytes
        self.batch_size = batch_size
        self.mapping = {_normal_header(k): v for k, v in (mapping or {}).items()}
        self.delimiter = delimiter
        self.encoding = encoding
        self.columns: tuple[Column, ...] | None = None
        self._max_record = max_record_bytes
        self._seen = _SeenAddresses() if dedupe else None
        self._sniff = bytearray()
        self._decoder: codecs.IncrementalDecoder | None = None
        self._newline = "\n"
        self._tail = ""  # text after the last line break
        self._skipping_long_line = False
        self._pending: list[str] | None = None  # lines of a record with an open quote
        self._quotes: _QuoteScanner | None = None  # set once the delimiter is known
        self._pending_size = 0
        self._pending_row = 0
        self._row = 0  # spreadsheet row number of the last record cut
        self._bytes_read = 0
        self._rows_read = self._rows_valid = self._rows_invalid = 0
        self._rows: list[ContactRow] = []
        self._errors: list[RowError] = []
        self._batches: list[ImportBatch] = []
        self._closed = False

    # -- public -----------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[ImportBatch]:
        """Take the next bytes of the file; returns the batches completed by them."""
        if self._closed:
            raise ValueError("feed() after close()")
        self._bytes_read += len(chunk)
        if self._decoder is None:
            self._sniff += chunk
            if len(self._sniff) < SNIFF_BYTES:
                return []
            chunk, self._sniff = bytes(self._sniff), bytearray()
            self._start(chunk)
        self._take_text(self._decode(chunk))
        return self._drain()

    def close(self) -> list[ImportBatch]:
        """End of file: flush everything; the last batch has `final=True`."""
        if self._closed:
            return []
        self._closed = True
        if self._decoder is None:
            sample, self._sniff = bytes(self._sniff), bytearray()
            self._start(sample)
            self._take_text(self._decode(sample))
        self._take_text(self._decode(b"", final=True))
        if self._tail or self._pending is not None:
            # The last line has no line break: it is a record all the same.
            self._take_text(self._newline)
        if self._pending is not None:
            self._fail_record(self._pending_row, "a quoted field is not closed before the end")
            self._pending = None
        if self.columns is None:
            raise CsvFormatError("the file is empty: a header row with an email column is needed")
        self._batches.append(self._batch(final=True))
        return self._drain()

    @property
    def progress(self) -> ImportProgress:
        return ImportProgress(
            bytes_read=self._bytes_read,
            total_bytes=self.total_bytes,
            rows_read=self._rows_read,
            rows_valid=self._rows_valid,
            rows_invalid=self._rows_invalid,
        )

    # -- detection --------------------------------------------------------------------------------

    def _start(self, sample: bytes) -> None:
        """Choose the encoding and line ends from the first bytes, and start decoding."""
        if self.encoding is None:
            self.encoding = self._detect_encoding(sample)
        try:
            name = codecs.lookup(self.encoding).name
        except LookupError as exc:
            raise CsvFormatError(f"unknown encoding {self.encoding!r}") from exc
        # UTF-8 files pasted together from several exports: stray Latin-1 bytes are read as such.
        errors = "sendmill-latin1-fallback" if name in ("utf-8", "utf-8-sig") else "strict"
        self._decoder = codecs.getincrementaldecoder(self.encoding)(errors=errors)
        head = sample[:SNIFF_BYTES]
        if b"\n" not in head and b"\r" in head and not self.encoding.startswith("utf-16"):
            self._newline = "\r"

    def _decode(self, data: bytes, final: bool = False) -> str:
        assert self._decoder is not None  # set by _start()
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise CsvFormatError(f"the file is not valid {self.encoding}: {exc.reason}") from exc

    @staticmethod
    def _detect_encoding(sample: bytes) -> str:
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if b"\x00" in sample:
            raise CsvFormatError("this is not a CSV text file (it contains NUL bytes)")
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        except UnicodeDecodeError:
            # Not clean UTF-8. Real UTF-8 sequences in it mean a UTF-8 file with stray Latin-1
            # bytes (read with the fallback); none means a Latin-1 file.
            return "utf-8-sig" if _UTF8_SEQUENCE.search(sample) else "latin-1"
        return "utf-8-sig"  # UTF-8 that drops a BOM if there is one

    def _read_header(self, record: str) -> None:
        fields = next(csv.reader([record], delimiter=self._delimiter_for(record)), [])
        if not any(f.strip() for f in fields):
            raise CsvFormatError("the header row is empty")
        columns = []
        taken: dict[str, str] = {}
        for index, raw in enumerate(fields):
            header = raw.strip().lstrip("\ufeff")
            column = self._column(index, header)
            target = column.field or (f"attribute {column.attribute}" if column.attribute else None)
            if target is not None:
                if target in taken:
                    raise CsvFormatError(
                        f"columns {taken[target]!r} and {header!r} both map to {target}"
                    )
                taken[target] = header
            columns.append(column)
        if not any(c.field is ContactField.EMAIL for c in columns):
            found = ", ".join(repr(c.header) for c in columns)
            raise CsvFormatError(f"no email column: the header has {found}")
        self.columns = tuple(columns)
        self._email = next(c.index for c in columns if c.field is ContactField.EMAIL)
        self._fields = {c.field: c.index for c in columns if c.field is not None}
        self._attributes = [(c.index, c.attribute) for c in columns if c.attribute is not None]
        self._has_consent = any(f in self._fields for f in _CONSENT_FIELDS)
        # Column positions for the hot path (-1: no such column).
        self._width = len(columns)
        self._first_name = self._fields.get(_F.FIRST_NAME, -1)
        self._last_name = self._fields.get(_F.LAST_NAME, -1)
        self._consent_indexes = tuple(self._fields.get(f, -1) for f in _CONSENT_FIELDS)

    def _delimiter_for(self, header: str) -> str:
        if self.delimiter is None:
            counts = {d: header.count(d) for d in _DELIMITERS}
            best = max(_DELIMITERS, key=lambda d: counts[d])
            self.delimiter = best if counts[best] else ","
        return self.delimiter

    def _column(self, index: int, header: str) -> Column:
        normal = _normal_header(header)
        if normal in self.mapping:
            target = self.mapping[normal]
            if target is None:
                return Column(index, header)
            if target.startswith("attribute:"):
                return Column(index, header, attribute=target.partition(":")[2].strip() or header)
            try:
                return Column(index, header, field=ContactField(target))
            except ValueError:
                raise CsvFormatError(
                    f"mapping for {header!r}: {target!r} is not a contact field "
                    f"({', '.join(ContactField)}) nor 'attribute:NAME'"
                ) from None
        if normal in HEADER_ALIASES:
            return Column(index, header, field=HEADER_ALIASES[normal])
        if not header:
            return Column(index, header)  # an unnamed column: nothing to call its values
        return Column(index, header, attribute=header)

    # -- records ----------------------------------------------------------------------------------

    def _take_text(self, text: str) -> None:
        """Cut decoded text into complete records and parse them.

        A line break ends a record unless it falls inside a quoted field; `_QuoteScanner` tells,
        following the `csv` module's own reading of quotes.

        `self._row` is the row number of the last record cut; records are parsed in order.
        """
        if not text:
            return
        if self._skipping_long_line:
            cut = text.find(self._newline)
            if cut < 0:
                return
            self._skipping_long_line = False
            text = text[cut + 1 :]
        lines = (self._tail + text).split(self._newline)
        self._tail = lines.pop()
        if self._quotes is None:
            first = next((line for line in lines if line.strip()), None)
            if first is None:
                self._parse_records(lines)  # blank rows only, so far
                return
            self._quotes = _QuoteScanner(self._delimiter_for(first))
        whole, ends_quoted = self._quotes.whole, self._quotes.ends_quoted
        records: list[str] = []
        for line in lines:
            if self._pending is None:
                # The common cases, at C speed: no quote at all, or well-formed quoted fields.
                if '"' not in line or whole(line) or not ends_quoted(line, False):
                    if len(line) > self._max_record:
                        self._parse_records(records)
                        records = []
                        self._row += 1
                        self._fail_record(
                            self._row, f"the row is longer than {self._max_record} characters"
                        )
                        continue
                    records.append(line)
                    continue
                # A quoted field goes on over the next lines. Parse what came before first, so
                # rows stay in order.
                self._parse_records(records)
                records = []
                self._row += 1
                self._pending = [line]
                self._pending_size = len(line)
                self._pending_row = self._row
                continue
            self._pending.append(line)
            self._pending_size += len(line) + 1
            if not ends_quoted(line, True):
                record, self._pending = self._newline.join(self._pending), None
                self._parse_records([record], first_row=self._pending_row)
            elif self._pending_size > self._max_record:
                self._pending = None
                self._fail_record(
                    self._pending_row,
                    f"a quoted field is not closed within {self._max_record} characters",
                )
        self._parse_records(records)
        if len(self._tail) + (self._pending_size if self._pending else 0) > self._max_record:
            # A line that does not end: refuse the row, skip to the next line break.
            if self._pending is None:
                self._row += 1
                self._fail_record(
                    self._row, f"the row is longer than {self._max_record} characters"
                )
            else:
                self._pending = None
                self._fail_record(
                    self._pending_row,
                    f"a quoted field is not closed within {self._max_record} characters",
                )
            self._tail = ""
            self._skipping_long_line = True

    def _parse_records(self, records: list[str], first_row: int | None = None) -> None:
        """Parse records cut in order; they take the rows after `self._row` unless `first_row`."""
        if not records:
            return
        if first_row is None:
            first_row = self._row + 1
            self._row += len(records)
        if self.columns is None:
            for i, record in enumerate(records):
                if record.strip():  # the first row that is not blank is the header
                    self._read_header(record)
                    records, first_row = records[i + 1 :], first_row + i + 1
                    break
            else:
                return
        reader = csv.reader(records, delimiter=self.delimiter or ",", strict=False)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._fail_record(first_row + reader.line_num - 1, f"not valid CSV: {exc}")
                continue
            if any(fields):
                self._take_row(first_row + reader.line_num - 1, fields)

    def _fail_record(self, row: int, message: str) -> None:
        if self.columns is None:
            raise CsvFormatError(f"row {row}: {message}")
        self._rows_read += 1
        self._rows_invalid += 1
        self._errors.append(RowError(row, None, message))
        self._maybe_batch()

    def _take_row(self, row: int, fields: list[str]) -> None:
        """Validate one data row; keep it, or record its errors. The per-row hot path."""
        self._rows_read += 1
        width = self._width
        if len(fields) != width:
            if len(fields) < width:
                fields = fields + [""] * (width - len(fields))  # short rows: empty values
            elif any(f.strip() for f in fields[width:]):
                self._reject(
                    row,
                    [
                        RowError(
                            row,
                            None,
                            f"the row has {len(fields)} values but the header has {width} columns",
                        )
                    ],
                )
                return
        errors: list[RowError] | None = None
        raw_email = fields[self._email]
        try:
            email = normalize_address(raw_email)
        except AddressError as exc:
            errors = [RowError(row, "email", str(exc), _cut(raw_email))]
        else:
            if self._seen is not None:
                first = self._seen.add(email, row)
                if first is not None:
                    errors = [RowError(row, "email", f"duplicate of row {first}", _cut(raw_email))]
        first_name = fields[self._first_name].strip() if self._first_name >= 0 else ""
        last_name = fields[self._last_name].strip() if self._last_name >= 0 else ""
        attributes = {a: v for i, a in self._attributes if (v := fields[i].strip())}
        if (
            len(first_name) > MAX_NAME_CHARS
            or len(last_name) > MAX_NAME_CHARS
            or any(len(v) > MAX_ATTRIBUTE_CHARS for v in attributes.values())
        ):
            errors = (errors or []) + [
                RowError(row, name, f"longer than {limit} characters", _cut(value))
                for name, value, limit in (
                    ("first_name", first_name, MAX_NAME_CHARS),
                    ("last_name", last_name, MAX_NAME_CHARS),
                    *((a, v, MAX_ATTRIBUTE_CHARS) for a, v in attributes.items()),
                )
                if len(value) > limit
            ]
        # Names reach Subject and To through placeholders: the header rule holds here too.
        for name, value in (("first_name", first_name), ("last_name", last_name)):
            if value and (problem := header_text_problem(value)):
                errors = (errors or []) + [RowError(row, name, problem, _cut(value))]
        consent = None
        if self._has_consent:
            consent, consent_errors = self._consent(row, fields)
            if consent_errors:
                errors = (errors or []) + consent_errors
        if errors:
            self._reject(row, errors)
            return
        self._rows_valid += 1
        self._rows.append(ContactRow(row, email, first_name, last_name, attributes, consent))
        if len(self._rows) + len(self._errors) >= self.batch_size:
            self._batches.append(self._batch(final=False))

    def _reject(self, row: int, errors: list[RowError]) -> None:
        self._rows_invalid += 1
        self._errors.extend(errors)
        self._maybe_batch()

    def _consent(self, row: int, fields: list[str]) -> tuple[Consent | None, list[RowError]]:
        source, at_text, ip_text, opt_in_text = (
            fields[i].strip() if i >= 0 else "" for i in self._consent_indexes
        )
        if not (source or at_text or ip_text or opt_in_text):
            return None, []
        errors = []
        if len(source) > MAX_NAME_CHARS:
            errors.append(
                RowError(row, _F.CONSENT_SOURCE, f"longer than {MAX_NAME_CHARS} characters")
            )
        at = None
        if at_text:
            try:
                at = datetime.fromisoformat(at_text)
            except ValueError:
                errors.append(
                    RowError(
                        row,
                        _F.CONSENT_AT,
                        "not an ISO 8601 date and time (such as 2026-03-01T14:30:00Z)",
                        _cut(at_text),
                    )
                )
            else:
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        ip = None
        if ip_text:
            try:
                ip = str(ipaddress.ip_address(ip_text))
            except ValueError:
                errors.append(RowError(row, _F.CONSENT_IP, "not an IP address", _cut(ip_text)))
        double_opt_in = None
        if opt_in_text:
            flag = opt_in_text.lower()
            if flag in _TRUE:
                double_opt_in = True
            elif flag in _FALSE:
                double_opt_in = False
            else:
                errors.append(
                    RowError(
                        row,
                        _F.DOUBLE_OPT_IN,
                        "not a yes/no value (true, false, yes, no, 1, 0)",
                        _cut(opt_in_text),
                    )
                )
        return Consent(source or None, at, ip, double_opt_in), errors

    # -- batches ----------------------------------------------------------------------------------

    def _maybe_batch(self) -> None:
        if len(self._rows) + len(self._errors) >= self.batch_size:
            self._batches.append(self._batch(final=False))

    def _batch(self, *, final: bool) -> ImportBatch:
        batch = ImportBatch(self._rows, self._errors, self.progress, final=final)
        self._rows, self._errors = [], []
        return batch

    def _drain(self) -> list[ImportBatch]:
        batches, self._batches = self._batches, []
        return batches


# --- streams -------------------------------------------------------------------------------------


def read_chunks(file: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The bytes of an open binary file, `chunk_size` at a time."""
    while chunk := file.read(chunk_size):
        yield chunk


def import_csv(
    chunks: Iterable[bytes], parser: ContactCsvParser | None = None, **options: Any
) -> Iterator[ImportBatch]:
    """Parse a CSV byte stream; yields batches, the last one `final`.

    Pass `parser` to read what was detected afterwards (`parser.columns`, `.encoding`,
    `.delimiter`), or the parser's keyword options (`total_bytes=`, `batch_size=`, `mapping=`...).
    """
    parser = parser or ContactCsvParser(**options)
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


async def import_csv_async(
    chunks: AsyncIterable[bytes], parser: ContactCsvParser | None = None, **options: Any
) -> AsyncIterator[ImportBatch]:
    """`import_csv` for an async byte stream (e.g. Starlette's `request.stream()`).

    Parsing is CPU work done between reads, about 10 µs a row: a batch of 1,000 rows holds the
    event loop for ~10 ms.
    """
    parser = parser or ContactCsvParser(**options)
    async for chunk in chunks:
        for batch in parser.feed(chunk):
            yield batch
    for batch in parser.close():
        yield batch
