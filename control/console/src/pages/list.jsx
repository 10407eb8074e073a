// One list: its members (server-side pages), CSV import with live progress and per-row errors,
// and the list's past imports.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { count, label, when } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";
import { DeleteButton } from "../components/delete_button.jsx";
import { AddContact } from "./add_contact.jsx";
import { CsvImport } from "./csv_import.jsx";

export function ListPage({ id }) {
  const list = useResource(() => api("GET", `/api/email-lists/${id}/`), [id]);
  const [page, setPage] = useState(1);
  const [state, setState] = useState("subscribed");
  const members = useResource(() => api("GET", `/api/email-lists/${id}/contacts/`, { query: { page, page_size: 25, state } }), [id, page, state]);
  const reload = () => {
    list.reload();
    members.reload();
  };
  if (list.error)
    return (
      <section>
        <h1>List</h1>
        <ErrorBanner error={list.error} />
      </section>
    );
  if (!list.data) return <Loading what="the list" />;
  const l = list.data;
  const data = members.data;
  return (
    <section>
      <h1>{l.list_name}</h1>
      <dl class="stats">
        <div class="stat">
          <dt>Subscribed</dt>
          <dd>{count(l.active_subscribers)}</dd>
        </div>
        <div class="stat">
          <dt>Unsubscribed</dt>
          <dd>{count(l.unsubscribed_count)}</dd>
        </div>
        <div class="stat">
          <dt>Type</dt>
          <dd>{label(l.list_type)}</dd>
        </div>
      </dl>
      {can("lists:create") && <CsvImport listId={id} onFinished={reload} />}
      {can("lists:create") && can("lists:update") && <AddContact listId={id} onAdded={reload} />}
      {can("contacts:pii") && (
        <p>
          <a href={`/api/email-lists/${id}/export/`} class="muted" onClick={(e) => (e.preventDefault(), download(id, l.list_code))}>
            Export members as CSV
          </a>
        </p>
      )}
      <section aria-labelledby="members-title">
        <h2 id="members-title">Members</h2>
        <div class="tabs" role="group" aria-label="Membership state">
          {["subscribed", "unsubscribed"].map((s) => (
            <button type="button" key={s} class={`button ${state === s ? "" : "secondary"}`} aria-pressed={state === s ? "true" : "false"} onClick={() => (setPage(1), setState(s))}>
              {label(s)}
            </button>
          ))}
        </div>
        <ErrorBanner error={members.error} />
        {members.loading && !data && <Loading what="members" />}
        {data && data.total === 0 && <EmptyState title={`No ${state} members.`} />}
        {data && data.total > 0 && (
          <>
            <div class="table-wrap">
              <table>
                <caption class="visually-hidden">Members</caption>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Name</th>
                    <th scope="col">State</th>
                    <th scope="col">Since</th>
                  </tr>
                </thead>
                <tbody>
                  {data.results.map((m) => (
                    <tr key={m.id}>
                      <td class="name-cell">
                        <Link href={ui(`/contacts/${m.id}`)}>{m.email}</Link>
                      </td>
                      <td>{[m.first_name, m.last_name].filter(Boolean).join(" ") || "–"}</td>
                      <td>
                        <StatusBadge status={m.membership_state} />
                      </td>
                      <td>{when(m.membership_state === "subscribed" ? m.subscribed_at : m.unsubscribed_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <Pager data={data} onPage={setPage} what="members" />
          </>
        )}
      </section>
      {can("lists:delete") && <DeleteButton path={`/api/email-lists/${id}/`} what="list" name={l.list_name} then={ui("/lists")} />}
    </section>
  );
}

// The export needs the bearer token, so it is fetched and handed to the browser as a file.
async function download(id, code) {
  const response = await api("GET", `/api/email-lists/${id}/export/`, { raw: true });
  if (!response.ok) return;
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `${code}.csv`;
  a.click();
  URL.revokeObjectURL(url);
}
