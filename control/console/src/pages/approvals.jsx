// The approvals queue: campaigns pending approval, approved or rejected from here.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { EmptyState } from "../components/empty_state.jsx";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Link } from "../components/link.jsx";
import { Loading } from "../components/loading.jsx";
import { Pager } from "../components/pager.jsx";
import { ApprovalActions } from "./approval_actions.jsx";
import { count, label, when } from "../format.js";
import { ui } from "../router.js";
import { useResource } from "../use_resource.js";

export function ApprovalsPage() {
  const [page, setPage] = useState(1);
  const pending = useResource(
    () => api("GET", "/api/email-campaigns/", { query: { approval_status: "pending", page, page_size: 25 } }),
    [page],
  );
  const data = pending.data;
  return (
    <section>
      <h1>Approvals</h1>
      <ErrorBanner error={pending.error} />
      {pending.loading && !data && <Loading what="campaigns awaiting approval" />}
      {data && data.total === 0 && <EmptyState title="Nothing is waiting for approval." />}
      {data && data.total > 0 && (
        <>
          <ul class="cards">
            {data.results.map((c) => (
              <li key={c.id} class="card">
                <h2>
                  <Link href={ui(`/campaigns/${c.id}`)}>{c.campaign_name}</Link>
                </h2>
                <p>
                  Subject: <q>{c.subject_line}</q>
                </p>
                <p class="muted">
                  {label(c.campaign_type)} · {count(c.total_recipients)} recipients counted · updated{" "}
                  {when(c.updated_at)}
                </p>
                <ApprovalActions campaign={c} onDone={pending.reload} />
              </li>
            ))}
          </ul>
          <Pager data={data} onPage={setPage} what="campaigns" />
        </>
      )}
    </section>
  );
}
