// Campaigns: filter by status and type, search, server-side pages, live refresh.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { STATUSES, TYPES } from "../campaign_vocabulary.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { StatusBadge } from "../components/status_badge.jsx";
import { subscribe } from "../events.js";
import { count, label, when } from "../format.js";
import { ui } from "../router.js";
import { can } from "../session.js";
import { useResource } from "../use_resource.js";
import { CampaignBulkActions } from "./campaign_bulk_actions.jsx";

export function CampaignsPage() {
  const [filters, setFilters] = useState({ campaign_status: "", campaign_type: "", search: "" });
  const [page, setPage] = useState(1);
  const [chosen, setChosen] = useState([]);
  const campaigns = useResource(
    () => api("GET", "/api/email-campaigns/", { query: { ...filters, page, page_size: 25 } }),
    [filters, page],
  );
  useEffect(() => subscribe((e) => e.event !== "ready" && campaigns.reload()), [campaigns.reload]);
  const set = (name) => (event) => {
    setPage(1);
    setChosen([]);
    setFilters({ ...filters, [name]: event.currentTarget.value });
  };
  const data = campaigns.data;
  const onPage = data ? data.results.map((c) => c.id) : [];
  const choose = (id) => setChosen(chosen.includes(id) ? chosen.filter((x) => x !== id) : [...chosen, id]);
  const allChosen = onPage.length > 0 && onPage.every((id) => chosen.includes(id));
  const filtered = Object.values(filters).some(Boolean);
  return (
    <section>
      <div class="page-head">
        <h1>Campaigns</h1>
        {can("campaigns:create") && (
          <Link class="button" href={ui("/campaigns/new")}>
            New campaign
          </Link>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          {(props) => (
            <select {...props} value={filters.campaign_status} onChange={set("campaign_status")}>
              <option value="">Any status</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {label(s)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Type">
          {(props) => (
            <select {...props} value={filters.campaign_type} onChange={set("campaign_type")}>
              <option value="">Any type</option>
              {TYPES.map((t) => (
                <option key={t} value={t}>
                  {label(t)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Search">
          {(props) => <input {...props} type="search" value={filters.search} onChange={set("search")} />}
        </Field>
      </form>
      <ErrorBanner error={campaigns.error} />
      {campaigns.loading && !data && <Loading what="campaigns" />}
      {data && data.total === 0 && (
        <EmptyState title={filtered ? "No campaign matches these filters." : "No campaigns yet."}>
          {!filtered && can("campaigns:create") && (
            <Link class="button" href={ui("/campaigns/new")}>
              Create your first campaign
            </Link>
          )}
        </EmptyState>
      )}
      {data && data.total > 0 && (
        <>
          <CampaignBulkActions
            chosen={chosen}
            campaigns={data.results}
            onDone={() => {
              setChosen([]);
              campaigns.reload();
            }}
          />
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Campaigns</caption>
              <thead>
                <tr>
                  <th scope="col">
                    <input
                      type="checkbox"
                      aria-label="Choose every campaign on this page"
                      checked={allChosen}
                      onChange={() => setChosen(allChosen ? [] : onPage)}
                    />
                  </th>
                  <th scope="col">Name</th>
                  <th scope="col">Status</th>
                  <th scope="col">Approval</th>
                  <th scope="col">Type</th>
                  <th scope="col">Recipients</th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((c) => (
                  <tr key={c.id}>
                    <td>
                      <input type="checkbox" aria-label={`Choose ${c.campaign_name}`} checked={chosen.includes(c.id)} onChange={() => choose(c.id)} />
                    </td>
                    <td class="name-cell">
                      <Link href={ui(`/campaigns/${c.id}`)}>{c.campaign_name}</Link>
                      <span class="muted code">{c.campaign_code}</span>
                    </td>
                    <td>
                      <StatusBadge status={c.campaign_status} />
                    </td>
                    <td>
                      <StatusBadge status={c.approval_status} />
                    </td>
                    <td>{label(c.campaign_type)}</td>
                    <td>{count(c.total_recipients)}</td>
                    <td>{when(c.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager data={data} onPage={(p) => (setChosen([]), setPage(p))} what="campaigns" />
        </>
      )}
    </section>
  );
}
