// The campaign wizard (blueprint §7.2): details → template → audience → schedule → review,
// then create, and send, schedule or leave for approval as the company's rules say.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { TYPES } from "../campaign_vocabulary.js";
import { ContentChecks } from "../components/content_checks.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Loading } from "../components/loading.jsx";
import { count, label, when } from "../format.js";
import { navigate, ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

const STEPS = ["Details", "Template", "Audience", "Schedule", "Review"];
// The wizard reads the first 200 of each (the API's page limit); a search box comes with the
// template gallery.
const CHOICES = { page_size: 200 };

// With `id`, the wizard edits that campaign (draft or paused), its answers filled in.
export function CampaignWizard({ id }) {
  const editing = id !== undefined;
  const [step, setStep] = useState(0);
  const [loadError, setLoadError] = useState(null);
  const [draft, setDraft] = useState({
    campaign_name: "",
    subject_line: "",
    preheader_text: "",
    campaign_type: "regular",
    sender_profile_id: "",
    email_template_id: null,
    target_list_id: null,
    suppression_list_id: "",
    when: "now",
    scheduled_at: "",
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [loaded, setLoaded] = useState(!editing);
  const update = (changes) => setDraft({ ...draft, ...changes });
  useEffect(() => {
    if (!editing) return;
    (async () => {
      const c = await api("GET", `/api/email-campaigns/${id}/`);
      const [template, list] = await Promise.all([
        api("GET", `/api/email-templates/${c.email_template_id}/`).catch(() => null),
        api("GET", `/api/email-lists/${c.target_list_id}/`).catch(() => null),
      ]);
      setDraft({
        campaign_name: c.campaign_name,
        subject_line: c.subject_line,
        preheader_text: c.preheader_text || "",
        campaign_type: c.campaign_type,
        sender_profile_id: c.sender_profile_id ? String(c.sender_profile_id) : "",
        email_template_id: c.email_template_id,
        template,
        target_list_id: c.target_list_id,
        list,
        suppression_list_id: c.suppression_list_id ? String(c.suppression_list_id) : "",
        when: "draft",
        scheduled_at: "",
      });
      setLoaded(true);
    })().catch(setLoadError);
  }, [id]);
  const ready = [
    draft.campaign_name.trim() && draft.subject_line.trim(),
    draft.email_template_id,
    draft.target_list_id,
    draft.when === "now" || draft.when === "draft" || draft.scheduled_at,
    true,
  ];

  const next = (event) => {
    event.preventDefault();
    if (ready[step]) setStep(step + 1);
  };

  const create = async () => {
    setBusy(true);
    setError(null);
    const body = {
      campaign_name: draft.campaign_name.trim(),
      subject_line: draft.subject_line.trim(),
      campaign_type: draft.campaign_type,
      email_template_id: draft.email_template_id,
      target_list_id: draft.target_list_id,
    };
    if (editing) {
      body.preheader_text = draft.preheader_text || null;
      body.sender_profile_id = draft.sender_profile_id ? Number(draft.sender_profile_id) : null;
      body.suppression_list_id = draft.suppression_list_id ? Number(draft.suppression_list_id) : null;
    } else {
      if (draft.preheader_text) body.preheader_text = draft.preheader_text;
      if (draft.sender_profile_id) body.sender_profile_id = Number(draft.sender_profile_id);
      if (draft.suppression_list_id) body.suppression_list_id = Number(draft.suppression_list_id);
    }
    let created;
    try {
      created = editing
        ? await api("PATCH", `/api/email-campaigns/${id}/`, { body })
        : await api("POST", "/api/email-campaigns/", { body });
    } catch (failure) {
      setError(failure);
      setBusy(false);
      return;
    }
    const wantsSend =
      draft.when !== "draft" && can("campaigns:send") && created.approval_status !== "pending" && created.campaign_status === "draft";
    if (wantsSend) {
      const sendBody = draft.when === "later" ? { scheduled_send_date: new Date(draft.scheduled_at).toISOString() } : {};
      try {
        await api("POST", `/api/email-campaigns/${created.id}/send/`, { body: sendBody });
      } catch (failure) {
        // The campaign exists; its page shows the refusal's reason next to its actions.
        sessionStorage.setItem("sendmill.notice", `Created, but not sent: ${failure.message}`);
      }
    }
    navigate(ui(`/campaigns/${created.id}`));
  };

  if (loadError) {
    return (
      <section>
        <h1>Edit campaign</h1>
        <ErrorBanner error={loadError} />
      </section>
    );
  }
  if (!loaded) return <Loading what="the campaign" />;
  return (
    <section>
      <h1>{editing ? `Edit “${draft.campaign_name}”` : "New campaign"}</h1>
      <ol class="steps" aria-label="Steps">
        {STEPS.map((name, i) => (
          <li key={name} aria-current={i === step ? "step" : undefined} class={i < step ? "done" : ""}>
            <span class="visually-hidden">{i < step ? "Completed: " : i === step ? "Current: " : ""}</span>
            {i + 1}. {name}
          </li>
        ))}
      </ol>
      <form class="card wizard" onSubmit={step === STEPS.length - 1 ? (e) => (e.preventDefault(), create()) : next}>
        <h2>{STEPS[step]}</h2>
        {step === 0 && <DetailsStep draft={draft} update={update} />}
        {step === 1 && <TemplateStep draft={draft} update={update} />}
        {step === 2 && <AudienceStep draft={draft} update={update} />}
        {step === 3 && <ScheduleStep draft={draft} update={update} />}
        {step === 4 && <ReviewStep draft={draft} />}
        <ErrorBanner error={error} title={editing ? "The campaign was not saved" : "The campaign was not created"} />
        <div class="actions">
          {step > 0 && (
            <button type="button" class="button secondary" onClick={() => setStep(step - 1)}>
              Back
            </button>
          )}
          {step < STEPS.length - 1 ? (
            <button type="submit" class="button" disabled={!ready[step]}>
              Next: {STEPS[step + 1]}
            </button>
          ) : (
            <button type="submit" class="button" disabled={busy}>
              {busy ? "Saving…" : submitLabel(draft, editing)}
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function submitLabel(draft, editing) {
  const verb = editing ? "Save" : "Create";
  if (draft.when === "draft" || !can("campaigns:send")) return editing ? "Save changes" : "Create campaign";
  return draft.when === "later" ? `${verb} and schedule` : `${verb} and send`;
}

function DetailsStep({ draft, update }) {
  const senders = useResource(
    () => (can("settings:read") ? api("GET", "/api/sender-profiles/", { query: CHOICES }) : Promise.resolve(null)),
    [],
  );
  return (
    <>
      <Field label="Campaign name">
        {(p) => <input {...p} required maxLength={200} value={draft.campaign_name} onInput={(e) => update({ campaign_name: e.currentTarget.value })} />}
      </Field>
      <Field label="Subject line">
        {(p) => <input {...p} required maxLength={200} value={draft.subject_line} onInput={(e) => update({ subject_line: e.currentTarget.value })} />}
      </Field>
      <Field label="Preheader text" hint="Shown after the subject in most inboxes (optional).">
        {(p) => <input {...p} maxLength={100} value={draft.preheader_text} onInput={(e) => update({ preheader_text: e.currentTarget.value })} />}
      </Field>
      <Field label="Type">
        {(p) => (
          <select {...p} value={draft.campaign_type} onChange={(e) => update({ campaign_type: e.currentTarget.value })}>
            {TYPES.filter((t) => t !== "ab_test").map((t) => (
              <option key={t} value={t}>
                {label(t)}
              </option>
            ))}
          </select>
        )}
      </Field>
      {senders.data && (
        <Field label="Sender" hint="Needed to send; a draft can do without.">
          {(p) => (
            <select {...p} value={draft.sender_profile_id} onChange={(e) => update({ sender_profile_id: e.currentTarget.value })}>
              <option value="">Choose later</option>
              {senders.data.results.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.profile_name} &lt;{s.from_address}&gt;
                </option>
              ))}
            </select>
          )}
        </Field>
      )}
    </>
  );
}

function TemplateStep({ draft, update }) {
  const templates = useResource(() => api("GET", "/api/email-templates/", { query: CHOICES }), []);
  if (templates.error) return <ErrorBanner error={templates.error} />;
  if (!templates.data) return <Loading what="templates" />;
  const active = templates.data.results.filter((t) => t.is_active);
  if (!active.length) return <p>No active template yet: create one under Templates first.</p>;
  return (
    <fieldset class="choices">
      <legend>Choose the template</legend>
      {active.map((t) => (
        <label key={t.id} class={`choice${draft.email_template_id === t.id ? " chosen" : ""}`}>
          <input type="radio" name="template" checked={draft.email_template_id === t.id} onChange={() => update({ email_template_id: t.id, template: t })} />
          <span class="choice-title">{t.template_name}</span>
          <span class="muted">
            {label(t.template_type)} · {t.content_checks?.ok === false ? "✕ fails content checks" : "✓ passes content checks"}
          </span>
        </label>
      ))}
    </fieldset>
  );
}

function AudienceStep({ draft, update }) {
  const lists = useResource(() => api("GET", "/api/email-lists/", { query: CHOICES }), []);
  if (lists.error) return <ErrorBanner error={lists.error} />;
  if (!lists.data) return <Loading what="lists" />;
  const targets = lists.data.results.filter((l) => l.list_type !== "suppression" && l.is_active);
  const chosen = lists.data.results.find((l) => l.id === draft.target_list_id);
  return (
    <>
      <fieldset class="choices">
        <legend>Send to</legend>
        {targets.length === 0 && <p>No list yet: create one under Lists and import contacts.</p>}
        {targets.map((l) => (
          <label key={l.id} class={`choice${draft.target_list_id === l.id ? " chosen" : ""}`}>
            <input type="radio" name="list" checked={draft.target_list_id === l.id} onChange={() => update({ target_list_id: l.id, list: l })} />
            <span class="choice-title">{l.list_name}</span>
            <span class="muted">{count(l.active_subscribers)} subscribed</span>
          </label>
        ))}
      </fieldset>
      <Field label="Leave out the members of" hint="Optional: a suppression or any other list.">
        {(p) => (
          <select {...p} value={draft.suppression_list_id} onChange={(e) => update({ suppression_list_id: e.currentTarget.value })}>
            <option value="">Nobody</option>
            {lists.data.results
              .filter((l) => l.id !== draft.target_list_id)
              .map((l) => (
                <option key={l.id} value={l.id}>
                  {l.list_name}
                </option>
              ))}
          </select>
        )}
      </Field>
      <p class="recipient-count" aria-live="polite">
        {chosen ? `About ${count(chosen.active_subscribers)} recipients (before suppressions and unsubscribes).` : "Choose a list to see how many people it reaches."}
      </p>
    </>
  );
}

function ScheduleStep({ draft, update }) {
  const options = [
    ["now", "Send as soon as it is created (or approved)"],
    ["later", "Schedule for a time"],
    ["draft", "Keep as a draft"],
  ];
  return (
    <>
      <fieldset class="choices">
        <legend>When</legend>
        {options.map(([value, text]) => (
          <label key={value} class={`choice${draft.when === value ? " chosen" : ""}`}>
            <input type="radio" name="when" checked={draft.when === value} onChange={() => update({ when: value })} />
            <span class="choice-title">{text}</span>
          </label>
        ))}
      </fieldset>
      {draft.when === "later" && (
        <Field label="Send at (your local time)">
          {(p) => <input {...p} type="datetime-local" required value={draft.scheduled_at} onInput={(e) => update({ scheduled_at: e.currentTarget.value })} />}
        </Field>
      )}
    </>
  );
}

function ReviewStep({ draft }) {
  const template = useResource(() => api("GET", `/api/email-templates/${draft.email_template_id}/`), [draft.email_template_id]);
  return (
    <>
      <dl class="facts">
        <dt>Name</dt>
        <dd>{draft.campaign_name}</dd>
        <dt>Subject</dt>
        <dd>{draft.subject_line}</dd>
        <dt>Template</dt>
        <dd>{draft.template?.template_name}</dd>
        <dt>Audience</dt>
        <dd>
          {draft.list?.list_name} ({count(draft.list?.active_subscribers)} subscribed)
        </dd>
        <dt>When</dt>
        <dd>{draft.when === "later" ? when(new Date(draft.scheduled_at)) : draft.when === "now" ? "Now" : "Draft"}</dd>
      </dl>
      <h3>Content checks</h3>
      {template.data ? <ContentChecks report={template.data.content_checks} /> : <Loading what="content checks" />}
      {!can("campaigns:send") && <p>Your role cannot send: the campaign is saved for someone who can.</p>}
      <p class="muted">If your company requires approval, the campaign waits for an approver before it sends.</p>
    </>
  );
}
