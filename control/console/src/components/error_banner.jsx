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
      {error.code === "in_use" && error.details.campaigns && (
        <p>
          Used by:{" "}
          {error.details.campaigns.map((c, i) => (
            <span key={c.id}>
              {i > 0 && ", "}
              <a href={`/ui/campaigns/${c.id}`}>{c.campaign_code}</a>
            </span>
          ))}
        </p>
      )}
      {error.code === "mfa_required" && (
        <p>
          Your company asks for the second factor for this. Turn it on under <a href="/ui/account">Account</a> if you have not, then log out
          and log in again with your code.
        </p>
      )}
    </div>
  );
}
