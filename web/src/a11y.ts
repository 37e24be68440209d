import { useEffect } from 'react';

// @livekit/components-react 2.9 renders a few icon-only buttons without an accessible name
// (the tile's focus toggle, the device menus next to the microphone and camera buttons). Until
// the library labels them, name them here, as they appear, so screen readers can use them.
function label(root: ParentNode) {
  root.querySelectorAll<HTMLElement>('.lk-focus-toggle-button:not([aria-label])').forEach((b) => {
    b.setAttribute('aria-label', 'Focus on this video');
  });
  root.querySelectorAll<HTMLElement>('.lk-button-menu:not([aria-label])').forEach((b) => {
    const source = b.closest('.lk-button-group')?.querySelector('[data-lk-source]')?.getAttribute('data-lk-source');
    b.setAttribute('aria-label', source === 'camera' ? 'Choose a camera' : source === 'microphone' ? 'Choose a microphone' : 'Choose a device');
  });
}

export function useLabelLiveKitButtons() {
  useEffect(() => {
    label(document);
    const observer = new MutationObserver(() => label(document));
    observer.observe(document.body, { childList: true, subtree: true });
    return () => observer.disconnect();
  }, []);
}
