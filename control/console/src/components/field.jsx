// A labelled form control with its hint and its error, wired for assistive technology.
import { useState } from "preact/hooks";

let serial = 0;

export function Field({ label, error, hint, children, id }) {
  const [own] = useState(() => `field-${++serial}`);
  const controlId = id || own;
  const hintId = hint ? `${controlId}-hint` : undefined;
  const errorId = error ? `${controlId}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  const control = children({
    id: controlId,
    "aria-describedby": describedBy,
    "aria-invalid": error ? "true" : undefined,
  });
  return (
    <div class={`field${error ? " has-error" : ""}`}>
      <label for={controlId}>{label}</label>
      {control}
      {hint && (
        <p class="hint" id={hintId}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={errorId}>
          <span aria-hidden="true">⚠ </span>
          {String(error)}
        </p>
      )}
    </div>
  );
}
