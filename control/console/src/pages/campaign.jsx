// One campaign: its settings, approval, status actions, and live figures with a chart.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ACTIONS } from "../campaign_vocabulary.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { subscribe } from "../events.js";
import { count, label, when } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";
import { ApprovalActions } from "./approval_actions.jsx";
import { CampaignFigures } from "./campaign_figures.jsx";

export function CampaignPage({ id }) {
  const campaign = useResource(() => api("GET", `/api/email-campaigns/${id}/`), [id]);
  const [figuresVersion, setFiguresVersion] = useState(0);
  const [notice] = useState(() => {
    const text = sessionStorage.getItem("sendmill.notice");
    sessionStorage.removeItem("sendmill.notice");
    return text;
  });
  useEffect(
    () =>
      subscribe((event) => {
        if (event.data?.id !== Number(id)) return;
        if (event.event === "email_campaign.performance_update") setFiguresVersion((v) => v + 1);
        else campaign.reload();
      }),
    [id],
  );
  if (campaign.error) return <Failure error={campaign.error} />;
  if (!campaign.data) return <Loading what="the campaign" />;
  const c = campaign.data;
  return (
    <section>
      <div class="page-head">
        <h1>{c.campaign_name}</h1>
        <StatusBadge status={c.campaign_status} />
        {can("campaigns:update") && ["draft", "paused"].includes(c.campaign_status) && (
          <Link class="button secondary" href={ui(`/campaigns/${c.id}/edit`)}>
            Edit
          </Link>
        )}
      </div>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <dl class="facts">
        <dt>Code</dt>
        <dd class="code">{c.campaign_code}</dd>
        <dt>Subject</dt>
        <dd>{c.subject_line}</dd>
        <dt>Type</dt>
        <dd>{label(c.campaign_type)}</dd>
        <dt>Approval</dt>
        <dd>
          <StatusBadge status={c.approval_status} />
          {c.rejection_reason && <span> — “{c.rejection_reason}”</span>}
        </dd>
        <dt>Template</dt>
        <dd>
          <Named path={`/api/email-templates/${c.email_template_id}/`} permission="templates:read" field="template_name" href={ui(`/templates/${c.email_template_id}`)} fallback={`Template #${c.email_template_id}`} />
        </dd>
        <dt>Audience</dt>
        <dd>
          <Named path={`/api/email-lists/${c.target_list_id}/`} permission="lists:read" field="list_name" href={ui(`/lists/${c.target_list_id}`)} fallback={`List #${c.target_list_id}`} />
          {c.suppression_list_id && (
            <span>
              , minus{" "}
              <Named path={`/api/email-lists/${c.suppression_list_id}/`} permission="lists:read" field="list_name" href={ui(`/lists/${c.suppression_list_id}`)} fallback={`list #${c.suppression_list_id}`} />
            </span>
          )}
        </dd>
        <dt>Scheduled</dt>
        <dd>{when(c.scheduled_send_date)}</dd>
        <dt>Sent</dt>
        <dd>{when(c.sent_date)}</dd>
        <dt>Recipients</dt>
        <dd>{count(c.total_recipients)}</dd>
      </dl>
      <ApprovalActions campaign={c} onDone={campaign.reload} />
      {can("campaigns:send") && <StatusActions campaign={c} onDone={campaign.reload} />}
      {can("analytics:read") && <CampaignFigures id={id} version={figuresVersion} />}
    </section>
  );
}

// A referenced record by its name, linked when the role may read it; else its number.
function Named({ path, permission, field, href, fallback }) {
  const allowed = can(permission);
  const record = useResource(() => (allowed ? api("GET", path) : Promise.resolve(null)), [path, allowed]);
  if (!allowed) return <span>{fallback}</span>;
  return <Link href={href}>{record.data?.[field] || fallback}</Link>;
}

function Failure({ error }) {
  return (
    <section>
      <h1>{error.status === 404 ? "Campaign not found" : "Campaign"}</h1>
      <ErrorBanner error={error} />
      <Link href={ui("/campaigns")}>Back to campaigns</Link>
    </section>
  );
}

function StatusActions({ campaign, onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [scheduling, setScheduling] = useState(false);
  const [at, setAt] = useState("");
  const actions = ACTIONS[campaign.campaign_status] || [];
  if (!actions.length) return null;
  const run = async (action, body = {}) => {
    if (action === "schedule") {
      setScheduling(true);
      return;
    }
    if (action === "cancel" && !confirm(`Cancel “${campaign.campaign_name}”? This cannot be undone.`)) return;
    setBusy(true);
    setError(null);
    try {
      await api("POST", `/api/email-campaigns/${campaign.id}/${action}/`, { body });
      setScheduling(false);
      onDone();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="actions-title" class="card">
      <h2 id="actions-title">Actions</h2>
      <ErrorBanner error={error} title="The server refused" />
      <div class="actions">
        {actions.map(([action, text]) => (
          <button
            type="button"
            key={action}
            class={`button${action === "cancel" ? " danger" : action === "send" ? "" : " secondary"}`}
            disabled={busy}
            onClick={() => run(action)}
          >
            {text}
          </button>
        ))}
      </div>
      {scheduling && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            run("send", { scheduled_send_date: new Date(at).toISOString() });
          }}
        >
          <Field label="Send at (your local time)">
            {(props) => <input {...props} type="datetime-local" required value={at} onInput={(e) => setAt(e.currentTarget.value)} />}
          </Field>
          <button type="submit" class="button" disabled={busy}>
            Schedule
          </button>
        </form>
      )}
    </section>
  );
}
