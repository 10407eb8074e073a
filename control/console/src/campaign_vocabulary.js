// The campaign statuses, types and actions the API knows (control/campaign_status.py).
export const STATUSES = ["draft", "scheduled", "sending", "sent", "completed", "paused", "cancelled"];
export const TYPES = ["regular", "newsletter", "promotional", "announcement", "ab_test", "automated"];

// The actions a status allows, in the order they are offered: [action, button label].
export const ACTIONS = {
  draft: [["send", "Send now"], ["schedule", "Schedule"], ["cancel", "Cancel campaign"]],
  scheduled: [["pause", "Pause"], ["unschedule", "Back to draft"], ["cancel", "Cancel campaign"]],
  sending: [["pause", "Pause"], ["cancel", "Cancel campaign"]],
  paused: [["resume", "Resume"], ["cancel", "Cancel campaign"]],
  sent: [],
  completed: [],
  cancelled: [],
};
