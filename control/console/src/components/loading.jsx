// A polite "loading" line for screen readers and eyes alike.
export function Loading({ what = "" }) {
  return (
    <p class="loading" role="status">
      Loading{what ? ` ${what}` : ""}…
    </p>
  );
}
