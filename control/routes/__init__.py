"""The control API's endpoints, one module per resource; `ALL_APIS` is what the app serves."""

from control.routes import (
    analytics,
    audit,
    auth,
    campaigns,
    contacts,
    domains,
    imports,
    lists,
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
    senders.api,
    domains.api,
    templates.api,
    lists.api,
    contacts.api,
    imports.api,
    campaigns.api,
    workflows.api,
    analytics.api,
    audit.api,
)
