// The dashboard: totals over recent campaigns, the campaigns in flight, and live events.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { subscribe } from "../events.js";
import { count, label, rate, when } from "../format.js";
import { ui } from "../router.js";
import { can, session } from "../session.js";
import { useResource } from "../use_resource.js";

const DAYS = 30;

export function DashboardPage() {
  const since = new Date(Date.now() - DAYS * 86400000).toISOString().replace(/\.\d+Z$/, "Z");
  const summary = useResource(
    () => (can("analytics:read") ? api("GET", "/api/analytics/summary/", { query: { since } }) : Promise.resolve(null)),
    [],
  );
  const recent = useResource(
    () =>
      can("campaigns:read")
        ? api("GET", "/api/email-campaigns/", { query: { page_size: 5} })
        : Promise.resolve(null),
    [],
  );
  const [events, setEvents] = useState([]);
  useEffect(
    () =>
      subscribe((event) => {
        if (event.event === "ready") return;
        setEvents((list) => [{ ...event, at: new Date() }, ...list].slice(0, 10));
        if (event.event !== "email_campaign.performance_update") recent.reload();
        else summary.reload();
      }),
    [],
  );
  const s = summary.data;
  return (
    <section>
      <div class="page-head">
        <h1>Dashboard</h1>
        {can("campaigns:create") && (
          <Link class="button" href={ui("/campaigns/new")}>
            New campaign
          </Link>
        )}
      </div>
      <p class="muted">Signed in as {label(session().me.role)}.</p>
      {can("analytics:read") && (
        <section aria-labelledby="totals-title">
          <h2 id="totals-title">Last {DAYS} days</h2>
          <ErrorBanner error={summary.error} />
          {summary.loading && !s ? (
            <Loading what="totals" />
          ) : (
            s && (
              <dl class="stats">
                <Stat name="Campaigns sent" value={count(s.campaigns)} />
                <Stat name="Delivered" value={count(s.delivered)} />
                <Stat name="Opened by people" value={rate(s.human_open_rate)} note={`all opens ${rate(s.open_rate)}`} />
                <Stat name="Clicked by people" value={rate(s.human_click_rate)} note={`all clicks ${rate(s.click_rate)}`} />
                <Stat name="Bounced" value={rate(s.bounce_rate)} />
                <Stat name="Unsubscribed" value={count(s.unsubscribed)} />
              </dl>
            )
          )}
        </section>
      )}
      {can("campaigns:read") && (
        <section aria-labelledby="recent-title">
          <h2 id="recent-title">Recent campaigns</h2>
          <ErrorBanner error={recent.error} />
          {recent.data && recent.data.results.length === 0 && (
            <p>
              No campaigns yet.{" "}
              {can("campaigns:create") && <Link href={ui("/campaigns/new")}>Create the first one</Link>}
            </p>
          )}
          {recent.data && recent.data.results.length > 0 && (
            <ul class="plain-list">
              {recent.data.results.map((c) => (
                <li key={c.id}>
                  <Link href={ui(`/campaigns/${c.id}`)}>{c.campaign_name}</Link> <StatusBadge status={c.campaign_status} />{" "}
                  <span class="muted">updated {when(c.updated_at)}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      {can("campaigns:read") && (
        <section aria-labelledby="live-title">
          <h2 id="live-title">Live activity</h2>
          <ul class="plain-list" aria-live="polite">
            {events.length === 0 && <li class="muted">Waiting for events…</li>}
            {events.map((e, i) => (
              <li key={i}>
                <span class="muted">{e.at.toLocaleTimeString()}</span> {describe(e)}
              </li>
            ))}
          </ul>
        </section>
      )}
    </section>
  );
}

function Stat({ name, value, note }) {
  return (
    <div class="stat">
      <dt>{name}</dt>
      <dd>
        {value}
        {note && <span class="stat-note">{note}</span>}
      </dd>
    </div>
  );
}

function describe(event) {
  const d = event.data || {};
  if (event.event === "email_campaign.created") return `Campaign “${d.campaign_name}” created`;
  if (event.event === "email_campaign.sent") return `Campaign “${d.campaign_name}” is ${label(d.campaign_status)}`;
  if (event.event === "email_campaign.performance_update") return `Campaign #${d.id}: new figures`;
  return label(event.event);
}
