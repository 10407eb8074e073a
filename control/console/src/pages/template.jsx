// One template: its settings and its HTML (or MJML) source, personalisation variables inserted
// at the cursor, the content checks' results inline after each save.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { ContentChecks } from "../components/content_checks.jsx";
import { DeleteButton } from "../components/delete_button.jsx";
import { EmailPreview } from "../components/email_preview.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { label } from "../format.js";
import { navigate, ui } from "../router.js";
import { can } from "../session.js";

const TYPES = ["newsletter", "promotional", "transactional", "welcome", "announcement", "event", "survey", "custom"];
const CATEGORIES = ["marketing", "sales", "support", "onboarding", "retention", "notification", "other"];
// What a template can say about its recipient (control/placeholders.py renders these).
const VARIABLES = ["first_name", "last_name", "email", "unsubscribe_url"];
const STARTER =
  '<!doctype html>\n<html><head><meta name="viewport" content="width=device-width">\n' +
  "<style>@media (max-width:600px){.c{width:100%}}</style></head>\n" +
  '<body><div class="c">\n<p>Hello {{first_name}},</p>\n\n' +
  '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>\n</div></body></html>\n';
const EDITABLE = ["template_name", "template_code", "description", "template_type", "category", "html_content", "text_content", "mjml_source", "is_active"];

export function TemplatePage({ id }) {
  const creating = id === undefined;
  const [form, setForm] = useState(null);
  const [saved, setSaved] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState("");
  const html = useRef(null);
  const writable = creating ? can("templates:create") : can("templates:update");

  useEffect(() => {
    if (creating) {
      setForm({ template_name: "", template_code: "", description: "", template_type: "newsletter", category: "marketing", html_content: STARTER, text_content: "", mjml_source: "", is_active: true });
      return;
    }
    api("GET", `/api/email-templates/${id}/`).then(
      (t) => {
        setSaved(t);
        const fields = Object.fromEntries(EDITABLE.map((k) => [k, t[k] ?? (k === "is_active" ? true : "")]));
        // A generated text part is shown empty: saving it back would freeze it as authored.
        if (t.text_generated) fields.text_content = "";
        setForm(fields);
      },
      setError,
    );
  }, [id]);

  if (!form) {
    return error ? (
      <section>
        <h1>Template</h1>
        <ErrorBanner error={error} />
      </section>
    ) : (
      <Loading what="the template" />
    );
  }
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const insert = (variable) => {
    const area = html.current;
    const text = `{{${variable}}}`;
    const start = area.selectionStart ?? form.html_content.length;
    const end = area.selectionEnd ?? start;
    const value = form.html_content.slice(0, start) + text + form.html_content.slice(end);
    setForm({ ...form, html_content: value });
    requestAnimationFrame(() => {
      area.focus();
      area.setSelectionRange(start + text.length, start + text.length);
    });
  };
  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setNotice("");
    const body = { ...form };
    for (const key of ["description", "text_content", "mjml_source"]) if (!body[key]) body[key] = null;
    try {
      const result = creating
        ? await api("POST", "/api/email-templates/", { body })
        : await api("PATCH", `/api/email-templates/${id}/`, { body });
      setSaved(result);
      setNotice("Saved.");
      if (creating) navigate(ui(`/templates/${result.id}`), { replace: true });
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const errors = error?.fields || {};
  return (
    <section>
      <h1>{creating ? "New template" : form.template_name || "Template"}</h1>
      <form class="template-form" onSubmit={save}>
        <fieldset disabled={!writable}>
          <legend class="visually-hidden">Template settings</legend>
          <div class="grid-2">
            <Field label="Name" error={errors.template_name}>
              {(p) => <input {...p} required maxLength={200} value={form.template_name} onInput={set("template_name")} />}
            </Field>
            <Field label="Code" hint="Letters, digits and hyphens." error={errors.template_code}>
              {(p) => <input {...p} required maxLength={50} value={form.template_code} onInput={set("template_code")} />}
            </Field>
            <Field label="Type" error={errors.template_type}>
              {(p) => (
                <select {...p} value={form.template_type} onChange={set("template_type")}>
                  {TYPES.map((t) => (
                    <option key={t} value={t}>
                      {label(t)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Category" error={errors.category}>
              {(p) => (
                <select {...p} value={form.category} onChange={set("category")}>
                  {CATEGORIES.map((c) => (
                    <option key={c} value={c}>
                      {label(c)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
          <Field label="Description" error={errors.description}>
            {(p) => <input {...p} value={form.description} onInput={set("description")} />}
          </Field>
          {!creating && writable && (
            <p>
              <a class="button secondary" href={`/ui/builder.html?template=${id}`}>
                Open the drag-and-drop builder
              </a>
            </p>
          )}
          <div class="variables" role="group" aria-label="Insert a personalisation variable into the HTML">
            <span>Insert:</span>
            {VARIABLES.map((v) => (
              <button type="button" class="button secondary small" key={v} onClick={() => insert(v)}>
                {`{{${v}}}`}
              </button>
            ))}
          </div>
          <Field label="HTML source" error={errors.html_content}>
            {(p) => <textarea {...p} ref={html} class="source" rows={16} spellcheck={false} value={form.html_content} onInput={set("html_content")} />}
          </Field>
          <Field label="MJML source (optional)" hint="When given, the HTML is compiled from it." error={errors.mjml_source}>
            {(p) => <textarea {...p} class="source" rows={6} spellcheck={false} value={form.mjml_source} onInput={set("mjml_source")} />}
          </Field>
          <Field label="Text part (optional)" hint="Left empty, it is generated from the HTML at each save." error={errors.text_content}>
            {(p) => <textarea {...p} rows={5} value={form.text_content} onInput={set("text_content")} />}
          </Field>
          <label class="checkbox">
            <input type="checkbox" checked={form.is_active} onChange={set("is_active")} /> Active (offered in the campaign wizard)
          </label>
        </fieldset>
        <ErrorBanner error={error} title="Not saved" />
        {notice && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        {writable && (
          <div class="actions">
            <button type="submit" class="button" disabled={busy}>
              {busy ? "Saving…" : creating ? "Create template" : "Save"}
            </button>
          </div>
        )}
      </form>
      <section aria-labelledby="preview-title">
        <h2 id="preview-title">Preview</h2>
        <p class="muted">As saved or as typed; variables show as written until the campaign is sent.</p>
        <EmailPreview html={form.html_content} />
      </section>
      {saved && (
        <section aria-labelledby="checks-title">
          <h2 id="checks-title">Content checks</h2>
          <ContentChecks report={saved.content_checks} />
        </section>
      )}
      {saved && can("templates:delete") && (
        <DeleteButton path={`/api/email-templates/${id}/`} what="template" name={saved.template_name} then={ui("/templates")} />
      )}
    </section>
  );
}
