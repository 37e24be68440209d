import { useState, type FormEvent } from 'react';
import { Link, Navigate, useLocation, useNavigate } from 'react-router-dom';
import { api } from '../api';
import { useUser } from '../session';

export function AuthPage({ mode }: { mode: 'signin' | 'signup' }) {
  const user = useUser();
  const navigate = useNavigate();
  const next = (useLocation().state as { next?: string } | null)?.next ?? '/rooms';
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  if (user) return <Navigate to={next} replace />;

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError('');
    try {
      if (mode === 'signup') {
        await api.register(String(f.get('name')), String(f.get('email')), String(f.get('password')));
      } else {
        await api.login(String(f.get('email')), String(f.get('password')));
      }
      navigate(next, { replace: true });
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const title = mode === 'signup' ? 'Create an account' : 'Sign in';
  return (
    <section className="page narrow" aria-labelledby="auth-title">
      <h1 id="auth-title">{title}</h1>
      <form onSubmit={submit} className="form">
        {mode === 'signup' && (
          <label>Name<input name="name" autoComplete="name" required maxLength={100} /></label>
        )}
        <label>Email<input name="email" type="email" autoComplete="email" required /></label>
        <label>
          Password
          <input name="password" type="password" required minLength={8}
            autoComplete={mode === 'signup' ? 'new-password' : 'current-password'} />
        </label>
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit" className="primary" disabled={busy}>{title}</button>
      </form>
      <p>
        {mode === 'signup'
          ? <>Already have an account? <Link to="/signin">Sign in</Link></>
          : <>New here? <Link to="/signup">Create an account</Link></>}
      </p>
    </section>
  );
}
