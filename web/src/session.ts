import { useSyncExternalStore } from 'react';
import { currentUser, subscribe } from './api';

/** The signed-in user (null when signed out); re-renders on sign-in, sign-out and refresh. */
export function useUser() {
  return useSyncExternalStore(subscribe, currentUser);
}
