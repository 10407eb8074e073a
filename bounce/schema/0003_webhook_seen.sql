-- Provider webhook requests and events already taken (issue 12.5): a signed request is good
-- once (Mailgun's token, SendGrid's timestamp + body, SNS's MessageId), and each provider event
-- is recorded once however often the provider retries it. Shared by every daemon; rows older
-- than the retention are deleted as new ones arrive.
CREATE TABLE webhook_seen (
    provider  text NOT NULL,                     -- ses | sendgrid | mailgun | postmark
    key       text NOT NULL,                     -- "request:..." or "event:..."
    seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, key)
);
CREATE INDEX webhook_seen_age ON webhook_seen (seen_at);
