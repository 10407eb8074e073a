// Users and roles: the company's users; admins add users, change roles, deactivate.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { label, when } from "../format.js";
import { can, session } from "../session.js";
import { useResource } from "../use_resource.js";

const ROLES = ["admin", "marketing_manager", "email_specialist", "analyst", "content_creator", "sales", "executive"];

export function UsersPage() {
  const [page, setPage] = useState(1);
  const users = useResource(() => api("GET", "/api/users/", { query: { page, page_size: 25 } }), [page]);
  const [error, setError] = useState(null);
  const update = async (user, changes) => {
    setError(null);
    try {
      await api("PUT", `/api/users/${user.id}/`, { body: changes });
      users.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const data = users.data;
  const me = session().me.user_id;
  return (
    <section>
      <h1>Users</h1>
      {can("users:create") && <NewUser onCreated={users.reload} />}
      <ErrorBanner error={users.error || error} />
      {users.loading && !data && <Loading what="users" />}
      {data && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Users</caption>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Two-factor</th>
                  <th scope="col">Last login</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((u) => (
                  <tr key={u.id}>
                    <td class="name-cell">
                      {u.full_name || u.email}
                      {u.full_name && <span class="muted">{u.email}</span>}
                    </td>
                    <td>
                      {can("users:update") && u.id !== me ? (
                        <select aria-label={`Role of ${u.email}`} value={u.role} onChange={(e) => update(u, { role: e.currentTarget.value })}>
                          {ROLES.map((r) => (
                            <option key={r} value={r}>
                              {label(r)}
                            </option>
                          ))}
                        </select>
                      ) : (
                        label(u.role)
                      )}
                    </td>
                    <td>
                      <StatusBadge status={u.is_active ? "active" : "inactive"} />{" "}
                      {can("users:update") && u.id !== me && (
                        <button type="button" class="button secondary small" onClick={() => update(u, { is_active: !u.is_active })}>
                          {u.is_active ? "Deactivate" : "Activate"}
                          <span class="visually-hidden"> {u.email}</span>
                        </button>
                      )}
                    </td>
                    <td>{u.totp_enabled ? "✓ on" : "off"}</td>
                    <td>{when(u.last_login_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="users" />
        </>
      )}
    </section>
  );
}

function NewUser({ onCreated }) {
  const [form, setForm] = useState({ email: "", full_name: "", role: "email_specialist", password: "" });
  const [error, setError] = useState(null);
  const [open, setOpen] = useState(false);
  if (!open)
    return (
      <button type="button" class="button" onClick={() => setOpen(true)}>
        Add a user
      </button>
    );
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.value });
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api("POST", "/api/users/", { body: form });
      setForm({ email: "", full_name: "", role: "email_specialist", password: "" });
      setOpen(false);
      onCreated();
    } catch (failure) {
      setError(failure);
    }
  };
  const errors = error?.fields || {};
  return (
    <form class="card" onSubmit={create}>
      <h2>Add a user</h2>
      <div class="grid-2">
        <Field label="Email" error={errors.email}>
          {(p) => <input {...p} type="email" required value={form.email} onInput={set("email")} />}
        </Field>
        <Field label="Full name" error={errors.full_name}>
          {(p) => <input {...p} value={form.full_name} onInput={set("full_name")} />}
        </Field>
        <Field label="Role" error={errors.role}>
          {(p) => (
            <select {...p} value={form.role} onChange={set("role")}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {label(r)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Initial password" hint="At least 12 characters; share it safely." error={errors.password}>
          {(p) => <input {...p} type="password" autocomplete="new-password" required value={form.password} onInput={set("password")} />}
        </Field>
      </div>
      <ErrorBanner error={error} title="Not added" />
      <div class="actions">
        <button type="submit" class="button">
          Add user
        </button>
        <button type="button" class="button secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
