// An API or network error, said plainly, announced to screen readers.
import { ContentChecks } from "./content_checks.jsx";

export function ErrorBanner({ error, title = "Something went wrong" }) {
  if (!error) return null;
  const fields = error.fields ? Object.entries(error.fields) : [];
  return (
    <div class="error-banner" role="alert">
      <strong>{title}:</strong> {error.message}
      {fields.length > 0 && (
        <ul>
          {fields.map(([name, message]) => (
            <li key={name}>
              <code>{name}</code>: {String(message)}
            </li>
          ))}
        </ul>
      )}
      {error.code === "content_rejected" && <ContentChecks report={error.details} />}
    </div>
  );
}
