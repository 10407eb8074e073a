// Company settings: approval rules, the second factor for sending and approving, campaign
// codes, and the sending window and daily limit (control/campaign_status.py reads them).
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { can } from "../session.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MFA_ACTIONS = [
  ["send", "Sending, scheduling, pausing"],
  ["approve", "Approving and rejecting"],
];

function formOf(settings) {
  const window = settings.sending?.window || {};
  return {
    code_prefix: settings.code_prefix || "",
    mfa_required_for: settings.mfa_required_for || [],
    approval_required: Boolean(settings.approval?.required),
    audience_threshold: settings.approval?.audience_threshold ?? "",
    timezone: settings.sending?.timezone || "UTC",
    days: window.days || DAYS,
    start: window.start || "00:00",
    end: window.end || "24:00",
    daily_limit: settings.sending?.daily_limit ?? "",
  };
}

function bodyOf(form) {
  return {
    code_prefix: form.code_prefix,
    mfa_required_for: form.mfa_required_for,
    approval: {
      required: form.approval_required,
      audience_threshold: form.audience_threshold === "" ? null : Number(form.audience_threshold),
    },
    sending: {
      timezone: form.timezone,
      window: { days: form.days, start: form.start, end: form.end },
      daily_limit: form.daily_limit === "" ? null : Number(form.daily_limit),
    },
  };
}

export function SettingsPage() {
  const [form, setForm] = useState(null);
  const [company, setCompany] = useState("");
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const writable = can("settings:update");
  useEffect(() => {
    api("GET", "/api/settings/").then((s) => {
      setCompany(s.company_name);
      setForm(formOf(s));
    }, setError);
  }, []);
  if (!form) {
    return (
      <section>
        <h1>Settings</h1>
        {error ? <ErrorBanner error={error} /> : <Loading what="settings" />}
      </section>
    );
  }
  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const toggle = (name, value) => {
    const list = form[name];
    setForm({ ...form, [name]: list.includes(value) ? list.filter((v) => v !== value) : [...list, value] });
  };
  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice("");
    try {
      setForm(formOf(await api("PUT", "/api/settings/", { body: bodyOf(form) })));
      setNotice("Settings saved.");
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>Settings</h1>
      <p class="muted">{company}</p>
      <form onSubmit={save}>
        <fieldset disabled={!writable} class="card">
          <legend>Approval</legend>
          <label class="checkbox">
            <input type="checkbox" checked={form.approval_required} onChange={set("approval_required")} /> Every campaign needs approval
          </label>
          <Field label="Or only audiences larger than" hint="Recipients; empty: no threshold.">
            {(p) => <input {...p} type="number" min="0" value={form.audience_threshold} onInput={set("audience_threshold")} />}
          </Field>
        </fieldset>
        <fieldset disabled={!writable} class="card">
          <legend>Second factor (TOTP) required for</legend>
          {MFA_ACTIONS.map(([value, text]) => (
            <label class="checkbox" key={value}>
              <input type="checkbox" checked={form.mfa_required_for.includes(value)} onChange={() => toggle("mfa_required_for", value)} /> {text}
            </label>
          ))}
        </fieldset>
        <fieldset disabled={!writable} class="card">
          <legend>Sending window</legend>
          <div class="grid-3">
            <Field label="Time zone" hint="IANA name, e.g. Europe/Paris.">
              {(p) => <input {...p} value={form.timezone} onInput={set("timezone")} />}
            </Field>
            <Field label="From (local time)">
              {(p) => <input {...p} pattern="[0-2][0-9]:[0-5][0-9]" value={form.start} onInput={set("start")} />}
            </Field>
            <Field label="Until (local time, exclusive)">
              {(p) => <input {...p} pattern="[0-2][0-9]:[0-5][0-9]" value={form.end} onInput={set("end")} />}
            </Field>
          </div>
          <fieldset class="day-picker">
            <legend>Days</legend>
            {DAYS.map((d) => (
              <label class="checkbox" key={d}>
                <input type="checkbox" checked={form.days.includes(d)} onChange={() => toggle("days", d)} /> {d}
              </label>
            ))}
          </fieldset>
          <Field label="Daily limit (recipients per local day)" hint="Empty: no limit.">
            {(p) => <input {...p} type="number" min="1" value={form.daily_limit} onInput={set("daily_limit")} />}
          </Field>
        </fieldset>
        <fieldset disabled={!writable} class="card">
          <legend>Campaign codes</legend>
          <Field label="Code prefix" hint="New campaigns are numbered PREFIX-00001, PREFIX-00002…" error={error?.fields?.code_prefix}>
            {(p) => <input {...p} value={form.code_prefix} onInput={set("code_prefix")} />}
          </Field>
        </fieldset>
        <ErrorBanner error={error} title="Not saved" />
        {notice && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        {writable ? (
          <button type="submit" class="button" disabled={busy}>
            {busy ? "Saving…" : "Save settings"}
          </button>
        ) : (
          <p class="muted">Your role can read these settings; an admin changes them.</p>
        )}
      </form>
    </section>
  );
}
