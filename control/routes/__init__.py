"""The control API's endpoints, one module per resource; `ALL_APIS` is what the app serves."""

from control.routes import (
    analytics,
    audit,
    auth,
    blocklist,
    campaign_sending,
    campaigns,
    contacts,
    imports,
    lists,
    reports,
    segments,
    senders,
    settings,
    templates,
    users,
    workflows,
)

ALL_APIS = (
    auth.api,
    users.api,
    settings.api,
    blocklist.api,
    senders.api,
    templates.api,
    lists.api,
    contacts.api,
    segments.api,
    imports.api,
    campaigns.api,
    campaign_sending.api,
    workflows.api,
    analytics.api,
    reports.api,
    audit.api,
)
