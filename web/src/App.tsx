import { lazy, Suspense } from 'react';
import { Link, Navigate, Route, Routes, useNavigate } from 'react-router-dom';
import { api } from './api';
import { useUser } from './session';
import { AuthPage } from './pages/AuthPage';
import { RoomsPage } from './pages/RoomsPage';
import { AdminPage } from './pages/AdminPage';

// The meeting (LiveKit's client and components, most of the app's weight) loads only when a
// meeting page is opened: signing in and the room list stay light.
const MeetingPage = lazy(() => import('./pages/MeetingPage').then((m) => ({ default: m.MeetingPage })));

export function App() {
  const user = useUser();
  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <Header />
      <main id="main">
        <Routes>
          <Route path="/" element={<Navigate to={user ? '/rooms' : '/signin'} replace />} />
          <Route path="/signin" element={<AuthPage mode="signin" />} />
          <Route path="/signup" element={<AuthPage mode="signup" />} />
          <Route path="/rooms" element={user ? <RoomsPage /> : <Navigate to="/signin" replace />} />
          <Route path="/r/:room" element={<Suspense fallback={<p className="page">Loading the meeting…</p>}><MeetingPage /></Suspense>} />
          <Route path="/admin" element={user ? <AdminPage /> : <Navigate to="/signin" replace />} />
          <Route path="*" element={<p className="page">This page does not exist. <Link to="/">Home</Link></p>} />
        </Routes>
      </main>
    </>
  );
}

function Header() {
  const user = useUser();
  const navigate = useNavigate();
  return (
    <header className="top">
      <Link to="/" className="brand">bedrud</Link>
      <nav aria-label="Main">
        {user ? (
          <>
            <Link to="/rooms">Rooms</Link>
            {user.role === 'admin' && <Link to="/admin">Admin</Link>}
            <span className="who" aria-label="Signed in as">{user.name}</span>
            <button type="button" onClick={async () => { await api.logout(); navigate('/signin'); }}>
              Sign out
            </button>
          </>
        ) : (
          <>
            <Link to="/signin">Sign in</Link>
            <Link to="/signup">Sign up</Link>
          </>
        )}
      </nav>
    </header>
  );
}
