// What a page shows when there is nothing yet, and what to do about it.
export function EmptyState({ title, children }) {
  return (
    <div class="empty-state">
      <p class="empty-title">{title}</p>
      {children}
    </div>
  );
}
