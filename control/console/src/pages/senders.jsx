// Sender profiles: the From (and Reply-To) a campaign sends with.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

const EMPTY = { profile_name: "", from_name: "", from_address: "", reply_to: "" };

export function SendersPage() {
  const [page, setPage] = useState(1);
  const senders = useResource(() => api("GET", "/api/sender-profiles/", { query: { page, page_size: 25 } }), [page]);
  const [form, setForm] = useState(EMPTY);
  const [error, setError] = useState(null);
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.value });
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api("POST", "/api/sender-profiles/", { body: { ...form, reply_to: form.reply_to || null } });
      setForm(EMPTY);
      senders.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const remove = async (s) => {
    if (!confirm(`Delete the sender “${s.profile_name}”?`)) return;
    setError(null);
    try {
      await api("DELETE", `/api/sender-profiles/${s.id}/`);
      senders.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const errors = error?.fields || {};
  const data = senders.data;
  return (
    <section>
      <h1>Senders</h1>
      <ErrorBanner error={senders.error || error} />
      {senders.loading && !data && <Loading what="senders" />}
      {data && data.total === 0 && <EmptyState title="No sender yet: campaigns need one to send." />}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Sender profiles</caption>
              <thead>
                <tr>
                  <th scope="col">Profile</th>
                  <th scope="col">From</th>
                  <th scope="col">Reply-To</th>
                  {can("settings:delete") && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {data.results.map((s) => (
                  <tr key={s.id}>
                    <td class="name-cell">{s.profile_name}</td>
                    <td class="break">
                      {s.from_name} &lt;{s.from_address}&gt;
                    </td>
                    <td class="break">{s.reply_to || "–"}</td>
                    {can("settings:delete") && (
                      <td>
                        <button type="button" class="button danger small" onClick={() => remove(s)}>
                          Delete<span class="visually-hidden"> {s.profile_name}</span>
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="senders" />
        </>
      )}
      {can("settings:create") && (
        <form class="card" onSubmit={create}>
          <h2>New sender</h2>
          <div class="grid-2">
            <Field label="Profile name" error={errors.profile_name}>
              {(p) => <input {...p} required value={form.profile_name} onInput={set("profile_name")} />}
            </Field>
            <Field label="From name" error={errors.from_name}>
              {(p) => <input {...p} value={form.from_name} onInput={set("from_name")} />}
            </Field>
            <Field label="From address" hint="On one of your sending domains." error={errors.from_address}>
              {(p) => <input {...p} type="email" required value={form.from_address} onInput={set("from_address")} />}
            </Field>
            <Field label="Reply-To (optional)" error={errors.reply_to}>
              {(p) => <input {...p} type="email" value={form.reply_to} onInput={set("reply_to")} />}
            </Field>
          </div>
          <button type="submit" class="button">
            Add sender
          </button>
        </form>
      )}
    </section>
  );
}
