// The email preview document (/ui/preview.html), shown in a sandboxed frame (scripts only, an
// opaque origin) under its own policy: the email's inline styles apply, its scripts never run.
// The console posts the HTML; it is parsed inertly and put in place of this document's tree.
// Links and forms do nothing here, so the frame never leaves this page.
window.addEventListener("message", (event) => {
  if (event.source !== window.parent || typeof event.data?.html !== "string") return;
  const parsed = new DOMParser().parseFromString(event.data.html, "text/html");
  document.replaceChild(document.adoptNode(parsed.documentElement), document.documentElement);
});

for (const type of ["click", "submit"]) {
  document.addEventListener(
    type,
    (event) => {
      if (type === "submit" || event.target.closest?.("a, area")) event.preventDefault();
    },
    true,
  );
}
