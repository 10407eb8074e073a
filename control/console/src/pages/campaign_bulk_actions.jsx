// Bulk actions on the campaigns chosen in the list: each goes through the API one by one, and
// the ones refused are listed with the server's reason.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { can } from "../session.js";

const ACTIONS = [
  ["pause", "Pause", "campaigns:send", (id) => ["POST", `/api/email-campaigns/${id}/pause/`]],
  ["cancel", "Cancel", "campaigns:send", (id) => ["POST", `/api/email-campaigns/${id}/cancel/`]],
  ["delete", "Delete", "campaigns:delete", (id) => ["DELETE", `/api/email-campaigns/${id}/`]],
];

export function CampaignBulkActions({ chosen, campaigns, onDone }) {
  const [busy, setBusy] = useState(false);
  const [report, setReport] = useState(null);
  const allowed = ACTIONS.filter(([, , permission]) => can(permission));
  if (!allowed.length) return null;
  const run = async (action, text, request) => {
    const names = campaigns.filter((c) => chosen.includes(c.id)).map((c) => c.campaign_name);
    if (action !== "pause" && !confirm(`${text} ${chosen.length} campaign(s): ${names.join(", ")}?`)) return;
    setBusy(true);
    const refused = [];
    for (const id of chosen) {
      const [method, path] = request(id);
      try {
        await api(method, path, method === "POST" ? { body: {} } : {});
      } catch (failure) {
        const name = campaigns.find((c) => c.id === id)?.campaign_name || `#${id}`;
        refused.push(`${name}: ${failure.message}`);
      }
    }
    setBusy(false);
    setReport({ text, done: chosen.length - refused.length, refused });
    onDone();
  };
  return (
    <div class="bulk-actions" role="group" aria-label="Actions on the chosen campaigns">
      <span>{chosen.length} chosen:</span>
      {allowed.map(([action, text, , request]) => (
        <button
          type="button"
          key={action}
          class={`button small ${action === "delete" || action === "cancel" ? "danger" : "secondary"}`}
          disabled={busy || chosen.length === 0}
          onClick={() => run(action, text, request)}
        >
          {text}
        </button>
      ))}
      {report && (
        <div role="status" class={report.refused.length ? "error-banner" : "notice"}>
          {report.text}: {report.done} done
          {report.refused.length > 0 && (
            <>
              , {report.refused.length} refused
              <ul>
                {report.refused.map((line) => (
                  <li key={line}>{line}</li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </div>
  );
}
