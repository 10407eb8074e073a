// The signed-in user's account: turn on the second factor (TOTP, RFC 6238).
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner } from "../components/error_banner.jsx";
import { Field } from "../components/field.jsx";
import { label } from "../format.js";
import { session, updateMe } from "../session.js";

export function AccountPage() {
  const me = session().me;
  const [setup, setSetup] = useState(null);
  const [password, setPassword] = useState("");
  const [currentCode, setCurrentCode] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  // Changing the second factor needs the password, and a current code when one is on: a
  // stolen session alone cannot replace it.
  const start = async (e) => {
    e.preventDefault();
    setError(null);
    const body = { password };
    if (currentCode) body.code = currentCode;
    try {
      setSetup(await api("POST", "/api/auth/totp/setup", { body }));
      setPassword("");
      setCurrentCode("");
    } catch (failure) {
      setError(failure);
    }
  };
  const confirmCode = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api("POST", "/api/auth/totp/confirm", { body: { code } });
      setDone(true);
      setSetup(null);
      updateMe(await api("GET", "/api/auth/me"));
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <section>
      <h1>Your account</h1>
      <dl class="facts">
        <dt>Role</dt>
        <dd>{label(me.role)}</dd>
        <dt>Permissions</dt>
        <dd class="perm-cell">{me.permissions.join(", ")}</dd>
      </dl>
      <section class="card" aria-labelledby="totp-title">
        <h2 id="totp-title">Second factor</h2>
        {done && (
          <p class="notice" role="status">
            The second factor is on: every login now asks for a code.
          </p>
        )}
        {!setup && !done && (
          <>
            <p>Add an authenticator app (TOTP): each login then asks for its 6-digit code. Your company may require it to send or approve.</p>
            <form onSubmit={start}>
              <Field label="Your password" error={error?.fields?.password}>
                {(p) => <input {...p} type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />}
              </Field>
              <Field label="Current code" hint="Only when replacing a second factor that is already on" error={error?.fields?.code}>
                {(p) => <input {...p} inputmode="numeric" autocomplete="one-time-code" value={currentCode} onInput={(e) => setCurrentCode(e.currentTarget.value.trim())} />}
              </Field>
              <button type="submit" class="button">
                Set up an authenticator
              </button>
            </form>
          </>
        )}
        {setup && (
          <form onSubmit={confirmCode}>
            <p>Add this key to your authenticator app, then type the code it shows.</p>
            <p>
              Key: <code class="break">{setup.secret}</code>
            </p>
            <p class="muted break">
              Or open: <code>{setup.otpauth_uri}</code>
            </p>
            <Field label="Code from the app" error={error?.fields?.code}>
              {(p) => <input {...p} inputmode="numeric" autocomplete="one-time-code" required value={code} onInput={(e) => setCode(e.currentTarget.value.trim())} />}
            </Field>
            <button type="submit" class="button">
              Turn on
            </button>
          </form>
        )}
        <ErrorBanner error={error} />
      </section>
    </section>
  );
}
