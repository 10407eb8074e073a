"""CSV import and export of a list's contacts.

    POST /api/email-lists/{id}/imports/   text/csv body, streamed: contacts upserted and
                                          subscribed in batches of 1,000; per-row errors kept
    GET  /api/email-lists/{id}/imports/   the list's imports, with progress
    GET  /api/imports/{id}/               one import's progress (poll it while uploading)
    GET  /api/email-lists/{id}/export/    the members as CSV, streamed from a cursor

The upload is parsed as it arrives (control/csv_import.py) and each batch is committed with the
import's progress, so a million rows never sit in memory and other clients watch the counts
grow. Erased addresses are refused row by row. An import is not a new opt-in: a member who left
the list stays unsubscribed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from control.csv_import import CsvFormatError, ImportBatch, RowError, import_csv_async
from control.errors import Forbidden, NotFound, ValidationFailed
from control.fields import Schema, ro
from control.permissions import CONTACT_PII, Action, permission
from control.responses import dumps
from control.routing import Api, Call, Page, record
from mta.queries import Queries

SQL = Queries("control")
BATCH_SIZE = 1000
CSV_TYPE = "text/csv"
EXPORT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "consent_source",
    "consent_at",
    "consent_ip",
    "opt_in_state",
    "state",
    "subscribed_at",
    "attributes",
)
_OPT_IN = {True: "confirmed", False: "pending", None: "none"}

IMPORT = Schema(
    "ContactImport",
    (
        ro("id", "id"),
        ro("list_id", "id"),
        ro("state", enum=("running", "finished", "failed")),
        ro("bytes_total", "integer", nullable=True),
        ro("bytes_read", "integer"),
        ro("rows_seen", "integer"),
        ro("rows_imported", "integer"),
        ro("rows_failed", "integer"),
        ro("errors", "array"),
        ro("message", nullable=True),
        ro("started_at", "datetime"),
        ro("finished_at", "datetime", nullable=True),
    ),
)

api = Api()


def out(call: Call, row: Any) -> dict[str, Any]:
    data = {f.name: row[f.name] for f in IMPORT.fields}
    if not (call.principal and call.principal.sees_pii):
        data["errors"] = [{**e, "value": None} for e in data["errors"]]
    return data


async def _list_or_404(call: Call) -> int:
    if not await call.db.fetchval(SQL["list-exists"], call.ids["id"], call.company_id):
        raise NotFound("email list")
    return call.ids["id"]


def _error_json(errors: list[RowError]) -> list[dict[str, Any]]:
    return [
        {"row": e.row, "field": e.field, "message": e.message, "value": e.value} for e in errors
    ]


async def _take(call: Call, import_id: int, list_id: int, batch: ImportBatch, failed: int) -> int:
    """Store one batch; returns the rows refused so far (parser's plus erased addresses)."""
    db = call.services.db
    emails = [r.email for r in batch.rows]
    erased = {r["e"] for r in await db.fetch(SQL["erased-among"], call.company_id, emails)}
    rows = [r for r in batch.rows if r.email not in erased]
    errors = list(batch.errors) + [
        RowError(r.row, "email", "this address was erased at its owner's request", r.email)
        for r in batch.rows
        if r.email in erased
    ]
    failed += len(errors)
    consent = [r.consent for r in rows]
    async with db.acquire() as conn, conn.transaction():
        if rows:
            await conn.execute(
                SQL["import-contacts"],
                call.company_id,
                list_id,
                [r.email for r in rows],
                [r.first_name for r in rows],
                [r.last_name for r in rows],
                [r.attributes for r in rows],
                [(c.source if c and c.source else "import") for c in consent],
                [(c.at if c else None) for c in consent],
                [(c.ip if c else None) for c in consent],
                [_OPT_IN[c.double_opt_in if c else None] for c in consent],
            )
        progress = batch.progress
        await conn.execute(
            SQL["import-progress"],
            import_id,
            progress.bytes_read,
            progress.rows_read,
            len(rows),
            failed,
            _error_json(errors),
        )
    return failed


@api.add(
    "POST",
    "/api/email-lists/{id}/imports/",
    "Import contacts from CSV into a list (streamed; per-row errors reported)",
    "lists",
    permission=permission("lists", Action.CREATE),
    raw_body=CSV_TYPE,
    response=IMPORT,
    audited=False,  # commits batch by batch so progress is visible while it runs
)
async def import_contacts(call: Call) -> dict[str, Any]:
    list_id = await _list_or_404(call)
    length = call.request.headers.get("content-length")
    total = int(length) if length and length.isdigit() else None
    db = call.services.db
    started = await db.fetchrow(SQL["start-import"], call.company_id, list_id, call.user_id, total)
    import_id = started["id"]
    failed = 0
    try:
        async for batch in import_csv_async(
            call.request.stream(), total_bytes=total, batch_size=BATCH_SIZE
        ):
            failed = await _take(call, import_id, list_id, batch, failed)
    except CsvFormatError as exc:
        await db.execute(SQL["finish-import"], import_id, "failed", str(exc))
        raise ValidationFailed({"file": str(exc)}, f"the file cannot be imported: {exc}") from None
    except BaseException as exc:
        await db.execute(SQL["finish-import"], import_id, "failed", f"interrupted: {exc!r}")
        raise
    done = await db.fetchrow(SQL["finish-import"], import_id, "finished", None)
    result = out(call, done)
    summary = {k: result[k] for k in ("rows_seen", "rows_imported", "rows_failed")}
    call.audit(
        "email_list.import", "email_list", list_id, None, {"import_id": import_id, **summary}
    )
    async with db.acquire() as conn, conn.transaction():
        await record(conn, call)
    return result


@api.add(
    "GET",
    "/api/email-lists/{id}/imports/",
    "A list's imports, newest first",
    "lists",
    permission=permission("lists", Action.READ),
    response=IMPORT,
    paginated=True,
)
async def list_imports(call: Call) -> Page:
    list_id = await _list_or_404(call)
    limit, offset = call.limit_offset
    page = call.page(
        await call.db.fetch(SQL["list-imports"], call.company_id, list_id, limit, offset)
    )
    page.rows = [out(call, r) for r in page.rows]
    return page


@api.add(
    "GET",
    "/api/imports/{id}/",
    "One import's progress",
    "lists",
    permission=permission("lists", Action.READ),
    response=IMPORT,
)
async def get_import(call: Call) -> dict[str, Any]:
    row = await call.db.fetchrow(SQL["get-import"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("import")
    return out(call, row)


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '
    (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return dumps(value).decode() if value else ""
    text = dumps(value).decode().strip('"') if not isinstance(value, str) else value
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@api.add(
    "GET",
    "/api/email-lists/{id}/export/",
    "Export a list's members as CSV (needs contacts:pii)",
    "lists",
    permission=permission("lists", Action.READ),
    produces=CSV_TYPE,
)
async def export_list(call: Call) -> StreamingResponse:
    if not (call.principal and call.principal.sees_pii):
        raise Forbidden(f"exporting addresses needs {CONTACT_PII}", permission=CONTACT_PII)
    list_id = await _list_or_404(call)
    call.audit("email_list.export", "email_list", list_id, None, None)
    async with call.services.db.acquire() as conn, conn.transaction():
        await record(conn, call)
    db, company_id = call.services.db, call.company_id

    async def lines() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        async with db.acquire() as conn, conn.transaction():
            async for row in conn.cursor(SQL["export-list"], company_id, list_id, prefetch=1000):
                writer.writerow([_cell(row[c]) for c in EXPORT_COLUMNS])
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{list_id}.csv"'},
    )
