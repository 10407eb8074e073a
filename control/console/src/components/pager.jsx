// Server-side pagination controls for a list answer {total, page, page_size}.
import { count } from "../format.js";

export function Pager({ data, onPage, what = "items" }) {
  if (!data) return null;
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  return (
    <nav class="pager" aria-label={`Pages of ${what}`}>
      <button
        type="button"
        class="button secondary"
        disabled={data.page <= 1}
        onClick={() => onPage(data.page - 1)}
      >
        ← Previous
      </button>
      <span aria-live="polite">
        Page {count(data.page)} of {count(pages)} · {count(data.total)} {what}
      </span>
      <button
        type="button"
        class="button secondary"
        disabled={data.page >= pages}
        onClick={() => onPage(data.page + 1)}
      >
        Next →
      </button>
    </nav>
  );
}
