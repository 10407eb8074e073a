-- Segments' "clicked this link" (issue 15): clicks by target URL. Hash, not B-tree: URLs run
-- to 2 KB, and only equality is asked. Partial: opens, most events, pay nothing.
CREATE INDEX tracking_events_click_url ON tracking_events USING hash (url) WHERE kind = 'click';
