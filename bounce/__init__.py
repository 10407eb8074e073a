"""Bounce processing: what comes back after mail is sent.

- `parse` reads one inbound message into a `reasons.Report` (with `dsn`, `arf`, `heuristics`);
- `classify` gives every failed recipient a reason and hard/soft, from `rules.toml`;
- `processor` turns stored inbound mail and the delivery engine's SMTP replies into `events`
  and applies the per-tenant suppression `policy`; `webhooks` does the same for ESPs;
- `cli` and `api` let operators parse messages by hand and review or lift suppressions.

Only mta/daemon.py wires this package into the daemon.
"""
