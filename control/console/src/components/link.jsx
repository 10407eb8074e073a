// An <a> that navigates inside the console without reloading the page.
import { navigate } from "../router.js";

export function Link({ href, children, ...props }) {
  const onClick = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...props}>
      {children}
    </a>
  );
}
