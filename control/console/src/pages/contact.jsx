// One contact: consent record, lists, and the GDPR actions (export everything held, erase).
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Loading } from "../components/loading.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { label, when } from "../format.js";
import { navigate, ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

export function ContactPage({ id }) {
  const contact = useResource(() => api("GET", `/api/contacts/${id}/`), [id]);
  const lists = useResource(() => api("GET", `/api/contacts/${id}/lists/`), [id]);
  const [error, setError] = useState(null);
  if (contact.error)
    return (
      <section>
        <h1>Contact</h1>
        <ErrorBanner error={contact.error} />
      </section>
    );
  if (!contact.data) return <Loading what="the contact" />;
  const c = contact.data;
  const exportAll = async () => {
    setError(null);
    try {
      const data = await api("GET", `/api/contacts/${id}/export/`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `contact-${id}.json`;
      a.click();
      URL.revokeObjectURL(url);
    } catch (failure) {
      setError(failure);
    }
  };
  const erase = async () => {
    if (!confirm(`Erase ${c.email}? Personal data is removed for good and the address is never mailed again.`)) return;
    setError(null);
    try {
      await api("POST", `/api/contacts/${id}/erase/`, { body: {} });
      navigate(ui("/contacts"));
    } catch (failure) {
      setError(failure);
    }
  };
  const memberships = lists.data?.results || lists.data || [];
  return (
    <section>
      <h1 class="break">{c.email}</h1>
      <dl class="facts">
        <dt>Name</dt>
        <dd>{[c.first_name, c.last_name].filter(Boolean).join(" ") || "–"}</dd>
        <dt>Consent source</dt>
        <dd>{label(c.consent_source)}</dd>
        <dt>Consent given</dt>
        <dd>{when(c.consent_at)}</dd>
        <dt>Consent IP</dt>
        <dd>{c.consent_ip || "–"}</dd>
        <dt>Double opt-in</dt>
        <dd>
          {label(c.opt_in_state)} {c.confirmed_at && `(${when(c.confirmed_at)})`}
        </dd>
      </dl>
      <h2>Lists</h2>
      {Array.isArray(memberships) && memberships.length === 0 && <p>Not on any list.</p>}
      {Array.isArray(memberships) && memberships.length > 0 && (
        <ul class="plain-list">
          {memberships.map((m) => (
            <li key={m.list_id}>
              {m.list_name} <StatusBadge status={m.state} />
            </li>
          ))}
        </ul>
      )}
      {can("contacts:pii") && (
        <section aria-labelledby="gdpr-title" class="card">
          <h2 id="gdpr-title">Personal data (GDPR)</h2>
          <ErrorBanner error={error} />
          <div class="actions">
            <button type="button" class="button secondary" onClick={exportAll}>
              Export everything held
            </button>
            <button type="button" class="button danger" onClick={erase}>
              Erase this person…
            </button>
          </div>
        </section>
      )}
    </section>
  );
}
