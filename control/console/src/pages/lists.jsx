// Lists: the company's lists with their subscriber counts; a new list in a small form.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { count, label } from "../format.js";
import { navigate, ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

const TYPES = ["static", "dynamic", "segment", "seed", "suppression"];

export function ListsPage() {
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState("");
  const lists = useResource(() => api("GET", "/api/email-lists/", { query: { page, page_size: 25, search } }), [page, search]);
  const data = lists.data;
  return (
    <section>
      <div class="page-head">
        <h1>Lists</h1>
      </div>
      {can("lists:create") && <NewList />}
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field label="Search lists">
          {(p) => <input {...p} type="search" value={search} onChange={(e) => (setPage(1), setSearch(e.currentTarget.value))} />}
        </Field>
      </form>
      <ErrorBanner error={lists.error} />
      {lists.loading && !data && <Loading what="lists" />}
      {data && data.total === 0 && <EmptyState title={search ? "No list matches." : "No lists yet: create one above, then import contacts into it."} />}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Lists</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Type</th>
                  <th scope="col">Subscribed</th>
                  <th scope="col">Unsubscribed</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((l) => (
                  <tr key={l.id}>
                    <td class="name-cell">
                      <Link href={ui(`/lists/${l.id}`)}>{l.list_name}</Link>
                      <span class="muted code">{l.list_code}</span>
                    </td>
                    <td>{label(l.list_type)}</td>
                    <td>{count(l.active_subscribers)}</td>
                    <td>{count(l.unsubscribed_count)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="lists" />
        </>
      )}
    </section>
  );
}

function NewList() {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ list_name: "", list_code: "", list_type: "static" });
  const [error, setError] = useState(null);
  if (!open) {
    return (
      <button type="button" class="button" onClick={() => setOpen(true)}>
        New list
      </button>
    );
  }
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.value });
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const created = await api("POST", "/api/email-lists/", { body: { ...form, source_type: "manual" } });
      navigate(ui(`/lists/${created.id}`));
    } catch (failure) {
      setError(failure);
    }
  };
  const errors = error?.fields || {};
  return (
    <form class="card" onSubmit={create}>
      <h2>New list</h2>
      <div class="grid-3">
        <Field label="List name" error={errors.list_name}>
          {(p) => <input {...p} required value={form.list_name} onInput={set("list_name")} />}
        </Field>
        <Field label="List code" hint="Letters, digits and hyphens." error={errors.list_code}>
          {(p) => <input {...p} required value={form.list_code} onInput={set("list_code")} />}
        </Field>
        <Field label="List type" error={errors.list_type}>
          {(p) => (
            <select {...p} value={form.list_type} onChange={set("list_type")}>
              {TYPES.map((t) => (
                <option key={t} value={t}>
                  {label(t)}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <ErrorBanner error={error} title="Not created" />
      <div class="actions">
        <button type="submit" class="button">
          Create list
        </button>
        <button type="button" class="button secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
