// An unknown console path.
import { Link } from "../components/link.jsx";
import { ui } from "../router.js";

export function NotFoundPage() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no such page. <Link href={ui("/")}>Go to the dashboard</Link>.
      </p>
    </section>
  );
}
