// Data that refreshes itself: the portal polls the control API while a page is open.
import { useEffect, useState } from "preact/hooks";

export function usePoll(load, deps, intervalMs = 2000) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [version, setVersion] = useState(0);
  useEffect(() => {
    let live = true;
    let timer = null;
    const run = async () => {
      try {
        const data = await load();
        if (live) setState({ data, error: null, loading: false });
      } catch (error) {
        if (live) setState((old) => ({ data: old.data, error, loading: false }));
      }
      if (live && intervalMs) timer = setTimeout(run, intervalMs);
    };
    run();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [...deps, version]);
  return { ...state, reload: () => setVersion((v) => v + 1) };
}
