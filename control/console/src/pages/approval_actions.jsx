// Approve, or reject with a reason: the approver's two buttons (not the campaign's creator).
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { can, session } from "../session.js";

export function ApprovalActions({ campaign, onDone }) {
  const [rejecting, setRejecting] = useState(false);
  const [reason, setReason] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  if (campaign.approval_status !== "pending" || !can("campaigns:approve")) return null;
  if (campaign.created_by_user_id === session().me.user_id) {
    return <p class="muted">You created this campaign: another approver must decide.</p>;
  }
  const act = async (action, body) => {
    setBusy(true);
    setError(null);
    try {
      await api("POST", `/api/email-campaigns/${campaign.id}/${action}/`, { body });
      setRejecting(false);
      onDone();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="approval-actions">
      <ErrorBanner error={error} />
      {!rejecting ? (
        <div class="actions">
          <button type="button" class="button" disabled={busy} onClick={() => act("approve", {})}>
            Approve “{campaign.campaign_name}”
          </button>
          <button type="button" class="button danger" disabled={busy} onClick={() => setRejecting(true)}>
            Reject…
          </button>
        </div>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            act("reject", { reason });
          }}
        >
          <Field label="Reason for rejecting">
            {(props) => (
              <textarea {...props} required rows={3} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
            )}
          </Field>
          <div class="actions">
            <button type="submit" class="button danger" disabled={busy}>
              Reject
            </button>
            <button type="button" class="button secondary" onClick={() => setRejecting(false)}>
              Keep pending
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
