// The console's shell: the login gate, the navigation (only what the role may see), and the
// page for the current path. Focus moves to the page's heading on every navigation.
import { useEffect, useState } from "preact/hooks";
import { Link } from "./components/link.jsx";
import { AccountPage } from "./pages/account.jsx";
import { ApiKeysPage } from "./pages/api_keys.jsx";
import { AnalyticsPage } from "./pages/analytics.jsx";
import { ApprovalsPage } from "./pages/approvals.jsx";
import { AuditLogPage } from "./pages/audit_log.jsx";
import { CampaignPage } from "./pages/campaign.jsx";
import { CampaignWizard } from "./pages/campaign_wizard.jsx";
import { CampaignsPage } from "./pages/campaigns.jsx";
import { ContactPage } from "./pages/contact.jsx";
import { ContactsPage } from "./pages/contacts.jsx";
import { DashboardPage } from "./pages/dashboard.jsx";
import { ListPage } from "./pages/list.jsx";
import { ListsPage } from "./pages/lists.jsx";
import { LoginPage } from "./pages/login.jsx";
import { NotFoundPage } from "./pages/not_found.jsx";
import { SendersPage } from "./pages/senders.jsx";
import { SettingsPage } from "./pages/settings.jsx";
import { TemplatePage } from "./pages/template.jsx";
import { TemplatesPage } from "./pages/templates.jsx";
import { UsersPage } from "./pages/users.jsx";
import { BASE, match, navigate, ui, useLocation } from "./router.js";
import { can, logout, onSessionChange, session } from "./session.js";

// [path pattern, page, permission needed (null: any signed-in user), nav label]
const ROUTES = [
  ["/", DashboardPage, null, "Dashboard"],
  ["/campaigns", CampaignsPage, "campaigns:read", "Campaigns"],
  ["/campaigns/new", CampaignWizard, "campaigns:create", null],
  ["/campaigns/:id", CampaignPage, "campaigns:read", null],
  ["/campaigns/:id/edit", CampaignWizard, "campaigns:update", null],
  ["/approvals", ApprovalsPage, "campaigns:approve", "Approvals"],
  ["/templates", TemplatesPage, "templates:read", "Templates"],
  ["/templates/new", TemplatePage, "templates:create", null],
  ["/templates/:id", TemplatePage, "templates:read", null],
  ["/lists", ListsPage, "lists:read", "Lists"],
  ["/lists/:id", ListPage, "lists:read", null],
  ["/contacts", ContactsPage, "lists:read", "Contacts"],
  ["/contacts/:id", ContactPage, "lists:read", null],
  ["/analytics", AnalyticsPage, "analytics:read", "Analytics"],
  ["/users", UsersPage, "users:read", "Users"],
  ["/senders", SendersPage, "settings:read", "Senders"],
  ["/api-keys", ApiKeysPage, "settings:read", "API keys"],
  ["/settings", SettingsPage, "settings:read", "Settings"],
  ["/audit-log", AuditLogPage, "audit:read", "Audit log"],
  ["/account", AccountPage, null, null],
];

function useSession() {
  const [current, setCurrent] = useState(session());
  useEffect(() => onSessionChange(setCurrent), []);
  return current;
}

function resolve(path) {
  for (const [pattern, Page, permission] of ROUTES) {
    const params = match(pattern, path);
    if (params) return { Page, params, allowed: !permission || can(permission) };
  }
  return { Page: NotFoundPage, params: {}, allowed: true };
}

export function App() {
  const where = useLocation();
  const current = useSession();
  const [menuOpen, setMenuOpen] = useState(false);
  const path = where.split("?")[0].slice(BASE.length).replace(/(.)\/$/, "$1") || "/";

  useEffect(() => {
    setMenuOpen(false);
    const heading = document.querySelector("main h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
    document.title = `${heading?.textContent || "Sendmill"} · Sendmill`;
  }, [where, Boolean(current)]);

  if (!current) {
    if (path !== "/login") {
      const next = encodeURIComponent(where);
      navigate(ui(`/login?next=${next}`), { replace: true });
    }
    return <LoginPage />;
  }
  if (path === "/login") {
    navigate(ui("/"), { replace: true });
    return null;
  }
  const { Page, params, allowed } = resolve(path);
  const nav = ROUTES.filter(([, , permission, title]) => title && (!permission || can(permission)));
  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link href={ui("/")} class="brand">
          Sendmill
        </Link>
        <button
          type="button"
          class="menu-toggle button secondary"
          aria-expanded={menuOpen ? "true" : "false"}
          aria-controls="primary-nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <div class="whoami">
          <Link href={ui("/account")} class="account-link">
            Account<span class="visually-hidden"> ({label(current.me.role)})</span>
          </Link>
          <span class="muted" aria-hidden="true">
            {label(current.me.role)}
          </span>
          <button type="button" class="button secondary" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </header>
      <nav id="primary-nav" class={`sidebar${menuOpen ? " open" : ""}`} aria-label="Main">
        <ul>
          {nav.map(([pattern, , , title]) => {
            const active = pattern === "/" ? path === "/" : path.startsWith(pattern);
            return (
              <li key={pattern}>
                <Link href={ui(pattern)} aria-current={active ? "page" : undefined}>
                  {title}
                </Link>
              </li>
            );
          })}
        </ul>
      </nav>
      <main id="main">
        {allowed ? (
          <Page {...params} />
        ) : (
          <section>
            <h1>Not available to your role</h1>
            <p>Your role ({label(current.me.role)}) does not include this page. Ask an admin.</p>
          </section>
        )}
      </main>
    </div>
  );
}

function label(role) {
  return role ? role.replaceAll("_", " ") : "API key";
}
