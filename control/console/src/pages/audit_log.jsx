// The audit log (admins): every write through the API, newest first.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { when } from "../format.js";
import { useResource } from "../use_resource.js";

export function AuditLogPage() {
  const [page, setPage] = useState(1);
  const log = useResource(() => api("GET", "/api/audit-log/", { query: { page, page_size: 50 } }), [page]);
  const data = log.data;
  return (
    <section>
      <h1>Audit log</h1>
      <ErrorBanner error={log.error} />
      {log.loading && !data && <Loading what="the audit log" />}
      {data && data.total === 0 && <EmptyState title="Nothing recorded yet." />}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Audit log</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Action</th>
                  <th scope="col">Record</th>
                  <th scope="col">Who</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((a) => (
                  <tr key={a.id}>
                    <td>{when(a.at)}</td>
                    <td class="code">{a.action}</td>
                    <td>
                      {a.resource} {a.resource_id ? `#${a.resource_id}` : ""}
                    </td>
                    <td>{a.user_id ? `user #${a.user_id}` : a.api_key_id ? `key #${a.api_key_id}` : "–"}</td>
                    <td>{a.ip || "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="entries" />
        </>
      )}
    </section>
  );
}
