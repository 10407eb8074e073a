// Login: email and password, then the TOTP code when the account has one (second step).
import { useState } from "preact/hooks";
import { Field } from "../components/field.jsx";
import { navigate, searchParams, ui } from "../router.js";
import { login } from "../session.js";

export function LoginPage() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needsCode, setNeedsCode] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await login(email, password, needsCode ? code : undefined);
      if (result.ok) {
        const next = searchParams().get("next");
        if (next && next.startsWith(`${ui("/")}builder.html?`)) {
          location.assign(next); // a document of its own, not a page of this one
          return;
        }
        navigate(next && next.startsWith(`${ui("/")}`) && !next.includes("/login") ? next : ui("/"), {
          replace: true,
        });
        return;
      }
      if (result.totpRequired && !needsCode) {
        setNeedsCode(true);
        return;
      }
      setError(result.error);
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <form class="card login-card" onSubmit={submit} aria-describedby={error ? "login-error" : undefined}>
        <h1>Sign in to Sendmill</h1>
        {error && (
          <p class="error-banner" role="alert" id="login-error">
            {error}
          </p>
        )}
        {!needsCode ? (
          <>
            <Field label="Email">
              {(props) => (
                <input
                  {...props}
                  type="email"
                  autocomplete="username"
                  required
                  value={email}
                  onInput={(e) => setEmail(e.currentTarget.value)}
                />
              )}
            </Field>
            <Field label="Password">
              {(props) => (
                <input
                  {...props}
                  type="password"
                  autocomplete="current-password"
                  required
                  value={password}
                  onInput={(e) => setPassword(e.currentTarget.value)}
                />
              )}
            </Field>
          </>
        ) : (
          <Field label="Authentication code" hint="The 6-digit code from your authenticator app.">
            {(props) => (
              <input
                {...props}
                inputmode="numeric"
                autocomplete="one-time-code"
                pattern="[0-9]{6,8}"
                required
                autoFocus
                value={code}
                onInput={(e) => setCode(e.currentTarget.value.trim())}
              />
            )}
          </Field>
        )}
        <button type="submit" class="button" disabled={busy}>
          {busy ? "Signing in…" : needsCode ? "Verify" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
