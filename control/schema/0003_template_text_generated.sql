-- A template's text part is stored even when the author wrote none: the content checks
-- generate it from the HTML (control/text_part.py) and it is saved with the template, marked
-- generated, so the author sees what will be sent. A save that changes the HTML regenerates a
-- generated text part; a text part the author wrote is kept as written.
-- Templates saved before this column have text_content NULL (the text part is generated when
-- needed) until their next save.
ALTER TABLE email_templates
    ADD COLUMN text_generated boolean NOT NULL DEFAULT false;  -- text_content came from the HTML
