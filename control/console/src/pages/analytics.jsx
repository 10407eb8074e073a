// Analytics: totals over a period, people beside machines, and the sent campaigns' funnel.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ChartCanvas } from "../components/chart_canvas.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { count, rate } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";

const PERIODS = [
  [7, "Last 7 days"],
  [30, "Last 30 days"],
  [90, "Last 90 days"],
  [365, "Last year"],
];

export function AnalyticsPage() {
  const [days, setDays] = useState(30);
  const since = new Date(Date.now() - days * 86400000).toISOString().replace(/\.\d+Z$/, "Z");
  const summary = useResource(() => api("GET", "/api/analytics/summary/", { query: { since } }), [days]);
  const campaigns = useResource(
    () => (can("campaigns:read") ? api("GET", "/api/email-campaigns/", { query: { page_size: 10, campaign_status: "sent" } }) : Promise.resolve(null)),
    [],
  );
  const s = summary.data;
  return (
    <section>
      <h1>Analytics</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Field label="Period">
          {(p) => (
            <select {...p} value={days} onChange={(e) => setDays(Number(e.currentTarget.value))}>
              {PERIODS.map(([d, text]) => (
                <option key={d} value={d}>
                  {text}
                </option>
              ))}
            </select>
          )}
        </Field>
      </form>
      <ErrorBanner error={summary.error} />
      {!s && summary.loading && <Loading what="analytics" />}
      {s && (
        <>
          <dl class="stats">
            <Stat name="Campaigns" value={count(s.campaigns)} />
            <Stat name="Recipients" value={count(s.recipients)} />
            <Stat name="Delivered" value={count(s.delivered)} />
            <Stat name="Open rate (people)" value={rate(s.human_open_rate)} note={`with machines ${rate(s.open_rate)}`} />
            <Stat name="Click rate (people)" value={rate(s.human_click_rate)} note={`with machines ${rate(s.click_rate)}`} />
            <Stat name="Bounce rate" value={rate(s.bounce_rate)} />
          </dl>
          <ChartCanvas
            type="bar"
            title="Delivery funnel"
            labels={["Recipients", "Delivered", "Opened", "Opened by people", "Clicked", "Clicked by people", "Bounced", "Unsubscribed"]}
            series={[
              {
                label: "People or messages",
                values: [s.recipients, s.delivered, s.opened, s.human_opened, s.clicked, s.human_clicked, s.bounced, s.unsubscribed],
                color: "#1f6feb",
              },
            ]}
          />
        </>
      )}
      {campaigns.data && campaigns.data.results.length > 0 && (
        <section aria-labelledby="per-campaign">
          <h2 id="per-campaign">Sent campaigns</h2>
          <ul class="plain-list">
            {campaigns.data.results.map((c) => (
              <li key={c.id}>
                <Link href={ui(`/campaigns/${c.id}`)}>{c.campaign_name}</Link>{" "}
                <span class="muted">
                  {count(c.delivered_count)} delivered · {count(c.opened_count)} opened · {count(c.clicked_count)} clicked
                </span>
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
