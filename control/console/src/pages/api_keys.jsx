// API keys: scoped to a subset of the creator's permissions, shown once, revocable.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { when } from "../format.js";
import { can, session } from "../session.js";
import { useResource } from "../use_resource.js";

export function ApiKeysPage() {
  const [page, setPage] = useState(1);
  const keys = useResource(() => api("GET", "/api/api-keys/", { query: { page, page_size: 25 } }), [page]);
  const [error, setError] = useState(null);
  const [shown, setShown] = useState(null);
  const revoke = async (key) => {
    if (!confirm(`Revoke the key “${key.name}”? Applications using it stop working at once.`)) return;
    setError(null);
    try {
      await api("DELETE", `/api/api-keys/${key.id}/`);
      keys.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const data = keys.data;
  return (
    <section>
      <h1>API keys</h1>
      {can("settings:create") && (
        <NewKey
          onCreated={(key) => {
            setShown(key);
            keys.reload();
          }}
        />
      )}
      {shown && (
        <div class="card secret" role="status">
          <p>
            <strong>Copy the key “{shown.name}” now:</strong> it is not shown again.
          </p>
          <code class="break">{shown.key}</code>
          <div class="actions">
            <button type="button" class="button secondary" onClick={() => navigator.clipboard?.writeText(shown.key)}>
              Copy
            </button>
            <button type="button" class="button secondary" onClick={() => setShown(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      <ErrorBanner error={keys.error || error} />
      {keys.loading && !data && <Loading what="API keys" />}
      {data && data.total === 0 && <EmptyState title="No API keys yet." />}
      {data && data.total > 0 && (
        <>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Permissions</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((k) => (
                  <tr key={k.id}>
                    <td class="name-cell">{k.name}</td>
                    <td class="code">{k.key_prefix}</td>
                    <td class="perm-cell">{k.permissions.join(", ")}</td>
                    <td>{when(k.last_used_at)}</td>
                    <td>
                      <StatusBadge status={k.revoked_at ? "inactive" : "active"} />{" "}
                      {!k.revoked_at && can("settings:delete") && (
                        <button type="button" class="button danger small" onClick={() => revoke(k)}>
                          Revoke<span class="visually-hidden"> {k.name}</span>
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={setPage} what="keys" />
        </>
      )}
    </section>
  );
}

function NewKey({ onCreated }) {
  const mine = session().me.permissions;
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState([]);
  const [error, setError] = useState(null);
  const [open, setOpen] = useState(false);
  if (!open)
    return (
      <button type="button" class="button" onClick={() => setOpen(true)}>
        New API key
      </button>
    );
  const toggle = (p) => setChosen(chosen.includes(p) ? chosen.filter((x) => x !== p) : [...chosen, p]);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const key = await api("POST", "/api/api-keys/", { body: { name, permissions: chosen } });
      setName("");
      setChosen([]);
      setOpen(false);
      onCreated(key);
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <form class="card" onSubmit={create}>
      <h2>New API key</h2>
      <Field label="Name" hint="What uses it, e.g. “shop checkout”." error={error?.fields?.name}>
        {(p) => <input {...p} required value={name} onInput={(e) => setName(e.currentTarget.value)} />}
      </Field>
      <fieldset class="permission-grid">
        <legend>Permissions (a subset of yours)</legend>
        {mine.map((p) => (
          <label key={p} class="checkbox">
            <input type="checkbox" checked={chosen.includes(p)} onChange={() => toggle(p)} /> {p}
          </label>
        ))}
      </fieldset>
      <ErrorBanner error={error} title="Not created" />
      <div class="actions">
        <button type="submit" class="button" disabled={!chosen.length}>
          Create key
        </button>
        <button type="button" class="button secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
