// The drag-and-drop template builder (/ui/builder.html?template=ID): GrapesJS with its
// newsletter preset, personalisation variables as blocks, desktop/tablet/phone devices, and
// save through the API with the content checks' verdict. It is its own document because the
// editor writes inline styles into its canvas, which the console's policy forbids; its policy
// still allows only its own scripts (control/console.py).
import grapesjs from "grapesjs";
import "grapesjs/dist/css/grapes.min.css";
import newsletter from "grapesjs-preset-newsletter";
import { api } from "./api.js";
import { session } from "./session.js";
import "./builder.css";

const VARIABLES = [
  ["first_name", "First name"],
  ["last_name", "Last name"],
  ["email", "Email address"],
  ["unsubscribe_url", "Unsubscribe link"],
];
const HEAD =
  '<!doctype html><html><head><meta charset="utf-8">' +
  '<meta name="viewport" content="width=device-width, initial-scale=1">';

const templateId = new URLSearchParams(location.search).get("template");
const status = document.getElementById("status");
const problems = document.getElementById("problems");
const save = document.getElementById("save");

function say(text) {
  status.textContent = text;
}

// The content checks' findings: the errors that refused a save, or the warnings of one.
function showProblems(error, warnings = []) {
  problems.replaceChildren();
  if (!error && !warnings.length) return;
  const box = document.createElement("div");
  box.className = error ? "error-banner" : "warning-banner";
  if (error) box.setAttribute("role", "alert");
  box.textContent = error ? `Not saved: ${error.message}` : "Saved with warnings from the content checks:";
  const results = error ? error.details?.results || [] : warnings;
  if (results.length) {
    const list = document.createElement("ul");
    for (const result of results) {
      const item = document.createElement("li");
      item.textContent = `${result.severity}: ${result.message}`;
      list.append(item);
    }
    box.append(list);
  }
  problems.append(box);
}

function variableBlocks(editor) {
  for (const [name, label] of VARIABLES) {
    const content =
      name === "unsubscribe_url"
        ? '<a href="{{unsubscribe_url}}">Unsubscribe</a>'
        : { type: "text", content: `{{${name}}}` };
    editor.BlockManager.add(`variable-${name}`, { label, category: "Personalisation", content });
  }
}

// Names GrapesJS leaves out (WCAG 4.1.2): the canvas frame, and the selector's state menu,
// which appears when a block is selected.
function labelEditor(editor) {
  const label = () => {
    editor.Canvas.getFrameEl()?.setAttribute("title", "The email being edited");
    document.getElementById("gjs-clm-states")?.setAttribute("aria-label", "Style state");
  };
  editor.on("load", label);
  editor.on("component:selected", () => requestAnimationFrame(label));
  label();
}

async function start() {
  if (!session()) {
    location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  if (!templateId || !/^\d+$/.test(templateId)) {
    say("No template given.");
    return;
  }
  document.getElementById("back").href = `/ui/templates/${templateId}`;
  const template = await api("GET", `/api/email-templates/${templateId}/`);
  document.getElementById("title").textContent = `Builder: ${template.template_name}`;
  document.title = `${template.template_name} · builder · Sendmill`;
  const editor = grapesjs.init({
    container: "#gjs",
    height: "calc(100vh - 3.5rem)",
    fromElement: false,
    storageManager: false,
    telemetry: false, // GrapesJS reports usage to its vendor unless told not to

    // Icons come from the preset's own SVGs; no stylesheet is fetched from another host.
    cssIcons: "",
    plugins: [newsletter],
    pluginsOpts: { [newsletter]: { modalTitleImport: "Import HTML" } },
    components: template.html_content || "",
  });
  variableBlocks(editor);
  labelEditor(editor);
  window.sendmillEditor = editor; // for the browser tests
  save.disabled = false;
  save.addEventListener("click", async () => {
    save.disabled = true;
    say("Saving…");
    showProblems(null);
    const html = emailDocument(editor.runCommand("gjs-get-inlined-html"), template.template_name);
    try {
      const saved = await api("PATCH", `/api/email-templates/${templateId}/`, { body: { html_content: html, mjml_source: null } });
      const warnings = saved.content_checks?.results || [];
      say(warnings.length ? `Saved, with ${warnings.length} warning(s) from the content checks.` : "Saved; the content checks pass.");
      showProblems(null, warnings);
    } catch (error) {
      say("Not saved.");
      showProblems(error);
    } finally {
      save.disabled = false;
    }
  });
  say("Drag blocks from the right into the email.");
}

// The preset's inlined HTML is `<body style>…</body><style>…</style>` (media queries cannot be
// inlined): made into a whole document, the styles in its head, no stray <meta> in its body.
function emailDocument(inlined, title) {
  const parsed = new DOMParser().parseFromString(inlined, "text/html");
  const styles = [...parsed.querySelectorAll("style")].map((s) => s.textContent.trim()).filter(Boolean);
  parsed.querySelectorAll("style, meta, title").forEach((node) => node.remove());
  const bodyStyle = parsed.body.getAttribute("style");
  const head = styles.map((css) => `<style>${css}</style>`).join("");
  const open = bodyStyle ? `<body style="${escape(bodyStyle)}">` : "<body>";
  return `${HEAD}<title>${escape(title)}</title>${head}</head>${open}${parsed.body.innerHTML}</body></html>`;
}

function escape(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

start().catch((error) => {
  say(`The builder could not start: ${error.message}`);
});
