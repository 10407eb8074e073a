// Delete a record after a confirmation, then go somewhere else; a refusal (in use) is shown.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { navigate } from "../router.js";
import { ErrorBanner } from "./error_banner.jsx";

export function DeleteButton({ path, what, name, then }) {
  const [error, setError] = useState(null);
  const remove = async () => {
    if (!confirm(`Delete the ${what} “${name}”? Its history is kept.`)) return;
    setError(null);
    try {
      await api("DELETE", path);
      navigate(then);
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <div class="delete-zone">
      <ErrorBanner error={error} title={`The ${what} was not deleted`} />
      <button type="button" class="button danger" onClick={remove}>
        Delete this {what}
      </button>
    </div>
  );
}
