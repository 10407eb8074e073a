// The email as recipients see it, at desktop, tablet and phone widths (blueprint §7.4), in a
// sandboxed frame (control/console/preview.html).
import { useEffect, useRef, useState } from "preact/hooks";
import { ui } from "../router.js";

const DEVICES = [
  ["desktop", "Desktop", "100%"],
  ["tablet", "Tablet", "768px"],
  ["phone", "Phone", "375px"],
];

export function EmailPreview({ html }) {
  const frame = useRef(null);
  const [device, setDevice] = useState("desktop");
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    // The frame's origin is opaque (sandboxed), so the message cannot name it; the frame is
    // our own page and does not navigate (preview_frame.js).
    if (loaded) frame.current?.contentWindow?.postMessage({ html: html || "" }, "*");
  }, [html, loaded]);
  const width = DEVICES.find(([name]) => name === device)[2];
  return (
    <div class="email-preview">
      <div class="tabs" role="group" aria-label="Preview width">
        {DEVICES.map(([name, text]) => (
          <button
            type="button"
            key={name}
            class={`button small ${device === name ? "" : "secondary"}`}
            aria-pressed={device === name ? "true" : "false"}
            onClick={() => setDevice(name)}
          >
            {text}
          </button>
        ))}
      </div>
      <div class="preview-stage">
        <iframe
          ref={frame}
          title={`Email preview, ${device} width`}
          src={ui("/preview.html")}
          sandbox="allow-scripts"
          class={`preview-frame preview-${device}`}
          data-width={width}
          onLoad={() => setLoaded(true)}
        />
      </div>
    </div>
  );
}
