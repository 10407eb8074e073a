// The content checks' report (control/content_checks.py): errors block sending, warnings show.
import { label } from "../format.js";

export function ContentChecks({ report }) {
  if (!report) {
    // The API reports the checks only on the save that ran them; a saved template has no
    // errors (they refuse the save), and sending runs them again.
    return (
      <p>
        <span class="badge badge-approved">
          <span aria-hidden="true">✓ </span>Passed the content checks
        </span>{" "}
        when it was last saved; they run again before sending.
      </p>
    );
  }
  const results = report.results || [];
  return (
    <div class="content-checks">
      <p>
        <span class={`badge badge-${report.ok ? "approved" : "rejected"}`}>
          <span aria-hidden="true">{report.ok ? "✓ " : "✕ "}</span>
          {report.ok ? "Passes the content checks" : "Fails the content checks"}
        </span>
        {report.spam_score !== null && report.spam_score !== undefined && (
          <span class="muted"> · spam score {report.spam_score} ({report.spam_source})</span>
        )}
      </p>
      {results.length > 0 && (
        <ul class="check-list">
          {results.map((result, i) => (
            <li key={i} class={`check-${result.severity}`}>
              <strong>
                <span aria-hidden="true">{result.severity === "error" ? "✕ " : "⚠ "}</span>
                {result.severity === "error" ? "Error" : "Warning"} ({label(result.check)}):
              </strong>{" "}
              {result.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
