// Add one person to a list by hand: the contact is created (consent: manual), then subscribed.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";

const EMPTY = { email: "", first_name: "", last_name: "" };

export function AddContact({ listId, onAdded }) {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState(EMPTY);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  if (!open) {
    return (
      <p>
        <button type="button" class="button secondary" onClick={() => setOpen(true)}>
          Add a contact by hand
        </button>
        {notice && (
          <span class="notice" role="status">
            {notice}
          </span>
        )}
      </p>
    );
  }
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.value });
  const add = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const contact = await api("POST", "/api/contacts/", {
        body: { ...form, first_name: form.first_name || null, last_name: form.last_name || null, consent_source: "manual" },
      });
      await api("POST", `/api/email-lists/${listId}/contacts/`, { body: { contact_ids: [contact.id] } });
      setNotice(`${form.email} added.`);
      setForm(EMPTY);
      setOpen(false);
      onAdded();
    } catch (failure) {
      setError(failure);
    }
  };
  const errors = error?.fields || {};
  return (
    <form class="card" onSubmit={add}>
      <h2>Add a contact</h2>
      <div class="grid-3">
        <Field label="Email address" error={errors.email}>
          {(p) => <input {...p} type="email" required value={form.email} onInput={set("email")} />}
        </Field>
        <Field label="First name" error={errors.first_name}>
          {(p) => <input {...p} value={form.first_name} onInput={set("first_name")} />}
        </Field>
        <Field label="Last name" error={errors.last_name}>
          {(p) => <input {...p} value={form.last_name} onInput={set("last_name")} />}
        </Field>
      </div>
      <ErrorBanner error={error} title="Not added" />
      <div class="actions">
        <button type="submit" class="button">
          Add to this list
        </button>
        <button type="button" class="button secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
