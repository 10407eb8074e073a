// CSV import into a list: the upload streams to the API while the import's progress is polled
// (/api/email-lists/{id}/imports/), then the totals and the rows refused are shown.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { count } from "../format.js";

const POLL_MS = 400;
const ERRORS_SHOWN = 50;

export function CsvImport({ listId, onFinished }) {
  const [file, setFile] = useState(null);
  const [progress, setProgress] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const start = async (event) => {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setProgress({ state: "running", rows_seen: 0, rows_imported: 0, rows_failed: 0, bytes_read: 0, bytes_total: file.size, errors: [] });
    let done = false;
    const poll = async () => {
      while (!done) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        if (done) break;
        try {
          const page = await api("GET", `/api/email-lists/${listId}/imports/`, { query: { page_size: 1 } });
          const latest = page.results[0];
          if (!done && latest && latest.state === "running") setProgress(latest);
        } catch {
          // Progress is a courtesy; the upload's own answer is what counts.
        }
      }
    };
    poll();
    try {
      const result = await api("POST", `/api/email-lists/${listId}/imports/`, { csv: file });
      done = true;
      setProgress(result);
      onFinished();
    } catch (failure) {
      done = true;
      setProgress(null);
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const total = progress?.bytes_total || file?.size || 0;
  return (
    <form class="card" onSubmit={start} aria-labelledby="import-title">
      <h2 id="import-title">Import contacts from CSV</h2>
      <p class="muted">
        A header row names the columns: <code>email</code> (required), <code>first_name</code>, <code>last_name</code>, and any other
        column becomes an attribute. Imported contacts are subscribed; people who left the list stay unsubscribed.
      </p>
      <Field label="CSV file">
        {(p) => <input {...p} type="file" accept=".csv,text/csv" required onChange={(e) => setFile(e.currentTarget.files[0] || null)} />}
      </Field>
      <div class="actions">
        <button type="submit" class="button" disabled={busy || !file}>
          {busy ? "Importing…" : "Import"}
        </button>
      </div>
      <ErrorBanner error={error} title="The import failed" />
      {progress && (
        <div class="import-progress" role="status" aria-live="polite">
          <p>
            <StatusBadge status={progress.state} prefix="Import" /> {count(progress.rows_seen)} rows read, {count(progress.rows_imported)} imported,{" "}
            {count(progress.rows_failed)} refused
          </p>
          <progress max={total || 1} value={progress.state === "running" ? progress.bytes_read : total || 1} aria-label="Import progress" />
          {progress.message && <p>{progress.message}</p>}
          {progress.errors?.length > 0 && (
            <details open={progress.errors.length <= 10}>
              <summary>Rows refused ({count(progress.rows_failed)})</summary>
              <ul>
                {progress.errors.slice(0, ERRORS_SHOWN).map((e, i) => (
                  <li key={i}>
                    Row {e.row}
                    {e.field ? `, ${e.field}` : ""}: {e.message}
                  </li>
                ))}
              </ul>
            </details>
          )}
        </div>
      )}
    </form>
  );
}
