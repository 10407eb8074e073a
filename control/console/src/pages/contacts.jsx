// Contacts: search (roles that see personal data), opt-in filter, server-side pages.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { count, label, when } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

export function ContactsPage() {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState("");
  const [optIn, setOptIn] = useState("");
  const contacts = useResource(
    () => api("GET", "/api/contacts/", { query: { page, page_size: 25, search, opt_in_state: optIn } }),
    [page, search, optIn],
  );
  const data = contacts.data;
  return (
    <section>
      <h1>Contacts</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        {can("contacts:pii") && (
          <Field label="Search address or name">
            {(p) => <input {...p} type="search" value={search} onChange={(e) => (setPage(1), setSearch(e.currentTarget.value))} />}
          </Field>
        )}
        <Field label="Opt-in">
          {(p) => (
            <select {...p} value={optIn} onChange={(e) => (setPage(1), setOptIn(e.currentTarget.value))}>
              <option value="">Any</option>
              <option value="confirmed">Confirmed</option>
              <option value="pending">Pending</option>
              <option value="none">None</option>
            </select>
          )}
        </Field>
      </form>
      {!can("contacts:pii") && <p class="muted">Your role sees addresses masked.</p>}
      <ErrorBanner error={contacts.error} />
      {contacts.loading && !data && <Loading what="contacts" />}
      {data && data.total === 0 && <EmptyState title={search || optIn ? "No contact matches." : "No contacts yet: import a CSV into a list."} />}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Contacts</caption>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Name</th>
                  <th scope="col">Consent</th>
                  <th scope="col">Opt-in</th>
                  <th scope="col">Added</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((c) => (
                  <tr key={c.id}>
                    <td class="name-cell">
                      <Link href={ui(`/contacts/${c.id}`)}>{c.email}</Link>
                    </td>
                    <td>{[c.first_name, c.last_name].filter(Boolean).join(" ") || "–"}</td>
                    <td>
                      {label(c.consent_source)} {c.consent_at && <span class="muted">{when(c.consent_at)}</span>}
                    </td>
                    <td>{label(c.opt_in_state)}</td>
                    <td>{when(c.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what={`contacts (${count(data.total)})`} />
        </>
      )}
    </section>
  );
}
