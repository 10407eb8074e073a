// A campaign's figures: delivery funnel and opens/clicks over time, people beside machines.
import { api } from "../api.js";
import { ChartCanvas } from "../components/chart_canvas.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Loading } from "../components/loading.jsx";
import { count, rate } from "../format.js";
import { useResource } from "../use_resource.js";

const COLORS = { open: "#1f6feb", click: "#8250df" };

export function CampaignFigures({ id, version }) {
  const analytics = useResource(
    () => api("GET", `/api/email-campaigns/${id}/analytics/`, { query: { bucket: "hour" } }),
    [id, version],
  );
  const a = analytics.data;
  return (
    <section aria-labelledby="figures-title">
      <h2 id="figures-title">Results</h2>
      <ErrorBanner error={analytics.error} />
      {!a && analytics.loading && <Loading what="results" />}
      {a && (
        <>
          <dl class="stats">
            <Stat name="Recipients" value={count(a.recipients)} />
            <Stat name="Delivered" value={count(a.delivered)} />
            <Stat name="Opened by people" value={rate(a.human_open_rate)} note={`${count(a.open.human_unique_recipients)} people`} />
            <Stat name="Clicked by people" value={rate(a.human_click_rate)} note={`${count(a.click.human_unique_recipients)} people`} />
            <Stat name="Machine share of opens" value={rate(a.open_machine_share)} />
            <Stat name="Unsubscribed" value={rate(a.unsubscribe_rate)} />
          </dl>
          <Timeline timeline={a.timeline || []} />
        </>
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

function Timeline({ timeline }) {
  if (!timeline.length) return <p class="muted">No opens or clicks recorded yet.</p>;
  const labels = [...new Set(timeline.map((b) => b.at))].sort();
  const series = [];
  for (const kind of ["open", "click"]) {
    const of = (at, pick) => timeline.filter((b) => b.at === at && b.kind === kind).reduce((n, b) => n + pick(b), 0);
    series.push({ label: `${kind}s by people`, values: labels.map((at) => of(at, (b) => b.human_total)), color: COLORS[kind] });
    series.push({
      label: `${kind}s by machines`,
      values: labels.map((at) => of(at, (b) => b.total - b.human_total)),
      color: COLORS[kind],
      dash: [6, 4],
      point: "triangle",
    });
  }
  const shown = labels.map((at) => new Date(at).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }));
  // A line needs a few hours to say anything; until then, bars.
  const type = labels.length > 2 ? "line" : "bar";
  return <ChartCanvas type={type} title="Opens and clicks per hour" labels={shown} series={series} />;
}
