// Templates: the company's email templates, newest first, with their content check state.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { label, when } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

export function TemplatesPage() {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState("");
  const templates = useResource(
    () => api("GET", "/api/email-templates/", { query: { page, page_size: 25, search } }),
    [page, search],
  );
  const data = templates.data;
  return (
    <section>
      <div class="page-head">
        <h1>Templates</h1>
        {can("templates:create") && (
          <Link class="button" href={ui("/templates/new")}>
            New template
          </Link>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field label="Search templates">
          {(p) => <input {...p} type="search" value={search} onChange={(e) => (setPage(1), setSearch(e.currentTarget.value))} />}
        </Field>
      </form>
      <ErrorBanner error={templates.error} />
      {templates.loading && !data && <Loading what="templates" />}
      {data && data.total === 0 && (
        <EmptyState title={search ? "No template matches." : "No templates yet."}>
          {!search && can("templates:create") && (
            <Link class="button" href={ui("/templates/new")}>
              Create a template
            </Link>
          )}
        </EmptyState>
      )}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Templates</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Type</th>
                  <th scope="col">Content checks</th>
                  <th scope="col">State</th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((t) => (
                  <tr key={t.id}>
                    <td class="name-cell">
                      <Link href={ui(`/templates/${t.id}`)}>{t.template_name}</Link>
                      <span class="muted code">{t.template_code}</span>
                    </td>
                    <td>{label(t.template_type)}</td>
                    <td>
                      <StatusBadge status={t.content_checks?.ok === false ? "failed" : "finished"} prefix="checks" />
                    </td>
                    <td>
                      <StatusBadge status={t.is_active ? "active" : "inactive"} />
                    </td>
                    <td>{when(t.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="templates" />
        </>
      )}
    </section>
  );
}
