// A status shown as a word with a shape and a colour: the colour is never the only signal.
import { label } from "../format.js";

const SYMBOLS = {
  draft: "✎",
  scheduled: "◷",
  sending: "➤",
  sent: "✓",
  completed: "✓",
  paused: "⏸",
  cancelled: "✕",
  pending: "…",
  approved: "✓",
  rejected: "✕",
  not_required: "–",
  running: "…",
  finished: "✓",
  failed: "✕",
  subscribed: "✓",
  unsubscribed: "✕",
  active: "✓",
  inactive: "✕",
};

export function StatusBadge({ status, prefix }) {
  return (
    <span class={`badge badge-${status}`}>
      <span aria-hidden="true">{SYMBOLS[status] || "•"} </span>
      {prefix ? `${prefix}: ` : ""}
      {label(status)}
    </span>
  );
}
